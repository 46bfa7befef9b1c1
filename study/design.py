"""The study's design: which model variants a configuration makes, and which contrasts it measures.

A *variant* is one model file, described by the columns of :mod:`study.records.schema` (pruner, profile,
mask, quant, exporter, sparsity). The design is one factor at a time around a *reference*: the
gmp-pruned model under one global magnitude threshold, unstructured, fp32, exported by
``torch.onnx`` (:data:`REFERENCE`). Each other level
of each factor of :data:`study.config.FACTORS` gives one variant that differs from the reference in
that factor alone, and one *channel*: the contrast of that variant with the reference, measured as
B on every pair of engines (:func:`study.stats.channel_bias`). Two variants sit outside the factors:
the dense model (the speed-ups' denominator) and the one-shot sweep.

Example:
    >>> from study.config import load_config
    >>> cfg = load_config("smoke")
    >>> [c.name for c in channels(cfg, "small_cnn")]  # doctest: +NORMALIZE_WHITESPACE
    ['pruner', 'exporter', 'profile:uniform', 'profile:vendor', 'mask:block4', 'precision',
     'quantizer', 'quantizer:nncf', 'toolchain:neuralmagic', 'toolchain:neuralmagic:int8', 'toolchain:intel',
     'toolchain:intel:int8']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from study.config import StudyConfig
from study.stats import Channel
from study.stats.toolchain import WholeToolchain
from study.toolchains import CHOICES, SINGLE_FACTORS, VENDOR

__all__ = [
    "CHANNEL_TEXT",
    "REFERENCE",
    "Variant",
    "is_anchor",
    "is_reference",
    "pairs_with",
    "channels",
    "dense",
    "reference",
    "target_sparsity",
    "toolchain_of",
    "toolchain_variants",
    "variant_key",
    "variants",
    "whole_toolchains",
]

# The reference variant's columns: every channel compares one variant with it.
REFERENCE = {
    "pruner": "gmp",
    "profile": "global",
    "mask": "unstructured",
    "quant": "none",
    "exporter": "torch",
}

# What each channel asks, in plain words (the report's sentence starts from it).
CHANNEL_TEXT = {
    "pruner": "SparseML's GMP vs gmp's (the same algorithm: an A/A control when the files are identical)",
    "exporter": "SparseML's ModuleExporter (BatchNorm kept) vs torch.onnx (BatchNorm folded)",
    "profile:uniform": "the same sparsity in every prunable layer vs one global magnitude threshold",
    "profile:vendor": "SparseZoo-style profile (stem, depthwise convs and classifier dense, the rest ramped) vs one global threshold",
    "mask:block4": "SparseML's 1x4 block masks vs unstructured (both under one global threshold)",
    "precision": "int8 (torch.ao QAT) vs fp32 weights: the int8 speed-up, not a toolchain bias",
    "quantizer": "int8 by SparseML's QuantizationModifier and exporter vs by torch.ao and torch.onnx",
    "quantizer:nncf": "int8 by NNCF QAT (its FakeQuantize ONNX on OpenVINO, its QDQ file on the other engines) vs by torch.ao and torch.onnx, on the reference's weights",
    "toolchain:neuralmagic": "Neural Magic's whole toolchain (SparseZoo-style profile, 1x4 blocks, SparseML's exporter) vs the neutral reference",
    "toolchain:neuralmagic:int8": "Neural Magic's whole int8 toolchain (its profile and blocks, SparseML's quantization and int8 export) vs the torch.ao int8 reference",
    "toolchain:intel": "Intel's whole toolchain (NNCF's pruning: normalised global ranking, its coverage and schedule; torch.onnx export) vs the neutral reference",
    "toolchain:intel:int8": "Intel's whole int8 toolchain (NNCF pruning, NNCF QAT; OpenVINO runs NNCF's FakeQuantize ONNX, the other engines NNCF's QDQ file) vs the torch.ao int8 reference",
    "isa:avx2": "the engines capped to AVX2 vs native, on the reference file (an ISA factor, not a toolchain bias; separate blocks, so unpaired)",
    "isa:avx512": "the engines capped to AVX-512 without AMX vs native, on the reference file (an ISA factor; separate blocks, so unpaired)",
}


@dataclass(frozen=True)
class Variant:
    """One model file of one architecture (the schema's variant columns)."""

    model: str  # architecture (registry name)
    pruner: str = "gmp"  # "none" (dense), "gmp", "sparseml", "nncf" or "oneshot"
    profile: str = "global"  # "dense", "global", "uniform" or "vendor"
    mask: str = "unstructured"  # "none", "unstructured" or "block4"
    quant: str = "none"  # "none" (fp32), "torch", "sparseml", "nncf" (QAT) or "nncf_ptq" (int8)
    exporter: str = "torch"  # "torch", "sparseml" or "nncf" (NNCF's FakeQuantize ONNX, int8)
    sparsity: float = 0.9  # target overall sparsity

    @property
    def name(self) -> str:
        """The file stem, e.g. ``mobilenetv1-gmp-uniform-unstructured-fp32-torch-s0.90``."""
        precision = "fp32" if self.quant == "none" else f"int8{self.quant}"
        return "-".join(
            (self.model, self.pruner, self.profile, self.mask, precision, self.exporter)
        ) + (f"-s{self.sparsity:.2f}")

    @property
    def training(self) -> tuple[str, str, str]:
        """The fp32 training run this variant's weights come from: (pruner, profile, mask)."""
        return (self.pruner, self.profile, self.mask)

    def columns(self) -> dict[str, Any]:
        """The variant's columns as a row selection (every column but ``model``)."""
        out = asdict(self)
        out.pop("model")
        return out


def variant_key(v: Any) -> tuple:
    """The variant columns of a :class:`Variant` or a manifest record, sparsity rounded: equal
    for a planned variant and the record of its file (whose path may be a twin's)."""
    return (v.pruner, v.profile, v.mask, v.quant, v.exporter, round(v.sparsity, 4))


def is_reference(row: Any, *, exporter: bool = True) -> bool:
    """Whether a record or row (mapping or object) is the reference variant (any sparsity).

    With ``exporter=False`` the exporter column is not compared (the reference weights exported
    by either exporter).
    """
    get = row.get if isinstance(row, dict) else lambda k, d=None: getattr(row, k, d)
    keys = [k for k in REFERENCE if exporter or k != "exporter"]
    return all(get(k) == REFERENCE[k] for k in keys)


def is_anchor(row: Any) -> bool:
    """Whether a record or row is a file that channels compare with (any sparsity): the reference,
    or its torch.ao int8 version (the reference of the quantizer and int8 toolchain channels).

    The harness measures these files' cells in every sub-block of a split block
    (``CellSpec.anchor``, :mod:`study.bench.split`), so each B pairs inside one sub-block.

    Example:
        >>> is_anchor({**REFERENCE, "quant": "torch"}), is_anchor({**REFERENCE, "mask": "block4"})
        (True, False)
    """
    get = row.get if isinstance(row, dict) else lambda k, d=None: getattr(row, k, d)
    int8 = get("quant") == "torch" and all(
        get(k) == v for k, v in REFERENCE.items() if k != "quant"
    )
    return int8 or is_reference(row)


def pairs_with(cfg: StudyConfig, row: Any, rows: Sequence[Any]) -> list[Any]:
    """The records of ``rows`` that ``row``'s channels compare it with (their ``level_b``).

    A record that is no channel's variant (the dense model, the sweep, the reference) pairs
    with the fp32 reference (speed-ups; the reference's own ISA channel).

    Example:
        >>> from study.config import load_config
        >>> cfg = load_config("smoke")
        >>> ref, int8 = reference(cfg, "small_cnn"), replace(reference(cfg, "small_cnn"), quant="torch")
        >>> q = replace(int8, quant="sparseml", exporter="sparseml")
        >>> [v.quant for v in pairs_with(cfg, q, [ref, int8, q])]
        ['torch']
    """
    get = row.get if isinstance(row, dict) else lambda k, d=None: getattr(row, k, d)

    def matches(r: Any, level: dict) -> bool:
        g = r.get if isinstance(r, dict) else lambda k, d=None: getattr(r, k, d)
        return all(
            math.isclose(g(k), v, abs_tol=1e-9) if isinstance(v, float) else g(k) == v
            for k, v in level.items()
            if k != "isa"
        )

    mine = [r for r in rows if (r.get("model") if isinstance(r, dict) else r.model) == get("model")]
    refs = [
        b
        for c in channels(cfg, get("model"))
        if matches(row, c.level_a) and c.level_a.get("isa") is None
        for b in mine
        if matches(b, c.level_b)
    ]
    return refs or [r for r in mine if is_reference(r)]


def target_sparsity(recipe: str) -> float:
    """The highest final sparsity of the recipe's GMP modifiers (the pruned variants' label).

    Raises:
        ValueError: the recipe has no pruning modifier.
    """
    from gmp.recipe import load_recipe

    targets = [p.final_sparsity for p in load_recipe(recipe).pruning if p.kind == "gmp"]
    if not targets:
        raise ValueError(
            "`recipe` has no pruning modifier; the study needs one (e.g. !GMPruningModifier)"
        )
    return float(max(targets))


def dense(model: str) -> Variant:
    """The trained dense model of ``model``, exported by torch.onnx."""
    return Variant(model, pruner="none", profile="dense", mask="none", sparsity=0.0)


def reference(cfg: StudyConfig, model: str) -> Variant:
    """The variant every channel compares with (:data:`REFERENCE` at the recipe's target, or the
    architecture's ``model_sparsity``)."""
    return Variant(model, sparsity=target_sparsity(cfg.recipe_for(model)))


def _factor_variants(cfg: StudyConfig, model: str) -> list[tuple[str, Variant, Variant]]:
    """(channel name, variant a, variant b) for every factor level this run measures."""
    ref = reference(cfg, model)
    out = []
    if "sparseml" in cfg.levels("pruner"):
        out.append(("pruner", replace(ref, pruner="sparseml"), ref))
    if "sparseml" in cfg.levels("exporter"):
        out.append(("exporter", replace(ref, exporter="sparseml"), ref))
    for profile in cfg.levels("profile")[1:]:
        out.append((f"profile:{profile}", replace(ref, profile=profile), ref))
    for mask in cfg.levels("mask")[1:]:
        out.append((f"mask:{mask}", replace(ref, mask=mask), ref))
    if cfg.int8_for(model):
        int8 = replace(ref, quant="torch")
        out.append(("precision", int8, ref))
        if "sparseml" in cfg.levels("quantizer"):
            out.append(("quantizer", replace(ref, quant="sparseml", exporter="sparseml"), int8))
        if "nncf" in cfg.levels("quantizer"):
            out.append(("quantizer:nncf", replace(ref, quant="nncf", exporter="nncf"), int8))
        if "nncf_ptq" in cfg.levels("quantizer"):  # NNCF's default flow: nncf.quantize alone
            ptq = replace(ref, quant="nncf_ptq", exporter="nncf")
            out.append(("quantizer:nncf_ptq", ptq, int8))
    return out + toolchain_variants(cfg, model)


def variants(cfg: StudyConfig, model: str) -> list[Variant]:
    """Every variant of ``model`` this configuration makes, each once, in a fixed order.

    Dense, the reference, one variant per other factor level, then the one-shot sweep.
    """
    found = [dense(model), reference(cfg, model)]
    for _, a, b in _factor_variants(cfg, model):
        found += [b, a]
    found += [
        Variant(model, pruner="oneshot", profile="uniform", sparsity=float(s))
        for s in cfg.sweep_for(model)
        if float(s) > 0
    ]
    return list(dict.fromkeys(found))


def channels(cfg: StudyConfig, model: str) -> list[Channel]:
    """The contrasts measured on ``model``: one :class:`~study.stats.Channel` per factor level.

    Each ISA level other than native adds the channel ``isa:<level>``: the reference file with the
    engines capped to that level against native (every other channel is computed at each ISA
    level on its own).

    The levels leave out ``sparsity`` (:func:`_any_sparsity`): a channel is one object for every
    architecture, and ``model_sparsity`` gives each its own target (it is then a held column).
    """
    out = [
        Channel(name, _any_sparsity(a.columns()), _any_sparsity(b.columns()),
                CHANNEL_TEXT.get(name, name))
        for name, a, b in _factor_variants(cfg, model)
    ]  # fmt: skip
    ref = _any_sparsity(reference(cfg, model).columns())
    for level in cfg.isa[1:]:
        name = f"isa:{level}"
        level_a, level_b = {**ref, "isa": level}, {**ref, "isa": "native"}
        out.append(Channel(name, level_a, level_b, CHANNEL_TEXT.get(name, name)))
    return out


# Whole-toolchain variants (the `toolchain` factor; what each changes: study.toolchains.CHOICES)


def _reference(cfg: StudyConfig, model: str, precision: str) -> Variant:
    ref = reference(cfg, model)
    return ref if precision == "fp32" else replace(ref, quant="torch")


def toolchain_variants(cfg: StudyConfig, model: str) -> list[tuple[str, Variant, Variant]]:
    """(channel name, whole-toolchain variant, its reference) for each level this run measures.

    Channel names are ``toolchain:<level>`` (fp32) and ``toolchain:<level>:int8``.

    Example:
        >>> from study.config import load_config
        >>> [n for n, _, _ in toolchain_variants(load_config("smoke"), "small_cnn")]
        ['toolchain:neuralmagic', 'toolchain:neuralmagic:int8', 'toolchain:intel', 'toolchain:intel:int8']
    """
    out = []
    precisions = ["fp32", "int8"] if cfg.int8_for(model) else ["fp32"]
    for level in cfg.levels("toolchain")[1:]:
        for precision in precisions:
            ref = _reference(cfg, model, precision)
            suffix = "" if precision == "fp32" else ":int8"
            variant = replace(ref, **CHOICES[(level, precision)])
            out.append((f"toolchain:{level}{suffix}", variant, ref))
    return out


def toolchain_of(row) -> str | None:
    """The whole-toolchain level a record, row or mapping is the variant of (None: none).

    Example:
        >>> toolchain_of({"pruner": "nncf", "profile": "global", "mask": "unstructured",
        ...               "quant": "none", "exporter": "torch"})
        'intel'
    """
    get = row.get if isinstance(row, dict) else lambda k, d=None: getattr(row, k, d)
    for (level, precision), choices in CHOICES.items():
        base = dict(REFERENCE, quant="none" if precision == "fp32" else "torch")
        want = {**base, **choices}
        if all(get(k) == v for k, v in want.items()):
            return level
    return None


def _any_sparsity(columns: Mapping[str, Any]) -> dict[str, Any]:
    """``columns`` without ``sparsity``: each architecture's files are at its own target
    (``model_sparsity``), and no two of one architecture's variants differ in sparsity alone."""
    return {k: v for k, v in columns.items() if k != "sparsity"}


def whole_toolchains(cfg: StudyConfig) -> list:
    """The :class:`study.stats.toolchain.WholeToolchain` of each level and precision this run makes.

    Named ``<level>`` (fp32) and ``<level>:int8``; the single-factor channels of
    :data:`SINGLE_FACTORS` that this run measures become each one's ``singles`` (one missing: no
    additivity row for it). Variant columns do not depend on the architecture: they leave out
    ``sparsity``, which ``model_sparsity`` sets per architecture (the int8 ones match rows only
    of the architectures with the int8 arm).
    """
    models = list(cfg.models)
    int8_model = next((m for m in models if cfg.int8_for(m)), None)
    out = []
    for precision, model in (("fp32", models[0]), ("int8", int8_model)):
        if model is None:
            continue
        by_name = {c.name: c for c in channels(cfg, model)}
        for name, variant, ref in toolchain_variants(cfg, model):
            if name.endswith(":int8") != (precision == "int8"):
                continue
            level = name.split(":")[1]
            wanted = SINGLE_FACTORS.get((level, precision), ())
            found = [by_name[n] for n in wanted if n in by_name]
            singles = (
                tuple((_any_sparsity(c.level_a), _any_sparsity(c.level_b)) for c in found)
                if len(found) == len(wanted)
                else ()
            )
            out.append(
                WholeToolchain(
                    name=name.removeprefix("toolchain:"),
                    variant=_any_sparsity(variant.columns()),
                    reference=_any_sparsity(ref.columns()),
                    singles=singles,
                    single_names=tuple(c.name for c in found) if singles else (),
                    label=VENDOR[level],
                    models=tuple(m for m in models if precision == "fp32" or cfg.int8_for(m)),
                )
            )
    return out
