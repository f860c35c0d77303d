"""The web dashboard's side of the core: ``dashboard`` (a one-time login link), ``dashboard
logout``, the sessions the links turn into, and the read-only views its pages show.

A link carries a random token (only its SHA-256 is stored), bound to the asker's server and
user, valid for ``LINK_MINUTES`` and used once. Opening it creates a session: a random ID in
an HttpOnly cookie (only its hash is stored), a CSRF token for the session's forms, and the
asker's standing when they asked: a trainer's session may decide (approve, reject, cancel,
switch models, delete examples), anyone else's may look at what they may look at on Discord.
Every view reads the session's own server only. Decisions go through the same commands as
Discord and the console (``core.review.approve`` …), so the dashboard holds no rules of its own.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import String, delete, desc, func, or_, select, update
from sqlalchemy.orm import Session

from trainerbot.config import DashboardSettings
from trainerbot.core.base import Basis, Group
from trainerbot.core.corrections import flagged_replies, rating_reasons
from trainerbot.core.permissions import is_trainer
from trainerbot.core.types import Caller, Reply
from trainerbot.errors import COMMAND, BadInput, NotAllowed, NotAvailable, NotFound
from trainerbot.evaluation.cases import read_report
from trainerbot.store import repo
from trainerbot.store.tables import (
    Correction,
    DashboardLogin,
    DashboardSession,
    Dataset,
    DatasetItem,
    Feedback,
    Guild,
    Job,
    Snapshot,
    TestRun,
    utcnow,
)

LINK_MINUTES = 10
PAGE_SIZE = 50
MAX_PAGE = 10_000


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class WebSession:
    """A signed-in browser: whose, in which server, and whether it may decide."""

    guild_platform_id: str
    guild_name: str
    user_id: str
    user_name: str
    trainer: bool
    csrf: str

    def caller(self, trainer_role: str) -> Caller:
        """The session as a command's caller: its server, its user, a trainer's role if it had one."""
        return Caller(guild_id=self.guild_platform_id, guild_name=self.guild_name, user_id=self.user_id,
                      user_name=self.user_name, channel_id="dashboard",
                      roles=frozenset({trainer_role}) if self.trainer else frozenset())


@dataclass(frozen=True)
class JobRow:
    id: int
    recipe: str
    status: str
    progress: float
    requested_by: str
    created_at: str
    error: str | None


@dataclass(frozen=True)
class EventRow:
    id: int
    kind: str
    step: int | None
    total_steps: int | None
    loss: float | None
    eta_s: float | None
    message: str | None


@dataclass(frozen=True)
class VersionRow:
    name: str
    backend: str
    recipe: str
    base: str
    job_id: int | None
    active: bool
    chrf: float | None
    exact_match: float | None
    general: float | None
    promoted: bool | None


@dataclass(frozen=True)
class CorrectionRow:
    id: int
    user_id: str
    prompt: str
    original: str
    corrected: str
    source: str
    supporters: int
    conflicts: tuple[int, ...] = ()  # the other pending answers to the same question (approving one supersedes them)


@dataclass(frozen=True)
class DatasetRow:
    name: str
    current: int
    positive: int
    negative: int
    archives: int
    authors: int = 0
    sources: tuple[tuple[str, int], ...] = ()  # ("file", 120), ("correction", 4) …


@dataclass(frozen=True)
class ItemRow:
    id: int
    dataset: str
    label: str
    prompt: str
    response: str
    author_id: str
    source: str
    archived: bool
    replaced: bool = False  # a later answer to its question was taught (``datasets.revisions``)


@dataclass(frozen=True)
class TestRunRow:
    id: int
    model_version: str
    user_id: str
    cases: int
    wrong: int
    metrics: dict[str, object]
    handled: bool
    created_at: str
    report_file: str


@dataclass(frozen=True)
class FlaggedRow:
    message_id: str
    prompt: str
    content: str
    negative: int
    positive: int
    reasons: str = ""  # what the 👎 said was wrong, in words


@dataclass(frozen=True)
class FeedbackRow:
    id: int
    user_id: str
    text: str
    created_at: str


@dataclass(frozen=True)
class Page:
    """One page of a long list: the rows, how many there are in all, which page this is."""

    rows: tuple[ItemRow, ...]
    total: int
    page: int
    pages: int


class DashboardCommands(Group):
    def __init__(self, basis: Basis, *, dashboard: DashboardSettings) -> None:
        super().__init__(basis)
        self.dashboard = dashboard

    # ------------------------------------------------------------- login
    def _require_on(self) -> None:
        if self.dashboard.dashboard_port is None:
            raise NotAvailable("The web dashboard is off here; an operator turns it on with TRAINERBOT_DASHBOARD_PORT.")

    def base_url(self) -> str:
        s = self.dashboard
        return (s.dashboard_url or f"http://{s.dashboard_host}:{s.dashboard_port}").rstrip("/")

    async def link(self, caller: Caller) -> Reply:
        """``dashboard``: a one-time login link for the caller, in this server."""
        self._require_on()
        if caller.is_dm:
            raise BadInput("Ask for a dashboard link in a server: the dashboard shows one server.")
        self._limit(caller, "dashboard")
        token = secrets.token_urlsafe(32)
        trainer = is_trainer(caller, self.trainer_role)

        def save() -> None:
            with self.store.session() as s:
                # Spent links and ended sessions are kept a day (for the log's sake), then go.
                stale = utcnow() - timedelta(days=1)
                s.execute(delete(DashboardLogin).where(DashboardLogin.expires_at < stale))
                ended = or_(DashboardSession.expires_at < stale, DashboardSession.revoked_at < stale)
                s.execute(delete(DashboardSession).where(ended))
                guild = self._guild(s, caller)
                s.add(DashboardLogin(token_hash=_hash(token), guild_id=guild.id, user_id=caller.user_id,
                                     user_name=(caller.user_name or "")[:100], trainer=trainer,
                                     expires_at=utcnow() + timedelta(minutes=LINK_MINUTES)))
        await self._blocking(save)
        what = "review, decide and follow training" if trainer else "look at jobs, models, datasets and tests (trainers decide)"
        return Reply.text(f"🔗 Your dashboard link ({what}): {self.base_url()}/login/{token}\n"
                          f"It works once, for {LINK_MINUTES} minutes, for you only. Don't share it; "
                          f"`{COMMAND}dashboard logout` signs you out everywhere.")

    async def logout(self, caller: Caller) -> Reply:
        """``dashboard logout``: end every dashboard session (and unused link) of the caller's in this server."""
        def revoke() -> int:
            with self.store.session() as s:
                guild = self._find_guild(s, caller)
                if guild is None:
                    return 0
                now = utcnow()
                mine = (DashboardLogin.guild_id == guild.id, DashboardLogin.user_id == caller.user_id)
                s.execute(update(DashboardLogin).where(*mine, DashboardLogin.used_at.is_(None)).values(used_at=now))
                result = s.execute(update(DashboardSession).where(
                    DashboardSession.guild_id == guild.id, DashboardSession.user_id == caller.user_id,
                    DashboardSession.revoked_at.is_(None), DashboardSession.expires_at > now).values(revoked_at=now))
                return int(getattr(result, "rowcount", 0) or 0)
        n = await self._blocking(revoke)
        if not n:
            return Reply.text("You had no dashboard session open here; any unused link is void now.")
        return Reply.text(f"Signed out of the dashboard ({n} session{'s' if n != 1 else ''} ended).")

    async def redeem(self, token: str) -> tuple[str, WebSession]:
        """Turn a login link's token into a new session: (the session's cookie value, the
        session). ``NotFound`` for an unknown, used or expired token — the same answer for all."""
        self._require_on()
        refused = NotFound("That login link is not valid: it was used already, or it expired. "
                           "Ask for a new one with `dashboard`.")
        if not (20 <= len(token) <= 100):
            raise refused

        def claim() -> tuple[str, WebSession]:
            with self.store.session() as s:
                login = s.get(DashboardLogin, _hash(token), with_for_update=True)
                now = utcnow()
                if login is None or login.used_at is not None or repo.as_utc(login.expires_at) <= now:
                    raise refused
                login.used_at = now
                guild = s.get(Guild, login.guild_id)
                assert guild is not None  # the login row goes with its guild (foreign key)
                sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
                s.add(DashboardSession(id_hash=_hash(sid), guild_id=login.guild_id, user_id=login.user_id,
                                       user_name=login.user_name, trainer=login.trainer, csrf=csrf,
                                       expires_at=now + timedelta(hours=self.dashboard.dashboard_session_hours)))
                return sid, WebSession(guild.platform_id, guild.name, login.user_id, login.user_name, login.trainer, csrf)
        return await self._blocking(claim)

    async def end_session(self, sid: str) -> None:
        """Sign one browser out (its own "Sign out" button)."""
        def revoke() -> None:
            with self.store.session() as s:
                row = s.get(DashboardSession, _hash(sid))
                if row is not None and row.revoked_at is None:
                    row.revoked_at = utcnow()
        await self._blocking(revoke)

    async def session(self, sid: str) -> WebSession | None:
        """The live session with this cookie value, or None (unknown, revoked, expired)."""
        if not (20 <= len(sid) <= 100):
            return None

        def load() -> WebSession | None:
            with self.store.read() as s:
                row = s.get(DashboardSession, _hash(sid))
                if row is None or row.revoked_at is not None or repo.as_utc(row.expires_at) <= utcnow():
                    return None
                guild = s.get(Guild, row.guild_id)
                if guild is None:
                    return None
                return WebSession(guild.platform_id, guild.name, row.user_id, row.user_name, row.trainer, row.csrf)
        return await self._blocking(load)

    # ------------------------------------------------------------- views
    async def jobs(self, caller: Caller, limit: int = PAGE_SIZE) -> list[JobRow]:
        def load(s: Session, gid: int) -> list[JobRow]:
            return [_job_row(j) for j in repo.recent_jobs(s, gid, limit)]
        return await self._in_guild(caller, [], load)

    async def job(self, caller: Caller, job_id: int, after_event: int = 0) -> tuple[JobRow, list[EventRow]]:
        """One job and its events after ``after_event`` (the page's live updates ask for the new ones)."""
        def load() -> tuple[JobRow, list[EventRow]]:
            with self.store.read() as s:
                guild = self._find_guild(s, caller)
                job = s.get(Job, job_id)
                if guild is None or job is None or job.guild_id != guild.id:
                    raise NotFound(f"There is no job #{job_id} here.")
                events = repo.job_events(s, job_id, after=after_event, limit=5000)
                return _job_row(job), [EventRow(e.id, e.kind, e.step, e.total_steps, e.loss, e.eta_s, e.message) for e in events]
        return await self._blocking(load)

    async def versions(self, caller: Caller) -> list[VersionRow]:
        def load(s: Session, gid: int) -> list[VersionRow]:
            out = []
            for v in repo.versions(s, gid):
                held = (v.metrics or {}).get("heldout") or {}
                out.append(VersionRow(v.name, v.backend, v.recipe, v.base or "", v.job_id, v.active, _num(held.get("chrf")),
                                      _num(held.get("exact_match")), _num((v.metrics or {}).get("general")),
                                      (v.metrics or {}).get("promoted")))
            return out
        return await self._in_guild(caller, [], load)

    async def pending(self, caller: Caller, limit: int = 200) -> list[CorrectionRow]:
        """The corrections waiting for review, by question (oldest first), the answers to one
        question together (trainers only, as ``review``)."""
        self._require_trainer(caller, "review corrections")

        def load(s: Session, gid: int) -> list[CorrectionRow]:
            waiting = repo.pending_corrections(gid)
            question = func.coalesce(Correction.question_key, func.cast(Correction.id, String))
            first = func.min(Correction.id).over(partition_by=question)
            rows = [c for c, _ in s.execute(waiting.add_columns(first).order_by(first, Correction.id).limit(limit))]
            keys = {c.question_key for c in rows if c.question_key}
            asked: dict[str, list[int]] = {}
            others = waiting.with_only_columns(Correction.id, Correction.question_key).where(Correction.question_key.in_(keys))
            for cid, key in s.execute(others.order_by(Correction.id)) if keys else ():
                asked.setdefault(str(key), []).append(cid)
            return [CorrectionRow(c.id, c.user_id, c.prompt, c.original, c.corrected, c.source, c.supporters,
                                  tuple(o for o in asked.get(c.question_key or "", []) if o != c.id)) for c in rows]
        return await self._in_guild(caller, [], load)

    async def flagged(self, caller: Caller, limit: int = 100) -> list[FlaggedRow]:
        """Replies the community flagged 👎 that nobody corrected yet (trainers only, as ``review``)."""
        self._require_trainer(caller, "review corrections")

        def load(s: Session, gid: int) -> list[FlaggedRow]:
            flagged = flagged_replies(s, gid, limit=limit)
            why = rating_reasons(s, [m.id for m, _, _ in flagged])
            return [FlaggedRow(m.platform_message_id or str(m.id), m.prompt or "", m.content, neg, pos, why.get(m.id, ""))
                    for m, neg, pos in flagged]
        return await self._in_guild(caller, [], load)

    async def datasets(self, caller: Caller) -> list[DatasetRow]:
        def load(s: Session, gid: int) -> list[DatasetRow]:
            summaries = repo.dataset_summaries(s, gid)
            current = (DatasetItem.guild_id == gid, *repo.CURRENT)
            authors = {int(ds_id): int(n) for ds_id, n in s.execute(
                select(DatasetItem.dataset_id, func.count(func.distinct(DatasetItem.author_id)))
                .where(*current).group_by(DatasetItem.dataset_id))}
            sources: dict[int, list[tuple[str, int]]] = {}
            for ds_id, source, n in s.execute(select(DatasetItem.dataset_id, DatasetItem.source, func.count())
                                              .where(*current).group_by(DatasetItem.dataset_id, DatasetItem.source)):
                sources.setdefault(int(ds_id), []).append((str(source), int(n)))
            return [DatasetRow(ds.name, cur, pos, neg, arch, authors.get(ds.id, 0), tuple(sorted(sources.get(ds.id, []))))
                    for ds, cur, pos, neg, arch in summaries]
        return await self._in_guild(caller, [], load)

    async def items(self, caller: Caller, dataset: str | None = None, query: str = "", page: int = 1) -> Page:
        """Examples, newest first, ``PAGE_SIZE`` a page; ``query`` searches prompts and answers."""
        query = query.strip()[:200]
        page = max(1, min(page, MAX_PAGE))

        def load(s: Session, gid: int) -> Page:
            where = [DatasetItem.guild_id == gid]
            if dataset:
                where.append(Dataset.name == dataset)
            if query:
                like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                where.append(or_(DatasetItem.prompt.ilike(like, escape="\\"), DatasetItem.response.ilike(like, escape="\\")))
            joined = select(DatasetItem, Dataset.name).join(Dataset, Dataset.id == DatasetItem.dataset_id).where(*where)
            total = s.scalar(select(func.count()).select_from(joined.subquery())) or 0
            rows = s.execute(joined.order_by(desc(DatasetItem.id)).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
            items = tuple(ItemRow(i.id, name, i.label, i.prompt, i.response, i.author_id, i.source, i.archived_in is not None,
                                  i.replaced_at is not None)
                          for i, name in rows)
            return Page(items, total, page, max(1, -(-total // PAGE_SIZE)))
        return await self._in_guild(caller, Page((), 0, 1, 1), load)

    async def archives(self, caller: Caller) -> list[tuple[str, str, int]]:
        """(dataset, archive file, examples) for every archive here (trainers only, as ``getfile``)."""
        self._require_trainer(caller, "download archives")

        def load(s: Session, gid: int) -> list[tuple[str, str, int]]:
            rows = s.execute(select(Dataset.name, Snapshot.file_name, Snapshot.item_count)
                             .join(Dataset, Dataset.id == Snapshot.dataset_id)
                             .where(Snapshot.guild_id == gid, Snapshot.kind == "archive")
                             .order_by(desc(Snapshot.id))).all()
            return [(str(a), str(b), int(c)) for a, b, c in rows]
        return await self._in_guild(caller, [], load)

    async def test_runs(self, caller: Caller, limit: int = PAGE_SIZE) -> list[TestRunRow]:
        def load(s: Session, gid: int) -> list[TestRunRow]:
            return [_run_row(r) for r in repo.recent_test_runs(s, gid, limit)]
        return await self._in_guild(caller, [], load)

    async def test_report(self, caller: Caller, run_id: int) -> tuple[TestRunRow, list[dict[str, Any]]]:
        """One test run and its report's rows (prediction against expected)."""
        def load() -> TestRunRow:
            with self.store.read() as s:
                guild = self._find_guild(s, caller)
                r = s.get(TestRun, run_id)
                if guild is None or r is None or r.guild_id != guild.id:
                    raise NotFound(f"There is no test #{run_id} here.")
                return _run_row(r)
        run = await self._blocking(load)
        rows = await self._blocking(read_report, self._root(caller), run.report_file)
        return run, rows

    async def feedback(self, caller: Caller, limit: int = 200) -> list[FeedbackRow]:
        """Text feedback, newest first (trainers only: it is left for them)."""
        self._require_trainer(caller, "read feedback")

        def load(s: Session, gid: int) -> list[FeedbackRow]:
            rows = s.scalars(select(Feedback).where(Feedback.guild_id == gid, Feedback.kind == "text")
                             .order_by(desc(Feedback.id)).limit(limit))
            return [FeedbackRow(f.id, f.user_id, f.text or "", repo.latest(f.created_at)) for f in rows]
        return await self._in_guild(caller, [], load)

    def require_decider(self, caller: Caller) -> None:
        """Trainers decide; a member's session only looks."""
        if not is_trainer(caller, self.trainer_role):
            raise NotAllowed("Only trainers can decide here; your dashboard session can look, not change.")


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _run_row(run: TestRun) -> TestRunRow:
    return TestRunRow(run.id, run.model_version, run.user_id, run.cases, run.wrong, dict(run.metrics or {}), run.handled,
                      repo.latest(run.created_at), run.report_file)


def _job_row(job: Job) -> JobRow:
    return JobRow(job.id, job.recipe, str(job.status), job.progress, job.requested_by, repo.latest(job.created_at), job.error)
