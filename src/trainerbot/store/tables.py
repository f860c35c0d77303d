"""The store's tables, as SQLAlchemy 2 declarative classes.

Every row that belongs to a community carries ``guild_id``; queries in ``repo`` always
filter on it, which is how guilds stay isolated. Alembic migrations under
``migrations/`` create these tables; ``tests/store`` checks that the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only autoincrements INTEGER primary keys; BigInteger elsewhere.
IdType = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Guild(Base):
    __tablename__ = "guilds"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    platform_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # No foreign key: snapshots reference guilds, and SQLite cannot add a cyclic one later.
    selected_snapshot_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("guild_id", "channel_id"),)


class Message(Base):
    """A chat message: the user's prompt or the bot's reply (with the prompt and context behind it)."""

    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    platform_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    author_id: Mapped[str] = mapped_column(String(64))
    # The speaker's display name when it was said (mention-safe, bounded): who said what, for the model.
    author_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    role: Mapped[str] = mapped_column(String(16))  # "user" | "assistant"
    content: Mapped[str] = mapped_column(Text)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    context: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("guild_id", "platform_message_id"),)


class Feedback(Base):
    """Free-text feedback, or a 👍/👎 label one user put on one bot reply."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # "text" | "reaction"
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), nullable=True)
    label: Mapped[str | None] = mapped_column(String(16), nullable=True)  # positive | negative
    # What was wrong, given after a 👎 (optional): a key of ``core.corrections.REASONS``, and the
    # rater's own words for "other".
    reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason_note: Mapped[str | None] = mapped_column(String(200), nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # One reaction label per user per reply; text feedback has message_id NULL (NULLs never clash).
    __table_args__ = (UniqueConstraint("message_id", "user_id", "kind"),)


class JobStatus(StrEnum):
    """A training job's life: queued → running → succeeded | failed | cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class CorrectionStatus(StrEnum):
    """A correction waits for review (pending) until a trainer approves or rejects it, or
    approves another answer to the same question (superseded)."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"


class Correction(Base):
    __tablename__ = "corrections"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), index=True)
    # Indexed: every chat reply reads the corrections of the replies in its history.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), nullable=True,
                                                   index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str] = mapped_column(Text)
    original: Mapped[str] = mapped_column(Text)
    corrected: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=CorrectionStatus.PENDING.value)  # a CorrectionStatus
    source: Mapped[str] = mapped_column(String(200))  # message:<id> | test:<run id>
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # How many asked for the same change (duplicates merge into the first), and the review.
    supporters: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    reviewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    review_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # The question it answers, normalised and hashed (``store.keys.question_key``): proposals
    # for the same question, on any reply in the server, are one review item.
    question_key: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Who else asked for the same change (``supporters`` counts them with the author).
    supporter_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    superseded_by: Mapped[int | None] = mapped_column(ForeignKey("corrections.id", ondelete="SET NULL"), nullable=True)
    __table_args__ = (Index("ix_corrections_queue", "guild_id", "status", "question_key"),)


class TestRun(Base):
    """One ``test``: who ran it on which model, its summary, and its report file (artifacts)."""

    __tablename__ = "test_runs"
    __test__ = False  # not a pytest class
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(100))
    cases: Mapped[int] = mapped_column(Integer)
    wrong: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    report_file: Mapped[str] = mapped_column(String(200))
    handled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("guild_id", "name"),)


class DatasetItem(Base):
    """One example. ``rejected`` is set for corrections: the reply that was corrected.

    ``archived_in`` points at the archive snapshot that took the item; ``replaced_at`` is set
    when another answer to the same question (``question_key``) was taught after it (a
    ``Revision`` says which). Items with both NULL are the dataset's current contents
    (``repo.CURRENT``).
    """

    __tablename__ = "dataset_items"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"))
    prompt: Mapped[str] = mapped_column(Text)
    response: Mapped[str] = mapped_column(Text)
    rejected: Mapped[str | None] = mapped_column(Text, nullable=True)
    system: Mapped[str | None] = mapped_column(Text, nullable=True)
    history: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    label: Mapped[str] = mapped_column(String(16))  # positive | negative
    source: Mapped[str] = mapped_column(String(32))  # file | correction | reaction | message
    source_ref: Mapped[str] = mapped_column(String(300))
    author_id: Mapped[str] = mapped_column(String(64))
    correction_id: Mapped[int | None] = mapped_column(ForeignKey("corrections.id", ondelete="SET NULL"), nullable=True)
    feedback_id: Mapped[int | None] = mapped_column(ForeignKey("feedback.id", ondelete="SET NULL"), nullable=True)
    archived_in: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    question_key: Mapped[str | None] = mapped_column(String(32), nullable=True)  # store.keys.question_key(prompt)
    replaced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (
        Index("ix_dataset_items_current", "dataset_id", "archived_in"),
        Index("ix_dataset_items_question", "guild_id", "question_key"),
        # Covers chat's per-message check of the taught answers (``repo.TAUGHT``: count, newest).
        Index("ix_dataset_items_taught", "guild_id", "replaced_at", "archived_in", "label", "source"),
    )


class Revision(Base):
    """One change to what the bot treats as the taught answer to a question (in a server):
    an answer taught (imported, approved, edited, reverted to) or taken away (deleted).

    Numbered from 1 per question. ``answer`` is what became current (NULL: the question
    was left without an answer; also where ``forget`` removed its author's words, then
    ``forgotten`` is set). ``item_id`` is the example that carries it while it exists.
    """

    __tablename__ = "revisions"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"))
    question_key: Mapped[str] = mapped_column(String(32))
    number: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))  # import | correction | edit | delete | revert
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    rejected: Mapped[str | None] = mapped_column(Text, nullable=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_items.id", ondelete="SET NULL"), nullable=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True)
    source: Mapped[str] = mapped_column(String(300))  # correction #12 | facts.jsonl line 3 | revision 2 | example #7
    actor_id: Mapped[str] = mapped_column(String(64))  # who made the change
    author_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # whose words the answer is
    why: Mapped[str | None] = mapped_column(String(300), nullable=True)
    forgotten: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("guild_id", "question_key", "number"),)


class FactEmbedding(Base):
    """A taught question's sentence embedding (float32 bytes), computed once per distinct text
    and model, so finding facts by meaning embeds only the message."""

    __tablename__ = "fact_embeddings"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"))
    text_sha256: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    __table_args__ = (UniqueConstraint("guild_id", "text_sha256", "model"),)


class Snapshot(Base):
    """An immutable ``.tar.gz`` of a dataset: an archive, or the selection for training."""

    __tablename__ = "snapshots"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # archive | selection
    label: Mapped[str | None] = mapped_column(String(16), nullable=True)
    file_name: Mapped[str] = mapped_column(String(200))
    item_count: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """A training job. What was submitted (``recipe``, ``snapshot_id``, ``backend``), what the
    queue did (``status``, ``worker_id``, ``lease_until``, ``requeued``), where its backend
    runs it (``backend_job``, ``backend_base``), and what the adapters track (the progress
    message, ``announced``)."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value, index=True)  # a JobStatus
    recipe: Mapped[str] = mapped_column(String(16))
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id", ondelete="SET NULL"), nullable=True)
    requested_by: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(16), default="local", server_default="local")  # local | openai | ray
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    channel_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    progress_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    requeued: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # once, after its worker died
    backend_job: Mapped[str | None] = mapped_column(String(200), nullable=True)  # its ID there: ftjob-…, a Ray job
    backend_base: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the model the backend trained
    announced: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # its end was posted


class WorkerBeat(Base):
    """A training worker's heartbeat: written every few seconds while it runs, removed when
    it stops cleanly. ``jobs`` and ``/healthz`` read the newest one to tell whether any worker
    is alive (on one machine or many sharing the store)."""

    __tablename__ = "worker_beats"
    worker_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the job it is running, if any


class JobEvent(Base):
    __tablename__ = "job_events"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # progress | status | log
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    learning_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    tokens_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    eta_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    backend: Mapped[str] = mapped_column(String(16), default="local")
    path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    base: Mapped[str | None] = mapped_column(String(200), nullable=True)
    recipe: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id", ondelete="SET NULL"), nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("guild_id", "name"),)


class DashboardLogin(Base):
    """A one-time login link for the web dashboard: its token's hash (the token itself is only
    in the link), bound to one guild and one user, valid for minutes, used once."""

    __tablename__ = "dashboard_logins"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(String(100), default="")
    trainer: Mapped[bool] = mapped_column(Boolean, default=False)  # may decide (approve, cancel, delete)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DashboardSession(Base):
    """A signed-in dashboard browser: its cookie's hash, the guild and user it belongs to, the
    CSRF token its forms carry; revoked by ``dashboard logout`` or when it expires."""

    __tablename__ = "dashboard_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    user_name: Mapped[str] = mapped_column(String(100), default="")
    trainer: Mapped[bool] = mapped_column(Boolean, default=False)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    """One decision by a trainer (or a member's own ``forget``): who, when, what, on what.
    Written in the same transaction as the decision; never edited. A ``forget`` leaves an
    entry that it happened, with counts, never the forgotten words."""

    __tablename__ = "audit_entries"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"))
    actor_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))  # approve | reject | edit | revert | delete | model use | persona | …
    target: Mapped[str] = mapped_column(String(200))  # "correction #12", "v3", "job #4", "example #9", "`facts`"
    detail: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (Index("ix_audit_entries_guild", "guild_id", "id"),)
