"""``stats.json``: the run's one analysis and its tables, written once and read back while current.

:func:`stats_json` is what ``python -m study.compare`` writes after benchmarking (beside
``summary.md``): the tables of :class:`~study.analysis.summary.StudyStats` and, under
``analysis``, the :class:`~study.analysis.summary.RunAnalysis` itself with the SHA-256 of the
files it was computed from. :func:`run_analysis` is how a renderer (the paper, the results page)
gets the analysis: stats.json's while those files are unchanged, else the same function's.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from study.analysis.summary import (
    CellTables,
    RunAnalysis,
    StudyStats,
    accuracy_table,
    analyse_run,
)
from study.config import StudyConfig
from study.stats import ChannelResult, TostResult

__all__ = [
    "ANALYSIS_INPUTS",
    "ANALYSIS_VERSION",
    "inputs_fingerprint",
    "read_analysis",
    "run_analysis",
    "stats_json",
]

# The files the analysis reads; stats.json is current while their bytes are unchanged.
ANALYSIS_INPUTS = ("bench.jsonl", "models/manifest.jsonl", "config.yaml")
# The layout of stats.json's "analysis" (1: RunAnalysis with the inputs' SHA-256; 2: with its
# CellTables, each table as columns, dtypes and rows).
ANALYSIS_VERSION = 2


def _jsonable(obj: Any) -> Any:
    if is_dataclass(obj):
        return {k: _jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item"):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def inputs_fingerprint(out: Path) -> dict[str, str | None]:
    """SHA-256 of each file the analysis reads (None: absent): what makes stats.json current."""
    found = {}
    for name in ANALYSIS_INPUTS:
        path = out / name
        found[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return found


def _layout() -> dict[str, list[str]]:
    """The field names of the stored result types (a stats.json of other fields is not current)."""
    return {
        cls.__name__: [f.name for f in fields(cls)]
        for cls in (RunAnalysis, CellTables, ChannelResult, TostResult)
    }


def stats_json(s: StudyStats) -> dict[str, Any]:
    """What ``stats.json`` holds for the statistics ``s`` (JSON-ready: NaN as None).

    Besides the tables, ``analysis`` holds :class:`RunAnalysis` itself (every ChannelResult field,
    infinities as the strings "inf" and "-inf") with the fingerprint of the files it was computed
    from, which :func:`read_analysis` reads back.
    """
    from study.stats import channel_table as stats_table

    result = {
        "identical_models": s.identity,
        "one_file": s.one_file,
        "signed_zero_differences": s.signed_zeros,
        "channels": s.channel_table().to_dict(orient="records"),
        "home_advantage": (stats_table(s.home).to_dict(orient="records") if s.home else []),
        "cells": s.cells.to_dict(orient="records"),
        "engine_comparison": [] if s.engine_table is None else s.engine_table.to_dict("records"),
        "pruning_speedup": s.speedup.to_dict(orient="records"),
        "accuracy": accuracy_table(s.records, s.cfg).to_dict(orient="records"),
        "margin": s.margin,
        "confidence": s.confidence,
    }
    run = s.analysis
    analysis = {
        "version": ANALYSIS_VERSION,
        "layout": _layout(),
        "inputs": inputs_fingerprint(s.out),
        **_encode(asdict(replace(run, tables=None))),  # the tables as tables, below
        "tables": {
            "cells": _encode_frame(run.tables.cells),
            "comparisons": [
                {"pair": list(pair), "table": _encode_frame(frame)}
                for pair, frame in run.tables.comparisons.items()
            ],
            "speedup": _encode_frame(run.tables.speedup),
        },
    }
    return _jsonable(result) | {"analysis": analysis}


def _encode_frame(frame: pd.DataFrame) -> dict[str, Any]:
    """A table as its columns, their dtypes and its rows (:func:`_decode_frame` reads it back).

    Floats as :func:`_encode` writes them; tuples (a row's cells) as lists.
    """
    return {
        "columns": [str(c) for c in frame.columns],
        "dtypes": [str(t) for t in frame.dtypes],
        "rows": _encode(frame.to_numpy(dtype=object).tolist()),
    }


def _decode_value(value: Any, dtype: str) -> Any:
    if dtype.startswith("float"):
        return math.nan if value is None else float(value)  # float("inf") reads "inf"
    if isinstance(value, list):
        return tuple(value)
    return value


def _decode_frame(stored: dict[str, Any]) -> pd.DataFrame:
    """The table :func:`_encode_frame` wrote, with its column dtypes."""
    columns, dtypes = stored["columns"], stored["dtypes"]
    data = {
        name: pd.Series(
            [_decode_value(row[i], dtype) for row in stored["rows"]], dtype=dtype, name=name
        )
        for i, (name, dtype) in enumerate(zip(columns, dtypes))
    }
    return pd.DataFrame(data, columns=columns)


def _tables(stored: dict[str, Any]) -> CellTables:
    return CellTables(
        cells=_decode_frame(stored["cells"]),
        comparisons={
            (c["pair"][0], c["pair"][1]): _decode_frame(c["table"]) for c in stored["comparisons"]
        },
        speedup=_decode_frame(stored["speedup"]),
    )


def _encode(obj: Any) -> Any:
    """JSON-ready, exactly reversible for floats: NaN as None, infinities as "inf" / "-inf"."""
    if hasattr(obj, "item") and not isinstance(obj, dict | list | tuple):
        obj = obj.item()  # a numpy scalar
    if isinstance(obj, float) and math.isinf(obj):
        return "inf" if obj > 0 else "-inf"
    if isinstance(obj, dict):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_encode(v) for v in obj]
    return _jsonable(obj)


def _decode_floats(row: dict[str, Any], cls) -> dict[str, Any]:
    out = dict(row)
    for f in fields(cls):
        if f.type in ("float", float) and f.name in out:
            v = out[f.name]
            out[f.name] = math.nan if v is None else float(v)  # float("inf") reads "inf"
    return out


def _channel_result(row: dict[str, Any]) -> ChannelResult:
    row = _decode_floats(row, ChannelResult)
    row["tost"] = TostResult(**_decode_floats(row["tost"], TostResult))
    row["cells"] = tuple(row["cells"])
    return ChannelResult(**row)


def read_analysis(out: Path) -> RunAnalysis | None:
    """The :class:`RunAnalysis` stats.json holds, or None when it is absent or not current.

    Current means: written by this version of the analysis (``ANALYSIS_VERSION`` and the same
    result fields) from the files the folder holds now (:func:`inputs_fingerprint`).
    """
    path = out / "stats.json"
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8")).get("analysis")
    except json.JSONDecodeError:
        return None  # a stats.json cut short: computed again
    if not isinstance(stored, dict) or stored.get("version") != ANALYSIS_VERSION:
        return None
    if stored.get("layout") != _layout():
        return None  # written when a result had other fields
    if stored.get("inputs") != inputs_fingerprint(out):
        return None
    return RunAnalysis(
        channels=tuple(_channel_result(r) for r in stored["channels"]),
        home=tuple(_channel_result(r) for r in stored["home"]),
        identity=stored["identity"],
        one_file=stored["one_file"],
        signed_zeros=stored["signed_zeros"],
        tables=_tables(stored["tables"]),
        margin=stored["margin"],
        confidence=stored["confidence"],
        accuracy_gate=stored["accuracy_gate"],
        apart=stored["apart"],
    )


def run_analysis(out: Path, df: pd.DataFrame, cfg: StudyConfig | None, records=()) -> RunAnalysis:
    """The run's analysis: stats.json's when current (:func:`read_analysis`), else :func:`analyse_run`
    of ``df``, ``cfg`` and ``records`` (the same folder's files, as the caller read them)."""
    return read_analysis(out) or analyse_run(df, cfg, records)
