"""Whole-toolchain variants: every choice of one vendor's toolchain at once, against the reference.

The single-factor channels of :mod:`study.design` change one choice at a time. The ``toolchain``
factor (:data:`study.config.FACTORS`) adds, per architecture, one variant per vendor that carries
all of that vendor's choices together, fp32 and (where the precision factor has int8) int8:

- ``neuralmagic``: SparseZoo-style profile + SparseML's 1x4 blocks + SparseML's ModuleExporter;
  int8: SparseML's QuantizationModifier and int8 exporter on those weights. The pruning itself is
  gmp's GMP, which the pruner channel (the A/A control) shows gives SparseML's files.
- ``intel``: NNCF's own magnitude pruning (its ``|w| / ||W||_2`` global ranking, its layer
  coverage, its exponential schedule; ``study.train`` toolchain ``"nncf"``), exported by
  ``torch.onnx`` as NNCF documents for a stripped model; int8: NNCF QAT (``nncf.quantize`` then the
  shared loop, :func:`baselines.nncf_quantize.qat`) written by NNCF's own path, the ONNX file with
  OpenVINO ``FakeQuantize`` nodes. Only OpenVINO runs that file: the other engines measure NNCF's
  weights and scales in a standard QDQ graph (:func:`baselines.nncf_export.export_qdq_onnx`),
  and the manifest record (``extra["engine_files"]``) and every row (``onnx_path``) say so.

Each is compared with the neutral reference of its precision (gmp, one global magnitude
threshold, unstructured, torch.onnx; int8 by torch.ao QAT). :data:`CHOICES` is the single
statement of which columns each whole-toolchain variant changes.

Example:
    >>> sorted(CHOICES[("intel", "fp32")])
    ['pruner']
"""

from __future__ import annotations

from dataclasses import replace

from study.config import StudyConfig
from study.design import Variant, reference

__all__ = [
    "CHOICES",
    "SINGLE_FACTORS",
    "TOOLCHAINS",
    "TOOLCHAIN_TEXT",
    "VENDOR",
    "toolchain_of",
    "toolchain_variants",
    "whole_toolchains",
]

TOOLCHAINS = ("neuralmagic", "intel")
VENDOR = {"neuralmagic": "Neural Magic", "intel": "Intel"}

# (toolchain, precision) -> the variant columns it changes from the reference of that precision
# (fp32: gmp, global, unstructured, none, torch; int8: the same with quant "torch").
CHOICES: dict[tuple[str, str], dict[str, str]] = {
    ("neuralmagic", "fp32"): {"profile": "vendor", "mask": "block4", "exporter": "sparseml"},
    ("neuralmagic", "int8"): {
        "profile": "vendor",
        "mask": "block4",
        "quant": "sparseml",
        "exporter": "sparseml",
    },
    ("intel", "fp32"): {"pruner": "nncf"},
    ("intel", "int8"): {"pruner": "nncf", "quant": "nncf", "exporter": "nncf"},
}

# The single-factor channels (study.design) whose B's product the whole toolchain's B is compared
# with ("do the factors add up"). Neural Magic's int8 chain: its profile and blocks (measured at
# fp32) and its quantizer+exporter (the quantizer channel, on the reference weights). Intel's
# choices have no single-factor channels apart from the whole (its fp32 variant is one choice).
SINGLE_FACTORS: dict[tuple[str, str], tuple[str, ...]] = {
    ("neuralmagic", "fp32"): ("profile:vendor", "mask:block4", "exporter"),
    ("neuralmagic", "int8"): ("profile:vendor", "mask:block4", "quantizer"),
}

TOOLCHAIN_TEXT = {
    "neuralmagic": "Neural Magic's whole toolchain (SparseZoo-style profile, 1x4 blocks, SparseML's "
    "exporter; int8: SparseML's quantization and export) vs the neutral reference",
    "intel": "Intel's whole toolchain (NNCF's pruning: its normalised global ranking, coverage and "
    "schedule, torch.onnx export; int8: NNCF QAT in NNCF's FakeQuantize ONNX on OpenVINO and "
    "NNCF's QDQ file on the other engines) vs the neutral reference",
}


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
    from study.design import REFERENCE

    get = row.get if isinstance(row, dict) else lambda k, d=None: getattr(row, k, d)
    for (level, precision), choices in CHOICES.items():
        base = dict(REFERENCE, quant="none" if precision == "fp32" else "torch")
        want = {**base, **choices}
        if all(get(k) == v for k, v in want.items()):
            return level
    return None


def whole_toolchains(cfg: StudyConfig) -> list:
    """The :class:`study.stats.toolchain.WholeToolchain` of each level and precision this run makes.

    Named ``<level>`` (fp32) and ``<level>:int8``; the single-factor channels of
    :data:`SINGLE_FACTORS` that this run measures become each one's ``singles`` (one missing: no
    additivity row for it). Variant columns do not depend on the architecture (the int8 ones
    match rows only of the architectures with the int8 arm).
    """
    from study.design import channels
    from study.stats.toolchain import WholeToolchain

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
                tuple((c.level_a, c.level_b) for c in found) if len(found) == len(wanted) else ()
            )
            out.append(
                WholeToolchain(
                    name=name.removeprefix("toolchain:"),
                    variant=variant.columns(),
                    reference=ref.columns(),
                    singles=singles,
                    single_names=tuple(c.name for c in found) if singles else (),
                    label=VENDOR[level],
                )
            )
    return out
