"""Per-architecture stages of the study: train once, prune and quantize from it, export, record.

For one architecture of a :class:`~study.config.StudyConfig`, :func:`prepare_model` makes every
variant of :func:`study.design.variants` into an ONNX file and a
:class:`~study.records.schema.ModelRecord`:

1. the dense model is trained once (``cfg.train``: schedule, epochs, augmentation) and saved as
   ``models/checkpoints/<model>-dense.pt``; every other variant starts from it;
2. each pruned variant fine-tunes that checkpoint with the preset's recipe, rewritten for its
   sparsity profile and mask type (:func:`study.make.profiles.profile_recipe`; the text is written to
   ``recipes/``) on the shared loop, by gmp or by SparseML;
3. the int8 variants start from the pruned reference and get quantization-aware fine-tuning by
   torch.ao (:mod:`study.make.quantize`) or by SparseML (:mod:`baselines.quantize`);
4. the one-shot sweep prunes the dense checkpoint by magnitude;
5. each file is exported, its zeros checked, its graph hashed (order-free,
   :func:`study.onnx.content_hash.content_sha256`), its mask structure described
   (:func:`study.make.diagnostics.mask_diagnostics`) and its accuracy held against the declared gate;
   its gzip size (``gzip_level``) is measured in a thread while the next variants are made.

When the SparseML-pruned reference is the same file as gmp's (content-identical and every zero of
the same sign), no second file is written: its record points at the gmp file
(``extra["identical_to"]``) and the harness measures that one file in two cells, the study's A/A
control. When the two hold the same numbers but some zeros differ in sign bit, both files are
measured (``extra["numerically_identical_to"]``, ``extra["signed_zero_differences"]``). Finished variants (manifest records whose files exist) and saved checkpoints
are reused, so an interrupted study resumes where it stopped. Stage times go to ``timings.csv``.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Subset, random_split

import baselines  # noqa: F401  (registers SparseML's and NNCF's toolchains with the training loop)
from study.config import StudyConfig
from study.design import Variant, variant_key, variants
from study.make.models import MODELS, build_model
from study.records.jsonl import append_jsonl
from study.records.manifest import MANIFEST, Failure, read_manifest, sha256_file
from study.records.schema import LayerZeros, ModelRecord

__all__ = ["SizeRecorder", "log_timing", "oneshot_prune", "prepare_model"]

log = logging.getLogger(__name__)

CHECKPOINTS = Path("models") / "checkpoints"
TIMINGS = "timings.csv"


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
# Data and settings
# ----------------------------------------------------------------------------------------------


def _datasets(cfg: StudyConfig, image_size: int):
    """(train, held-out, number of classes, dataset name); an ImageFolder is split 80/20, seeded."""
    from study.make.data import digits, image_folder

    if cfg.data == "digits":
        train, val = digits(image_size=image_size, channels=3, seed=cfg.seed)
        num_classes, dataset = 10, "sklearn-digits (held-out 20%)"
    else:
        folder = image_folder(Path(cfg.data), image_size=image_size)
        n_val = max(1, len(folder) // 5)
        generator = torch.Generator().manual_seed(cfg.seed)
        train, val = random_split(folder, [len(folder) - n_val, n_val], generator=generator)
        num_classes, dataset = len(folder.classes), f"{cfg.data} (held-out 20%)"
    train = _subsample(train, cfg.train.train_samples, cfg.seed)
    n_val = len(val)
    val = _subsample(val, cfg.train.val_samples, cfg.seed)
    if len(val) < n_val:
        dataset = f"{dataset[:-1]}, {len(val)} of its {n_val} images)"
    return train, val, num_classes, dataset


def _subsample(data, n: int | None, seed: int):
    """A seeded random subset of ``n`` items of ``data`` (all of it when ``n`` is None or larger)."""
    if n is None or n >= len(data):
        return data
    generator = torch.Generator().manual_seed(seed)
    return Subset(data, torch.randperm(len(data), generator=generator)[:n].tolist())


def _train_config(cfg: StudyConfig, *, dense: bool):
    """The loop's settings: the dense schedule for dense training, the recipe's LR otherwise."""
    from study.make.train import TrainConfig

    t = cfg.train
    return TrainConfig(
        epochs=t.epochs if dense else None,
        batch_size=t.batch_size,
        lr=t.lr if dense else _recipe_initial_lr(cfg, t.lr),
        momentum=t.momentum,
        weight_decay=t.weight_decay,
        nesterov=t.optimizer == "sgd" and t.momentum > 0,
        optimizer=t.optimizer,
        seed=cfg.seed,
        schedule=t.schedule if dense else "constant",
        augment_shift=t.augment_shift,
    )


def _recipe_initial_lr(cfg: StudyConfig, default: float) -> float:
    """The pruning runs' starting LR: the recipe's first LR modifier's, else the dense peak."""
    from gmp.recipe import load_recipe

    for spec in load_recipe(cfg.recipe).lr:
        for value in (spec.init_lr, spec.learning_rate):
            if value is not None:
                return float(value)
    return default


# ----------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------


def log_timing(out: Path, model: str, stage: str, seconds: float, reused: bool = False) -> None:
    path = out / TIMINGS
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["model", "stage", "seconds", "reused"])
        writer.writerow([model, stage, f"{seconds:.2f}", int(reused)])


def _write_training_log(
    out: Path, model: str, run: str, seed: int, steps: Iterable, numel: int
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
                [model, run, seed, s.step, f"{s.epoch:.6g}", f"{s.loss:.6g}", f"{s.lr:.6g}"]
                + [zeros, f"{zeros / max(numel, 1):.6g}"]
            )


def _zeros_fp32(model: nn.Module, path: Path) -> tuple[bool, str, int]:
    from study.make.export import check_zeros

    check = check_zeros(model, path)
    return bool(check.ok), "; ".join(map(str, check.mismatches)), sum(check.onnx_zeros.values())


def _zeros_int8(model: nn.Module, path: Path) -> tuple[bool, str, int]:
    """Every zero of the pruned fp32 weights must be a zero (value == zero point) in the int8 file."""
    from study.make.quantize import check_int8_zeros

    check = check_int8_zeros(model, path)
    lines = list(check.mismatches)
    if check.fp32:  # e.g. MobileViT's blocks under torch.ao: fp32 in the int8 file, zeros kept
        lines.append(f"{len(check.fp32)} weight(s) left fp32, zeros kept: {', '.join(check.fp32)}")
    return bool(check.ok), "; ".join(lines), sum(check.onnx_zeros.values())


def _with_gzip_size(out: Path, rec: ModelRecord, level: int) -> tuple[ModelRecord, float]:
    """``rec`` with ``gzip_bytes`` measured (``gzip -<level>``) and the level in ``extra``, and
    the seconds it took. Runs in a thread of :class:`SizeRecorder` (zlib releases the GIL)."""
    from study.make.export import gzip_size

    start = time.perf_counter()
    size = gzip_size(out / rec.onnx_path, level)
    rec = dataclasses.replace(rec, gzip_bytes=size, extra={**rec.extra, "gzip_level": level})
    return rec, time.perf_counter() - start


class SizeRecorder:
    """Writes finished variants' records to the manifest once their gzip size is measured.

    ``gzip -9`` of a pruned file runs at ~2 MB/s (zlib's match search on runs of zeros: minutes
    for one of VGG19's 550 MB files) on one core, so the sizes are measured in threads (one per
    CPU the process may use) while the next variants train, the next architectures' too when
    one recorder serves the whole making (:mod:`study.compare`); records are written in the
    order the variants were made, each when its size is known, and all of them by
    :meth:`close`. A run stopped before that loses only records not yet written: their variants
    are made again on resume. A written record whose zero check failed becomes a
    :class:`~study.records.manifest.Failure`, handed out by :meth:`drain` and :meth:`close`.
    """

    def __init__(self, out: Path, level: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.out, self.level = out, level
        self.pool = ThreadPoolExecutor(max_workers=_cpus(), thread_name_prefix="gzip")
        self.pending: list = []  # futures, in the order the variants were made
        self.failures: list[Failure] = []  # zero-check failures of written records, not drained
        self.added = 0  # records handed in

    def add(self, rec: ModelRecord) -> None:
        self.added += 1
        self.pending.append(self.pool.submit(_with_gzip_size, self.out, rec, self.level))
        self._write(wait=False)

    def drain(self) -> list[Failure]:
        """The zero-check failures of the records written since the last call."""
        self._write(wait=False)
        new, self.failures = self.failures, []
        return new

    def close(self) -> list[Failure]:
        """Wait for every size, write the remaining records (also when the caller failed) and
        return the failures not yet drained."""
        try:
            self._write(wait=True)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        return self.drain()

    def _write(self, wait: bool) -> None:
        while self.pending and (wait or self.pending[0].done()):
            rec, seconds = self.pending.pop(0).result()
            append_jsonl(self.out / MANIFEST, [rec.to_dict()])
            log_timing(
                self.out, rec.model, f"gzip -{self.level} {Path(rec.onnx_path).name}", seconds
            )
            if not rec.zero_check_ok:
                self.failures.append(
                    Failure(
                        "zero-check",
                        rec.model,
                        f"ONNX lost zeros: {rec.zero_check_detail}",
                        rec.pruner,
                    )
                )


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ----------------------------------------------------------------------------------------------
# One architecture
# ----------------------------------------------------------------------------------------------


class _Architecture:
    """The trained models of one architecture, made on demand and cached (the state of a run)."""

    def __init__(self, cfg: StudyConfig, name: str, out: Path, progress: bool) -> None:
        from study.make.data import loaders

        self.cfg, self.name, self.out, self.progress = cfg, name, out, progress
        entry = MODELS[name]
        self.image_size = max(cfg.train.image_size, entry.min_train_size)
        train_ds, val_ds, self.num_classes, self.dataset = _datasets(cfg, self.image_size)
        self.train_loader, self.val_loader = loaders(
            train_ds, val_ds, batch_size=cfg.train.batch_size, seed=cfg.seed
        )
        side = entry.input_size
        if cfg.input_size is not None:  # a small size for a CI preset, raised to what runs/exports
            side = max(cfg.input_size, entry.min_train_size, entry.min_export_size)
        self.shape = (1, 3, side, side)
        self.opset = max(14, entry.opset)  # both exporters at the same opset (SparseML's default)
        self.trained: dict[tuple[str, str, str], tuple[nn.Module, float | None]] = {}
        # (quant, fp32 training key) -> (int8 model, accuracy)
        self.int8: dict[tuple, tuple[nn.Module, float]] = {}
        # training key -> the toolchain's own settings (NNCF's; empty for the others)
        self.settings: dict[tuple[str, str, str], dict] = {}
        self.int8_settings: dict[tuple, dict] = {}
        self.failed: dict[tuple[str, str, str], Exception] = {}

    # -- checkpoints --------------------------------------------------------------------------

    def _checkpoint(self, key: tuple[str, str, str]) -> Path:
        pruner, profile, mask = key
        stem = (
            f"{self.name}-dense" if pruner == "none" else f"{self.name}-{pruner}-{profile}-{mask}"
        )
        return self.out / CHECKPOINTS / f"{stem}.pt"

    def _fresh(self) -> nn.Module:
        return build_model(self.name, num_classes=self.num_classes, weights="random", seed=0)

    def _load(self, key: tuple[str, str, str]) -> tuple[nn.Module, float | None] | None:
        path = self._checkpoint(key)
        if not path.is_file():
            return None
        saved = torch.load(path, map_location="cpu", weights_only=False)
        model = self._fresh()
        model.load_state_dict(saved["state_dict"])
        self.settings[key] = saved.get("toolchain_settings") or {}
        log_timing(self.out, self.name, _stage(key), 0.0, reused=True)
        return model, saved.get("accuracy")

    def _save(self, key, model: nn.Module, accuracy: float | None, seconds: float) -> None:
        path = self._checkpoint(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"state_dict": model.state_dict(), "accuracy": accuracy, "seconds": seconds}
        payload["toolchain_settings"] = self.settings.get(key, {})
        torch.save(payload, path)

    # -- training -----------------------------------------------------------------------------

    def fp32(self, key: tuple[str, str, str]) -> tuple[nn.Module, float | None]:
        """The trained fp32 model of ``key`` = (pruner, profile, mask): dense, pruned or one-shot."""
        if key in self.failed:  # one failed training is not retried by every variant needing it
            raise self.failed[key]
        if key not in self.trained:
            try:
                self.trained[key] = self._load(key) or self._make(key)
            except Exception as err:
                self.failed[key] = err
                raise
        return self.trained[key]

    def _make(self, key: tuple[str, str, str]) -> tuple[nn.Module, float | None]:
        from study.make.train import train

        pruner, profile, mask = key
        started = time.perf_counter()
        if pruner == "none":
            model = build_model(
                self.name,
                num_classes=self.num_classes,
                weights=self.cfg.weights,
                seed=self.cfg.seed,
            )
            recipe, toolchain, dense = None, "dense", True
        else:
            from study.make.profiles import profile_recipe

            model = copy.deepcopy(self.fp32(("none", "dense", "none"))[0])
            if pruner == "nncf":  # NNCF reads the recipe's target, window and LR as written
                from baselines.nncf_arm import nncf_ready

                model, recipe = nncf_ready(model), self.cfg.recipe_for(self.name)
            else:
                recipe = profile_recipe(self.cfg.recipe_for(self.name), model, profile, mask)
            rdir = self.out / "recipes"
            rdir.mkdir(parents=True, exist_ok=True)
            (rdir / f"{self.name}-{profile}-{mask}.yaml").write_text(recipe)
            toolchain, dense = pruner, False
        result = train(
            model,
            recipe,
            self.train_loader,
            self.val_loader,
            toolchain,
            _train_config(self.cfg, dense=dense),
            progress=self.progress,
        )
        seconds = time.perf_counter() - started
        if pruner == "nncf":
            from baselines.nncf_arm import restore

            restore(result.model)
        self.settings[key] = dict(result.toolchain_settings)
        run = "none" if dense else f"{pruner}-{profile}-{mask}"
        _write_training_log(
            self.out, self.name, run, self.cfg.seed, result.steps, result.report.total_numel
        )
        accuracy = result.epochs[-1].val_accuracy if result.epochs else None
        self._save(key, result.model, accuracy, seconds)
        log_timing(self.out, self.name, _stage(key), seconds)
        return result.model, accuracy

    def oneshot(self, sparsity: float) -> tuple[nn.Module, float]:
        from study.make.train import evaluate

        started = time.perf_counter()
        pruned = oneshot_prune(copy.deepcopy(self.fp32(("none", "dense", "none"))[0]), sparsity)
        accuracy = evaluate(pruned, self.val_loader)
        log_timing(self.out, self.name, f"oneshot {sparsity:.2f}", time.perf_counter() - started)
        return pruned, accuracy

    def quantized(self, quant: str, start: Variant) -> tuple[nn.Module, float]:
        """The int8 model by ``quant`` (a :data:`QUANTS` level) from the pruned ``start``."""
        key = (quant, start.training)
        if key in self.int8:
            return self.int8[key]
        fp32, _ = self.fp32(start.training)
        qat = _qat_config(self.cfg)
        started = time.perf_counter()
        if quant == "torch":
            from study.make.quantize import qat_torch

            example = torch.zeros(1, 3, self.image_size, self.image_size)
            result = qat_torch(
                copy.deepcopy(fp32),
                self.train_loader,
                self.val_loader,
                qat,
                example_input=example,
                progress=self.progress,
            )
        elif quant in ("nncf", "nncf_ptq"):
            from baselines.nncf_arm import quantize

            method = "ptq" if quant == "nncf_ptq" else "qat"
            model, accuracy, self.int8_settings[key] = quantize(
                fp32, self.train_loader, self.val_loader, qat, method=method,
                progress=self.progress,
            )  # fmt: skip
            stage = "ptq nncf" if method == "ptq" else f"qat {quant}"
            log_timing(self.out, self.name, stage, time.perf_counter() - started)
            self.int8[key] = (model, accuracy)
            return self.int8[key]
        else:
            from baselines.quantize import qat_sparseml

            result = qat_sparseml(
                copy.deepcopy(fp32), self.train_loader, self.val_loader, qat, progress=self.progress
            )
        log_timing(self.out, self.name, f"qat {quant}", time.perf_counter() - started)
        self.int8[key] = (result.model, result.val_accuracy)
        return self.int8[key]

    # -- one variant --------------------------------------------------------------------------

    def export(self, v: Variant) -> ModelRecord:
        """Make, export and describe one variant (gzip size still -1)."""
        import gmp
        from study.make.diagnostics import mask_diagnostics
        from study.onnx.content_hash import content_sha256

        if v.pruner == "oneshot":
            fp32, accuracy = self.oneshot(v.sparsity)
        else:
            fp32, accuracy = self.fp32(v.training)
        rel = Path("models") / f"{v.name}.onnx"
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if v.quant != "none":  # quantization-aware fine-tuning first (timed as its own stage)
            qmodel, accuracy = self.quantized(v.quant, dataclasses.replace(v, quant="none"))
        started = time.perf_counter()
        extra: dict = {"train_image_size": self.image_size, "recipe": self.cfg.name}
        if self.settings.get(v.training):
            extra["toolchain_settings"] = self.settings[v.training]
        if v.quant == "none":
            opset = self.opset
            _export_fp32(fp32.eval(), path, self.shape, opset, v.exporter)
            zero_ok, detail, zeros = _zeros_fp32(fp32, path)
            if "torch" in self.cfg.engines:  # the torch-eager engine needs the whole module
                torch.save(fp32, path.with_suffix(".pt"))
        else:
            opset = max(13, MODELS[v.model].opset)  # attention (MobileViT) needs 14
            if v.exporter == "nncf":  # NNCF's FakeQuantize ONNX, and its QDQ file for other engines
                extra.update(_export_nncf_int8(qmodel, path, self.shape, opset, self.out))
                extra["nncf_quantize"] = self.int8_settings.get((v.quant, v.training), {})
                zero_ok, detail, zeros = _zeros_int8(fp32, self.out / extra["qdq_path"])
                extra["zero_check_file"] = extra["qdq_path"]  # int8 initializers live there
            else:
                _export_int8(qmodel, path, self.shape, opset, v.quant)
                zero_ok, detail, zeros = _zeros_int8(fp32, path)
        log_timing(self.out, self.name, f"export {v.exporter}", time.perf_counter() - started)
        report = gmp.sparsity_report(fp32)
        gate = self.cfg.train.accuracy_gate
        return ModelRecord(
            model=v.model,
            pruner=v.pruner,
            exporter=v.exporter,
            sparsity=float(v.sparsity),
            onnx_path=str(rel),
            onnx_sha256=sha256_file(path),
            input_shape=self.shape,
            opset=opset,
            raw_bytes=path.stat().st_size,
            gzip_bytes=-1,  # filled by _with_gzip_size
            prunable_params=int(report.total_numel),
            zeros=zeros,
            measured_sparsity=zeros / max(int(report.total_numel), 1),
            accuracy=accuracy,
            accuracy_dataset=self.dataset,
            zero_check_ok=zero_ok,
            zero_check_detail=detail[:2000],
            layers=tuple(
                LayerZeros(lz.name, tuple(lz.shape), int(lz.numel), int(lz.zeros))
                for lz in report.layers
            ),
            extra=extra,
            profile=v.profile,
            mask=v.mask,
            quant=v.quant,
            content_sha256=content_sha256(path),
            diagnostics=mask_diagnostics(fp32) if v.pruner != "none" else {},
            trained=None if gate is None or accuracy is None else bool(accuracy >= gate),
        )


def _stage(key: tuple[str, str, str]) -> str:
    pruner, profile, mask = key
    return "train dense" if pruner == "none" else f"prune {pruner} {profile} {mask}"


def _qat_config(cfg: StudyConfig):
    from study.make.quantize import QatConfig

    q = cfg.qat
    return QatConfig(
        epochs=q.epochs,
        lr=q.lr,
        momentum=q.momentum,
        weight_decay=q.weight_decay,
        seed=cfg.seed,
        batch_size=cfg.train.batch_size,
        augment_shift=cfg.train.augment_shift,
    )


def _export_fp32(model: nn.Module, path: Path, shape, opset: int, exporter: str) -> None:
    if exporter == "torch":
        from study.make.export import export_torch

        export_torch(model, path, shape, opset=opset, dynamic_batch=True)
    else:
        from baselines.export import export_sparseml

        export_sparseml(model, path, shape, opset=opset)


def _export_int8(model: nn.Module, path: Path, shape, opset: int, quant: str) -> None:
    if quant == "torch":
        from study.make.quantize import export_int8_torch

        export_int8_torch(model, path, shape, opset=opset, dynamic_batch=True)
    else:
        from baselines.quantize import export_int8_sparseml

        export_int8_sparseml(model, path, shape, opset=opset)


def _export_nncf_int8(qmodel: nn.Module, path: Path, shape, opset: int, out: Path) -> dict:
    """NNCF's int8 files; the manifest's ``extra``: QDQ path and ``engine_files`` (relative)."""
    from baselines.nncf_arm import export_int8

    written = export_int8(qmodel, path, shape, opset)
    qdq = str(written["qdq_path"].relative_to(out))
    files = {e: qdq for e, form in written["forms"].items() if form == "qdq"}
    return {
        "qdq_path": qdq,
        "engine_files": files,  # engine -> the file it measures instead of onnx_path
        "engine_file_forms": written["forms"],  # "fq": NNCF's FakeQuantize ONNX; "qdq": standard
        "qdq_sha256": sha256_file(written["qdq_path"]),
    }


def _same_file(rec: ModelRecord, twin: ModelRecord | None, out: Path) -> ModelRecord:
    """Point ``rec`` at ``twin``'s file when the two files are the same (the A/A control).

    Same = content-identical (:func:`study.onnx.content_hash.content_sha256`) with every zero of the same
    sign. Files that hold the same numbers but whose zeros differ in sign bit (SparseML's zeros
    keep the sign of the pruned weight's last value, gmp's that of its ``weight_orig``) are both
    kept and measured: ``extra["numerically_identical_to"]`` and the count of such zeros say so.
    """
    from study.onnx.content_hash import signed_zero_differences

    if twin is None or not rec.content_sha256 or rec.content_sha256 != twin.content_sha256:
        return rec
    signs = signed_zero_differences(out / twin.onnx_path, out / rec.onnx_path)
    if signs:  # equal numbers, opposite sign bits (-0.0 vs 0.0): both files are measured
        extra = {**rec.extra, "numerically_identical_to": twin.onnx_path}
        return dataclasses.replace(rec, extra={**extra, "signed_zero_differences": signs})
    (out / rec.onnx_path).unlink()
    extra = {**rec.extra, "identical_to": twin.onnx_path, "own_file_sha256": rec.onnx_sha256}
    extra["signed_zero_differences"] = 0
    return dataclasses.replace(
        rec, onnx_path=twin.onnx_path, onnx_sha256=twin.onnx_sha256, extra=extra
    )


def prepare_model(
    cfg: StudyConfig,
    name: str,
    out: Path,
    *,
    progress: bool = True,
    recorder: SizeRecorder | None = None,
) -> list[Failure]:
    """Make, export and record every variant of one architecture; skip what is done.

    Args:
        cfg: the study configuration.
        name: the architecture.
        out: the results folder.
        progress: show progress bars.
        recorder: measures the gzip sizes and writes the records; with None, one of this
            architecture's own, closed before returning. A recorder passed in is left open (its
            sizes may still be measuring) and hands out its zero-check failures itself.

    Returns:
        The failures (recorded and skipped); the manifest gets one ModelRecord per variant.
    """
    out.mkdir(parents=True, exist_ok=True)
    manifest = [r for r in read_manifest(out) if r.model == name]
    done = {variant_key(r): r for r in manifest}
    plan = variants(cfg, name)
    failures: list[Failure] = []
    todo = [v for v in plan if variant_key(v) not in done]
    sens_path = out / "sensitivity.csv"
    want_sens = name in cfg.sensitivity.models and not _has_sensitivity(sens_path, name)
    if not todo and not want_sens:
        log.info("%s: all %d variants already exported; skipping", name, len(plan))
        return failures
    arch = _Architecture(cfg, name, out, progress)
    dense_failed = False
    own = recorder is None
    if recorder is None:
        recorder = SizeRecorder(out, cfg.gzip_level)
    try:
        for v in todo:
            try:
                rec = arch.export(v)
            except Exception as err:  # recorded, and the rest of the study goes on
                log.exception("%s: variant %s failed", name, v.name)
                stage = (
                    "quantize"
                    if v.quant != "none"
                    else ("train" if v.pruner != "none" else "dense")
                )
                failures.append(
                    Failure(stage, name, f"{type(err).__name__}: {err}", v.pruner, v.exporter)
                )
                if v.pruner == "none":  # nothing else can start without the dense model
                    dense_failed = True
                    break
                continue
            if v.pruner == "sparseml" and v.quant == "none":
                gmp = done.get(variant_key(dataclasses.replace(v, pruner="gmp")))
                rec = _same_file(rec, gmp, out)
            done[variant_key(rec)] = rec  # its twins' lookups need no gzip size
            recorder.add(rec)
    finally:
        if own:
            failures += recorder.close()
    if want_sens and not dense_failed:
        dense_model = arch.fp32(("none", "dense", "none"))[0]
        failures += _sensitivity(cfg, name, dense_model, arch.val_loader, sens_path, progress)
    return failures


def _has_sensitivity(path: Path, name: str) -> bool:
    if not path.exists():
        return False
    with path.open() as fh:
        return any(row.get("model") == name for row in csv.DictReader(fh))


def _sensitivity(
    cfg: StudyConfig, name: str, dense: nn.Module, val_loader, path: Path, progress: bool
) -> list[Failure]:
    from gmp.sensitivity import sensitivity
    from study.make.train import evaluate

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
