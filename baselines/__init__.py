"""baselines: the vendors' toolchains (SparseML; Intel's NNCF), kept thin.

Responsibility: run a recipe under SparseML on the shared loop, export with SparseML's
``ModuleExporter``, resolve SparseZoo models, and ``python -m baselines.validate``, the evidence
that ``gmp`` prunes exactly as SparseML does; and Intel's side, NNCF's own pruning on the shared
loop, its int8 and its exports (``docs/nncf.md``).
"""

import os

# SparseML and SparseZoo send analytics unless this is set before they are imported.
os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

# SparseML's and NNCF's attach functions join the study's shared training loop (its registry).
from baselines import toolchains as toolchains  # noqa: E402

# Submodules (imported on use; each pulls in SparseML or SparseZoo, which are slow to import):
# baselines.sparseml (attach), baselines.export (export_sparseml), baselines.zoo (resolve),
# baselines.validate (python -m baselines.validate). Intel's side, NNCF (each imports nncf):
# baselines.nncf_prune (attach), baselines.nncf_strip (prune_oneshot, unwrap),
# baselines.nncf_quantize (ptq, qat),
# baselines.nncf_export (export_fq_onnx, export_qdq_onnx, export_ir).
__all__ = [
    "export",
    "nncf_common",
    "nncf_export",
    "nncf_prune",
    "nncf_quantize",
    "nncf_strip",
    "sparseml",
    "toolchains",
    "validate",
    "zoo",
]
