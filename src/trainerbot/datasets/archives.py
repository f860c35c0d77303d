"""Uploaded archives (``.zip``, ``.tar``, ``.tar.gz`` / ``.tgz``): the files inside, read in
memory — nothing is ever extracted to disk — with every check an extraction would need.

Refused: entries whose names are absolute, hold ``..`` or backslashes, or carry control
characters; links, devices, FIFOs (PEP 706's ``data`` filter is applied to every tar entry
as well); encrypted zip entries; more than ``MAX_MEMBERS`` entries; any entry or the whole
over the size limit, counted on the bytes actually decompressed rather than the sizes the
archive claims; and zip entries that expand more than ``MAX_RATIO`` times (zip bombs).
Our own dataset archives (``manifest.json`` + ``items.jsonl``) import back: the manifest is
skipped.
"""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import IO

from trainerbot.errors import BadInput

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
MAX_MEMBERS = 100
MAX_RATIO = 100
CHUNK = 64 * 1024


def is_archive(filename: str) -> bool:
    return filename.lower().endswith(ARCHIVE_SUFFIXES)


def _check_name(name: str, shown: str) -> str:
    if not name or "\\" in name or "\x00" in name or any(ord(ch) < 32 for ch in name):
        raise BadInput(f"`{shown}` holds an entry with an unusable name; nothing was imported.")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or (path.parts and path.parts[0].endswith(":")):
        raise BadInput(
            f"`{shown}` holds an entry that points outside the archive (`..` or an absolute path); nothing was imported."
        )
    return path.name


def _bounded(stream: IO[bytes], limit: int, shown: str, entry: str) -> bytes:
    out = bytearray()
    while chunk := stream.read(CHUNK):
        out += chunk
        if len(out) > limit:
            raise BadInput(f"`{shown}`: `{entry[:60]}` expands past the size limit; nothing was imported.")
    return bytes(out)


def read_members(filename: str, data: bytes, *, max_bytes: int) -> list[tuple[str, bytes]]:
    """(base name, bytes) of every regular file in the archive, or ``BadInput``."""
    shown = filename.replace("\\", "/").rsplit("/", 1)[-1][:80]
    lower = filename.lower()
    try:
        members = list(_zip(data, shown, max_bytes) if lower.endswith(".zip") else _tar(data, shown, max_bytes))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, tarfile.FilterError):
            raise BadInput(
                f"`{shown}` holds an entry no safe extraction allows ({type(exc).__name__}); nothing was imported."
            ) from None
        raise BadInput(f"`{shown}` is not a readable archive.") from None
    names = {n for n, _ in members}
    if "items.jsonl" in names:  # one of our own archives: the manifest describes, items.jsonl holds
        members = [(n, b) for n, b in members if n != "manifest.json"]
    if not members:
        raise BadInput(f"`{shown}` holds no files to import.")
    return members


def _zip(data: bytes, shown: str, max_bytes: int) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise BadInput(f"`{shown}` has {len(infos)} entries; an archive may hold at most {MAX_MEMBERS}.")
        total = 0
        for info in infos:
            base = _check_name(info.filename.rstrip("/") if info.is_dir() else info.filename, shown)
            kind = stat.S_IFMT(info.external_attr >> 16)  # Unix file type, when the zip was made on Unix
            if info.is_dir():
                continue
            if kind and kind != stat.S_IFREG:
                raise BadInput(f"`{shown}` holds a link or special file (`{base[:60]}`); nothing was imported.")
            if info.flag_bits & 0x1:
                raise BadInput(f"`{shown}` holds an encrypted entry; send the files unencrypted.")
            if info.file_size > max_bytes or info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise BadInput(f"`{shown}`: `{base[:60]}` expands too much (a zip bomb?); nothing was imported.")
            with zf.open(info) as stream:
                body = _bounded(stream, min(max_bytes - total, MAX_RATIO * max(info.compress_size, 1)), shown, base)
            total += len(body)
            yield base, body


def _tar(data: bytes, shown: str, max_bytes: int) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        total = count = 0
        while (member := tf.next()) is not None:
            count += 1
            if count > MAX_MEMBERS:
                raise BadInput(f"`{shown}` has more than {MAX_MEMBERS} entries.")
            base = _check_name(member.name.rstrip("/") if member.isdir() else member.name, shown)
            if member.isdir():
                continue
            if not member.isreg():
                raise BadInput(f"`{shown}` holds a link or special file (`{base[:60]}`); nothing was imported.")
            tarfile.data_filter(member, "/nonexistent-destination")  # PEP 706: raises FilterError
            if member.size > max_bytes - total:
                raise BadInput(f"`{shown}` expands past the size limit; nothing was imported.")
            stream = tf.extractfile(member)
            if stream is None:
                raise BadInput(f"`{shown}` holds an unreadable entry.")
            body = _bounded(stream, max_bytes - total, shown, base)
            total += len(body)
            yield base, body
