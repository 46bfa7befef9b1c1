"""Optional dependencies: imported when a feature that needs them is called, never at ``import gmp``.

``pip install torch-gmp`` brings torch and PyYAML only. pandas and tqdm come with the
``sensitivity`` extra (``pip install 'torch-gmp[sensitivity]'``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["DISTRIBUTION", "EXTRA", "require"]

DISTRIBUTION = "torch-gmp"  # the name on the package index; the import name is gmp
EXTRA = "sensitivity"  # the extra that brings pandas and tqdm


def require(module: str, feature: str) -> ModuleType:
    """Import an optional dependency, or say which extra provides it.

    Args:
        module: The module to import, e.g. "pandas".
        feature: What needs it, for the message, e.g. "gmp.sensitivity".

    Returns:
        The imported module.

    Raises:
        ImportError: If ``module`` is not installed; the message names the extra to install.

    Example:
        >>> require("math", "a doctest").sqrt(4.0)
        2.0
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{feature} needs {module!r}, which is not installed; it comes with gmp's optional "
            f"extra: pip install '{DISTRIBUTION}[{EXTRA}]'"
        ) from exc
