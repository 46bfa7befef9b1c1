"""The one place that configures logging for the project's command-line tools."""

from __future__ import annotations

import logging
import os
import warnings

# Set before DeepSparse/SparseML/SparseZoo are imported anywhere (they read it at import time).
os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")


def configure_logging(verbose: int = 0) -> None:
    """Configure the root logger for a CLI and quiet noisy third-party loggers.

    Args:
        verbose: 0 for INFO, 1 or more for DEBUG; negative for WARNING only.
    """
    level = logging.DEBUG if verbose > 0 else logging.INFO if verbose == 0 else logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    for name in (
        "sparseml",
        "sparsezoo",
        "deepsparse",
        "matplotlib",
        "PIL",
        "urllib3",
        "onnxruntime",
    ):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    # sparseml imports pkg_resources, which warns on every import.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
