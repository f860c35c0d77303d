"""Scratch folders for the benchmarks: each is removed when the script exits (a base model copy is half a gigabyte)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch(prefix: str) -> Path:
    """A new folder under the system's temp folder, removed at exit (normal or by an exception / Ctrl-C)."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
