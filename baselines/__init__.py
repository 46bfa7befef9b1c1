"""baselines: the SparseML side of the study, kept thin.

Responsibility: run a recipe under SparseML on the shared loop, export with SparseML's
``ModuleExporter``, resolve SparseZoo models, and ``python -m baselines.validate``, the evidence
that ``gmp`` prunes exactly as SparseML does.
"""

import os

# SparseML and SparseZoo send analytics unless this is set before they are imported.
os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

__all__: list[str] = []
