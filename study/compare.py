"""The end-to-end toolchain-bias study: ``python -m study.compare``.

For every architecture of a preset: train the dense model once to real accuracy, make every variant
of the design from it (``study.design``: the reference and one variant per level of each factor —
pruner, exporter, sparsity profile, mask structure, int8 precision and quantizer — plus the
one-shot sweep; ``study.variants``), benchmark every variant on every engine with the architecture's
cells in one block measured round by round (equal settings, fp32), then compute the statistics
(one B per channel and engine pair, the A/A control first; ``study.analysis.summary``) and build the paper.

Usage:
    python -m study.compare                         # the `quick` preset into runs/quick
    python -m study.compare --preset seed --data /data/imagenet/val --weights pretrained
    python -m study.compare --models resnet50,vgg19 --engines onnxruntime,deepsparse --out runs/mine
    python -m study.compare merge runs/machine-a runs/machine-b --out runs/merged
    python -m study.compare --reuse-models runs/quick --out runs/quick-2   # a second run, same files

Running again into the same folder with the same configuration resumes: nothing finished is redone
and nothing written is lost. A different configuration into a used folder is refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from study.analysis.markdown import write_stats
from study.config import ENGINES, FACTORS, PRESETS, StudyConfig, load_config
from study.records.jsonl import append_jsonl, read_jsonl
from study.records.logs import configure_logging
from study.records.manifest import MANIFEST, SKIPPED, Failure, Skip, read_manifest, record_skips

__all__ = ["run_study", "write_stats", "merge", "bench_cells", "reuse_models", "main"]

log = logging.getLogger("study.compare")


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
        diff = _config_diff(yaml.safe_load(config_path.read_text()), current)
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


# What making a run's models writes into its folder (study.variants), and the only keys of the
# configuration that do not change those files. --reuse-models copies the first into a new folder.
MADE = ("models", "recipes", "training.csv", "sensitivity.csv")
BENCH_ONLY_KEYS = ("bench", "analysis", "engines", "isa")


def reuse_models(cfg: StudyConfig, source: Path, out: Path) -> None:
    """Start a new run in ``out`` that measures the byte-identical model files of run ``source``.

    The files ``source``'s making stages wrote (:data:`MADE`: the ONNX files, checkpoints and
    manifest under ``models/``, the rewritten recipes, the training logs) are hard-linked (copied
    across file systems) into ``out``, with ``source``'s failures of making; the benchmark then
    runs in fresh processes under a new run id. Two such runs are what ``python -m
    study.replication`` compares: the variance between runs without the noise of retraining.

    Raises:
        ValueError: if ``source`` holds no study, its configuration differs from ``cfg`` in
            anything but :data:`BENCH_ONLY_KEYS`, or ``out`` exists and is not empty (nothing is
            overwritten).
    """
    if not (source / "config.yaml").exists() or not (source / MANIFEST).exists():
        raise ValueError(
            f"--reuse-models {str(source)!r} holds no study with models (no config.yaml or "
            f"{MANIFEST}); give the folder of a finished or interrupted run"
        )
    if out.resolve() == source.resolve():
        raise ValueError(f"--reuse-models and --out must be two folders; both are {str(out)!r}")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {str(out)!r} must be new or empty with --reuse-models")
    current = cfg.to_dict()
    previous = yaml.safe_load((source / "config.yaml").read_text())
    diff = _config_diff(previous, current, ignore=BENCH_ONLY_KEYS)
    if diff:
        raise ValueError(
            f"--reuse-models {str(source)!r} made its models under another configuration "
            f"(differs in: {', '.join(diff)}; only {', '.join(BENCH_ONLY_KEYS)} may differ)"
        )
    out.mkdir(parents=True, exist_ok=True)

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    for name in MADE:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, out / name, copy_function=link)
        elif path.exists():
            link(str(path), str(out / name))
    made_failures = [
        f
        for f in read_jsonl(source / "failures.jsonl", missing_ok=True)
        if f.get("stage") != "bench"
    ]
    if made_failures:
        append_jsonl(out / "failures.jsonl", made_failures)
    (out / "config.yaml").write_text(yaml.safe_dump(current, sort_keys=False))
    log.info("reusing the models of %s in %s (a new benchmark run of the same files)", source, out)


def _config_diff(previous: dict, current: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """The top-level keys whose values differ, compared after a YAML round trip (tuples become
    lists), leaving out ``ignore``."""

    def norm(value: Any) -> Any:
        return yaml.safe_load(yaml.safe_dump(value))

    keys = (set(previous) | set(current)) - set(ignore)
    return sorted(k for k in keys if norm(previous.get(k)) != norm(current.get(k)))


def _record_failures(out: Path, failures: list[Failure]) -> None:
    for f in failures:
        append_jsonl(out / "failures.jsonl", [asdict(f)])


def _capture_environment(out: Path):
    """Write this machine's hardware and package versions into environment.json; return it."""
    from study.bench.hardware import capture_hardware
    from study.records.results import write_environment

    hw = capture_hardware()
    write_environment(out, hw.machine, hw.to_dict())
    return hw


# ----------------------------------------------------------------------------------------------
# Benchmark cells
# ----------------------------------------------------------------------------------------------


def _threads(cfg: StudyConfig) -> int:
    from study.bench.hardware import physical_cores

    threads = cfg.bench.get("threads")
    return int(threads) if threads else physical_cores()


def bench_cells(
    cfg: StudyConfig, records, out: Path, isa_flags: dict[str, bool], machine: str = ""
) -> tuple[list, list[Skip]]:
    """Every (ONNX file x engine x scenario x ISA level) cell of the study, in blocks, plus the
    labelled variants; and the cells left out because on this CPU they could not differ.

    All engines get the same threads, batch size and input. OpenVINO runs fp32 (its default would
    be bf16 on bf16-capable CPUs); with ``precision_ablation`` it also runs at its default
    precision on the dense and the reference model, and with sparse-weights decompression on the
    int8 files ("f32-sparse"), as labelled extra cells. Every cell of one architecture, scenario
    and ISA level is in one block: the harness measures them round by round, so every contrast
    the study reports pairs trials measured at the same time. The cells of the files channels
    compare with (:func:`study.design.is_anchor`) are marked ``anchor``, and each cell names the
    files its channels compare it with (``pairs_with``): a block too big to load at once is
    measured as sub-blocks, each holding the anchors its files pair with (:mod:`study.bench.split`). The SparseML-pruned reference (the
    A/A control) has cells of its own, on gmp's file when the two files are the same bytes. A
    record whose ``extra["engine_files"]`` maps an engine to another file (NNCF's int8: its
    FakeQuantize ONNX runs on OpenVINO only, the others measure its QDQ file) is measured on that
    file by that engine; the rows' ``onnx_path`` says which.

    Left out, as :class:`~study.records.manifest.Skip` records with the reason (they would repeat the f32
    cells): OpenVINO's default precision on a CPU with neither AVX512-BF16 nor AMX-BF16, and its
    sparse-weights decompression on a CPU without AMX INT8 (study.engines.openvino); an ISA level
    the CPU cannot go above (:func:`study.engines.isa.level_skip_reason`). The capped levels
    measure the plain f32 cells only.

    Args:
        cfg: the study configuration.
        records: the manifest records of the files to measure.
        out: the results folder.
        isa_flags: the CPU's flags (``study.bench.hardware.Hardware.isa``); tests pass simulated ones.
        machine: the machine id written into the skips.
    """
    from study.bench import CellSpec
    from study.design import is_anchor, is_reference, pairs_with
    from study.engines.isa import amx_int8, bf16_capable, level_skip_reason

    threads = _threads(cfg)
    batch = int(cfg.bench.get("batch_size", 1))
    skips: list[Skip] = []
    levels = []
    for level in cfg.isa:
        why = level_skip_reason(level, isa_flags)
        if why:
            skips.append(Skip(f"isa={level}", "", why, machine))
        else:
            levels.append(level)
    bf16 = bf16_capable(isa_flags)
    amx = amx_int8(isa_flags)
    cells = []
    for rec in records:
        module = str((out / rec.onnx_path).with_suffix(".pt"))
        pairs = tuple(str(out / r.onnx_path) for r in pairs_with(cfg, rec, records))
        runs = [  # (engine, precision, extra CellSpec fields)
            (e, "f32", {"torch_module_path": module} if e == "torch" else {})
            for e in cfg.engines
            if not (e == "torch" and rec.quant != "none")  # torch eager runs fp32 modules only
        ]
        extra_runs = []  # native ISA only
        if "openvino" in cfg.engines:
            ablate = cfg.precision_ablation and rec.exporter == "torch"
            if ablate and (rec.pruner == "none" or is_reference(rec)):
                if bf16:
                    extra_runs.append(("openvino", "default", {}))
                else:
                    why = (
                        "the CPU has neither AVX512-BF16 nor AMX-BF16: OpenVINO's default "
                        "precision is f32 here, the same as its f32 cells"
                    )
                    skips.append(Skip("openvino precision=default", rec.model, why, machine))
            if rec.quant != "none":
                if amx:
                    extra_runs.append(("openvino", "f32-sparse", {}))
                else:
                    why = (
                        "the CPU has no AMX INT8: OpenVINO decompresses sparse weights only in "
                        "AMX INT8 kernels, so f32-sparse would run as its f32 cells"
                    )
                    skips.append(Skip("openvino precision=f32-sparse", rec.model, why, machine))
        for level in levels:
            suffix = "" if level == "native" else f"/{level}"
            for scenario in cfg.bench.get("scenarios", ["sync"]):
                files = rec.extra.get("engine_files") or {}  # NNCF int8: QDQ where FQ cannot run
                cells += [
                    CellSpec(
                        onnx_path=str(out / files.get(engine, rec.onnx_path)),
                        engine=engine,
                        model=rec.model,
                        pruner=rec.pruner,
                        profile=rec.profile,
                        mask=rec.mask,
                        quant=rec.quant,
                        exporter=rec.exporter,
                        sparsity=rec.sparsity,
                        precision=precision,
                        scenario=scenario,
                        batch_size=batch,
                        threads=threads,
                        block=f"{rec.model}/{scenario}{suffix}",
                        anchor=is_anchor(rec),
                        pairs_with=pairs,
                        isa=level,
                        **extra,
                    )
                    for engine, precision, extra in runs + (extra_runs if level == "native" else [])
                ]
    return cells, list(dict.fromkeys(skips))


def planned_memory(cfg: StudyConfig, out: Path, isa_flags: dict[str, bool], machine: str) -> list:
    """The benchmark's memory plan from the design alone, before anything is made.

    The files do not exist yet, so each is sized from its architecture's parameter count: 4 bytes
    a weight for an fp32 file and for NNCF's FakeQuantize file (it keeps fp32 weights), 1 for an
    int8 QDQ file. The cells are those :func:`bench_cells` will build, split and checked as the
    benchmark will (:func:`study.bench.split.split_cells`), so a run that cannot fit is refused
    before hours of training. The benchmark plans again from the real files, with the same
    budget (:func:`study.bench.split.run_budget`: a resumed run keeps the one it started with).

    Args:
        cfg: the study's configuration.
        out: the run's folder (its recorded plan, if resumed; the files' future paths).
        isa_flags: the CPU's features (``capture_hardware().isa``), which decide the ISA cells.
        machine: the machine's id (``capture_hardware().machine``), whose recorded budget a
            resumed run keeps.

    Returns:
        One :class:`study.bench.split.BlockPlan` per block (each logged).

    Raises:
        ValueError: a block cannot fit (the message gives the estimate and the fixes).
    """
    import dataclasses
    from types import SimpleNamespace

    import torch

    from baselines.nncf_arm import QDQ_ENGINES
    from study.bench.split import cell_memory, read_plans, run_budget, split_cells
    from study.design import variants
    from study.make.models import build_model

    sizes: dict[str, int] = {}
    records = []
    for name in cfg.models:
        with torch.device("meta"):  # shapes only: no memory, no initialisation (seconds saved)
            params = sum(p.numel() for p in build_model(name).parameters())
        for v in variants(cfg, name):
            path = f"models/{v.name}.onnx"
            extra = {}
            sizes[str(out / path)] = params * (
                4 if v.quant == "none" or v.exporter == "nncf" else 1
            )
            if v.exporter == "nncf":  # NNCF's QDQ file for the engines that cannot run its own
                qdq = f"models/{v.name}.qdq.onnx"
                extra["engine_files"] = dict.fromkeys(QDQ_ENGINES, qdq)
                sizes[str(out / qdq)] = params
            records.append(SimpleNamespace(**dataclasses.asdict(v), onnx_path=path, extra=extra))
    cells, _ = bench_cells(cfg, records, out, isa_flags)
    settings = _bench_settings(cfg)
    _, plans = split_cells(
        cells,
        settings.max_live_workers,
        run_budget(read_plans(out), machine, resume=True),
        lambda spec: cell_memory(spec, sizes.get(spec.onnx_path, 0)),
    )
    for plan in plans:
        log.info("before making, from parameter counts: %s", plan.describe())
    return plans


def _bench_settings(cfg: StudyConfig):
    """The harness settings of the `bench:` section (its keys were checked by study.config)."""
    from study.bench import BenchSettings
    from study.config import BENCH_KEYS

    unknown = sorted(set(cfg.bench) - set(BenchSettings.__dataclass_fields__) - set(BENCH_KEYS))
    if unknown or "seed" in cfg.bench:
        allowed = sorted({*BENCH_KEYS, *BenchSettings.__dataclass_fields__} - {"seed"})
        raise ValueError(
            f"unknown key(s) {unknown or ['seed']} in `bench`; allowed: {', '.join(allowed)}"
        )
    kwargs = {k: v for k, v in cfg.bench.items() if k not in BENCH_KEYS}
    return BenchSettings(**{**kwargs, "seed": cfg.seed})


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
    from study.variants import SizeRecorder, log_timing, prepare_model

    started = time.perf_counter()
    _prepare_folder(cfg, out, require_resume=False)
    hw = _capture_environment(out)
    log.info("study %r on machine %s into %s", cfg.name, hw.machine, out)
    failures: list[Failure] = []
    try:
        planned_memory(cfg, out, hw.isa, hw.machine)
    except ValueError as err:  # refused before anything is made; nothing written is lost
        log.error("run refused before making anything: %s", err)
        _record_failures(out, [Failure("bench", "", f"refused before making: {err}")])
        return 1
    # One gzip recorder for the whole making: an architecture's sizes (minutes for VGG19's files
    # at gzip -9) are measured while the next architectures train.
    recorder = SizeRecorder(out, cfg.gzip_level)
    try:
        for name in tqdm(cfg.models, desc="train/prune/export", unit="model", disable=not progress):
            try:
                new = prepare_model(cfg, name, out, progress=progress, recorder=recorder)
            except Exception as err:  # one architecture failing must not stop the others
                log.exception("%s failed", name)
                new = [Failure("prepare", name, f"{type(err).__name__}: {err}")]
            new += recorder.drain()
            _record_failures(out, new)
            failures += new
    finally:
        began = time.perf_counter()
        new = recorder.close()
        if recorder.added:  # counted in the totals (the "gzip -N FILE" rows overlap the making)
            log_timing(out, "all", "waiting for gzip sizes", time.perf_counter() - began)
        _record_failures(out, new)
        failures += new
    records = read_manifest(out)
    settings = _bench_settings(cfg)
    # One benchmark run over every architecture: each architecture's variants and engines form one
    # block (interleaved, so drift cannot masquerade as a toolchain or engine effect; one block's
    # engines are held in memory at a time), and the blocks' replicates are interleaved in time.
    cells = []
    for name in cfg.models:
        mine, skips = bench_cells(
            cfg, [r for r in records if r.model == name], out, hw.isa, hw.machine
        )
        record_skips(out, skips)
        for skip in skips:
            log.info(
                "%s: not measured: %s (%s)", skip.model or "every model", skip.what, skip.reason
            )
        cells += mine
    if cells:
        began = time.perf_counter()
        try:
            rows = run_benchmark(
                cells, settings, out / "bench.jsonl", progress=progress, resume=True
            )
        except ValueError as err:  # a block that cannot fit: refused before any cell is measured
            log.error("benchmark refused: %s", err)
            rows = []
            failures.append(Failure("bench", "", str(err)))
            _record_failures(out, failures[-1:])
        log_timing(out, "all", "benchmark", time.perf_counter() - began)
        failed = {(r.model, r.engine, r.onnx_path, r.error) for r in rows if r.status == "failed"}
        new = [
            Failure("bench", model, str(err), engine=engine)
            for model, engine, _, err in sorted(failed, key=str)
        ]
        _record_failures(out, new)
        failures += new
    _export_csv(out)
    write_stats(out)
    if cfg.opprofile is not None:
        failures += _opprofile(cfg, out)
    if build_paper:
        _build_paper(out)
    log.info(
        "study finished in %.1f min; summary: %s",
        (time.perf_counter() - started) / 60,
        out / "summary.md",
    )
    return 1 if failures else 0


def _opprofile(cfg: StudyConfig, out: Path) -> list[Failure]:
    """Profile the dense, reference and sweep files per operator (``opprofile:`` of the preset)."""
    from study.analysis.opprofile import profile_run
    from study.variants import log_timing

    began = time.perf_counter()
    rows = profile_run(
        out, cfg.engines, threads=_threads(cfg), iterations=cfg.opprofile["iterations"]
    )
    log_timing(out, "all", "opprofile", time.perf_counter() - began)
    for row in rows:
        log.info("%s", row.get("sentence") or f"opprofile {row['engine']}: {row['error']}")
    new = [
        Failure("opprofile", r["model"], r["error"], engine=r["engine"])
        for r in rows
        if "error" in r
    ]
    _record_failures(out, new)
    return new


def _export_csv(out: Path) -> None:
    from study.records.results import load_results, write_csv

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

    from study.records.results import write_environment

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
        for row in read_jsonl(folder / SKIPPED, missing_ok=True):
            append_jsonl(out / SKIPPED, [{**row, "machine": row.get("machine") or machine}])
        for name in ("training.csv", "sensitivity.csv", "timings.csv"):
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
        "--factors",
        help=f"comma-separated factors to run, from {', '.join(FACTORS)} (the others stay at "
        "their reference level; default: the preset's)",
    )
    p.add_argument(
        "--sparsities", help="comma-separated one-shot sweep sparsities, e.g. 0.5,0.7,0.9"
    )
    p.add_argument(
        "--isa",
        help="comma-separated ISA levels to measure at, from native, avx512, avx2 (native is "
        "always included; a level the CPU cannot go above is skipped with the reason)",
    )
    p.add_argument(
        "--replicates",
        type=int,
        metavar="K",
        help="replicates per block: K fresh sets of worker processes, each timed in the preset's "
        "rounds (sets bench.replicates; 1, or K >= 2)",
    )
    p.add_argument("--data", help="'digits' or an ImageFolder path (e.g. ImageNet val)")
    p.add_argument("--weights", help="'random', 'pretrained' or a checkpoint path")
    p.add_argument("--out", type=Path, help="results folder (default: runs/<preset>)")
    p.add_argument(
        "--resume", action="store_true", help="require an existing run in --out to resume"
    )
    p.add_argument(
        "--reuse-models",
        type=Path,
        metavar="RUN",
        help="benchmark the byte-identical models of the run in folder RUN (new processes, a "
        "new run id) into a new --out: a second run for `python -m study.replication`",
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
            "factor_names": _csv_list(args.factors),
            "sweep": _parse_sparsities(args.sparsities),
            "isa": _csv_list(args.isa),
            "data": args.data,
            "weights": args.weights,
            "replicates": args.replicates,
        }
        cfg = load_config(args.preset, overrides)
        out = args.out or Path("runs") / cfg.name
        if args.reuse_models is not None:
            reuse_models(cfg, args.reuse_models, out)
        if _prepare_folder(cfg, out, args.resume):
            log.info("resuming the study in %s (finished work is kept and not redone)", out)
    except (ValueError, argparse.ArgumentTypeError) as err:
        p.error(str(err))
    return run_study(cfg, out, progress=not args.no_progress, build_paper=not args.no_paper)


if __name__ == "__main__":
    sys.exit(main())
