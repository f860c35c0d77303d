"""Queries the core uses, each taking an open ``Session`` (the caller owns the transaction).

Every function that reads community data takes the guild's row ID and filters on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Select, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trainerbot.store.tables import (
    AuditEntry,
    Conversation,
    Correction,
    CorrectionStatus,
    Dataset,
    DatasetItem,
    FactEmbedding,
    Feedback,
    Guild,
    Job,
    JobEvent,
    Message,
    ModelVersion,
    Snapshot,
    TestRun,
)

PERSONA_KEY = "persona"  # in Guild.settings: the server's system instruction, set by a trainer

# A dataset's current items: not archived, and no later answer to their question taught.
CURRENT = (DatasetItem.archived_in.is_(None), DatasetItem.replaced_at.is_(None))
# What the bot treats as taught answers: current positive examples, 👍 votes aside (a vote
# on a model reply is a training signal, not a fact).
TAUGHT = (*CURRENT, DatasetItem.label == "positive", DatasetItem.source != "reaction")


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
        .where(DatasetItem.dataset_id == dataset_id, *CURRENT)
        .order_by(DatasetItem.id)
    )


def current_items(session: Session, dataset_id: int) -> Sequence[DatasetItem]:
    return session.scalars(current_items_query(dataset_id)).all()


def count_current(session: Session, dataset_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(DatasetItem)
            .where(DatasetItem.dataset_id == dataset_id, *CURRENT)
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


def active_version(session: Session, guild_id: int) -> ModelVersion | None:
    """The version that answers a server's chat, if one is active."""
    return session.scalar(select(ModelVersion).where(ModelVersion.guild_id == guild_id, ModelVersion.active.is_(True)))


def versions(session: Session, guild_id: int, *, newest_first: bool = False) -> list[ModelVersion]:
    """A server's model versions, oldest first (or newest first)."""
    order = ModelVersion.id.desc() if newest_first else ModelVersion.id
    return list(session.scalars(select(ModelVersion).where(ModelVersion.guild_id == guild_id).order_by(order)))


def next_version_name(session: Session, guild_id: int) -> str:
    """The name the server's next version gets ("v3"). Workers on other machines and the bot
    may register at the same moment: the guild's row, locked here until the session commits
    (PostgreSQL; SQLite writers are serialised anyway), makes "the next vN" one at a time."""
    session.execute(select(Guild.id).where(Guild.id == guild_id).with_for_update())
    n = session.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.guild_id == guild_id)) or 0
    return f"v{n + 1}"


def version_named(session: Session, guild_id: int, name: str) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.guild_id == guild_id, ModelVersion.name == name))


def recent_jobs(session: Session, guild_id: int, limit: int) -> list[Job]:
    """A server's latest ``limit`` training jobs, newest first."""
    return list(session.scalars(select(Job).where(Job.guild_id == guild_id).order_by(Job.id.desc()).limit(limit)))


def recent_test_runs(session: Session, guild_id: int, limit: int) -> list[TestRun]:
    """A server's latest ``limit`` test runs, newest first."""
    return list(session.scalars(select(TestRun).where(TestRun.guild_id == guild_id).order_by(TestRun.id.desc()).limit(limit)))


def job_events(session: Session, job_id: int, *, after: int = 0, limit: int | None = None) -> list[JobEvent]:
    """A job's events, oldest first (those after event ``after``; at most ``limit``)."""
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after).order_by(JobEvent.id)
    return list(session.scalars(query.limit(limit) if limit is not None else query))


def pending_corrections(guild_id: int) -> Select[Correction]:
    """A server's corrections waiting for review (a query: callers order, page and count it)."""
    return select(Correction).where(Correction.guild_id == guild_id, Correction.status == CorrectionStatus.PENDING)


def persona(guild: Guild) -> str | None:
    """The server's persona (its system instruction), or None for the shipped one."""
    value = (guild.settings or {}).get(PERSONA_KEY)
    return value if isinstance(value, str) and value else None


def conversation_id(session: Session, guild_id: int, channel_id: str) -> int | None:
    return session.scalar(select(Conversation.id).where(Conversation.guild_id == guild_id, Conversation.channel_id == channel_id))


def history(session: Session, conversation: int, limit: int, *, before: int | None = None) -> list[dict[str, str]]:
    """The latest ``limit`` turns of a conversation (before message ``before``, if given),
    oldest first, as the model reads them: what was taught about a reply stands in its place.

    - a reply with an approved correction speaks with the answer taught now for its question:
      the corrected one, or what a later revision made current (a revert, an edit);
    - a reply with a pending correction, or rated 👎 more than 👍, is taken out together with
      the question it answered: it is no longer the bot's word, and nothing stands in for it
      until a trainer approves an answer.

    Each turn is ``{"role", "content"}``, plus ``"name"`` (the speaker's display name) on a
    member's turn when it was stored."""
    if limit <= 0:
        return []
    query = select(Message).where(Message.conversation_id == conversation)
    if before is not None:
        query = query.where(Message.id < before)
    # Read a little past the limit: dropped pairs leave room for older turns.
    rows = list(reversed(session.scalars(query.order_by(Message.id.desc()).limit(limit + 20)).all()))
    replies = [m.id for m in rows if m.role == "assistant"]
    approved: dict[int, str] = {}
    asked: dict[int, str] = {}  # a corrected reply → the question its correction answers
    doubted: set[int] = set()
    if replies:
        for mid, status, corrected, key in session.execute(
            select(Correction.message_id, Correction.status, Correction.corrected, Correction.question_key)
            .where(Correction.message_id.in_(replies), Correction.status != CorrectionStatus.REJECTED)
            .order_by(Correction.id)
        ):
            if mid is None:
                continue
            if status == CorrectionStatus.APPROVED:
                approved[mid] = corrected  # the latest approved one wins
                if key is not None:
                    asked[mid] = key
            else:
                doubted.add(mid)
        # What is taught now stands in: a revert or an edit since the approval wins over it.
        keys = set(asked.values())
        if keys:
            now = {str(key): str(answer) for key, answer in session.execute(
                select(DatasetItem.question_key, DatasetItem.response).where(
                    DatasetItem.guild_id == rows[0].guild_id, DatasetItem.question_key.in_(keys), *TAUGHT
                ).order_by(DatasetItem.id))}
            approved |= {mid: now[key] for mid, key in asked.items() if key in now}
        votes = func.sum(case((Feedback.label == "negative", 1), (Feedback.label == "positive", -1), else_=0))
        doubted.update(m for m in session.scalars(
            select(Feedback.message_id).where(Feedback.message_id.in_(replies), Feedback.kind == "reaction")
            .group_by(Feedback.message_id).having(votes > 0)
        ) if m is not None)
    dropped = {m.id for m in rows if m.id in doubted and m.id not in approved}
    dropped |= {m.reply_to_id for m in rows if m.id in dropped and m.reply_to_id is not None}
    turns: list[dict[str, str]] = []
    for m in rows:
        if m.id in dropped:
            continue
        turn = {"role": m.role, "content": approved.get(m.id, m.content)}
        if m.role == "user" and m.author_name:
            turn["name"] = m.author_name
        turns.append(turn)
    return turns[-limit:]


def reply_history(session: Session, reply: Message) -> list[dict[str, str]]:
    """The history behind one of the bot's replies as a training row carries it: as long as
    what the model read then, with what was taught since in place (``history``), no names."""
    if not reply.context or reply.reply_to_id is None:
        return []
    turns = history(session, reply.conversation_id, len(reply.context), before=reply.reply_to_id)
    return [{"role": t["role"], "content": t["content"]} for t in turns]


def fact_vectors(session: Session, guild_id: int, model: str, shas: Sequence[str]) -> dict[str, bytes]:
    """The stored embeddings of these taught questions (by their text's SHA-256)."""
    out: dict[str, bytes] = {}
    for start in range(0, len(shas), 500):
        rows = session.execute(select(FactEmbedding.text_sha256, FactEmbedding.vector).where(
            FactEmbedding.guild_id == guild_id, FactEmbedding.model == model,
            FactEmbedding.text_sha256.in_(shas[start:start + 500])))
        out.update((sha, bytes(vector)) for sha, vector in rows)
    return out


def save_fact_vectors(session: Session, guild_id: int, model: str, vectors: dict[str, bytes]) -> None:
    """Store embeddings computed for taught questions; one another process stored meanwhile stays."""
    known = fact_vectors(session, guild_id, model, list(vectors))
    session.add_all(FactEmbedding(guild_id=guild_id, text_sha256=sha, model=model, vector=v)
                    for sha, v in vectors.items() if sha not in known)


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
            .where(DatasetItem.guild_id == guild_id, *CURRENT)
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


def audit(session: Session, guild_id: int, actor_id: str, action: str, target: str, detail: str | None = None) -> None:
    """Record a decision in the guild's audit log, in the caller's transaction (it lands with
    the decision, or not at all)."""
    session.add(AuditEntry(guild_id=guild_id, actor_id=actor_id[:64], action=action[:32], target=target[:200],
                           detail=detail[:300] if detail else None))
