"""study: measure CPU inference engines on dense and pruned models, and test for toolchain bias.

Responsibility: model registry, data, the shared training loop, export, engine adapters, the
benchmark harness (``python -m study.bench``), results storage, statistics, and the end-to-end
pipeline ``python -m study.compare``.
"""

import os

# DeepSparse, SparseML and SparseZoo send analytics unless this is set before they are imported.
os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

__all__: list[str] = []
