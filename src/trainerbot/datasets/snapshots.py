"""Immutable dataset snapshots: a ``.tar.gz`` holding ``manifest.json`` and ``items.jsonl``.

The manifest records the counts and the SHA-256 of ``items.jsonl``; the archive is
written under a temporary name and renamed into place read-only, so it is either whole
or absent. ``read_snapshot`` takes back only those two members, as regular files within
size caps, and checks the hash — it never extracts anything to disk, so an archive with
``..`` entries, links, devices or a decompression bomb is refused, not followed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainerbot.datasets.records import Example
from trainerbot.errors import BadInput
from trainerbot.fileio import atomic_writer

FORMAT_VERSION = 1
MEMBERS = ("manifest.json", "items.jsonl")
MAX_MEMBER_BYTES = 1024 * 1024 * 1024
MAX_MANIFEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SnapshotInfo:
    item_count: int
    sha256: str  # of items.jsonl
    manifest: dict[str, Any]


def example_to_json(ex: Example) -> dict[str, Any]:
    row = asdict(ex)
    row["history"] = list(ex.history)
    row.update(row.pop("extra"))
    return row


def example_from_json(row: dict[str, Any]) -> Example:
    known = {"prompt", "response", "label", "rejected", "system", "history", "source_ref"}
    return Example(
        prompt=row["prompt"], response=row["response"], label=row["label"], rejected=row.get("rejected"),
        system=row.get("system"), history=tuple(row.get("history") or ()), source_ref=row.get("source_ref", ""),
        extra={k: v for k, v in row.items() if k not in known},
    )


def write_snapshot(target: Path, examples: list[Example], meta: dict[str, Any]) -> SnapshotInfo:
    """Write the snapshot atomically (read-only when done) and return its counts and hash."""
    items = "".join(json.dumps(example_to_json(ex), ensure_ascii=False, sort_keys=True) + "\n" for ex in examples).encode()
    digest = hashlib.sha256(items).hexdigest()
    manifest = {
        **meta,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": {
            "total": len(examples),
            "positive": sum(ex.label == "positive" for ex in examples),
            "negative": sum(ex.label == "negative" for ex in examples),
            "corrections": sum(ex.rejected is not None for ex in examples),
        },
        "files": {"items.jsonl": {"sha256": digest, "bytes": len(items)}},
    }
    manifest_bytes = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode()
    mtime = int(datetime.now(UTC).timestamp())
    with atomic_writer(target, mode=0o444) as fh:
        with (
            gzip.GzipFile(fileobj=fh, mode="wb", mtime=mtime) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for name, payload in (("manifest.json", manifest_bytes), ("items.jsonl", items)):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(payload), mtime, 0o444
                tar.addfile(info, io.BytesIO(payload))
    return SnapshotInfo(item_count=len(examples), sha256=digest, manifest=manifest)


def read_snapshot(path: Path) -> tuple[dict[str, Any], list[Example]]:
    """The manifest and examples of a snapshot, after checking its shape and hash."""
    payloads: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                if member.name not in MEMBERS or member.name in payloads:
                    raise BadInput(f"Snapshot `{path.name}` holds an unexpected entry `{member.name[:60]}`.")
                if not member.isreg():
                    raise BadInput(f"Snapshot `{path.name}`: `{member.name}` is not a regular file.")
                cap = MAX_MANIFEST_BYTES if member.name == "manifest.json" else MAX_MEMBER_BYTES
                if member.size > cap:
                    raise BadInput(f"Snapshot `{path.name}`: `{member.name}` is too large.")
                fh = tar.extractfile(member)
                assert fh is not None
                data = fh.read(cap + 1)
                if len(data) != member.size:
                    raise BadInput(f"Snapshot `{path.name}` is truncated.")
                payloads[member.name] = data
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as exc:
        raise BadInput(f"Snapshot `{path.name}` is not a readable archive ({type(exc).__name__}).") from None
    if set(payloads) != set(MEMBERS):
        raise BadInput(f"Snapshot `{path.name}` is missing {', '.join(sorted(set(MEMBERS) - set(payloads)))}.")
    try:
        manifest = json.loads(payloads["manifest.json"])
        expected = manifest["files"]["items.jsonl"]["sha256"]
    except (ValueError, KeyError, TypeError):
        raise BadInput(f"Snapshot `{path.name}` has a broken manifest.") from None
    if hashlib.sha256(payloads["items.jsonl"]).hexdigest() != expected:
        raise BadInput(f"Snapshot `{path.name}` fails its checksum.")
    examples = [example_from_json(json.loads(line)) for line in payloads["items.jsonl"].decode().splitlines() if line]
    return manifest, examples
