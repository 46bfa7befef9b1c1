"""Input checks and row selection shared by the statistics modules (private).

Every public function of :mod:`study.stats` takes a DataFrame of :class:`study.records.schema.TrialRow`
rows. These helpers check that the columns exist, keep the ``status == "ok"`` rows, reject
throughputs that cannot be logged, and describe failures so that a skipped comparison says why.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.stats

from study.records.schema import CELL_FIELDS

# The columns that identify a cell (the TrialRow fields from `model` to `threads` plus `machine`,
# without the file path and hash, which the `cell` id already covers).
CELL_COLUMNS: tuple[str, ...] = ("machine", *CELL_FIELDS)
LATENCY_COLUMNS: tuple[str, ...] = (
    "latency_ms_mean",
    "latency_ms_median",
    "latency_ms_p90",
    "latency_ms_p99",
)
_REQUIRED: tuple[str, ...] = (*CELL_COLUMNS, "cell", "throughput", "status")


def check_frame(df: object, name: str = "df") -> pd.DataFrame:
    """Raise ValueError unless ``df`` is a DataFrame with the TrialRow columns the stats need."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"`{name}` must be a pandas DataFrame of TrialRow rows; got {type(df)!r}")
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(
            f"`{name}` lacks the TrialRow column(s) {missing}; got columns {list(df.columns)}"
        )
    return df


def ok_trials(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``status == "ok"``, with ``throughput`` as float, checked positive and finite.

    Args:
        df: TrialRow rows (any mix of ok and failure rows, any number of machines).

    Returns:
        The ok rows (a copy); failure rows are dropped.

    Raises:
        ValueError: if a column is missing or an ok row has a throughput that is zero, negative
            or not finite (its logarithm, used by every ratio, would be undefined).

    Example:
        >>> ok = ok_trials(pd.read_json("bench.jsonl", lines=True))  # doctest: +SKIP
    """
    check_frame(df)
    ok = df.loc[(df["status"] == "ok").to_numpy()]  # a new frame (pandas copy-on-write)
    ok["throughput"] = pd.to_numeric(ok["throughput"], errors="coerce").astype(float)
    bad = ok.loc[~(np.isfinite(ok["throughput"]) & (ok["throughput"] > 0))]
    if len(bad):
        first = bad.iloc[0]
        raise ValueError(
            f"`throughput` must be finite and > 0 on rows with status 'ok'; got "
            f"{first['throughput']!r} in cell {first['cell']!r} ({first['engine']}, "
            f"{first['model']}) and {len(bad) - 1} more row(s)"
        )
    return ok


def failed_trials(df: pd.DataFrame) -> pd.DataFrame:
    """Failure rows (``status == "failed"``), unchanged; trials rejected for CPU steal are not failures."""
    check_frame(df)
    return df.loc[df["status"] == "failed"]


def positive_array(values: Iterable[float], name: str) -> np.ndarray:
    """1-D float array of finite values > 0, or ValueError naming ``name``."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError(f"`{name}` must hold at least one throughput; got an empty array")
    bad = x[~(np.isfinite(x) & (x > 0))]
    if bad.size:
        raise ValueError(f"`{name}` must hold finite throughputs > 0; got {bad[0]!r}")
    return x


def finite_array(values: Iterable[float], name: str) -> np.ndarray:
    """1-D float array of finite values (at least one), or ValueError naming ``name``."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` must be a non-empty array of finite numbers; got {x!r}")
    return x


def check_confidence(confidence: float, name: str = "confidence") -> float:
    """Raise ValueError unless ``0 < confidence < 1``."""
    if not (isinstance(confidence, (int, float)) and 0.0 < float(confidence) < 1.0):
        raise ValueError(f"`{name}` must be in (0, 1); got {confidence!r}")
    return float(confidence)


def failure_note(failed: pd.DataFrame, what: str) -> str:
    """One line saying that ``what`` has no ok trials, with the failure reasons if any."""
    if len(failed) == 0:
        return f"no trials for {what}"
    reasons = sorted({str(r) for r in failed.get("error", pd.Series(dtype=object)).dropna()})
    reason = "; ".join(reasons[:3]) if reasons else "no reason recorded"
    return f"no ok trials for {what} ({len(failed)} failure row(s): {reason})"


def key_dict(columns: Iterable[str], key: object) -> dict[str, object]:
    """Zip groupby keys (a scalar or a tuple) with their column names."""
    columns = list(columns)
    values = key if isinstance(key, tuple) else (key,)
    return dict(zip(columns, values))


def group_index(df: pd.DataFrame, columns: Iterable[str]) -> dict[tuple, pd.DataFrame]:
    """``{key tuple: rows}`` of ``df`` grouped by ``columns`` (one pass, for fast lookups)."""
    columns = list(columns)
    if df.empty:
        return {}
    groups = df.groupby(columns, sort=False, dropna=False)
    return {(k if isinstance(k, tuple) else (k,)): g for k, g in groups}


def unique_keys(frames: Iterable[pd.DataFrame], columns: list[str]) -> list[tuple]:
    """Sorted distinct key tuples over several frames (so failure-only groups are kept too)."""
    parts = [f[columns] for f in frames if len(f)]
    if not parts:
        return []
    keys = pd.concat(parts).drop_duplicates()
    keys = keys.sort_values(columns, key=lambda s: s.astype(str), kind="stable")
    return [tuple(row) for row in keys.itertuples(index=False, name=None)]


def t_interval(estimate: float, se: float, dof: float, confidence: float) -> dict[str, float]:
    """CI, t and two-sided p of a t-distributed estimate (NaN where se or dof is NaN).

    ``estimate -/+ t_{(1+confidence)/2}(dof) * se``, ``t = estimate / se``,
    ``p = 2 P(T_dof > |t|)``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        t = float(np.divide(estimate, se))
        half = float(scipy.stats.t.ppf(0.5 + confidence / 2.0, dof)) * se
        pvalue = float(2.0 * scipy.stats.t.sf(abs(t), dof))
    return dict(ci_low=estimate - half, ci_high=estimate + half, statistic=t, pvalue=pvalue)
