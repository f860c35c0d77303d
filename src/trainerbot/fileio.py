"""Crash-safe file writes: write a temporary file beside the target, flush, rename over it.

A reader never sees half a file: either the old one, the new one, or none. Used for
exports, snapshots, archives and (later) model checkpoints.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from trainerbot.errors import DISK_FULL, NotAvailable


@contextmanager
def atomic_writer(target: Path, *, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yield a binary file; on success it replaces ``target`` atomically, on error it vanishes."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        _raise_if_full(exc)
        raise
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            _raise_if_full(exc)
        raise
    _fsync_dir(target.parent)


def _raise_if_full(exc: OSError) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        raise NotAvailable(DISK_FULL) from None


def atomic_write_bytes(target: Path, data: bytes, *, mode: int = 0o644) -> None:
    with atomic_writer(target, mode=mode) as fh:
        fh.write(data)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unique_path(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem+suffix``, or with ``-2``, ``-3``… added when that name is taken."""
    candidate = folder / f"{stem}{suffix}"
    n = 2
    while candidate.exists() or candidate.is_symlink():
        candidate = folder / f"{stem}-{n}{suffix}"
        n += 1
    return candidate


def sha256_file(path: Path) -> str:
    """The file's SHA-256, read in 1 MiB blocks (for pinned model weights)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created if missing), so another process —
    the bot and its worker — waits instead of writing the same thing at once."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
