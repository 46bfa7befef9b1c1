"""Fidelity of ``study.bench`` against the engines' own benchmark tools, with process replicates.

The harness (``study.bench``) and each engine's own tool (``deepsparse.benchmark -s sync``;
OpenVINO's ``benchmark_app``, latency configuration, f32) measure the same ONNX file at the same
batch, threads and scenario (sync), each in ``--processes`` fresh processes per side: a harness
process is a new ``study.bench`` worker (fresh engine load and compile, warm-up, one-second
trials), a native process is a new run of the tool. The processes are interleaved in time: for
each replicate index i and engine (engines in a seeded order), one harness and one native process
run back to back, the first side alternating from pair to pair, so drift of a shared machine
hits both sides alike.

Per engine and model: the ratio harness/native of the geometric-mean per-process throughputs with
a 95% CI whose degrees of freedom come from the processes (Welch on log throughput,
:func:`study.stats.throughput_ratio`), the t interval on the log ratios of the interleaved pairs
(df = pairs - 1) as a second estimate, and the between-process CV of each side. A CI that
excludes 1 is a harness bias that process variance cannot explain; one that includes 1 says the
two agree within its width.

Efficiency (``--efficiency``): how far the harness's CI gets within its default 30-s cap per
cell, beside the machine's noise floor (``study.bench.noise``).

Usage::

    uv run python benchmarks/fidelity.py --processes 5 --seconds 10 --json runs/fidelity/fidelity.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil
import scipy.stats

from study.bench import BenchSettings, CellSpec, run_benchmark, summarize
from study.bench.hardware import capture_hardware
from study.bench.noise import noise_floor
from study.engines.base import read_input_specs
from study.engines.deepsparse_cli import deepsparse_benchmark_command
from study.make.models import MODELS
from study.records.manifest import sha256_file
from study.stats import CONFIDENCE, geometric_ci, throughput_ratio

ENGINES = ("deepsparse", "openvino")  # the engines with a native tool
SIDES = ("harness", "native")
ENV_PREFIXES = ("NM_", "OV_", "OMP_", "KMP_", "ONEDNN_")  # recorded: they change what engines do
NATIVE_ENV = {"NM_DISABLE_ANALYTICS": "1"}  # as the harness's DeepSparse adapter sets it


@dataclass(frozen=True)
class FidelitySettings:
    """What both sides measure, and how many processes of each."""

    engines: tuple[str, ...] = ENGINES  # engines compared with their native tools
    processes: int = 5  # fresh processes per side and engine (>= 2)
    seconds: int = 10  # timed seconds per process (the harness: that many one-second trials)
    threads: int = field(default_factory=lambda: psutil.cpu_count(logical=False) or 1)
    batch_size: int = 1  # items per call on both sides
    scenario: str = "sync"  # the only scenario compared (see check_settings)
    seed: int = 0  # seed of the interleaved order
    # Cap on the harness's warm-up (study.bench's warmup_max_seconds: 0.25-s windows until three
    # agree within 3%); the tools warm up their own way (deepsparse.benchmark 2 s, benchmark_app
    # one inference).
    warmup_max_seconds: float = BenchSettings.warmup_max_seconds


@dataclass(frozen=True)
class Process:
    """One process of one side: what it measured and how it was run."""

    engine: str
    side: str  # "harness" or "native"
    pair: int  # replicate index i: the harness and native processes of pair i ran back to back
    position: int  # order of the process in the whole schedule
    throughput: float  # items/s over the timed part; NaN when the process failed
    wall_seconds: float  # the process's whole life (load, warm-up, timing)
    command: str  # the native command line, or the harness settings
    error: str = ""  # why it failed ("" when it did not)
    settings: dict = field(default_factory=dict)  # the engine's settings as this side reports them


@dataclass(frozen=True)
class FidelityResult:
    """harness/native of one engine on one model, with CIs from processes."""

    ratio: float  # exp(mean log harness - mean log native): ratio of geometric means
    ci_low: float  # Welch 95% CI on log throughput, exp'd
    ci_high: float
    dof: float  # Welch-Satterthwaite degrees of freedom (from processes)
    pvalue: float  # Welch t test of ratio = 1
    paired_ratio: float  # geometric mean of the interleaved pairs' ratios
    paired_low: float  # t interval on the pairs' log ratios, df = pairs - 1
    paired_high: float
    n_harness: int  # processes that measured, per side
    n_native: int
    n_pairs: int  # pairs with both sides measured
    cv_harness: float  # between-process CV of throughput (sd / mean, ddof 1)
    cv_native: float
    confidence: float = CONFIDENCE


def check_settings(s: FidelitySettings) -> None:
    """Raise ValueError naming the field, the bad value and what is allowed.

    Example:
        >>> check_settings(FidelitySettings(processes=1))
        Traceback (most recent call last):
        ...
        ValueError: `processes` must be an integer >= 2 per side (one process per side cannot tell a harness bias from process variance); got 1
    """
    if not _int_at_least(s.processes, 2):
        raise ValueError(
            "`processes` must be an integer >= 2 per side (one process per side cannot tell a "
            f"harness bias from process variance); got {s.processes!r}"
        )
    for name, low in (("seconds", 2), ("threads", 1), ("batch_size", 1)):
        if not _int_at_least(getattr(s, name), low):
            raise ValueError(f"`{name}` must be an integer >= {low}; got {getattr(s, name)!r}")
    if not s.warmup_max_seconds > 0:
        raise ValueError(f"`warmup_max_seconds` must be > 0; got {s.warmup_max_seconds!r}")
    bad = [e for e in s.engines if e not in ENGINES]
    if not s.engines or bad:
        raise ValueError(
            f"`engines` must be a non-empty subset of {list(ENGINES)}; got {s.engines!r}"
        )
    if s.scenario != "sync":
        raise ValueError(
            f"`scenario` must be 'sync' (the async tools pick their own streams and requests); "
            f"got {s.scenario!r}"
        )


def _say(line: str) -> None:
    print(line, flush=True)


def _int_at_least(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def schedule(engines: Sequence[str], processes: int, seed: int) -> list[tuple[int, str, str]]:
    """The interleaved order: (pair, engine, side) for every process, seeded.

    Pair i runs, for each engine in a seeded order, one harness and one native process back to
    back; the side that goes first is drawn once per engine and alternates from pair to pair
    (ABBA...), so each side goes first in half of the pairs and a linear drift cancels.

    Example:
        >>> schedule(["deepsparse"], 2, seed=0)  # doctest: +NORMALIZE_WHITESPACE
        [(0, 'deepsparse', 'native'), (0, 'deepsparse', 'harness'),
         (1, 'deepsparse', 'harness'), (1, 'deepsparse', 'native')]
    """
    rng = random.Random(seed)
    first = {e: rng.sample(SIDES, 2) for e in engines}
    order = []
    for i in range(processes):
        for engine in rng.sample(list(engines), len(engines)):
            sides = first[engine] if i % 2 == 0 else first[engine][::-1]
            order += [(i, engine, side) for side in sides]
    return order


def fidelity_ratio(
    harness: Sequence[float],
    native: Sequence[float],
    pairs: Sequence[tuple[float, float]] = (),
    *,
    confidence: float = CONFIDENCE,
) -> FidelityResult:
    """harness/native from per-process throughputs, with CIs whose dof come from processes.

    ``ratio`` and its CI: Welch's t on log throughput (:func:`study.stats.throughput_ratio`,
    ``scipy.stats.ttest_ind(equal_var=False)``). ``paired_*``: the geometric mean of the
    interleaved pairs' ratios with a t interval on their logs (:func:`study.stats.geometric_ci`,
    df = pairs - 1); NaN with fewer than two pairs.

    Args:
        harness: items/s of each harness process (> 0).
        native: items/s of each native-tool process (> 0).
        pairs: (harness, native) items/s of processes that ran back to back.
        confidence: two-sided level of the CIs.

    Returns:
        :class:`FidelityResult`.

    Raises:
        ValueError: fewer than two processes on a side, or a throughput that is not finite and > 0.

    Example:
        >>> r = fidelity_ratio([110.0, 112.0, 108.0], [100.0, 101.0, 99.0])
        >>> round(r.ratio, 2), r.ci_low < r.ratio < r.ci_high
        (1.1, True)
    """
    for name, xs in (("harness", harness), ("native", native)):
        if len(xs) < 2:
            raise ValueError(
                f"`{name}` must hold at least 2 process throughputs (the CI's degrees of freedom "
                f"come from processes); got {len(xs)}"
            )
    welch = throughput_ratio(harness, native, confidence=confidence)
    nan = math.nan
    paired = (nan, nan, nan)
    if len(pairs) >= 2:
        ci = geometric_ci([h / n for h, n in pairs], confidence=confidence)
        paired = (ci.estimate, ci.low, ci.high)
    return FidelityResult(
        ratio=welch.estimate, ci_low=welch.ci_low, ci_high=welch.ci_high, dof=welch.welch_dof,
        pvalue=welch.welch_p, paired_ratio=paired[0], paired_low=paired[1],
        paired_high=paired[2], n_harness=len(harness), n_native=len(native), n_pairs=len(pairs),
        cv_harness=_cv(harness), cv_native=_cv(native), confidence=confidence,
    )  # fmt: skip


def _cv(xs: Sequence[float]) -> float:
    return float(scipy.stats.variation(np.asarray(xs, dtype=float), ddof=1))


def harness_process(
    onnx: Path, engine: str, s: FidelitySettings, out: Path
) -> tuple[float, dict[str, object]]:
    """One fresh ``study.bench`` worker: load, warm-up, ``s.seconds`` one-second trials.

    Returns items over timed seconds of its trials (the tools' formula) and the engine's settings
    as the worker read them back (scalars only).
    """
    bench = BenchSettings(
        trial_seconds=1.0,
        min_trials=s.seconds,
        max_trials=s.seconds,
        max_seconds_per_cell=1e9,
        warmup_max_seconds=s.warmup_max_seconds,
    )
    cell = CellSpec(str(onnx), engine, batch_size=s.batch_size, threads=s.threads, block="fidelity")
    rows = run_benchmark([cell], bench, out, progress=False, resume=False)
    ok = [r for r in rows if r.status == "ok"]
    if not ok:
        raise RuntimeError(f"the harness's {engine} process failed: {rows[-1].error}")
    return sum(r.items for r in ok) / sum(r.seconds for r in ok), _scalars(ok[0].engine_settings)


def _scalars(d: dict) -> dict[str, object]:
    return {k: v for k, v in d.items() if isinstance(v, (str, int, float, bool))}


def deepsparse_command(onnx: Path, s: FidelitySettings, export: Path) -> list[str]:
    """``deepsparse.benchmark -s sync`` on ``onnx``: its default 2-s warm-up, ``-pin core``."""
    shapes = ",".join(
        "[" + ",".join(map(str, i.shape)) + "]" for i in read_input_specs(str(onnx), s.batch_size)
    )
    return deepsparse_benchmark_command(
        str(onnx), s.batch_size, s.threads, "sync", s.seconds, str(export), shapes
    )


def benchmark_app_command(onnx: Path, s: FidelitySettings) -> list[str]:
    """OpenVINO's ``benchmark_app`` in the harness's sync configuration, f32, ``s.threads``.

    ``benchmark_app`` refuses ``-nthreads`` together with a hint ("fine tune options"): with all
    physical cores the latency hint alone is the harness's setting (one stream, one sync request);
    otherwise that configuration is spelled out.
    """
    exe = str(Path(sys.executable).with_name("benchmark_app"))
    shape = ",".join(
        f"{i.name}[{','.join(map(str, i.shape))}]"
        for i in read_input_specs(str(onnx), s.batch_size)
    )
    cmd = [exe, "-m", str(onnx), "-d", "CPU", "-infer_precision", "f32", "-t", str(s.seconds)]
    cmd += ["-shape", shape]
    if s.threads == psutil.cpu_count(logical=False):
        return [*cmd, "-hint", "latency"]
    return [*cmd, "-hint", "none", "-nstreams", "1", "-nireq", "1", "-api", "sync",
            "-nthreads", str(s.threads)]  # fmt: skip


def native_process(
    onnx: Path, engine: str, s: FidelitySettings
) -> tuple[float, str, dict[str, object]]:
    """One run of the engine's own tool: its reported items/s, the command, the settings it used.

    The settings are what the tool reports: ``deepsparse.benchmark``'s JSON (scenario, scheduler,
    cores, streams, fraction of supported ops), ``benchmark_app``'s compiled-model properties
    (its step 8). ``deepsparse.benchmark`` reads a private copy of the file (with input shapes it
    may rewrite the model in place).
    """
    env = {**os.environ, **NATIVE_ENV}
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        if engine == "deepsparse":
            model = Path(tmp) / onnx.name
            shutil.copyfile(onnx, model)
            export = Path(tmp) / "out.json"
            cmd = deepsparse_command(model, s, export)
            _run(cmd, env)
            data = json.loads(export.read_text())
            settings = {k: str(v) for k, v in data.items() if k != "benchmark_result"}
            rate = float(data["benchmark_result"]["items_per_sec"])
            return rate, " ".join(cmd).replace(str(model), str(onnx)), settings
        cmd = benchmark_app_command(onnx, s)
        stdout = _run(cmd, env)
        match = re.search(r"Throughput:\s*([\d.]+)\s*FPS", stdout)
        if not match:
            raise RuntimeError(
                f"no 'Throughput:' line in benchmark_app's output:\n{stdout[-2000:]}"
            )
        return float(match.group(1)), " ".join(cmd), benchmark_app_properties(stdout)


def benchmark_app_properties(stdout: str) -> dict[str, str]:
    """The compiled model's properties ``benchmark_app`` prints in its step 8 ("Model:").

    Example:
        >>> benchmark_app_properties("[Step 8/11] Querying\\n[ INFO ] Model:\\n[ INFO ]   NUM_STREAMS: 1\\n[Step 9/11]")
        {'NUM_STREAMS': '1'}
    """
    section = re.search(r"\[Step 8/\d+\](.*?)\[Step 9/", stdout, re.S)
    lines = section.group(1).splitlines() if section else []
    found = (re.match(r"\[ INFO \]\s{2,}([A-Z_]+):\s*(.*)$", line) for line in lines)
    return {m.group(1): m.group(2).strip() for m in found if m}


def _run(cmd: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{Path(cmd[0]).name} exited {proc.returncode}: {(proc.stderr or proc.stdout)[-800:]}"
        )
    return proc.stdout


def measure(onnx: Path, s: FidelitySettings, work: Path, *, log=_say) -> list[Process]:
    """Run the interleaved schedule on ``onnx``; one :class:`Process` per process, failed ones too."""
    check_settings(s)
    harness_settings = f"study.bench, {s.seconds} x 1-s trials after its warm-up"
    done = []
    for position, (pair, engine, side) in enumerate(schedule(s.engines, s.processes, s.seed)):
        started = time.perf_counter()
        error, command, rate, settings = "", harness_settings, math.nan, {}
        try:
            if side == "harness":
                rate, settings = harness_process(onnx, engine, s, work / "harness.jsonl")
            else:
                rate, command, settings = native_process(onnx, engine, s)
        except RuntimeError as exc:
            error = str(exc)
        wall = time.perf_counter() - started
        done.append(Process(engine, side, pair, position, rate, wall, command, error, settings))
        shown = f"{rate:8.2f} items/s" if not error else f"failed: {error[:200]}"
        log(f"  {onnx.name} pair {pair} {engine:10s} {side:7s} {shown}  ({wall:.0f} s)")
    return done


def compare(processes: Sequence[Process], confidence: float = CONFIDENCE) -> dict[str, dict]:
    """engine -> the :class:`FidelityResult` fields, or ``{"error": reason}`` when it cannot be had."""
    out: dict[str, dict] = {}
    for engine in dict.fromkeys(p.engine for p in processes):
        mine = [p for p in processes if p.engine == engine and not p.error]
        side = {k: [p.throughput for p in mine if p.side == k] for k in SIDES}
        by_pair = {k: {p.pair: p.throughput for p in mine if p.side == k} for k in SIDES}
        pairs = [
            (h, by_pair["native"][i])
            for i, h in by_pair["harness"].items()
            if i in by_pair["native"]
        ]
        try:
            result = fidelity_ratio(side["harness"], side["native"], pairs, confidence=confidence)
            out[engine] = {**asdict(result), "settings_differ": settings_differ(mine)}
        except ValueError as exc:
            out[engine] = {"error": str(exc)}
    return out


def settings_differ(processes: Sequence[Process]) -> dict[str, dict[str, list[str]]]:
    """Settings both sides report under one name whose values differ: key -> side -> values.

    Example:
        >>> ps = [Process("openvino", side, 0, 0, 1.0, 1.0, "", settings={"NUM_STREAMS": n})
        ...       for side, n in (("harness", 1), ("native", "2"))]
        >>> settings_differ(ps)
        {'NUM_STREAMS': {'harness': ['1'], 'native': ['2']}}
    """
    values = {k: {} for k in SIDES}  # side -> key -> the values its processes reported
    for p in processes:
        for key, value in p.settings.items():
            values[p.side].setdefault(key, set()).add(str(value))
    shared = sorted(values["harness"].keys() & values["native"].keys())
    return {
        k: {side: sorted(values[side][k]) for side in SIDES}
        for k in shared
        if values["harness"][k] != values["native"][k]
    }


def format_table(results: dict[str, dict[str, dict]]) -> str:
    """A Markdown table: model, engine, ratio, CIs, processes and CV per side."""
    lines = [
        "| model | engine | harness / native | 95% CI (Welch, df) | paired CI (df) "
        "| processes harness / native | CV harness | CV native |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for model, engines in results.items():
        for engine, r in engines.items():
            if "error" in r:
                lines.append(f"| {model} | {engine} | not measured: {r['error']} | | | | | |")
                continue
            lines.append(
                f"| {model} | {engine} | {r['ratio']:.3f} | [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
                f" ({r['dof']:.1f}) | [{r['paired_low']:.3f}, {r['paired_high']:.3f}]"
                f" ({r['n_pairs'] - 1}) | {r['n_harness']} / {r['n_native']} "
                f"| {r['cv_harness']:.1%} | {r['cv_native']:.1%} |"
            )
    return "\n".join(lines)


def export_model(name: str, sparsity: float, batch_size: int, folder: Path) -> Path:
    """A registry architecture (seeded random weights, 10 classes) at its real input size.

    Pruned one-shot (each layer's smallest magnitudes, :func:`study.variants.oneshot_prune`) to
    ``sparsity``, exported by :func:`study.make.export.export_torch` (BatchNorm folded, opset of the
    registry) with a static batch of ``batch_size``.
    """
    from study.make.export import export_torch
    from study.make.models import build_model
    from study.variants import oneshot_prune

    path = folder / f"{name}-s{round(sparsity * 100)}-b{batch_size}.onnx"
    if path.is_file():
        return path
    entry = MODELS[name]
    model = oneshot_prune(build_model(name, weights="random", seed=0), sparsity)
    size = entry.input_size
    return export_torch(model, path, (batch_size, 3, size, size), opset=entry.opset)


def run_fidelity(
    models: Sequence[Path], s: FidelitySettings, work: Path, *, log=_say
) -> dict[str, object]:
    """Measure every model on both sides and return the JSON record (settings, machine, results)."""
    check_settings(s)
    work.mkdir(parents=True, exist_ok=True)
    hw = capture_hardware()
    started = datetime.now(timezone.utc)
    record: dict[str, object] = {
        "date": started.isoformat(timespec="seconds"),
        "machine": hw.machine,
        "cpu_model": hw.cpu_model,
        "settings": asdict(s),
        "environment": {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)},
        "native_environment": NATIVE_ENV,
        "load_average_1min": {"start": os.getloadavg()[0]},  # > the cores: a shared machine
        "models": {},
    }
    results: dict[str, dict[str, dict]] = {}
    for onnx in models:
        processes = measure(onnx, s, work, log=log)
        results[onnx.name] = compare(processes)
        record["models"][onnx.name] = {
            "onnx": str(onnx),
            "sha256": sha256_file(onnx),
            "results": results[onnx.name],
            "processes": [asdict(p) for p in processes],
        }
    record["table"] = format_table(results)
    record["load_average_1min"]["end"] = os.getloadavg()[0]
    record["wall_seconds"] = (datetime.now(timezone.utc) - started).total_seconds()
    return record


def efficiency(onnx: Path, threads: int, out: Path, max_steal: float | None = None) -> None:
    """Print how far the harness's default settings get each engine's CI, and at what cost."""
    cells = [
        CellSpec(str(onnx), e, threads=threads) for e in ("onnxruntime", "openvino", "deepsparse")
    ]
    rows = run_benchmark(
        cells, BenchSettings(max_cpu_steal=max_steal), out, progress=False, resume=False
    )
    print(
        "\nEfficiency (default BenchSettings: target 95% CI +-1%, cap 30 s of warm-up + trials per "
        f"cell; max_cpu_steal {max_steal}):"
    )
    for _, s in summarize(rows).iterrows():
        mine = [r for r in rows if r.cell == s["cell"] and r.status == "ok"]
        bench = mine[0].engine_settings["bench"]
        spent = max(r.engine_settings["bench"]["cell_seconds"] for r in mine)
        print(
            f"  {s['engine']:12s} {s['throughput']:7.2f} items/s  CI +-{s['ci_rel']:.2%}  trials "
            f"{s['trials']:2d}  warm-up+trials {spent:5.1f} s  load {bench['load_seconds']:.1f} s  "
            f"CPU steal {s['cpu_steal']:.1%}  rejected {s['rejected']}  target met: {s['ci_rel'] <= 0.01}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--onnx", type=Path, nargs="+", help="ONNX files (default: --model exported)")
    p.add_argument(
        "--model", default="resnet18", choices=list(MODELS), help="architecture to export"
    )
    p.add_argument("--sparsities", type=float, nargs="+", default=[0.0, 0.9])
    p.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    p.add_argument("--processes", type=int, default=5, help="fresh processes per side (>= 2)")
    p.add_argument("--seconds", type=int, default=10, help="timed seconds per process (>= 2)")
    p.add_argument("--threads", type=int, default=psutil.cpu_count(logical=False))
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="seed of the interleaved order")
    p.add_argument("--warmup-max-seconds", type=float, default=BenchSettings.warmup_max_seconds,
                   help="cap on the harness's warm-up per process")  # fmt: skip
    p.add_argument("--dir", type=Path, default=Path("runs/fidelity"), help="models and rows")
    p.add_argument("--json", type=Path, help="write the record here (default: DIR/fidelity.json)")
    p.add_argument("--noise-floor", type=float, default=20.0, metavar="SECONDS",
                   help="time study.bench.noise's fixed workload before and after (0: skip)")  # fmt: skip
    p.add_argument("--efficiency", action="store_true", help="also run the efficiency check")
    p.add_argument("--skip-fidelity", action="store_true", help="only the efficiency check")
    p.add_argument("--max-steal", type=float, default=None,
                   help="efficiency only: study.bench's max_cpu_steal")  # fmt: skip
    args = p.parse_args(argv)
    s = FidelitySettings(
        engines=tuple(args.engines), processes=args.processes, seconds=args.seconds,
        threads=args.threads, batch_size=args.batch_size, seed=args.seed,
        warmup_max_seconds=args.warmup_max_seconds,
    )  # fmt: skip
    try:
        check_settings(s)
        models = args.onnx or [
            export_model(args.model, x, args.batch_size, args.dir) for x in args.sparsities
        ]
        for m in models:
            read_input_specs(str(m), args.batch_size)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"models {[str(m) for m in models]}; {s}", flush=True)
    floors = [noise_floor(seconds=args.noise_floor, threads=s.threads)] if args.noise_floor else []
    if not args.skip_fidelity:
        record = run_fidelity(models, s, args.dir)
        path = args.json or args.dir / "fidelity.json"
    if args.efficiency:
        efficiency(models[0], s.threads, args.dir / "efficiency.jsonl", args.max_steal)
    if args.noise_floor:
        floors.append(noise_floor(seconds=args.noise_floor, threads=s.threads))
        print("\n".join(map(str, floors)))
    if not args.skip_fidelity:
        record["command"] = " ".join(["python", *sys.argv])
        record["noise_floors"] = [asdict(f) for f in floors]
        path.write_text(json.dumps(record, indent=1))
        print(f"\n{record['table']}\n\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
