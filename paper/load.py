"""Read a results folder (the layout ``python -m study.compare`` writes) into memory.

Only ``bench.jsonl`` is required; every other file is optional and comes back empty when absent,
so the figures and report can say which data were missing instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

__all__ = ["Results", "load_results"]


@dataclass(frozen=True)
class Results:
    """Everything the paper reads from one results folder."""

    root: Path  # the results folder
    bench: pd.DataFrame  # one row per study.schema.TrialRow (ok and failed rows)
    manifest: pd.DataFrame  # one row per study.schema.ModelRecord; empty when no manifest
    config: dict[str, Any] = field(default_factory=dict)  # config.yaml; {} when absent
    environment: dict[str, dict[str, Any]] = field(default_factory=dict)  # machine id -> hardware
    training: pd.DataFrame | None = None  # training.csv; None when absent
    sensitivity: pd.DataFrame | None = None  # sensitivity.csv; None when absent
    failures: tuple[dict[str, Any], ...] = ()  # failures.jsonl entries, in file order
    missing: tuple[str, ...] = ()  # optional files that were absent (relative names)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {number} is not valid JSON ({err.msg})") from err
    return rows


def _validate_root(root: Path) -> None:
    if not root.is_dir():
        raise FileNotFoundError(
            f"`results_dir` must be an existing results folder (written by python -m study.compare); "
            f"got {str(root)!r}"
        )
    bench = root / "bench.jsonl"
    if not bench.is_file():
        raise FileNotFoundError(
            f"no benchmark results: {str(bench)!r} does not exist; run `python -m study.compare` "
            f"(or study.bench) to write it, or pass the folder that holds bench.jsonl"
        )


def load_results(results_dir: str | Path) -> Results:
    """Load a results folder.

    Args:
        results_dir: the folder written by ``python -m study.compare``.

    Returns:
        A :class:`Results`; optional files that are absent are recorded in ``missing``.

    Raises:
        FileNotFoundError: ``results_dir`` is not a folder or holds no ``bench.jsonl`` (the message
            names the path).
        ValueError: a JSON Lines file holds a line that is not JSON, or bench.jsonl holds no rows.

    Example:
        >>> results = load_results("results/quick")  # doctest: +SKIP
        >>> results.bench.shape[0] > 0  # doctest: +SKIP
        True
    """
    root = Path(results_dir)
    _validate_root(root)
    bench_path = root / "bench.jsonl"
    bench = pd.DataFrame(_read_jsonl(bench_path))
    if bench.empty:
        raise ValueError(f"{str(bench_path)!r} holds no rows; nothing to report")
    missing = []

    def optional(name: str) -> Path | None:
        path = root / name
        if path.is_file():
            return path
        missing.append(name)
        return None

    manifest_path = optional("models/manifest.jsonl")
    manifest = pd.DataFrame(_read_jsonl(manifest_path)) if manifest_path else pd.DataFrame()
    config_path = optional("config.yaml")
    config = (yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}) if config_path else {}
    env_path = optional("environment.json")
    environment = json.loads(env_path.read_text(encoding="utf-8")) if env_path else {}
    training_path = optional("training.csv")
    sensitivity_path = optional("sensitivity.csv")
    failures_path = optional("failures.jsonl")
    return Results(
        root=root,
        bench=bench,
        manifest=manifest,
        config=config if isinstance(config, dict) else {},
        environment=environment if isinstance(environment, dict) else {},
        training=pd.read_csv(training_path) if training_path else None,
        sensitivity=pd.read_csv(sensitivity_path) if sensitivity_path else None,
        failures=tuple(_read_jsonl(failures_path)) if failures_path else (),
        missing=tuple(missing),
    )
