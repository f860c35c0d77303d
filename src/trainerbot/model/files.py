"""Model folders on disk: complete only once their "done" marker exists (written last)."""

from __future__ import annotations

from pathlib import Path

DONE_MARKER = "DONE.json"


def is_complete(folder: Path) -> bool:
    return (folder / DONE_MARKER).is_file()
