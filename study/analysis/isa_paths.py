"""Which instruction-set path each engine ran, read from the rows (the engines' own word).

Every trial row carries the engine's report in ``engine_settings`` (:mod:`study.engines.isa`):
``isa_path`` (one sentence: DeepSparse's engine binary and the CPU it detected, OpenVINO's
executed kernels by the ISA their names state, ONNX Runtime's providers) and ``isa_cap`` (the
level asked, the variables set, whether the engine's report confirms the cap, what no cap
reaches). DeepSparse's int8 cells also carry ``int8_label`` ("int8 emulated (no VNNI)", from its
own ``cpu_vnni`` and engine binary). This module turns them into the tables and sentences of the
summary and the report.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["engine_paths", "int8_labels", "path_sentences"]

_COLUMNS = ["machine", "isa", "engine", "isa_path", "cap_took_effect", "not_capped", "cells"]


def _settings(row: Any) -> dict[str, Any]:
    es = row.get("engine_settings") if isinstance(row, dict) else row["engine_settings"]
    return es if isinstance(es, dict) else {}


def engine_paths(ok: pd.DataFrame) -> pd.DataFrame:
    """One row per machine, ISA level, engine and distinct ISA path reported, with its cells.

    Args:
        ok: ok TrialRow rows (``engine_settings`` as dicts).

    Returns:
        Columns ``machine, isa, engine, isa_path, cap_took_effect, not_capped, cells`` (the number
        of cells that reported that path); rows without an ``isa_path`` (results of older
        versions) say "not recorded".
    """
    if ok.empty:
        return pd.DataFrame(columns=_COLUMNS)
    rows = []
    first = ok.drop_duplicates("cell")
    for row in first.to_dict("records"):
        es = _settings(row)
        cap = es.get("isa_cap") or {}
        rows.append(
            {
                "machine": row["machine"],
                "isa": row.get("isa", "native"),
                "engine": row["engine"],
                "isa_path": es.get("isa_path", "not recorded"),
                "cap_took_effect": cap.get("took_effect"),
                "not_capped": cap.get("not_capped", ""),
            }
        )
    table = pd.DataFrame(rows)
    keys = ["machine", "isa", "engine", "isa_path"]
    out = (
        table.groupby(keys, dropna=False, sort=True)
        .agg(
            cap_took_effect=("cap_took_effect", "first"),
            not_capped=("not_capped", "first"),
            cells=("engine", "size"),
        )
        .reset_index()
    )
    return out[_COLUMNS]


def path_sentences(paths: pd.DataFrame) -> list[str]:
    """One sentence per machine, ISA level and engine (several paths of one engine joined).

    Example:
        >>> t = pd.DataFrame([{"machine": "m", "isa": "native", "engine": "openvino",
        ...     "isa_path": "OpenVINO ran kernels by stated ISA: avx2 3 (Convolution 3)",
        ...     "cap_took_effect": None, "not_capped": "", "cells": 2}])
        >>> path_sentences(t)[0]
        '`m`, native: OpenVINO ran kernels by stated ISA: avx2 3 (Convolution 3) (2 cells).'
    """
    out = []
    for (machine, isa, _engine), group in paths.groupby(["machine", "isa", "engine"], sort=True):
        parts = [f"{r.isa_path} ({r.cells} cells)" for r in group.itertuples()]
        text = f"`{machine}`, {isa}: " + "; ".join(parts)
        first = group.iloc[0]
        if isa != "native":
            took = first["cap_took_effect"]
            verdict = {True: "the engine's report confirms the cap", False: "not capped"}.get(
                took if isinstance(took, bool) else None, "the cap could not be confirmed"
            )
            text += f"; {verdict}"
            if first["not_capped"]:
                text += f" ({first['not_capped']})"
        out.append(text + ".")
    return out


def int8_labels(ok: pd.DataFrame) -> pd.DataFrame:
    """DeepSparse's int8 cells with the label of how it ran them (empty label: optimized).

    Returns:
        Columns ``machine, isa, model, quant, engine, cpu_vnni, engine_binary, int8_kernels,
        int8_label``, one row per cell.
    """
    cols = ["machine", "isa", "model", "quant", "engine", "cpu_vnni", "engine_binary"]
    cols += ["int8_kernels", "int8_label"]
    rows = []
    if not ok.empty:
        int8 = ok.loc[ok["quant"] != "none"].drop_duplicates("cell")
        for row in int8.to_dict("records"):
            es = _settings(row)
            if "int8_kernels" not in es:
                continue
            rows.append(
                {
                    "machine": row["machine"],
                    "isa": row.get("isa", "native"),
                    "model": row["model"],
                    "quant": row["quant"],
                    "engine": row["engine"],
                    "cpu_vnni": es.get("cpu_vnni"),
                    "engine_binary": es.get("engine_binary"),
                    "int8_kernels": es["int8_kernels"],
                    "int8_label": es.get("int8_label", ""),
                }
            )
    return pd.DataFrame(rows, columns=cols)
