"""The readable summary of benchmark rows: :func:`summarize` and the CLI's table.

One row per (machine, cell): the mean throughput with its 95% Student-t CI, latencies, the
output check, trials kept and rejected (one kept trial per round of the cell's block). With
several replicates (fresh worker processes) the mean and CI are over the replicates' means
(Kalibera & Jones: the CI takes its variance and dof from the top replicated level), else over
trials.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from study.records.schema import CELL_FIELDS, TrialRow
from study.stats.intervals import ci_half_width

__all__ = ["format_table", "summarize"]


_LAT = ("mean", "median", "p90", "p99")


def summarize(rows: Iterable[TrialRow] | pd.DataFrame) -> pd.DataFrame:
    """One readable row per (machine, cell): throughput with its 95% CI, latencies, output check.

    Columns: machine, cell, the cell fields of :data:`study.records.schema.CELL_FIELDS` (model to threads),
    block, ran_precision, throughput (items/s: mean of trial throughputs, or with several
    replicates the mean of their means), ci (95% half-width: over trials, or over replicate
    means with replicates - 1 dof), ci_rel, latency_ms_* (mean over trials of the per-trial
    statistic), replicates (runs x replicates with ok trials), failed_replicates (those with a
    failure row), trials, rejected (trials repeated for CPU steal), calls,
    seconds (load + warm-up + trials), cpu_steal (mean over kept trials of the share of CPU time the
    hypervisor took; NaN where not recorded), output_max_abs_diff, output_ok, flag ("WRONG OUTPUT"
    when the cross-check failed), status, error.

    Example:
        >>> summarize(rows)[["engine", "throughput", "ci"]]  # doctest: +SKIP
    """
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame([r.to_dict() for r in rows])
    out = []
    if df.empty:
        return pd.DataFrame()
    for (machine, cell), g in df.groupby(["machine", "cell"], sort=False):
        ok = g[g["status"] == "ok"]
        failed = g[g["status"] == "failed"]
        last = ok.iloc[-1] if len(ok) else g.iloc[0]
        es = last["engine_settings"] if isinstance(last["engine_settings"], dict) else {}
        bench = es.get("bench", {})
        tp = ok["throughput"].astype(float).to_numpy()
        units = [c for c in ("run_id", "replicate") if c in g.columns]
        reps = ok.groupby(units)["throughput"].mean().to_numpy(dtype=float) if units else tp[:1]
        spread = reps if len(reps) >= 2 else tp
        mean = float(spread.mean()) if tp.size else float("nan")
        ci = ci_half_width(spread)
        lat = {f"latency_ms_{k}": ok[f"latency_ms_{k}"].astype(float).mean() for k in _LAT}
        steal = ok["cpu_steal"].astype(float).mean() if "cpu_steal" in ok else float("nan")
        seconds = float(bench.get("cell_seconds") or 0.0) + float(bench.get("load_seconds") or 0.0)
        out.append(
            {
                "machine": machine,
                "cell": cell,
                **{k: last.get(k) for k in CELL_FIELDS},
                "block": last.get("block"),
                "ran_precision": es.get("precision"),
                "throughput": mean,
                "ci": ci,
                "ci_rel": ci / mean if tp.size and mean > 0 else float("nan"),
                **lat,
                "replicates": len(reps),
                "failed_replicates": len(failed.groupby(units)) if units and len(failed) else 0,
                "trials": int(tp.size),
                "rejected": int((g["status"] == "rejected").sum()),
                "calls": int(ok["calls"].sum()),
                "seconds": seconds,
                "cpu_steal": steal,
                "output_max_abs_diff": last["output_max_abs_diff"],
                "output_ok": last["output_ok"],
                "flag": "WRONG OUTPUT" if _is_false(last["output_ok"]) else "",
                "status": "failed" if len(failed) else "ok",
                "error": failed.iloc[-1]["error"] if len(failed) else None,
                "engine_version": last["engine_version"],
            }
        )
    return pd.DataFrame(out)


def _is_false(value: Any) -> bool:
    """True only for a recorded failed check (not for None/NaN, "not compared")."""
    return (
        value is not None
        and not (isinstance(value, float) and math.isnan(value))
        and not bool(value)
    )


def format_table(summary: pd.DataFrame) -> str:
    """The readable CLI table of a :func:`summarize` frame."""
    if summary.empty:
        return "(no results)"
    lines = []
    for _, r in summary.iterrows():
        check = (
            "n/a"
            if r["output_ok"] is None or pd.isna(r["output_ok"])
            else ("ok" if r["output_ok"] else "WRONG")
        )
        if r["output_max_abs_diff"] is not None and not pd.isna(r["output_max_abs_diff"]):
            check += f" ({r['output_max_abs_diff']:.1e})"
        tp = (
            "-" if not r["trials"] else f"{r['throughput']:.2f} ± {r['ci']:.2f} ({r['ci_rel']:.1%})"
        )
        lines.append(
            {
                "model": r["model"],
                "engine": r["engine"],
                "precision": f"{r['precision']}->{r['ran_precision']}"
                if isinstance(r["ran_precision"], str)
                else r["precision"],
                "scenario": f"{r['scenario']} b{r['batch_size']} t{r['threads']}",
                "items/s ± 95% CI": tp,
                "lat ms mean/med/p90/p99": "-"
                if not r["trials"]
                else "/".join(
                    f"{r[f'latency_ms_{k}']:.2f}" for k in ("mean", "median", "p90", "p99")
                ),
                "output": check + (" !" if r["flag"] else ""),
                "trials": f"{r['trials']}"
                + (f" in {r['replicates']} reps" if r["replicates"] > 1 else "")
                + (f" (+{r['rejected']} rejected)" if r["rejected"] else ""),
                "s": f"{r['seconds']:.0f}",
                "steal": "-" if pd.isna(r["cpu_steal"]) else f"{r['cpu_steal']:.0%}",
                "status": r["status"]
                if r["status"] == "ok"
                else f"FAILED: {str(r['error']).splitlines()[0][:100]}",
            }
        )
    return pd.DataFrame(lines).to_string(index=False)
