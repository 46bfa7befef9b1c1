"""Round keys and per-replicate estimates of a contrast (private to study.stats).

A round is keyed by ``machine, run_id, replicate, block, round``: two runs, or two replicates of
one run, never share a round even when their block names and round numbers coincide. A
*replicate* (``machine, run_id, replicate``) is one set of worker processes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# The levels above the round, outermost first (Kalibera & Jones): one replicate is one set of
# worker processes of one run on one machine.
HIERARCHY: tuple[str, ...] = ("machine", "run_id", "replicate")
UNIT: list[str] = list(HIERARCHY)  # machine, run_id, replicate: one set of worker processes
ROUND_INDEX: list[str] = [*UNIT, "block", "round"]
UNIT_COLUMNS: list[str] = [*UNIT, "estimate", "n_rounds", "paired"]


def unit_arrays(rows: pd.DataFrame) -> list[np.ndarray]:
    """``machine, run_id, replicate`` of each row (``""`` and 0 where the column is absent)."""
    n = len(rows)
    run = rows["run_id"].astype(str).to_numpy() if "run_id" in rows else np.full(n, "", object)
    if "replicate" in rows:
        rep = pd.to_numeric(rows["replicate"], errors="coerce").fillna(0).to_numpy(dtype=int)
    else:
        rep = np.zeros(n, dtype=int)
    return [rows["machine"].to_numpy(), run, rep]


def round_index(ok: pd.DataFrame) -> tuple[np.ndarray, pd.MultiIndex]:
    """(mask of the rows in a block round, their ``machine, run_id, replicate, block, round``).

    A row is in a block round when ``block`` is a non-empty value and ``round`` >= 0.
    """
    if "block" not in ok.columns or "round" not in ok.columns:
        keep = np.zeros(len(ok), dtype=bool)
    else:
        rounds = pd.to_numeric(ok["round"], errors="coerce").to_numpy(dtype=float)
        blocks = ok["block"]
        keep = (blocks.notna() & (blocks.astype(str) != "")).to_numpy() & (rounds >= 0)
    sel = ok.loc[keep]
    index = pd.MultiIndex.from_arrays(
        [
            *unit_arrays(sel),
            sel["block"].astype(str).to_numpy() if keep.any() else np.array([], dtype=object),
            pd.to_numeric(sel["round"]).to_numpy(dtype=int) if keep.any() else np.array([], int),
        ],
        names=ROUND_INDEX,
    )
    return keep, index


def round_table(ok: pd.DataFrame, weights: dict, key: str) -> tuple[pd.Series, pd.DataFrame]:
    """(d_r indexed by :data:`ROUND_INDEX` over the complete rounds; the ok rows of those rounds)."""
    rows = ok.loc[ok[key].isin(list(weights)).to_numpy()]
    keep, index = round_index(rows)
    sel = rows.loc[keep]
    if sel.empty:
        return pd.Series([], index=index, dtype=float, name="d"), sel
    rounds, uniques = pd.factorize(index, sort=True)  # (n_rows,) index of each row's round
    column = pd.Categorical(sel[key], categories=list(weights)).codes  # (n_rows,) weight index
    shape = (len(uniques), len(weights))
    sums, counts = np.zeros(shape), np.zeros(shape)  # (n_rounds, n_keys)
    np.add.at(sums, (rounds, column), np.log(sel["throughput"].to_numpy(dtype=float)))
    np.add.at(counts, (rounds, column), 1.0)
    complete = (counts > 0).all(axis=1)  # (n_rounds,)
    means = sums[complete] / counts[complete]  # mean log of each key in each complete round
    d = means @ np.array(list(weights.values()))
    index = uniques[complete].set_names(ROUND_INDEX)
    return pd.Series(d, index=index, name="d"), sel.loc[complete[rounds]]


def replicate_keys(machine: np.ndarray, run: np.ndarray, rep: np.ndarray) -> np.ndarray:
    """One string per element naming its replicate (machine, run_id, replicate)."""
    return np.array([f"{m}\x1f{r}\x1f{k}" for m, r, k in zip(machine, run, rep)], dtype=object)


def unit_estimates(
    ok: pd.DataFrame,
    d: pd.Series,
    used: pd.DataFrame,
    weights: dict,
    key: str,
    min_rounds: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per replicate with an estimate, the ok rows those estimates used).

    A replicate with at least ``min_rounds`` complete rounds gets the mean of its d_r (paired: a
    drift common to the cells of a round cancels); one with fewer, but ok trials of every
    weighted key, gets ``sum_c w_c mean(log x_c)`` over its trials (unpaired); any other
    replicate (a cell crashed there, or was not measured) gets no estimate and contributes
    nothing.

    Args:
        ok: ok rows; d, used: :func:`round_table` of them; weights, key: the contrast.
        min_rounds: complete rounds a replicate needs to be paired.

    Returns:
        (``machine, run_id, replicate, estimate, n_rounds, paired`` sorted by replicate, rows).
    """
    rows = ok.loc[ok[key].isin(list(weights)).to_numpy()]
    records: list[tuple] = []
    done: list[str] = []
    if len(d):
        unit = [d.index.get_level_values(n).to_numpy() for n in UNIT]
        names, first, inverse = np.unique(
            replicate_keys(*unit), return_index=True, return_inverse=True
        )
        n = np.bincount(inverse)
        mean = np.bincount(inverse, weights=d.to_numpy(dtype=float)) / n
        for i in np.flatnonzero(n >= min_rounds):
            j = first[i]
            records.append((unit[0][j], unit[1][j], unit[2][j], mean[i], int(n[i]), True))
            done.append(names[i])
        used = used.loc[np.isin(replicate_keys(*unit_arrays(used)), done)]
    else:
        used = used.iloc[:0]
    row_unit = unit_arrays(rows)
    row_key = replicate_keys(*row_unit)
    rest = ~np.isin(row_key, done)  # replicates without enough complete rounds
    if rest.any():
        frame = pd.DataFrame({"u": row_key[rest], "k": rows[key].to_numpy()[rest]})
        frame["log"] = np.log(rows["throughput"].to_numpy(dtype=float)[rest])
        table = frame.groupby(["u", "k"], sort=True)["log"].mean().unstack("k")
        table = table.reindex(columns=list(weights))
        complete = table.notna().all(axis=1).to_numpy()
        estimates = table.to_numpy()[complete] @ np.array(list(weights.values()))
        where = {k: i for i, k in enumerate(row_key)}
        for name, value in zip(table.index[complete], estimates):
            j = where[name]
            records.append((row_unit[0][j], row_unit[1][j], row_unit[2][j], value, 0, False))
        chosen = np.isin(row_key, list(table.index[complete])) & rest
        used = pd.concat([used, rows.loc[chosen]])
    units = pd.DataFrame.from_records(records, columns=UNIT_COLUMNS)
    return units.sort_values(UNIT, kind="stable").reset_index(drop=True), used
