"""``trainerbot migrate``: copy a store into another database — typically the SQLite file of
one machine into PostgreSQL when a community outgrows it.

The target is migrated to the current schema and must be empty. Tables are copied in
foreign-key order, in batches, keeping every row's ID (so links, files named after job IDs
and Discord message IDs all stay valid); PostgreSQL's ID sequences are then moved past the
copied rows. Both sides are fingerprinted — row counts and a SHA-256 over every row's
values, normalised so that the same data hashes the same on either database — and the copy
is refused as failed unless the fingerprints match.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, text

from trainerbot.errors import ConfigError
from trainerbot.store.db import Store
from trainerbot.store.tables import Base

BATCH = 1000


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    return value


def fingerprint(store: Store) -> dict[str, tuple[int, str]]:
    """Per table: (rows, SHA-256 of the rows in ID order)."""
    out: dict[str, tuple[int, str]] = {}
    with store.read() as s:
        for table in Base.metadata.sorted_tables:
            digest, count = hashlib.sha256(), 0
            for row in s.execute(select(table).order_by(*table.primary_key.columns)).mappings():
                digest.update(json.dumps({k: _normal(v) for k, v in row.items()}, sort_keys=True, default=str).encode())
                count += 1
            out[table.name] = (count, digest.hexdigest())
    return out


def copy_store(source: Store, target: Store) -> dict[str, tuple[int, str]]:
    """Copy every row of ``source`` into the empty ``target``; returns the verified fingerprint."""
    with target.read() as s:
        busy = [t.name for t in Base.metadata.sorted_tables if s.scalar(select(func.count()).select_from(t))]
    if busy:
        raise ConfigError(f"The target database is not empty (it has {', '.join(busy[:3])}); migrate into a new, empty database.")
    with source.read() as src, target.session() as dst:
        for table in Base.metadata.sorted_tables:
            rows = src.execute(select(table).order_by(*table.primary_key.columns)).mappings()
            while batch := rows.fetchmany(BATCH):
                dst.execute(insert(table), [dict(r) for r in batch])
        if target.engine.dialect.name == "postgresql":
            for table in Base.metadata.sorted_tables:
                if "id" in table.columns:
                    dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                     f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"))
    before, after = fingerprint(source), fingerprint(target)
    if before != after:
        differ = [name for name in before if before[name] != after.get(name)]
        raise ConfigError(f"The copy does not match the source in {', '.join(differ)}; the target should be dropped.")
    return after
