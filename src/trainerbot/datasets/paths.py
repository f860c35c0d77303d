"""Names users type, and the only way from such a name to a file on disk.

Users name datasets and files; they never give paths. ``dataset_name`` accepts a short
lowercase word. ``resolve_file`` turns a file name (``archives/x.tar.gz`` or just
``x.tar.gz``) into a path under the guild's folder and refuses everything else: other
characters, ``..``, absolute paths, symbolic links anywhere on the way, hard links,
non-regular files, and anything whose real path leaves the folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from trainerbot.errors import COMMAND, BadInput, NotFound

DATASET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")
PLATFORM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,159}")
FILE_AREAS: tuple[str, ...] = ("exports", "archives", "snapshots", "artifacts")


def dataset_name(raw: str) -> str:
    """A dataset name: 1–48 of ``a-z 0-9 _ -``, starting with a letter or digit (case folded)."""
    name = raw.strip().lower()
    if not DATASET_NAME.fullmatch(name):
        shown = raw if len(raw) <= 60 and raw.isprintable() else "that name"
        raise BadInput(
            f"`{shown}` is not a dataset name: use 1–48 letters, digits, `_` or `-`, "
            "starting with a letter or digit (for example `facts` or `support-2024`)."
        )
    return name


def guild_key(platform_id: str) -> str:
    """A folder name for a guild: its platform ID when that is plain, else a stable hash."""
    if PLATFORM_ID.fullmatch(platform_id):
        return platform_id
    return "g-" + hashlib.sha256(platform_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def guild_root(data_dir: Path, platform_id: str) -> Path:
    return data_dir / "guilds" / guild_key(platform_id)


def _check_name(name: str) -> list[str]:
    if not isinstance(name, str) or not name or len(name) > 200:
        raise BadInput(f"Give a file name of 1–200 characters, as `{COMMAND}getfile` lists them.")
    parts = name.split("/")
    if len(parts) > 2 or not all(FILE_NAME.fullmatch(p) for p in parts) or any(".." in p for p in parts):
        raise BadInput(
            "That is not a file name I can send. Names look like `archives/facts-20261125-101500.tar.gz` "
            "or just `facts-20261125-101500.tar.gz` — no paths, no `..`, letters, digits, `.`, `_` and `-` only."
        )
    if len(parts) == 2 and parts[0] not in FILE_AREAS:
        raise BadInput(f"Files live in {', '.join(f'`{a}/`' for a in FILE_AREAS)}; `{parts[0]}/` is not one of them.")
    return parts


def _safe_existing(root: Path, area: str, name: str) -> Path | None:
    """The regular file ``root/area/name``, or None; raises if any link or escape is met."""
    current = root
    for part in (area, name):
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BadInput("That file cannot be read.") from exc
        if stat.S_ISLNK(st.st_mode):
            raise BadInput("That name leads to a link, and I only send files the bot wrote itself.")
    if not stat.S_ISREG(st.st_mode):
        raise BadInput("That name is not a regular file.")
    if st.st_nlink != 1:
        raise BadInput("That file has other hard links, and I only send files the bot wrote itself.")
    real = Path(os.path.realpath(current))
    if not real.is_relative_to(Path(os.path.realpath(root))):
        raise BadInput("That name leads outside this server's data folder.")
    return current


def resolve_file(root: Path, name: str) -> Path:
    """The file a user named, under ``root`` (the guild folder); never anything outside it."""
    parts = _check_name(name)
    if os.path.islink(root):
        raise BadInput("This server's data folder is a link; refusing to send files from it.")
    areas = [parts[0]] if len(parts) == 2 else list(FILE_AREAS)
    for area in areas:
        found = _safe_existing(root, area, parts[-1])
        if found is not None:
            return found
    raise NotFound(f"There is no file `{name}` here. `{COMMAND}getfile` with no name lists the files you can get.")


def list_files(root: Path) -> dict[str, list[tuple[str, int]]]:
    """The files users may ask for, by area: ``{area: [(name, bytes), ...]}`` (links skipped)."""
    out: dict[str, list[tuple[str, int]]] = {}
    for area in FILE_AREAS:
        folder = root / area
        if folder.is_symlink() or not folder.is_dir():
            continue
        entries = []
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if FILE_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                entries.append((entry.name, entry.stat(follow_symlinks=False).st_size))
        if entries:
            out[area] = entries
    return out


def snapshot_area(kind: str) -> str:
    """The file area a snapshot of ``kind`` lies in: an archive in ``archives``, the selection
    for training in ``snapshots``."""
    return "archives" if kind == "archive" else "snapshots"


def snapshot_file(root: Path, kind: str, file_name: str) -> Path:
    """Where a snapshot lies under a server's folder ``root`` (the core writes it, the worker reads it)."""
    return root / snapshot_area(kind) / file_name


def loss_curve_file(root: Path, job_id: int) -> Path:
    """A job's loss curve under a server's folder (the worker draws it, the core sends it)."""
    return root / "artifacts" / f"job-{job_id}-loss.png"


def area_dir(root: Path, area: str) -> Path:
    """The folder for one area of a guild, created if missing; refuses a link in its place."""
    if area not in FILE_AREAS:
        raise ValueError(area)
    folder = root / area
    folder.mkdir(parents=True, exist_ok=True)
    for p in (root, folder):
        if p.is_symlink():
            raise BadInput("This server's data folder holds a link where a folder belongs; refusing to write.")
    return folder
