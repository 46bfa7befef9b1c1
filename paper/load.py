"""Read a results folder (the layout ``python -m study.compare`` writes) into memory.

Only ``bench.jsonl`` is required; every other file is optional and comes back empty when absent,
so the figures and report can say which data were missing instead of failing. Trial rows of
every schema version are read as version 4 (:func:`study.records.schema.upgrade_trial`), manifest rows
as :class:`study.records.schema.ModelRecord`, and ``config.yaml`` both as the raw mapping and, where
``study.config.load_config`` accepts it, as the :class:`~study.config.StudyConfig` the
statistics declare their margin and confidence in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from study.config import StudyConfig
from study.records.jsonl import read_jsonl
from study.records.manifest import record_from_row
from study.records.results import drop_abandoned
from study.records.schema import ModelRecord, TrialRow, upgrade_trial

__all__ = ["Results", "load_results"]

# as study.records.results.load_results: one row per trial
_DEDUP = ["machine", "run_id", "replicate", "cell", "trial"]


@dataclass(frozen=True)
class Results:
    """Everything the paper reads from one results folder."""

    root: Path  # the results folder
    bench: pd.DataFrame  # one row per study.records.schema.TrialRow (ok, failed and rejected), upgraded to the current schema
    manifest: pd.DataFrame  # one row per ModelRecord (its fields as columns); empty when absent
    records: tuple[ModelRecord, ...] = ()  # the same manifest rows as ModelRecords
    config: dict[str, Any] = field(default_factory=dict)  # config.yaml as read; {} when absent
    study_config: StudyConfig | None = None  # config.yaml through study.config.load_config
    config_problem: str = ""  # why study_config is None ("" when it is set)
    environment: dict[str, dict[str, Any]] = field(default_factory=dict)  # machine id -> hardware
    training: pd.DataFrame | None = None  # training.csv; None when absent
    sensitivity: pd.DataFrame | None = None  # sensitivity.csv; None when absent
    timings: pd.DataFrame | None = None  # timings.csv (seconds per stage); None when absent
    failures: tuple[dict[str, Any], ...] = ()  # failures.jsonl entries, in file order
    missing: tuple[str, ...] = ()  # optional files that were absent (relative names)


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


def _bench(path: Path) -> pd.DataFrame:
    rows = [upgrade_trial(row) for row in read_jsonl(path)]
    if not rows:
        raise ValueError(f"{str(path)!r} holds no rows; nothing to report")
    missing = sorted({"status", "engine", "throughput"} - set().union(*rows))
    if missing:
        raise ValueError(
            f"{str(path)!r} is not a file of study.records.schema.TrialRow rows: no {missing} field(s)"
        )
    frame = pd.DataFrame(rows)
    for name in TrialRow.__dataclass_fields__:  # fields a row may lack (older or ad-hoc rows)
        if name not in frame:
            frame[name] = None
    frame = drop_abandoned(
        frame
    )  # replicates a resumed run measured again (study.bench.replicates)
    return frame.drop_duplicates(subset=_DEDUP, keep="first").reset_index(drop=True)


_RECORD_FIELDS = {f.name for f in fields(ModelRecord)}


def _record(row: dict[str, Any], path: Path, number: int) -> ModelRecord:
    """One manifest row as a ModelRecord (rows before schema version 3 get profile and mask)."""
    unknown = sorted(set(row) - _RECORD_FIELDS)
    if unknown:
        raise ValueError(f"{path}: row {number} has unknown ModelRecord field(s) {unknown}")
    try:
        return record_from_row(row)
    except (TypeError, KeyError) as err:
        raise ValueError(
            f"{path}: row {number} is not a study.records.schema.ModelRecord ({err})"
        ) from err


def _study_config(path: Path | None) -> tuple[StudyConfig | None, str]:
    if path is None:
        return None, "config.yaml is absent"
    from study.config import load_config

    try:
        return load_config(path, check_paths=False), ""
    except ValueError as err:
        return None, f"config.yaml is not a configuration this version reads ({err})"


def load_results(results_dir: str | Path) -> Results:
    """Load a results folder.

    Args:
        results_dir: the folder written by ``python -m study.compare``.

    Returns:
        A :class:`Results`; optional files that are absent are recorded in ``missing``.

    Raises:
        FileNotFoundError: ``results_dir`` is not a folder or holds no ``bench.jsonl`` (the message
            names the path).
        ValueError: a JSON Lines file holds a line that is not JSON, bench.jsonl holds no rows or
            no trial rows, or a manifest row is not a ModelRecord (the message names the file and
            the line).

    Example:
        >>> results = load_results("results/quick")  # doctest: +SKIP
        >>> results.bench.shape[0] > 0  # doctest: +SKIP
        True
    """
    root = Path(results_dir)
    _validate_root(root)
    bench = _bench(root / "bench.jsonl")
    missing = []

    def optional(name: str) -> Path | None:
        path = root / name
        if path.is_file():
            return path
        missing.append(name)
        return None

    manifest_path = optional("models/manifest.jsonl")
    rows = read_jsonl(manifest_path) if manifest_path else []
    records = tuple(_record(row, manifest_path, n) for n, row in enumerate(rows, start=1))
    manifest = pd.DataFrame([r.to_dict() for r in records]) if records else pd.DataFrame()
    config_path = optional("config.yaml")
    config = (yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}) if config_path else {}
    study_config, problem = _study_config(config_path)
    env_path = optional("environment.json")
    environment = json.loads(env_path.read_text(encoding="utf-8")) if env_path else {}
    training_path = optional("training.csv")
    sensitivity_path = optional("sensitivity.csv")
    timings_path = optional("timings.csv")
    failures_path = optional("failures.jsonl")
    return Results(
        root=root,
        bench=bench,
        manifest=manifest,
        records=records,
        config=config if isinstance(config, dict) else {},
        study_config=study_config,
        config_problem=problem,
        environment=environment if isinstance(environment, dict) else {},
        training=pd.read_csv(training_path) if training_path else None,
        sensitivity=pd.read_csv(sensitivity_path) if sensitivity_path else None,
        timings=pd.read_csv(timings_path) if timings_path else None,
        failures=tuple(read_jsonl(failures_path)) if failures_path else (),
        missing=tuple(missing),
    )
