"""``python -m study.bench``: measure one model file on one or all engines and print a table.

All the engines' cells of the one model form one block (named after the file's stem), so they are
loaded together and timed round by round in a counterbalanced order; ``--replicates K`` measures
the block K times, each with fresh worker processes.

Example::

    python -m study.bench model.onnx --engine all --threads 2 --out runs/bench.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from study.bench.cells import BenchSettings, CellSpec
from study.bench.hardware import physical_cores
from study.bench.noise import NoiseFloor
from study.bench.run import out_file, run_benchmark
from study.bench.summary import format_table, summarize
from study.engines import ENGINES
from study.engines.base import PRECISIONS, SCENARIOS, read_input_specs
from study.records.results import ENVIRONMENT_FILE, write_csv

__all__ = ["main"]


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"`--input-shape` must be integers like 3,224,224; got {text!r}"
        ) from exc
    return shape


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m study.bench``: measure one model on one or all engines and print a table."""
    from study.records.logs import configure_logging

    description = "Measure one model file on one or all engines and print a table."
    p = argparse.ArgumentParser(prog="python -m study.bench", description=description)
    p.add_argument("model", help="ONNX file")
    p.add_argument(
        "--engine",
        action="append",
        choices=[*ENGINES, "all"],
        help="engine (repeatable; default all)",
    )
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument(
        "--threads",
        type=int,
        default=physical_cores(),
        help="threads for every engine (default: physical cores)",
    )
    p.add_argument("--scenario", choices=SCENARIOS, default="sync")
    p.add_argument("--precision", choices=PRECISIONS, default="f32")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=BenchSettings.max_seconds_per_cell,
        help="time cap (warm-up + trials) per cell of the block",
    )
    p.add_argument(
        "--target-ci",
        type=float,
        default=BenchSettings.target_ci,
        help="relative 95%% CI half-width",
    )
    p.add_argument("--trial-seconds", type=float, default=BenchSettings.trial_seconds)
    p.add_argument("--min-trials", type=int, default=BenchSettings.min_trials)
    p.add_argument("--max-trials", type=int, default=BenchSettings.max_trials)
    p.add_argument("--warmup-max-seconds", type=float, default=BenchSettings.warmup_max_seconds)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--replicates",
        type=int,
        default=BenchSettings.replicates,
        metavar="K",
        help="measure the block K times, each with fresh worker processes (fresh loads and "
        "compiles, its own seeded orders) and --min/--max-trials rounds; the CI then rests on "
        "the K replicates (1, or K >= 2; default 1)",
    )
    p.add_argument(
        "--parallel-loads",
        type=int,
        default=None,
        help="workers loaded at once, while nothing is timed (default: physical cores)",
    )
    p.add_argument(
        "--input-shape", type=_parse_shape, help="per-item shape for dynamic dims, e.g. 3,224,224"
    )
    p.add_argument(
        "--torch-module", help="torch.save'd module for --engine torch (default: <model>.pt)"
    )
    p.add_argument(
        "--out",
        default="runs/bench.jsonl",
        help="results JSONL (appended; environment.json beside it)",
    )
    p.add_argument(
        "--noise-floor",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first time a fixed matmul workload for SECONDS in trials of --trial-seconds, record "
        "it in environment.json and print how much this machine varies between trials, which "
        "bounds the CI any cell can reach (study.bench.noise; 0: skip)",
    )
    p.add_argument(
        "--max-steal",
        type=float,
        default=None,
        metavar="FRACTION",
        help="repeat a trial during which the hypervisor took more than this share of the CPU "
        "(e.g. 0.05); the rejected trial is kept in the results, marked (default: keep all)",
    )
    p.add_argument("--no-resume", action="store_true", help="measure finished cells again")
    p.add_argument("--csv", help="also write the summary table as CSV")
    args = p.parse_args(argv)
    configure_logging(-1)
    engines = (
        list(ENGINES)
        if not args.engine or "all" in args.engine
        else list(dict.fromkeys(args.engine))
    )
    try:
        read_input_specs(args.model, args.batch_size, args.input_shape)
        settings = BenchSettings(
            target_ci=args.target_ci,
            max_seconds_per_cell=args.max_seconds,
            trial_seconds=args.trial_seconds,
            min_trials=args.min_trials,
            max_trials=args.max_trials,
            warmup_max_seconds=args.warmup_max_seconds,
            seed=args.seed,
            replicates=args.replicates,
            max_cpu_steal=args.max_steal,
            noise_floor_seconds=args.noise_floor,
            **({} if args.parallel_loads is None else {"parallel_loads": args.parallel_loads}),
        )
        cells = [
            CellSpec(
                args.model,
                e,
                precision=args.precision,
                scenario=args.scenario,
                batch_size=args.batch_size,
                threads=args.threads,
                torch_module_path=args.torch_module,
                input_shape=args.input_shape,
                block=Path(args.model).stem,
            )
            for e in engines
        ]
        rows = run_benchmark(cells, settings, args.out, progress=True, resume=not args.no_resume)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = summarize(rows)
    if not summary.empty:  # in the order the engines were asked for, not the rounds' order
        summary = summary.sort_values("engine", key=lambda e: e.map(engines.index), kind="stable")
    if args.noise_floor:
        env = json.loads((out_file(args.out).parent / ENVIRONMENT_FILE).read_text())
        floors = env.get(rows[0].machine, {}).get("noise_floors", []) if rows else []
        if floors:  # none when every cell was already finished
            fields = set(NoiseFloor.__dataclass_fields__)
            print(
                NoiseFloor(**{k: v for k, v in floors[-1].items() if k in fields}), file=sys.stderr
            )
    print(format_table(summary))
    if args.csv:
        write_csv(summary, args.csv)
    return 0 if (summary["status"] == "ok").any() else 1
