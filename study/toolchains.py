"""Whole-toolchain variants: every choice of one vendor's toolchain at once, against the reference.

The single-factor channels of :mod:`study.design` change one choice at a time. The ``toolchain``
factor (:data:`study.config.FACTORS`) adds, per architecture, one variant per vendor that carries
all of that vendor's choices together, fp32 and (where the precision factor has int8) int8:

- ``neuralmagic``: SparseZoo-style profile + SparseML's 1x4 blocks + SparseML's ModuleExporter;
  int8: SparseML's QuantizationModifier and int8 exporter on those weights. The pruning itself is
  gmp's GMP, which the pruner channel (the A/A control) shows gives SparseML's files.
- ``intel``: NNCF's own magnitude pruning (its ``|w| / ||W||_2`` global ranking, its layer
  coverage, its exponential schedule; ``study.make.train`` toolchain ``"nncf"``), exported by
  ``torch.onnx`` as NNCF documents for a stripped model; int8: NNCF QAT (``nncf.quantize`` then the
  shared loop, :func:`baselines.nncf_quantize.qat`) written by NNCF's own path, the ONNX file with
  OpenVINO ``FakeQuantize`` nodes. Only OpenVINO runs that file: the other engines measure NNCF's
  weights and scales in a standard QDQ graph (:func:`baselines.nncf_export.export_qdq_onnx`),
  and the manifest record (``extra["engine_files"]``) and every row (``onnx_path``) say so.

Each is compared with the neutral reference of its precision (gmp, one global magnitude
threshold, unstructured, torch.onnx; int8 by torch.ao QAT). :data:`CHOICES` is the single
statement of which columns each whole-toolchain variant changes; :mod:`study.design` makes the
variants (:func:`study.design.toolchain_variants`) and their channels from it.

Example:
    >>> sorted(CHOICES[("intel", "fp32")])
    ['pruner']
"""

from __future__ import annotations

__all__ = [
    "CHOICES",
    "SINGLE_FACTORS",
    "TOOLCHAINS",
    "TOOLCHAIN_TEXT",
    "VENDOR",
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
# int8 chain: its pruning (the fp32 whole, which is that one choice) and NNCF's quantizer and
# export on the reference weights (quantizer level "nncf"). Intel's fp32 variant is one choice,
# so it has no additivity row.
SINGLE_FACTORS: dict[tuple[str, str], tuple[str, ...]] = {
    ("neuralmagic", "fp32"): ("profile:vendor", "mask:block4", "exporter"),
    ("neuralmagic", "int8"): ("profile:vendor", "mask:block4", "quantizer"),
    ("intel", "int8"): ("toolchain:intel", "quantizer:nncf"),
}

TOOLCHAIN_TEXT = {
    "neuralmagic": "Neural Magic's whole toolchain (SparseZoo-style profile, 1x4 blocks, SparseML's "
    "exporter; int8: SparseML's quantization and export) vs the neutral reference",
    "intel": "Intel's whole toolchain (NNCF's pruning: its normalised global ranking, coverage and "
    "schedule, torch.onnx export; int8: NNCF QAT in NNCF's FakeQuantize ONNX on OpenVINO and "
    "NNCF's QDQ file on the other engines) vs the neutral reference",
}
