"""Model folders on disk: complete only once their "done" marker exists (written last).

A version folder holds a whole model, or a PEFT LoRA adapter (``adapter_config.json``)
whose marker names the base folder it adapts. Nothing here loads torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from trainerbot.errors import NotAvailable

DONE_MARKER = "DONE.json"
ADAPTER_CONFIG = "adapter_config.json"


def is_complete(folder: Path) -> bool:
    return (folder / DONE_MARKER).is_file()


def offline() -> None:
    """Hugging Face libraries never reach for the network (called before loading anything)."""
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(key, "1")


def is_adapter(folder: Path) -> bool:
    return (folder / ADAPTER_CONFIG).is_file()


def adapter_base(folder: Path) -> Path:
    """The base folder an adapter version was trained on (stored relative to the adapter when
    both live in the data folder, so the data folder can move)."""
    info = json.loads((folder / DONE_MARKER).read_text())
    base = info.get("base_dir")
    if not base:
        raise NotAvailable(f"The model version in `{folder.name}` does not say which base model it adapts.")
    path = Path(base)
    return path if path.is_absolute() else (folder / path).resolve()


def relative_base(adapter_folder: Path, base: Path) -> str:
    """How an adapter folder's marker names its base: relative when they share a root."""
    try:
        return os.path.relpath(base.resolve(), adapter_folder.resolve())
    except ValueError:
        return str(base.resolve())
