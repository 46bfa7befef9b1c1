"""Crash-safe JSON-lines files: the one appender and reader every results file of the study uses.

Each record is written with a single ``os.write`` of the whole line to an ``O_APPEND`` descriptor
and ``fsync``-ed, so a crash can at worst leave one truncated last line. The next append first
ends such a fragment with a newline (so it cannot corrupt the new record), and readers skip lines
that do not parse, with a warning. Only the standard library: benchmark worker processes import it.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["append_jsonl", "read_jsonl"]


def _default(obj: Any) -> Any:
    if isinstance(obj, tuple | set):
        return list(obj)
    return str(obj)


def append_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Append records to a JSONL file, one atomic ``os.write`` + ``fsync`` per line.

    Example:
        >>> append_jsonl("runs/failures.jsonl", [{"stage": "train", "reason": "..."}])  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if _needs_newline(path):
            os.write(fd, b"\n")
        for record in records:
            line = (json.dumps(record, allow_nan=True, default=_default) + "\n").encode()
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {path}: {written} of {len(line)} bytes")
            os.fsync(fd)
    finally:
        os.close(fd)


def _needs_newline(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) != b"\n"


def read_jsonl(path: str | Path, *, missing_ok: bool = False) -> list[dict[str, Any]]:
    """Read a JSONL file; a line that does not parse (a crash's truncated write) is skipped with a warning.

    Raises:
        ValueError: ``path`` does not exist (unless ``missing_ok``, which returns ``[]``).
    """
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return []
        raise ValueError(f"`path` must be an existing results file; got {str(path)!r}")
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                warnings.warn(
                    f"{path}:{number}: skipping an incomplete row (truncated write?)", stacklevel=2
                )
    return rows
