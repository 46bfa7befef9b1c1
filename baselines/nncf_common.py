"""What every use of NNCF (Intel's compression toolchain) shares: importing it, and its errors.

The study records the Intel arm as failed and goes on when NNCF is missing or fails, so every
call into NNCF goes through :func:`nncf_step`, which turns any exception into an
:class:`NNCFError` that names NNCF, its version, the step, and carries NNCF's own message.

Environment set before NNCF is imported (``os.environ.setdefault``, so a caller can override):

- ``NNCF_CI=1``: NNCF 3.4 sends usage telemetry through ``openvino_telemetry`` unless the user
  opted out (a missing consent file counts as consent); ``NNCF_CI`` is the variable NNCF reads to
  replace its telemetry with a stub (``nncf/telemetry/wrapper.py``), and it changes nothing else.
- ``NNCF_EXTENSION_LOAD_TIMEOUT=900``: NNCF's torch quantizers compile a C++ extension with
  ninja on first use (``nncf/torch/extensions``; cached in ``~/.cache/torch_extensions``). On a
  loaded 2-CPU machine that took about 2.5 minutes, past NNCF's default 60 s limit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType

__all__ = ["NNCFError", "import_nncf", "nncf_step", "nncf_version"]

os.environ.setdefault("NNCF_CI", "1")
os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "900")

# The NNCF release the Intel arm was written against (pyproject.toml pins it).
NNCF_VERSION = "3.4.0"


class NNCFError(RuntimeError):
    """NNCF is missing or one of its calls failed; the message carries NNCF's own."""


def import_nncf() -> ModuleType:
    """Import NNCF, or raise an :class:`NNCFError` that says it is missing and why.

    Returns:
        The ``nncf`` module.

    Raises:
        NNCFError: If ``import nncf`` fails.

    Example:
        >>> import_nncf().__version__  # doctest: +SKIP
        '3.4.0'
    """
    try:
        import nncf
    except ImportError as error:
        raise NNCFError(
            f"NNCF is not available (import nncf failed: {error}); the Intel arm needs "
            f"nncf=={NNCF_VERSION} (pip install nncf=={NNCF_VERSION} torchao)"
        ) from error
    return nncf


def nncf_version() -> str:
    """The installed NNCF version (raises :class:`NNCFError` when NNCF is missing)."""
    return str(import_nncf().__version__)


@contextlib.contextmanager
def nncf_step(step: str) -> Iterator[None]:
    """Run a block of NNCF calls; any exception becomes an :class:`NNCFError` naming the step.

    Args:
        step: What the block does, e.g. ``"nncf.prune"``; it starts the message.

    Raises:
        NNCFError: With ``"NNCF <version>: <step> failed: <type>: <NNCF's message>"``, chained
            to the original exception.

    Example:
        >>> with nncf_step("nncf.strip"):  # doctest: +SKIP
        ...     nncf.strip(model, strip_format=nncf.StripFormat.IN_PLACE)
    """
    try:
        yield
    except NNCFError:
        raise
    except Exception as error:
        try:
            version = nncf_version()
        except NNCFError:
            version = "(missing)"
        raise NNCFError(
            f"NNCF {version}: {step} failed: {type(error).__name__}: {error}"
        ) from error
