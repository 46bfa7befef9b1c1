"""Variance components of a contrast, or of every cell, from TrialRow rows (K&J or REML).

The estimators are :mod:`study.stats.components`; this module feeds them the per-round values of
:func:`study.stats.paired.round_values`.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from study.stats._frame import CELL_COLUMNS, check_frame, ok_trials
from study.stats.components import METHODS, VarianceComponents, _components
from study.stats.paired import round_values

__all__ = ["cell_components", "contrast_components"]


def contrast_components(
    df: pd.DataFrame, weights: Mapping, *, key: str = "cell", method: str = "auto"
) -> VarianceComponents:
    """Variance components of a contrast's per-round values ``d_r`` (one machine).

    ``d_r`` as in :func:`study.stats.round_values` (rounds keyed by machine, run, replicate,
    block and round). ``method``: ``"kj"`` (Kalibera & Jones), ``"reml"`` (statsmodels) or
    ``"auto"`` (K&J on balanced data, REML otherwise); the K&J estimates are always in ``kj``.

    Args:
        df: TrialRow rows of one machine.
        weights: ``{key value: w}``; ``{cell: 1}`` gives the components of one cell.
        key: the column the weights are keyed by.
        method: see above.

    Returns:
        :class:`VarianceComponents`.

    Raises:
        ValueError: on invalid weights or method, several machines, or a throughput <= 0.

    Example:
        >>> contrast_components(trials, {"c1": 1, "c2": -1}).replicate  # doctest: +SKIP
    """
    return _components(round_values(df, weights, key=key), method)


def cell_components(df: pd.DataFrame, *, method: str = "auto") -> pd.DataFrame:
    """Per cell (engine x model file x settings, per machine): the variance components of its log
    throughput per round, as in :func:`contrast_components` with weights ``{cell: 1}``.

    Args:
        df: TrialRow rows (any machines; only ``status == "ok"`` rows are used).
        method: ``"auto"``, ``"kj"`` or ``"reml"``.

    Returns:
        One row per cell: ``machine``, the cell fields, ``cell``, ``var_round, var_replicate,
        var_run``, ``method``, ``balanced``, ``n_runs, n_replicates, n_rounds``,
        ``kj_round, kj_replicate, kj_run``, ``note``.

    Raises:
        ValueError: on an invalid method or frame.

    Example:
        >>> cell_components(load_results("runs/a", "runs/b"))  # doctest: +SKIP
    """
    check_frame(df)
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}; got {method!r}")
    ok = ok_trials(df)
    rows = []
    for values, sub in ok.groupby([*CELL_COLUMNS, "cell"], sort=True, dropna=False):
        c = contrast_components(sub, {values[-1]: 1.0}, method=method)
        rows.append(
            dict(zip([*CELL_COLUMNS, "cell"], values))
            | {f"var_{k}": v for k, v in c.as_dict().items()}
            | dict(method=c.method, balanced=c.balanced, n_runs=c.n_runs)
            | dict(n_replicates=c.n_replicates, n_rounds=c.n_rounds)
            | {f"kj_{k}": v for k, v in c.kj.items()}
            | {"note": c.note}
        )
    return pd.DataFrame(rows)
