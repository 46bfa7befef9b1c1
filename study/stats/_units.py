"""What identifies a unit across runs, and the columns of a replication test (shared by the Welch
and the paired replication checks)."""

from __future__ import annotations

import pandas as pd

from study.stats._frame import CELL_COLUMNS

__all__ = ["TEST_COLUMNS", "unit_columns", "with_input_shape"]

TEST_COLUMNS = ("run_a", "run_b", "log_diff", "se", "dof", "t", "p", "basis")  # after the unit's
# `basis`: where each run's SE comes from ("trial" for Welch; the contrast's level for paired).


def unit_columns() -> list[str]:
    """The columns that identify a cell across runs (the model file by its SHA-256, not its path)."""
    return [c for c in CELL_COLUMNS if c != "onnx_path"] + ["onnx_sha256", "input_shape"]


def _input_shape(settings: object) -> str:
    """The per-item input shape a dynamic-shape cell was run with (``""`` when none was given)."""
    bench = settings.get("bench", {}) if isinstance(settings, dict) else {}
    shape = bench.get("input_shape") if isinstance(bench, dict) else None
    return "" if shape is None else "x".join(map(str, shape))


def with_input_shape(ok: pd.DataFrame) -> pd.DataFrame:
    """``ok`` with an ``input_shape`` column read from ``engine_settings`` (``""`` when none)."""
    settings = ok["engine_settings"] if "engine_settings" in ok else pd.Series("", index=ok.index)
    return ok.assign(input_shape=settings.map(_input_shape))
