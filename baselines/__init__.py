"""baselines: the SparseML side of the study, kept thin.

Responsibility: run a recipe under SparseML on the shared loop, export with SparseML's
``ModuleExporter``, resolve SparseZoo models, and ``python -m baselines.validate``, the evidence
that ``gmp`` prunes exactly as SparseML does.
"""

import os

# SparseML and SparseZoo send analytics unless this is set before they are imported.
os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

# Submodules (imported on use; each pulls in SparseML or SparseZoo, which are slow to import):
# baselines.sparseml (attach), baselines.export (export_sparseml), baselines.zoo (resolve),
# baselines.validate (python -m baselines.validate).
__all__ = ["export", "sparseml", "validate", "zoo"]
