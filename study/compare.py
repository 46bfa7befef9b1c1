"""The end-to-end toolchain-bias study: ``python -m study.compare``.

For every architecture of a preset: train dense, gmp-pruned and SparseML-pruned models from the same
initial weights on the shared loop, prune a one-shot sparsity sweep, export with both exporters,
benchmark every variant on every engine (interleaved, equal settings, fp32), then compute the
statistics (engine ratios, pruning speed-ups, the toolchain-bias ratio B with an equivalence test)
and build the paper.

Usage:
    python -m study.compare                         # the `quick` preset into runs/quick
    python -m study.compare --preset seed --data /data/imagenet/val --weights pretrained
    python -m study.compare --models resnet50,vgg19 --engines onnxruntime,deepsparse --out runs/mine
    python -m study.compare merge runs/machine-a runs/machine-b --out runs/merged

Running again into the same folder with the same configuration resumes: nothing finished is redone
and nothing written is lost. A different configuration into a used folder is refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from study.config import ENGINES, PRESETS, StudyConfig, load_config
from study.jsonl import append_jsonl, read_jsonl
from study.logs import configure_logging
from study.manifest import MANIFEST, Failure, read_manifest

__all__ = ["run_study", "write_stats", "merge", "bench_cells", "main"]

log = logging.getLogger("study.compare")

BIAS_PAIRS = (
    ("deepsparse", "openvino"),
    ("deepsparse", "onnxruntime"),
    ("openvino", "onnxruntime"),
)


# ----------------------------------------------------------------------------------------------
# Output folder
# ----------------------------------------------------------------------------------------------


def _prepare_folder(cfg: StudyConfig, out: Path, require_resume: bool) -> bool:
    """Create the results folder, or check that an existing one holds this same configuration.

    Returns:
        True when ``out`` already held a run of this configuration (it will be resumed).
    """
    config_path = out / "config.yaml"
    current = cfg.to_dict()
    if config_path.exists():
        previous = yaml.safe_load(config_path.read_text())
        diff = sorted(
            k
            for k in set(previous) | set(current)
            if _norm(previous.get(k)) != _norm(current.get(k))
        )
        if diff:
            raise ValueError(
                f"{str(out)!r} holds results of a different configuration (differs in: {', '.join(diff)}); "
                "pass a new --out folder (nothing there is overwritten)"
            )
        return True
    if require_resume:
        raise ValueError(
            f"--resume given but {str(out)!r} holds no study to resume (no config.yaml)"
        )
    out.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(current, sort_keys=False))
    return False


def _norm(value: Any) -> Any:
    """Compare configs after a YAML round trip (tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(value))


def _record_failures(out: Path, failures: list[Failure]) -> None:
    for f in failures:
        append_jsonl(out / "failures.jsonl", [asdict(f)])


def _capture_environment(out: Path) -> str:
    """Write this machine's hardware and package versions into environment.json; return its id."""
    from study.hardware import capture_hardware
    from study.results import write_environment

    hw = capture_hardware()
    write_environment(out, hw.machine, hw.to_dict())
    return hw.machine


# ----------------------------------------------------------------------------------------------
# Benchmark cells
# ----------------------------------------------------------------------------------------------


def _threads(cfg: StudyConfig) -> int:
    from study.hardware import physical_cores

    threads = cfg.bench.get("threads")
    return int(threads) if threads else physical_cores()


def bench_cells(cfg: StudyConfig, records, out: Path) -> list:
    """Every (ONNX file x engine x scenario) cell of the study, plus the OpenVINO precision ablation.

    All engines get the same threads, batch size and input. OpenVINO runs fp32 (its default would
    be bf16 on bf16-capable CPUs); with ``precision_ablation`` it also runs at its default precision
    on the dense and the gmp-pruned model exported by torch, as labelled extra cells.
    """
    from study.bench import CellSpec

    threads = _threads(cfg)
    batch = int(cfg.bench.get("batch_size", 1))
    cells = []
    # The harness interleaves a sliding window of cells in this order: put the cells of the central
    # comparisons together (per exporter: dense, gmp, SparseML on every engine), the sweep last.
    order = {"none": 0, "gmp": 1, "sparseml": 2, "oneshot": 3}
    records = sorted(
        records,
        key=lambda r: (
            r.pruner == "oneshot",
            r.exporter != "torch",
            r.exporter,
            order.get(r.pruner, 9),
            r.sparsity,
        ),
    )
    for rec in records:
        path = str(out / rec.onnx_path)
        module = str((out / rec.onnx_path).with_suffix(".pt"))
        common = dict(
            onnx_path=path,
            model=rec.model,
            pruner=rec.pruner,
            exporter=rec.exporter,
            sparsity=rec.sparsity,
            batch_size=batch,
            threads=threads,
        )
        for scenario in cfg.bench.get("scenarios", ["sync"]):
            for engine in cfg.engines:
                extra = {"torch_module_path": module} if engine == "torch" else {}
                cells.append(
                    CellSpec(engine=engine, precision="f32", scenario=scenario, **common, **extra)
                )
            ablate = cfg.precision_ablation and "openvino" in cfg.engines
            if ablate and rec.exporter == "torch" and rec.pruner in ("none", "gmp"):
                cells.append(
                    CellSpec(engine="openvino", precision="default", scenario=scenario, **common)
                )
    return cells


def _bench_settings(cfg: StudyConfig):
    from study.bench import BenchSettings

    known = set(BenchSettings.__dataclass_fields__)
    kwargs = {k: v for k, v in cfg.bench.items() if k in known}
    return BenchSettings(**{**kwargs, "seed": cfg.seed})


# ----------------------------------------------------------------------------------------------
# Statistics and summary
# ----------------------------------------------------------------------------------------------


def _to_jsonable(obj: Any) -> Any:
    if is_dataclass(obj):
        return {k: _to_jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_jsonable(v) for v in obj]
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def write_stats(out: Path) -> dict[str, Any]:
    """Compute the study's statistics from bench.jsonl; write stats.json and summary.md."""
    import pandas as pd

    from study import stats
    from study.results import load_results

    df = load_results(out / "bench.jsonl")
    ok = df[df["status"] == "ok"]
    engines = sorted(ok["engine"].unique())
    cell_table = stats.cell_table(df)
    comparisons = [
        stats.engine_comparison(df, a, b).assign(engine_a=a, engine_b=b)
        for i, a in enumerate(engines)
        for b in engines[i + 1 :]
    ]
    engine_table = pd.concat(comparisons, ignore_index=True) if comparisons else pd.DataFrame()
    speedup = stats.pruning_speedup(df)
    bias = []
    for num, den in BIAS_PAIRS:
        if num in engines and den in engines:
            bias += stats.toolchain_bias(df, numerator=num, denominator=den, factor="pruner")
            bias += stats.toolchain_bias(
                df,
                numerator=num,
                denominator=den,
                factor="exporter",
                level_a="sparseml",
                level_b="torch",
            )
    bias_table = stats.bias_table(bias) if bias else pd.DataFrame()
    result = {
        "cells": cell_table.to_dict(orient="records"),
        "engine_comparison": engine_table.to_dict(orient="records"),
        "pruning_speedup": speedup.to_dict(orient="records"),
        "bias": [_to_jsonable(b) for b in bias],
    }
    (out / "stats.json").write_text(json.dumps(_to_jsonable(result), indent=1, default=str))
    (out / "summary.md").write_text(
        _summary_markdown(out, cell_table, engine_table, speedup, bias, bias_table)
    )
    return result


def _fmt_table(df, columns: list[str], floats: str = "{:.3g}") -> str:
    if df is None or len(df) == 0:
        return "_no data_\n"
    cols = [c for c in columns if c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df[cols].iterrows():
        cells = [floats.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _summary_markdown(out: Path, cells, engine_table, speedup, bias, bias_table) -> str:
    records = read_manifest(out)
    failures = read_jsonl(out / "failures.jsonl", missing_ok=True)
    lines = [f"# Study summary: {out.name}", ""]
    lines += ["## Toolchain bias (the central figure)", ""]
    lines += [
        "B = (engine A / engine B throughput on the SparseML-pruned model) / (the same ratio on the "
        "gmp-pruned model). B = 1 means the pruning toolchain does not change the engine comparison. "
        "'equivalent' = TOST rejects a bias larger than the margin (5%).",
        "",
    ]
    estimable = [b for b in bias if b.estimate == b.estimate]  # NaN: a cell was missing
    for b in (b for b in estimable if b.model == "pooled"):
        verdict = (
            f"no bias larger than {b.margin:.0%} (TOST p = {b.tost.pvalue:.3g})"
            if b.equivalent
            else f"a bias larger than {b.margin:.0%} is not ruled out (TOST p = {b.tost.pvalue:.3g})"
        )
        held = "pruner" if b.factor == "exporter" else "exporter"
        lines.append(
            f"- **{b.factor} {b.level_a} vs {b.level_b}, {b.numerator}/{b.denominator}** "
            f"({held} {b.held}, {b.k} architecture(s), machine {b.machine}): B = {b.estimate:.3f}, "
            f"95% CI [{b.ci_low:.3f}, {b.ci_high:.3f}], p(B = 1) = {b.pvalue:.3g}; {verdict}."
        )
    if not estimable:
        lines.append(
            "_No bias estimate: the engines or pruners needed are missing (see failures)._"
        )
    lines += ["", "Per architecture:", ""]
    table = bias_table[bias_table["estimate"].notna()] if len(bias_table) else bias_table
    lines.append(
        _fmt_table(
            table,
            [
                "model",
                "factor",
                "held",
                "numerator",
                "denominator",
                "estimate",
                "ci_low",
                "ci_high",
                "pvalue",
                "tost_pvalue",
                "equivalent",
                "n_trials",
            ],
        )
    )
    missing = [b for b in bias if b.estimate != b.estimate]
    if missing:
        lines += ["Not estimable (a cell is missing):", ""]
        lines += [
            f"- {b.model} {b.factor} (held {b.held}) {b.numerator}/{b.denominator}: {b.note}"
            for b in missing
        ]
    lines.append("")
    lines += ["## Throughput per cell (items/s, mean of trials, bootstrap 95% CI)", ""]
    lines.append(
        _fmt_table(
            cells,
            [
                "model",
                "pruner",
                "exporter",
                "sparsity",
                "engine",
                "precision",
                "scenario",
                "n_trials",
                "throughput",
                "ci_low",
                "ci_high",
                "latency_ms_median",
            ],
        )
    )
    lines += ["## Engine vs engine (ratio of geometric means, Welch 95% CI, Holm-adjusted p)", ""]
    lines.append(
        _fmt_table(
            engine_table,
            [
                "model",
                "pruner",
                "exporter",
                "sparsity",
                "engine_a",
                "engine_b",
                "estimate",
                "ci_low",
                "ci_high",
                "welch_p",
                "mwu_p",
                "p_holm",
            ],
        )
    )
    lines += ["## Pruning speed-up (pruned / dense throughput, 95% CI)", ""]
    lines.append(
        _fmt_table(
            speedup,
            ["model", "engine", "pruner", "exporter", "sparsity", "estimate", "ci_low", "ci_high"],
        )
    )
    lines += ["## Models (sparsity counted in the ONNX initializers, gzip -9 size, accuracy)", ""]
    lines.append(
        "| model | pruner | exporter | target | measured | zeros kept | gzip MB | accuracy |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in records:
        acc = "" if r.accuracy is None else f"{r.accuracy:.3f}"
        lines.append(
            f"| {r.model} | {r.pruner} | {r.exporter} | {r.sparsity:.2f} | {r.measured_sparsity:.3f} | "
            f"{'yes' if r.zero_check_ok else 'NO'} | {r.gzip_bytes / 1e6:.2f} | {acc} |"
        )
    lines += ["", "## Failures", ""]
    if failures:
        lines += [
            f"- {f['stage']} {f['model']} {f.get('pruner', '')} {f.get('engine', '')}: {f['reason']}"
            for f in failures
        ]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# The study
# ----------------------------------------------------------------------------------------------


def run_study(
    cfg: StudyConfig, out: Path, *, progress: bool = True, build_paper: bool = True
) -> int:
    """Run the whole study into ``out``; return 0, or 1 when some part failed (recorded, rest done).

    ``out`` is created, or resumed when it holds a run of the same configuration (see
    :func:`_prepare_folder`).
    """
    from tqdm.auto import tqdm

    from study.bench import run_benchmark
    from study.pipeline import prepare_model

    started = time.perf_counter()
    _prepare_folder(cfg, out, require_resume=False)
    machine = _capture_environment(out)
    log.info("study %r on machine %s into %s", cfg.name, machine, out)
    failures: list[Failure] = []
    for name in tqdm(cfg.models, desc="train/prune/export", unit="model", disable=not progress):
        try:
            new = prepare_model(cfg, name, out, progress=progress)
        except Exception as err:  # one architecture failing must not stop the others
            log.exception("%s failed", name)
            new = [Failure("prepare", name, f"{type(err).__name__}: {err}")]
        _record_failures(out, new)
        failures += new
    records = read_manifest(out)
    settings = _bench_settings(cfg)
    # One benchmark run per architecture: every variant and engine of an architecture is interleaved
    # (so drift cannot masquerade as a toolchain or engine effect), while only one architecture's
    # engines are held in memory at a time.
    for name in tqdm(cfg.models, desc="benchmark", unit="model", disable=not progress):
        cells = bench_cells(cfg, [r for r in records if r.model == name], out)
        if not cells:
            continue
        rows = run_benchmark(cells, settings, out / "bench.jsonl", progress=progress, resume=True)
        failed = {(r.engine, r.onnx_path, r.error) for r in rows if r.status == "failed"}
        new = [
            Failure("bench", name, str(err), engine=engine)
            for engine, _, err in sorted(failed, key=str)
        ]
        _record_failures(out, new)
        failures += new
    _export_csv(out)
    write_stats(out)
    if build_paper:
        _build_paper(out)
    log.info(
        "study finished in %.1f min; summary: %s",
        (time.perf_counter() - started) / 60,
        out / "summary.md",
    )
    return 1 if failures else 0


def _export_csv(out: Path) -> None:
    from study.results import load_results, write_csv

    if (out / "bench.jsonl").exists():
        write_csv(load_results(out / "bench.jsonl"), out / "bench.csv")


def _build_paper(out: Path) -> None:
    from paper import build

    build(out, out / "paper")


# ----------------------------------------------------------------------------------------------
# Merging machines
# ----------------------------------------------------------------------------------------------


def merge(folders: list[Path], out: Path, *, build_paper: bool = True) -> None:
    """Combine the results folders of several machines into one; machine becomes a factor.

    Trial rows, manifests (with the machine recorded in ``extra``), environments, training logs,
    sensitivity tables and failures are concatenated; statistics and the paper are rebuilt.
    """
    import pandas as pd

    from study.results import write_environment

    for folder in folders:
        if not (folder / "bench.jsonl").exists():
            raise ValueError(f"{str(folder)!r} is not a study results folder (no bench.jsonl)")
    if out.exists() and any(out.iterdir()):
        raise ValueError(
            f"--out {str(out)!r} is not empty; merge into a new folder (nothing is overwritten)"
        )
    out.mkdir(parents=True, exist_ok=True)
    envs: dict[str, Any] = {}
    for folder in folders:
        env = (
            json.loads((folder / "environment.json").read_text())
            if (folder / "environment.json").exists()
            else {}
        )
        envs.update(env)
        machine = next(iter(env), folder.name)
        append_jsonl(out / "bench.jsonl", read_jsonl(folder / "bench.jsonl"))
        for row in read_jsonl(folder / MANIFEST, missing_ok=True):
            row["extra"] = {**row.get("extra", {}), "machine": machine, "source": str(folder)}
            row["onnx_path"] = str(
                (folder / row["onnx_path"]).resolve()
            )  # absolute: files stay put
            append_jsonl(out / MANIFEST, [row])
        for row in read_jsonl(folder / "failures.jsonl", missing_ok=True):
            append_jsonl(out / "failures.jsonl", [{**row, "machine": machine}])
        for name in ("training.csv", "sensitivity.csv"):
            if (folder / name).exists():
                table = pd.read_csv(folder / name).assign(machine=machine)
                table.to_csv(out / name, mode="a", header=not (out / name).exists(), index=False)
        if (folder / "config.yaml").exists() and not (out / "config.yaml").exists():
            shutil.copy(folder / "config.yaml", out / "config.yaml")
    for machine, info in envs.items():
        write_environment(out, machine, info)
    _export_csv(out)
    write_stats(out)
    if build_paper:
        _build_paper(out)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def _csv_list(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _parse_sparsities(value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in _csv_list(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sparsities must be comma-separated numbers in [0, 1), e.g. 0.5,0.9; got {value!r}"
        ) from None


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.compare",
        description="The end-to-end toolchain-bias study (gmp vs SparseML pruning; DeepSparse, OpenVINO, "
        "ONNX Runtime). `python -m study.compare merge DIR... --out DIR` combines machines.",
    )
    p.add_argument(
        "--preset", default="quick", help=f"{', '.join(PRESETS)} or a YAML file (default: quick)"
    )
    p.add_argument("--models", help="comma-separated registry names (overrides the preset)")
    p.add_argument("--engines", help=f"comma-separated, from {', '.join(ENGINES)}")
    p.add_argument(
        "--sparsities", help="comma-separated one-shot sweep sparsities, e.g. 0.5,0.7,0.9"
    )
    p.add_argument("--data", help="'digits' or an ImageFolder path (e.g. ImageNet val)")
    p.add_argument("--weights", help="'random', 'pretrained' or a checkpoint path")
    p.add_argument("--out", type=Path, help="results folder (default: runs/<preset>)")
    p.add_argument(
        "--resume", action="store_true", help="require an existing run in --out to resume"
    )
    p.add_argument("--no-paper", action="store_true", help="skip building the paper at the end")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["merge"]:
        p = argparse.ArgumentParser(prog="python -m study.compare merge")
        p.add_argument("folders", nargs="+", type=Path, help="results folders of several machines")
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--no-paper", action="store_true")
        args = p.parse_args(argv[1:])
        configure_logging()
        try:
            merge(args.folders, args.out, build_paper=not args.no_paper)
        except ValueError as err:
            p.error(str(err))
        return 0
    p = _run_parser()
    args = p.parse_args(argv)
    configure_logging(args.verbose)
    try:
        overrides = {
            "models": _csv_list(args.models),
            "engines": _csv_list(args.engines),
            "sweep": _parse_sparsities(args.sparsities),
            "data": args.data,
            "weights": args.weights,
        }
        cfg = load_config(args.preset, overrides)
        out = args.out or Path("runs") / cfg.name
        if _prepare_folder(cfg, out, args.resume):
            log.info("resuming the study in %s (finished work is kept and not redone)", out)
    except (ValueError, argparse.ArgumentTypeError) as err:
        p.error(str(err))
    return run_study(cfg, out, progress=not args.no_progress, build_paper=not args.no_paper)


if __name__ == "__main__":
    sys.exit(main())
