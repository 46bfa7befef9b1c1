"""Imported by the workers' fork server only (:mod:`study.engines.server`), never by the study.

Importing it imports :data:`study.engines.server.PRELOAD`; a module that
fails to import is left for the workers to import themselves.
"""

from __future__ import annotations

import importlib
import os

from study.engines.server import PRELOAD

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

FAILED: list[str] = []
for _name in PRELOAD:
    try:
        importlib.import_module(_name)
    except Exception:  # noqa: BLE001 - a worker imports what the server could not
        FAILED.append(_name)
