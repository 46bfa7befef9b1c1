"""Per-architecture stages of the study: train (dense, gmp, SparseML), prune the sweep, export, record.

Everything here turns one architecture of a :class:`~study.config.StudyConfig` into ONNX files and
:class:`~study.schema.ModelRecord` rows. Benchmarking, statistics and the paper live elsewhere
(``study.bench``, ``study.stats``, ``paper``); ``study.compare`` strings the stages together.

Each ONNX file is written under a deterministic name, and a model whose records are already in the
manifest (with their files present) is skipped, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Subset

from study.config import StudyConfig
from study.hardware import physical_cores
from study.jsonl import append_jsonl
from study.manifest import MANIFEST, Failure, onnx_name, read_manifest, sha256_file
from study.models import MODELS, build_model
from study.schema import LayerZeros, ModelRecord

__all__ = ["prepare_model", "oneshot_prune"]

log = logging.getLogger(__name__)


def oneshot_prune(model: nn.Module, sparsity: float, params: str = "__ALL_PRUNABLE__") -> nn.Module:
    """Zero the ``round(sparsity * numel)`` smallest-magnitude weights of every selected layer, in place.

    Uses gmp's mask functions (SparseML's counting and tie rules) and leaves plain tensors (no hooks).

    Args:
        model: the model to prune (modified in place and returned).
        sparsity: fraction of each layer to zero, in [0, 1).
        params: gmp parameter selection (exact names, ``re:`` patterns, ``__ALL_PRUNABLE__``).

    Returns:
        The same model.
    """
    from gmp.masks import magnitude_mask, n_zeros_for
    from gmp.params import select_params

    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"`sparsity` must be in [0, 1); got {sparsity!r}")
    with torch.no_grad():
        for _name, module, attr in select_params(model, params):
            weight = getattr(module, attr)
            keep = magnitude_mask(weight.abs(), n_zeros_for(sparsity, weight.numel()))
            weight.mul_(keep.to(weight.dtype))
    return model


# ----------------------------------------------------------------------------------------------
# One architecture
# ----------------------------------------------------------------------------------------------


def _datasets(cfg: StudyConfig, image_size: int):
    from study.data import digits, image_folder

    if cfg.data == "digits":
        train, val = digits(image_size=image_size, channels=3, seed=cfg.seed)
        num_classes, dataset = 10, "sklearn-digits"
    else:
        train = image_folder(Path(cfg.data), image_size=image_size)
        val, dataset = train, cfg.data
        num_classes = len(train.classes)
    n = cfg.train.train_samples
    if n is not None and n < len(train):
        generator = torch.Generator().manual_seed(cfg.seed)
        train = Subset(train, torch.randperm(len(train), generator=generator)[:n].tolist())
    return train, val, num_classes, dataset


def _train_config(cfg: StudyConfig):
    from study.train import TrainConfig

    t = cfg.train
    return TrainConfig(
        batch_size=t.batch_size,
        lr=t.lr,
        momentum=t.momentum,
        weight_decay=t.weight_decay,
        optimizer=t.optimizer,
        seed=cfg.seed,
    )


def _write_training_log(
    out: Path, model: str, pruner: str, seed: int, steps: Iterable, numel: int
) -> None:
    """Append per-step totals (loss, lr, zeros, sparsity over all prunable weights) to training.csv."""
    path = out / "training.csv"
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(
                ["model", "pruner", "seed", "step", "epoch", "loss", "lr", "zeros", "sparsity"]
            )
        for s in steps:
            zeros = sum(s.zeros.values()) if s.zeros else 0
            writer.writerow(
                [
                    model,
                    pruner,
                    seed,
                    s.step,
                    f"{s.epoch:.6g}",
                    f"{s.loss:.6g}",
                    f"{s.lr:.6g}",
                    zeros,
                    f"{zeros / max(numel, 1):.6g}",
                ]
            )


def _export_record(
    out: Path,
    model: nn.Module,
    name: str,
    pruner: str,
    exporter: str,
    sparsity: float,
    accuracy: float | None,
    dataset: str,
    save_module: bool,
    extra: dict,
) -> ModelRecord:
    """Export one variant, check its zeros survived, and describe it (gzip size still -1)."""
    import gmp
    from study.export import check_zeros, export_torch

    entry = MODELS[name]
    rel = Path("models") / onnx_name(name, pruner, exporter, sparsity)
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (1, 3, entry.input_size, entry.input_size)
    model = model.eval()
    if exporter == "torch":
        opset = entry.opset
        export_torch(model, path, shape, opset=opset)
    else:
        from baselines.export import export_sparseml

        opset = max(14, entry.opset)
        export_sparseml(model, path, shape, opset=opset)
    check = check_zeros(model, path)
    report = gmp.sparsity_report(model)
    if save_module:  # for the torch-eager engine: a whole module beside the ONNX file
        torch.save(model, path.with_suffix(".pt"))
    onnx_zeros = sum(check.onnx_zeros.values())  # per matched torch weight

    return ModelRecord(
        model=name,
        pruner=pruner,
        exporter=exporter,
        sparsity=float(sparsity),
        onnx_path=str(rel),
        onnx_sha256=sha256_file(path),
        input_shape=shape,
        opset=opset,
        raw_bytes=path.stat().st_size,
        gzip_bytes=-1,  # filled by _with_gzip_sizes, several files at once
        prunable_params=int(report.total_numel),
        zeros=onnx_zeros,
        measured_sparsity=onnx_zeros / max(int(report.total_numel), 1),
        accuracy=accuracy,
        accuracy_dataset=dataset,
        zero_check_ok=bool(check.ok),
        zero_check_detail="; ".join(map(str, check.mismatches))[:2000],
        layers=tuple(
            LayerZeros(lz.name, tuple(lz.shape), int(lz.numel), int(lz.zeros))
            for lz in report.layers
        ),
        extra=extra,
    )


def _with_gzip_sizes(out: Path, records: list[ModelRecord]) -> list[ModelRecord]:
    """Fill ``gzip_bytes`` of several records at once: ``gzip -9`` is single-threaded and zlib
    releases the GIL, so the files compress in parallel on the physical cores."""
    from study.export import gzip_size

    workers = min(len(records), physical_cores())
    with ThreadPoolExecutor(max_workers=workers) as pool:
        sizes = list(pool.map(lambda r: gzip_size(out / r.onnx_path), records))
    return [dataclasses.replace(r, gzip_bytes=n) for r, n in zip(records, sizes)]


def prepare_model(
    cfg: StudyConfig, name: str, out: Path, *, progress: bool = True
) -> list[Failure]:
    """Train, prune, export and record every variant of one architecture; skip what is done.

    Variants: dense; each pruner of ``cfg.pruners`` trained with ``cfg.recipe`` on the shared loop
    from the same initial weights; one-shot magnitude pruning of the trained dense model at each
    sparsity of ``cfg.sweep``. Dense and trained-pruned variants are exported with every exporter
    of ``cfg.exporters`` (the pruner x exporter factorial); sweep variants with the torch exporter.

    Returns:
        The failures (recorded and skipped); the manifest gets one ModelRecord per ONNX file.
    """
    from gmp.recipe import load_recipe
    from study.data import loaders
    from study.train import evaluate, train

    done = {
        (r.pruner, r.exporter, round(r.sparsity, 4)) for r in read_manifest(out) if r.model == name
    }
    target = _target_sparsity(cfg.recipe, load_recipe)
    wanted = {("none", e, 0.0) for e in cfg.exporters}
    wanted |= {(p, e, round(target, 4)) for p in cfg.pruners for e in cfg.exporters}
    wanted |= {("oneshot", "torch", round(s, 4)) for s in cfg.sweep if s > 0}
    sens_path = out / "sensitivity.csv"
    want_sens = name in cfg.sensitivity.models and not _has_sensitivity(sens_path, name)
    if wanted <= done and not want_sens:
        log.info("%s: all %d variants already exported; skipping", name, len(wanted))
        return []

    entry = MODELS[name]
    image_size = max(cfg.train.image_size, entry.min_train_size)
    train_ds, val_ds, num_classes, dataset = _datasets(cfg, image_size)
    init = build_model(name, num_classes=num_classes, weights=cfg.weights, seed=cfg.seed)
    tcfg = _train_config(cfg)
    train_loader, val_loader = loaders(
        train_ds, val_ds, batch_size=cfg.train.batch_size, seed=cfg.seed
    )
    save_module = "torch" in cfg.engines
    failures: list[Failure] = []

    pending: list[ModelRecord] = []  # exported, gzip size not measured yet

    def record(model, pruner, exporter, sparsity, accuracy, extra):
        if (pruner, exporter, round(sparsity, 4)) in done:
            return
        try:
            pending.append(
                _export_record(
                    out,
                    model,
                    name,
                    pruner,
                    exporter,
                    sparsity,
                    accuracy,
                    dataset,
                    save_module,
                    extra,
                )
            )
        except Exception as err:  # recorded, and the rest of the study goes on
            log.exception("%s: export (%s, %s) failed", name, pruner, exporter)
            failures.append(
                Failure("export", name, f"{type(err).__name__}: {err}", pruner, exporter)
            )

    def flush() -> None:
        """gzip the pending files in parallel, then write their records to the manifest."""
        if not pending:
            return
        records = _with_gzip_sizes(out, pending)
        pending.clear()
        append_jsonl(out / MANIFEST, [r.to_dict() for r in records])
        for rec in records:
            if not rec.zero_check_ok:
                failures.append(
                    Failure(
                        "zero-check",
                        name,
                        f"ONNX lost zeros: {rec.zero_check_detail}",
                        rec.pruner,
                        rec.exporter,
                    )
                )

    trained: dict[str, nn.Module] = {}
    for toolchain in ("dense", *cfg.pruners):
        pruner = "none" if toolchain == "dense" else toolchain
        need = {k for k in wanted if k[0] == pruner} - done
        if toolchain == "dense":
            need |= {k for k in wanted if k[0] == "oneshot"} - done
            need |= {"sensitivity"} if want_sens else set()
        if not need:
            continue
        started = time.perf_counter()
        try:
            model = copy.deepcopy(init)
            result = train(
                model, cfg.recipe, train_loader, val_loader, toolchain, tcfg, progress=progress
            )
        except Exception as err:  # recorded, and the rest of the study goes on
            log.exception("%s: training with %s failed", name, toolchain)
            failures.append(Failure("train", name, f"{type(err).__name__}: {err}", pruner))
            continue
        seconds = time.perf_counter() - started
        _write_training_log(out, name, pruner, cfg.seed, result.steps, result.report.total_numel)
        trained[pruner] = result.model
        accuracy = result.epochs[-1].val_accuracy if result.epochs else None
        extra = {
            "train_seconds": round(seconds, 2),
            "train_image_size": image_size,
            "recipe": cfg.name,
        }
        sparsity = 0.0 if pruner == "none" else target
        for exporter in cfg.exporters:
            record(result.model, pruner, exporter, sparsity, accuracy, extra)
        flush()

    dense = trained.get("none")
    if dense is not None:
        for s in cfg.sweep:
            if s <= 0 or ("oneshot", "torch", round(s, 4)) in done:
                continue
            pruned = oneshot_prune(copy.deepcopy(dense), s)
            acc = evaluate(pruned, val_loader)
            record(pruned, "oneshot", "torch", s, acc, {"train_image_size": image_size})
        flush()
        if want_sens:
            failures += _sensitivity(cfg, name, dense, val_loader, sens_path, progress)
    return failures


def _target_sparsity(recipe: str, load_recipe) -> float:
    """The highest final sparsity of the recipe's pruning modifiers (the 'pruned' variant's label)."""
    spec = load_recipe(recipe)
    targets = [p.final_sparsity for p in spec.pruning if p.kind == "gmp"]
    if not targets:
        raise ValueError(
            "`recipe` has no pruning modifier; the study needs one (e.g. !GMPruningModifier)"
        )
    return float(max(targets))


def _has_sensitivity(path: Path, name: str) -> bool:
    if not path.exists():
        return False
    with path.open() as fh:
        return any(row.get("model") == name for row in csv.DictReader(fh))


def _sensitivity(
    cfg: StudyConfig, name: str, dense: nn.Module, val_loader, path: Path, progress: bool
):
    from gmp.sensitivity import sensitivity
    from study.train import evaluate

    s = cfg.sensitivity
    try:
        table = sensitivity(
            dense,
            lambda m: evaluate(m, val_loader),
            levels=s.levels,
            method=s.method,
            top_n=s.top_n,
            seed=cfg.seed,
            progress=progress,
        )
    except Exception as err:  # recorded, and the rest of the study goes on
        log.exception("%s: sensitivity analysis failed", name)
        return [Failure("sensitivity", name, f"{type(err).__name__}: {err}")]
    table.insert(0, "model", name)
    table.to_csv(path, mode="a", header=not path.exists(), index=False)
    return []
