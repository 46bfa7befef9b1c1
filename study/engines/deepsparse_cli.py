"""DeepSparse's own benchmark tool, ``deepsparse.benchmark``, run as a subprocess per trial.

Each window is one run of the tool (``-t`` whole seconds after its own ``-w`` warm-up, JSON via
``-x``), so the tool's numbers enter the study exactly as the tool reports them. The model is also
compiled once through the Python API at load time, for the output cross-check and the settings.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from study.engines.base import EngineAdapter, Window
from study.engines.deepsparse import DeepSparseEngine

__all__ = ["DeepSparseCliEngine", "deepsparse_benchmark_command", "parse_deepsparse_json"]

_CLI_WARMUP_SECONDS = 2  # the tool's own default warm-up per run


def deepsparse_benchmark_command(
    onnx_path: str,
    batch_size: int,
    cores: int,
    scenario: str,
    seconds: int,
    export: str,
    shapes: str | None = None,
) -> list[str]:
    """The ``deepsparse.benchmark`` command line (console script if beside the interpreter)."""
    script = Path(sys.executable).with_name("deepsparse.benchmark")
    exe = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-m", "deepsparse.benchmark.benchmark_model"]
    )
    cmd = [*exe, onnx_path, "-b", str(batch_size), "-ncores", str(cores), "-s", scenario]
    cmd += ["-t", str(seconds), "-w", str(_CLI_WARMUP_SECONDS), "-x", export, "-q"]
    if shapes:
        cmd += ["-shapes", shapes]
    return cmd


def parse_deepsparse_json(data: dict[str, Any], batch_size: int) -> Window:
    """Turn the tool's ``-x`` JSON into a :class:`Window` (latency percentiles kept as reported)."""
    res = data["benchmark_result"]
    calls = int(res["iterations"])
    seconds = float(res["seconds_ran"])
    # The tool reports latency percentiles (ms per batch), not raw latencies.
    reported = tuple(float(res[k]) for k in ("mean", "median", "90.0%", "99.0%"))
    return Window(calls * batch_size, seconds, calls, (), reported)


class DeepSparseCliEngine(EngineAdapter):
    """``deepsparse.benchmark`` in a subprocess."""

    name = "deepsparse-cli"
    module = "deepsparse"
    linux_x86_only = True
    self_warming = True

    def load(self) -> None:
        self._api = DeepSparseEngine(self.config)
        self._api.load()
        self._tmp = tempfile.mkdtemp(prefix="ds-cli-")
        self._last: dict[str, Any] = {}

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._api.infer(inputs)

    def window(self, inputs: dict[str, np.ndarray], seconds: float) -> Window:
        c = self.config
        export = str(Path(self._tmp) / "out.json")
        shapes = ",".join("[" + ",".join(map(str, s.shape)) + "]" for s in self.specs)
        cmd = deepsparse_benchmark_command(
            self._api.private_path,  # the private copy: the tool may rewrite the file too
            c.batch_size,
            c.threads,
            c.scenario,
            max(1, math.ceil(seconds)),
            export,
            shapes,
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not Path(export).exists():
            raise RuntimeError(
                f"deepsparse.benchmark exited {proc.returncode}: {proc.stderr.strip()[-800:]}"
            )
        self._last = json.loads(Path(export).read_text())
        Path(export).unlink()
        return parse_deepsparse_json(self._last, c.batch_size)

    def version(self) -> str:
        return self._api.version()

    def settings(self) -> dict[str, Any]:
        out = self._api.settings()
        out["tool"] = "deepsparse.benchmark"
        out["tool_warmup_seconds"] = _CLI_WARMUP_SECONDS
        if self._last:
            out["tool_scenario"] = self._last.get("scenario")
            out["tool_num_streams"] = self._last.get("num_streams")
        return out

    def close(self) -> None:
        self._api.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
