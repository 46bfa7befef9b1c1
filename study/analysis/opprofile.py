"""Question 3 for a study folder: the per-operator profile of its dense, reference and sweep files.

Runs :func:`study.bench.opprofile.profile_file` on every fp32 dense, reference and one-shot sweep
file of the folder's manifest, on each engine that has a profiler (ONNX Runtime, OpenVINO,
DeepSparse), and writes ``opprofile.json`` (one row per file and engine: shares of time by
operator class, the Amdahl bound, the sentence). ``python -m study.compare`` runs it after the
benchmark when the preset has ``opprofile:``; the paper draws ``opprofile.png`` from it.

Usage:
    python -m study.analysis.opprofile RUN [--engine openvino] [--iterations 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from study.bench.opprofile import ENGINES, profile_files, write_rows
from study.design import is_reference
from study.records.manifest import OPPROFILE, read_manifest

__all__ = ["main", "profile_run", "run_files"]


def run_files(run: Path) -> list[tuple[str, str, float, Path]]:
    """(model, label, sparsity, file) of a study folder's fp32 dense, reference and sweep files."""
    out, seen = [], set()
    for rec in read_manifest(run):
        if rec.quant != "none" or rec.onnx_path in seen:
            continue
        if rec.pruner == "none":
            label = "dense"
        elif is_reference(rec):
            label = f"reference s{rec.sparsity:.2f}"
        elif rec.pruner == "oneshot":
            label = f"one-shot s{rec.sparsity:.2f}"
        else:
            continue
        seen.add(rec.onnx_path)
        out.append((rec.model, label, rec.sparsity, run / rec.onnx_path))
    return out


def profile_run(
    run: Path,
    engines: tuple[str, ...] = ENGINES,
    *,
    threads: int | None = None,
    iterations: int = 20,
    out: Path | None = None,
) -> list[dict[str, Any]]:
    """Profile a study folder's dense, reference and sweep files on ``engines``; write the JSON.

    Engines without a profiler here (deepsparse-cli, torch) are left out. A file an engine fails
    on becomes a row with its ``error`` and the rest goes on.

    Returns:
        The rows written to ``out`` (default ``run/opprofile.json``).

    Raises:
        ValueError: the folder has no fp32 dense, reference or sweep file in its manifest.
    """
    files = run_files(run)
    if not files:
        raise ValueError(
            f"{str(run)!r} has no manifest.jsonl with fp32 dense/reference/sweep files"
        )
    rows = profile_files(files, [e for e in engines if e in ENGINES], threads, iterations)
    write_rows(rows, out or run / OPPROFILE)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m study.analysis.opprofile", description=__doc__)
    p.add_argument("run", type=Path, help="a study results folder (python -m study.compare)")
    p.add_argument("--engine", default="all", help=f"{', '.join(ENGINES)} or all (default)")
    p.add_argument("--threads", type=int, help="engine threads (default: physical cores)")
    p.add_argument("--iterations", type=int, default=20, help="timed inferences (default 20)")
    args = p.parse_args(argv)
    engines = ENGINES if args.engine == "all" else tuple(args.engine.split(","))
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        p.error(f"--engine must be from {', '.join(ENGINES)} or all; got {bad}")
    try:
        rows = profile_run(args.run, engines, threads=args.threads, iterations=args.iterations)
    except ValueError as err:
        p.error(str(err))
    for row in rows:
        print(row.get("sentence") or f"{row['engine']} on {row['path']}: {row['error']}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
