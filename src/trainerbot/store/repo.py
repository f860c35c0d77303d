"""Queries the core uses, each taking an open ``Session`` (the caller owns the transaction).

Every function that reads community data takes the guild's row ID and filters on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trainerbot.store.models import Dataset, DatasetItem, Guild, Message, Snapshot


def find_guild(session: Session, platform_id: str) -> Guild | None:
    return session.scalar(select(Guild).where(Guild.platform_id == platform_id))


def ensure_guild(session: Session, platform_id: str, name: str = "") -> Guild:
    guild = find_guild(session, platform_id)
    if guild is not None:
        if name and guild.name != name:
            guild.name = name
        return guild
    try:
        with session.begin_nested():
            guild = Guild(platform_id=platform_id, name=name, settings={})
            session.add(guild)
    except IntegrityError:  # created meanwhile by another process (PostgreSQL)
        guild = session.scalars(select(Guild).where(Guild.platform_id == platform_id)).one()
    return guild


def find_dataset(session: Session, guild_id: int, name: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.guild_id == guild_id, Dataset.name == name))


def ensure_dataset(session: Session, guild_id: int, name: str) -> Dataset:
    dataset = find_dataset(session, guild_id, name)
    if dataset is None:
        try:
            with session.begin_nested():
                dataset = Dataset(guild_id=guild_id, name=name)
                session.add(dataset)
        except IntegrityError:
            dataset = find_dataset(session, guild_id, name)
            assert dataset is not None
    return dataset


def current_items_query(dataset_id: int) -> Select[DatasetItem]:
    return (
        select(DatasetItem)
        .where(DatasetItem.dataset_id == dataset_id, DatasetItem.archived_in.is_(None))
        .order_by(DatasetItem.id)
    )


def current_items(session: Session, dataset_id: int) -> Sequence[DatasetItem]:
    return session.scalars(current_items_query(dataset_id)).all()


def count_current(session: Session, dataset_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(DatasetItem)
            .where(DatasetItem.dataset_id == dataset_id, DatasetItem.archived_in.is_(None))
        )
        or 0
    )


def archive_items(session: Session, dataset_id: int, item_ids: Sequence[int], snapshot_id: int) -> None:
    for start in range(0, len(item_ids), 500):
        session.execute(
            update(DatasetItem).where(DatasetItem.id.in_(item_ids[start : start + 500])).values(archived_in=snapshot_id)
        )


def find_bot_reply(session: Session, guild_id: int, platform_message_id: str) -> Message | None:
    return session.scalar(
        select(Message).where(
            Message.guild_id == guild_id, Message.platform_message_id == platform_message_id, Message.role == "assistant"
        )
    )


def dataset_summaries(session: Session, guild_id: int) -> list[tuple[Dataset, int, int, int, int]]:
    """Each dataset with (current items, positive, negative, archives)."""
    counts = dict(
        (row[0], row[1:])
        for row in session.execute(
            select(
                DatasetItem.dataset_id,
                func.count(),
                func.count().filter(DatasetItem.label == "positive"),
                func.count().filter(DatasetItem.label == "negative"),
            )
            .where(DatasetItem.guild_id == guild_id, DatasetItem.archived_in.is_(None))
            .group_by(DatasetItem.dataset_id)
        )
    )
    archives = dict(
        session.execute(
            select(Snapshot.dataset_id, func.count())
            .where(Snapshot.guild_id == guild_id, Snapshot.kind == "archive")
            .group_by(Snapshot.dataset_id)
        ).all()
    )
    out = []
    for ds in session.scalars(select(Dataset).where(Dataset.guild_id == guild_id).order_by(Dataset.name)):
        total, pos, neg = counts.get(ds.id, (0, 0, 0))
        out.append((ds, total, pos or 0, neg or 0, archives.get(ds.id, 0)))
    return out


def as_utc(dt: datetime) -> datetime:
    """A stored time as an aware UTC one (SQLite hands them back without their zone)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def latest(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "—"
