"""The review queue and consent: ``review``, ``approve``, ``reject`` and ``forget``.

Members' corrections and the wrong answers a test found wait as ``pending`` corrections;
``review`` shows trainers the oldest question they answer (then replies the community
flagged 👎 and nobody corrected yet), one at a time. Every pending answer to the same
question — on the same reply, or the same question asked anywhere in the server — is one
review item: the proposals side by side, each with its supporters and its author's record,
with the reply they correct and the answer taught now. Approving one closes the others as
superseded by it. Only an approved correction becomes a training example and a taught fact.
``mydata`` gives a member a file of everything stored about them in the server
(``core/mydata.py``); ``forget`` deletes one person's examples, ratings, corrections and
chat messages from the store, so no later snapshot has them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import CursorResult, Delete, case, delete, func, or_, select
from sqlalchemy.orm import Session

from trainerbot.config import Settings
from trainerbot.core import mydata
from trainerbot.core.base import Group
from trainerbot.core.permissions import is_trainer
from trainerbot.core.text import quote_user_text, row_number
from trainerbot.core.types import Caller, Decision, OutFile, Reply, ReviewItem
from trainerbot.datasets import items as dataset_items
from trainerbot.datasets import revisions
from trainerbot.datasets.records import Example
from trainerbot.errors import BadInput, NotAllowed, NotFound
from trainerbot.evaluation.scores import normalise_answer
from trainerbot.fileio import atomic_write_bytes
from trainerbot.plural import count
from trainerbot.store import repo
from trainerbot.store.keys import question_key
from trainerbot.store.tables import Correction, CorrectionStatus, DatasetItem, FactEmbedding, Feedback, Message, utcnow

APPROVE_EMOJI, REJECT_EMOJI = "✅", "❌"
FORGOTTEN = {"examples": ("example", "examples"), "ratings and feedback": ("rating or feedback", "ratings and feedback"),
             "corrections": ("correction", "corrections"), "chat messages": ("chat message", "chat messages"),
             "revisions": ("revision of a taught answer (the words taken out)",
                           "revisions of taught answers (the words taken out)")}
MYDATA = {"messages": ("chat message", "chat messages"), "ratings": ("rating", "ratings"),
          "feedback": ("feedback note", "feedback notes"), "corrections": ("correction", "corrections"),
          "examples": ("example", "examples"), "revisions": ("revision of a taught answer", "revisions of taught answers"),
          "dashboard_sessions": ("dashboard sign-in", "dashboard sign-ins")}
USER = re.compile(r"<@!?([A-Za-z0-9_-]{1,64})>|([A-Za-z0-9_-]{1,64})")


def pending_count(s: Any, guild_id: int, user_id: str) -> int:
    return s.scalar(select(func.count()).select_from(Correction).where(
        Correction.guild_id == guild_id, Correction.user_id == user_id, Correction.status == CorrectionStatus.PENDING)) or 0


# What makes a proposal wait for a trainer whatever its support: a link, a mention or an invite.
LINKISH = re.compile(r"https?://|\bwww\.|discord(?:app)?\.(?:gg|com/invite)/|<[@#][!&]?\d+>|@everyone|@here", re.I)
AUTO = "auto-approval"  # the reviewer of a correction its supporters approved
PROBATION_AFTER = 5  # a member whose last this many corrections were all rejected …
PROBATION_EVERY_S = 600  # … may send one correction in this many seconds


def carries_link(text: str) -> bool:
    return LINKISH.search(text) is not None


def on_probation(s: Any, guild_id: int, user_id: str) -> bool:
    """Whether the member's last ``PROBATION_AFTER`` decided corrections here were all
    rejected (pending ones wait to be decided; an approval ends it)."""
    last = list(s.scalars(select(Correction.status).where(
        Correction.guild_id == guild_id, Correction.user_id == user_id, Correction.status != CorrectionStatus.PENDING)
        .order_by(Correction.id.desc()).limit(PROBATION_AFTER)))
    return len(last) == PROBATION_AFTER and all(status == CorrectionStatus.REJECTED for status in last)


def auto_approve(s: Any, settings: Settings, corr: Correction) -> bool:
    """Approve a pending ``corr`` once ``settings.auto_approve_supporters`` different members
    (its author among them) support it, none of them with more corrections rejected than
    approved here, and it carries no link, mention or invite. Recorded in the audit log."""
    need = settings.auto_approve_supporters
    people = {corr.user_id, *(corr.supporter_ids or [])}
    if not need or corr.status != CorrectionStatus.PENDING or len(people) < need or carries_link(corr.corrected):
        return False
    record = records(s, corr.guild_id, people)
    if any(r.get(CorrectionStatus.REJECTED, 0) > r.get(CorrectionStatus.APPROVED, 0) for r in record.values()):
        return False
    others = approve_correction(s, settings.feedback_dataset, corr, AUTO)
    repo.audit(s, corr.guild_id, AUTO, "approve", f"correction #{corr.id}",
               "; ".join(filter(None, (f"{len(people)} members supported it", closed_words(others)))))
    return True


def same_correction(s: Any, guild_id: int, prompt: str, corrected: str, message_id: int | None = None) -> Correction | None:
    """A pending or approved correction that teaches the same answer to the same reply (or prompt)."""
    query = select(Correction).where(Correction.guild_id == guild_id,
                                     Correction.status.in_((CorrectionStatus.PENDING, CorrectionStatus.APPROVED)))
    query = (
        query.where(Correction.message_id == message_id) if message_id is not None else query.where(Correction.prompt == prompt)
    )
    wanted = normalise_answer(corrected)
    return next((c for c in s.scalars(query.order_by(Correction.id)) if normalise_answer(c.corrected) == wanted), None)


def add_correction_example(s: Any, dataset_name: str, corr: Correction) -> None:
    """An approved correction becomes a DPO pair (chosen = the correction) in the feedback dataset."""
    msg = s.get(Message, corr.message_id) if corr.message_id is not None else None
    ds = repo.ensure_dataset(s, corr.guild_id, dataset_name)
    ex = Example(
        prompt=corr.prompt,
        response=corr.corrected,
        rejected=corr.original or None,
        label="positive",
        history=tuple(repo.reply_history(s, msg)) if msg is not None else (),
        source_ref=corr.source,
    )
    added, _ = dataset_items.add_examples(s, ds, [ex], source="correction", author_id=corr.user_id, correction_id=corr.id)
    revisions.teach(s, added, action="correction", actor_id=corr.reviewed_by or corr.user_id)


def proposals(s: Any, corr: Correction) -> list[Correction]:
    """The pending corrections that answer the same question as ``corr`` (on its reply, or
    the same question anywhere in its server), ``corr`` among them, oldest first."""
    same = [Correction.question_key == corr.question_key] if corr.question_key else []
    if corr.message_id is not None:
        same.append(Correction.message_id == corr.message_id)
    if not same:
        return [corr]
    return list(s.scalars(select(Correction).where(Correction.guild_id == corr.guild_id,
                                                   Correction.status == CorrectionStatus.PENDING, or_(*same))
                          .order_by(Correction.id)))


def approve_correction(s: Any, dataset_name: str, corr: Correction, reviewer: str) -> list[int]:
    """Approve ``corr`` (a DPO pair in the feedback dataset, and the new revision of its
    question's taught answer) and close the other pending answers to its question as
    superseded by it; their IDs."""
    others = [c for c in proposals(s, corr) if c.id != corr.id]
    now = utcnow()
    corr.status, corr.reviewed_by, corr.reviewed_at = CorrectionStatus.APPROVED, reviewer, now
    for other in others:
        other.status, other.superseded_by = CorrectionStatus.SUPERSEDED, corr.id
        other.reviewed_by, other.reviewed_at = reviewer, now
    add_correction_example(s, dataset_name, corr)
    return [c.id for c in others]


def closed_words(others: list[int]) -> str:
    """An approval's audit detail: "closed #2, #3 as superseded" ("" when none were)."""
    return f"closed {', '.join(f'#{o}' for o in others)} as superseded" if others else ""


def superseded_words(cid: int, others: list[int]) -> str:
    if not others:
        return ""
    listed = ", ".join(f"#{o}" for o in others)
    return (f" {listed} ({'another answer' if len(others) == 1 else 'other answers'} to the same question) "
            f"{'was' if len(others) == 1 else 'were'} closed as superseded by #{cid}.")


def records(s: Any, guild_id: int, user_ids: set[str]) -> dict[str, dict[str, int]]:
    """Each author's record in the server: their corrections approved, rejected and superseded."""
    out: dict[str, dict[str, int]] = {u: {} for u in user_ids}
    decided = (CorrectionStatus.APPROVED, CorrectionStatus.REJECTED, CorrectionStatus.SUPERSEDED)
    for user_id, status, n in s.execute(
            select(Correction.user_id, Correction.status, func.count())
            .where(Correction.guild_id == guild_id, Correction.user_id.in_(user_ids), Correction.status.in_(decided))
            .group_by(Correction.user_id, Correction.status)):
        out[user_id][status] = int(n)
    return out


def record_words(record: dict[str, int]) -> str:
    shown = [f"{record[k]} {k}" for k in (CorrectionStatus.APPROVED, CorrectionStatus.REJECTED, CorrectionStatus.SUPERSEDED)
             if record.get(k)]
    return ", ".join(shown) if shown else "first correction"


def taught_now(s: Any, guild_id: int, corr: Correction) -> str | None:
    """The answer taught now for ``corr``'s question (its current revision), if one is."""
    item = s.scalar(select(DatasetItem.response).where(
        DatasetItem.guild_id == guild_id, DatasetItem.question_key == (corr.question_key or question_key(corr.prompt)),
        *repo.TAUGHT).order_by(DatasetItem.id.desc()).limit(1))
    return str(item) if item is not None else None


def flagged_replies(s: Session, guild_id: int, *, limit: int, unsafe_only: bool = False) -> list[tuple[Message, int, int]]:
    """Bot replies with more 👎 than 👍 and no correction on the way: (reply, 👎, 👍) — those
    someone called rude or unsafe first, then the oldest first."""
    neg = func.sum(case((Feedback.label == "negative", 1), else_=0))
    pos = func.sum(case((Feedback.label == "positive", 1), else_=0))
    unsafe = func.sum(case((Feedback.reason == "unsafe", 1), else_=0))
    corrected = (
        select(Correction.id)
        .where(Correction.message_id == Message.id, Correction.status != CorrectionStatus.REJECTED)
        .exists()
    )
    rows = s.execute(
        select(Message, neg, pos)
        .join(Feedback, Feedback.message_id == Message.id)
        .where(Message.guild_id == guild_id, Message.role == "assistant", Feedback.kind == "reaction", ~corrected)
        .group_by(Message.id)
        .having(neg > pos, *([unsafe > 0] if unsafe_only else []))
        .order_by((unsafe > 0).desc(), Message.id)
        .limit(limit)
    ).all()
    return [(row[0], int(row[1]), int(row[2])) for row in rows]


def rating_reasons(s: Session, message_ids: list[int]) -> dict[int, str]:
    """What the 👎 of each reply said was wrong, in words: "2 wrong fact, 1 too long"
    (and the raters' own words for "other"); replies without reasons are left out."""
    from trainerbot.core.feedback import REASONS

    said: dict[int, dict[str, int]] = {}
    notes: dict[int, list[str]] = {}
    for mid, reason, note in s.execute(select(Feedback.message_id, Feedback.reason, Feedback.reason_note).where(
            Feedback.message_id.in_(message_ids), Feedback.kind == "reaction", Feedback.label == "negative",
            Feedback.reason.is_not(None))):
        if mid is None or reason is None:
            continue
        counts = said.setdefault(mid, {})
        counts[reason] = counts.get(reason, 0) + 1
        if note:
            notes.setdefault(mid, []).append(note)
    out = {}
    for mid, counts in said.items():
        words = ", ".join(f"{n} {REASONS.get(r, r)}" for r, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        if notes.get(mid):
            words += " (“" + "”, “".join(quote_user_text(n, 120) for n in notes[mid][:3]) + "”)"
        out[mid] = words
    return out


def _correction_id(raw: str | int) -> int:
    return row_number(raw, "Give the number of a correction, as `review` shows it (e.g. `approve 12`).")


def _label(corr: Correction) -> str:
    """A proposal in one line of at most 100 characters: its number, supporters, answer."""
    people = f" · {corr.supporters} asked" if corr.supporters > 1 else ""
    text = " ".join(corr.corrected.split())
    head = f"#{corr.id}{people}: "
    return head + (text if len(head) + len(text) <= 100 else text[: 99 - len(head)] + "…")


def _origin(corr: Correction) -> str:
    kind, _, ref = corr.source.partition(":")
    return {"message": f"a reply of mine (`{ref}`)", "test": f"test #{ref}"}.get(kind, corr.source)


class ReviewCommands(Group):
    # ----------------------------------------------------------------- review
    async def next(self, caller: Caller, after: int | None = None, chosen: int | None = None) -> Reply:
        """The oldest question with pending corrections (or, with ``after``, the next one after
        that correction's question, wrapping round), then the flagged replies. ``chosen``: show
        that correction's question with it picked (Discord's select menu)."""
        self._require_trainer(caller, "review corrections")
        return await self._blocking(self._next_review, caller, after, chosen)

    def _next_review(self, caller: Caller, after: int | None = None, chosen: int | None = None) -> Reply:
        with self.store.read() as s:
            guild = self._find_guild(s, caller)
            if guild is None:
                return Reply.text("Nothing waits for review.", data={"kind": None})
            unsafe = flagged_replies(s, guild.id, limit=1, unsafe_only=True) if chosen is None and after is None else []
            if unsafe:  # a reply someone called rude or unsafe comes before everything else
                return self._show_flagged(s, *unsafe[0])
            pending = repo.pending_corrections(guild.id)
            corr = s.get(Correction, chosen) if chosen is not None else None
            if corr is not None and (corr.guild_id != guild.id or corr.status != CorrectionStatus.PENDING):
                corr = None
            if corr is None and after is not None:
                previous = s.get(Correction, after)
                key = previous.question_key if previous is not None and previous.guild_id == guild.id else None
                later = pending.where(Correction.id > after)
                if key is not None:  # past the question just shown, whatever its proposals' numbers
                    later = later.where(or_(Correction.question_key.is_(None), Correction.question_key != key))
                corr = s.scalar(later.order_by(Correction.id).limit(1))
            corr = corr or s.scalar(pending.order_by(Correction.id).limit(1))
            if corr is not None:
                waiting = s.scalar(select(func.count()).select_from(pending.subquery())) or 0
                return self._show_question(s, guild.id, corr, waiting, chosen=corr.id if chosen is not None else None)
            flagged = flagged_replies(s, guild.id, limit=1)
            if flagged:
                return self._show_flagged(s, *flagged[0])
        return Reply.text("Nothing waits for review. 🎉", data={"kind": None})

    def _show_flagged(self, s: Session, msg: Message, neg: int, pos: int) -> Reply:
        p = self.settings.prefix
        why = rating_reasons(s, [msg.id]).get(msg.id)
        text = (
            f"🚩 **Flagged reply `{msg.platform_message_id or msg.id}`** — 👎 {neg} / 👍 {pos}, not corrected yet\n"
            + (f"**What was wrong:** {why}\n" if why else "")
            + f"**Prompt:** {quote_user_text(msg.prompt or '', 500)}\n"
            f"**Bot said:** {quote_user_text(msg.content, 700)}\n"
            f"Teach the right answer with `{p}correct {msg.platform_message_id or msg.id} <answer>`; "
            "a trainer's 👍 clears the flag if the reply was fine."
        )
        return Reply.text(
            text,
            data={"kind": "flagged", "message_id": msg.platform_message_id},
            review=ReviewItem("flagged", message_id=msg.platform_message_id),
        )

    def _show_question(self, s: Session, guild_id: int, corr: Correction, waiting: int, chosen: int | None) -> Reply:
        """One review item: the pending answers to ``corr``'s question. One alone reads as
        before; several read as a conflict, each proposal with its supporters and its author's
        record, the one with the most supporters (then the oldest) picked unless ``chosen``."""
        p = self.settings.prefix
        group = proposals(s, corr)
        if chosen is None:
            corr = max(group, key=lambda c: (c.supporters, -c.id))
        taught = taught_now(s, guild_id, corr)
        known = f"**Taught now:** {quote_user_text(taught, 500)}\n" if taught is not None else ""
        linked = "⚠️ it carries a link, a mention or an invite: only a trainer can approve it.\n"
        data = {"kind": "correction", "correction_id": corr.id, "waiting": waiting, "proposals": [c.id for c in group]}
        item = ReviewItem("correction", correction_id=corr.id, proposals=tuple(c.id for c in group),
                          labels=tuple(_label(c) for c in group))
        if len(group) == 1:
            people = f" · asked by {corr.supporters}" if corr.supporters > 1 else ""
            text = (
                f"📝 **Correction #{corr.id}** — 1 of {waiting} waiting · by <@{corr.user_id}> · from "
                f"{_origin(corr)}{people}\n"
                f"**Prompt:** {quote_user_text(corr.prompt, 500)}\n"
                f"**Bot said:** {quote_user_text(corr.original, 500) or '—'}\n{known}"
                f"**Better:** {quote_user_text(corr.corrected, 700)}\n"
                + (linked if carries_link(corr.corrected) else "")
                + f"`{p}approve {corr.id}` or `{p}reject {corr.id}`."
            )
            return Reply.text(text, data=data, review=item)
        record = records(s, guild_id, {c.user_id for c in group})
        lines = [
            f"⚖️ **{len(group)} answers proposed for one question** — {count(waiting, 'correction')} waiting · "
            f"from {_origin(corr)}",
            f"**Prompt:** {quote_user_text(corr.prompt, 400)}",
            f"**Bot said:** {quote_user_text(corr.original, 400) or '—'}",
        ]
        if taught is not None:
            lines.append(known.rstrip("\n"))
        budget = max(80, 1200 // len(group))
        for c in group:
            mark = "▶" if c.id == corr.id else "•"
            people = f" · asked by {c.supporters}" if c.supporters > 1 else ""
            warn = " ⚠️ link/mention" if carries_link(c.corrected) else ""
            lines.append(f"{mark} **#{c.id}** by <@{c.user_id}> ({record_words(record[c.user_id])}){people}{warn}: "
                         f"{quote_user_text(c.corrected, budget)}")
        lines.append(f"Pick one: `{p}approve <number>` teaches it and closes the others as superseded by it; "
                     f"`{p}reject <number>` drops one.")
        return Reply.text("\n".join(lines), data=data, review=item)

    async def approve(self, caller: Caller, correction_id: str | int, corrected: str | None = None) -> Reply:
        """Approve a pending correction; ``corrected`` first replaces its text (an edit)."""
        if corrected is not None:
            corrected = corrected.strip()
            if not corrected:
                raise BadInput("The corrected answer is empty; write the answer I should give.")
            if len(corrected) > self.settings.max_field_chars:
                raise BadInput(
                    f"A correction is limited to {self.settings.max_field_chars} characters; yours has {len(corrected)}."
                )
        return await self._decide(caller, _correction_id(correction_id), CorrectionStatus.APPROVED, corrected)

    async def reject(self, caller: Caller, correction_id: str | int) -> Reply:
        return await self._decide(caller, _correction_id(correction_id), CorrectionStatus.REJECTED)

    async def _decide(self, caller: Caller, cid: int, status: str, corrected: str | None = None) -> Reply:
        self._require_trainer(caller, "review corrections")
        already = False
        others: list[int] = []

        def decide() -> str:
            nonlocal already, others
            with self.store.session() as s:
                guild = self._guild(s, caller)
                # Locked for the decision (PostgreSQL; SQLite writes are serialised already):
                # two trainers pressing Approve at once decide it once.
                corr = s.get(Correction, cid, with_for_update=True)
                if corr is None or corr.guild_id != guild.id:
                    raise NotFound(f"There is no correction #{cid} here.")
                if corr.status != CorrectionStatus.PENDING:
                    already = True
                    by = (" by its supporters" if corr.reviewed_by == AUTO else
                          f" by <@{corr.reviewed_by}>" if corr.reviewed_by else "")
                    how = f"superseded by #{corr.superseded_by}" if corr.superseded_by else corr.status
                    return f"Correction #{cid} was already {how}{by}; nothing changed."
                if corrected is not None:
                    corr.corrected = corrected
                if status == CorrectionStatus.APPROVED:
                    others = approve_correction(s, self.settings.feedback_dataset, corr, caller.user_id)
                    edited = "approved the edited answer" if corrected is not None else ""
                    repo.audit(s, guild.id, caller.user_id, "approve" if corrected is None else "edit", f"correction #{cid}",
                               "; ".join(filter(None, (edited, closed_words(others)))) or None)
                    return (
                        f"✅ Correction #{cid} approved: it answers at once from now on and is in "
                        f"`{self.settings.feedback_dataset}` for the next training." + superseded_words(cid, others)
                    )
                corr.status, corr.reviewed_by, corr.reviewed_at = status, caller.user_id, utcnow()
                repo.audit(s, guild.id, caller.user_id, "reject", f"correction #{cid}")
                return f"❌ Correction #{cid} rejected; it will not be used."

        text = await self._blocking(decide)
        if already:
            return Reply.text(
                text, data={"correction_id": cid, "status": None, "already": True}, decision=Decision(cid, None, already=True)
            )
        return Reply.text(
            text + f" `{self.settings.prefix}review` shows the next.",
            data={"correction_id": cid, "status": status, "superseded": others},
            decision=Decision(cid, status, superseded=tuple(others)),
        )

    async def correction_text(self, caller: Caller, correction_id: int) -> str:
        """A pending correction's answer (to edit it before approving); ``NotFound`` otherwise."""
        self._require_trainer(caller, "review corrections")

        def load() -> str:
            with self.store.read() as s:
                guild = self._find_guild(s, caller)
                corr = s.get(Correction, correction_id)
                if guild is None or corr is None or corr.guild_id != guild.id:
                    raise NotFound(f"There is no correction #{correction_id} here.")
                return corr.corrected

        return await self._blocking(load)

    async def reaction(self, caller: Caller, platform_message_id: str, emoji: str) -> Reply | None:
        """✅/❌ on a review message: approve or reject its correction. None when it is not one."""
        if emoji not in (APPROVE_EMOJI, REJECT_EMOJI):
            return None

        def find() -> int | None:
            with self.store.read() as s:
                guild = self._find_guild(s, caller)
                if guild is None:
                    return None
                return s.scalar(
                    select(Correction.id).where(
                        Correction.guild_id == guild.id, Correction.review_message_id == platform_message_id[:64]
                    )
                )

        cid = await self._blocking(find)
        if cid is None:
            return None
        return await self._decide(caller, cid, CorrectionStatus.APPROVED if emoji == APPROVE_EMOJI else CorrectionStatus.REJECTED)

    # ---------------------------------------------------------------- consent
    async def forget(self, caller: Caller, who: str) -> Reply:
        who = (who or "").strip()
        if who.lower() == "me":
            user_id = caller.user_id
        else:
            m = USER.fullmatch(who)
            if m is None:
                raise BadInput(f"Usage: `{self.settings.prefix}forget me`, or (trainers) `{self.settings.prefix}forget @user`.")
            user_id = m.group(1) or m.group(2)
            if user_id != caller.user_id and not is_trainer(caller, self.settings.trainer_role):
                raise NotAllowed("Only trainers can make me forget someone else; `forget me` forgets you.")
        self._limit(caller, "forget")
        counts = await self._blocking(self._forget, caller, user_id)
        total = sum(counts.values())
        subject = "you" if user_id == caller.user_id else f"<@{user_id}>"
        if not total:
            return Reply.text(f"I hold nothing from {subject} here.", data=counts)
        parts = ", ".join(count(n, *FORGOTTEN[what]) for what, n in counts.items() if n)
        return Reply.text(
            f"🧹 Forgot everything from {subject} here: {parts}. Later snapshots and trainings won't have it "
            "(archives written before keep their copy until deleted).",
            data=counts,
        )

    async def mydata(self, caller: Caller) -> Reply:
        """Everything stored about the caller in this server (a DM: in their DMs with the bot),
        as one JSON file: only their own rows, never another member's (``core.mydata``)."""
        self._limit(caller, "mydata")
        path, counts = await self._blocking(self._mydata, caller)
        if path is None:
            return Reply.text("I hold nothing about you here.", data=counts)
        held = ", ".join(count(n, *MYDATA[what]) for what, n in counts.items() if n)
        return Reply.text(
            f"📦 Everything I hold about you here: {held}. Only you get this file; "
            f"`{self.settings.prefix}forget me` deletes it all.",
            files=(OutFile(name="mydata.json", path=path),), data=counts,
        )

    def _mydata(self, caller: Caller) -> tuple[Path | None, dict[str, int]]:
        with self.store.read() as s:
            guild = self._find_guild(s, caller)
            if guild is None:
                return None, {}
            data = mydata.collect(s, guild, caller.user_id)
        counts = {what: len(data[what]) for what in MYDATA}
        if not any(counts.values()):
            return None, counts
        target = mydata.file_for(self._root(caller), caller.user_id)
        atomic_write_bytes(target, mydata.encode(data, self.settings.max_send_bytes), mode=0o600)
        return target, counts

    def _forget(self, caller: Caller, user_id: str) -> dict[str, int]:
        mydata.file_for(self._root(caller), user_id).unlink(missing_ok=True)  # their last `mydata` file, too
        with self.store.session() as s:
            guild = self._find_guild(s, caller)
            if guild is None:
                return {}
            g = guild.id
            # Embeddings are made from questions, some of them this person's: all are dropped
            # and made again from what remains on the next message.
            s.execute(delete(FactEmbedding).where(FactEmbedding.guild_id == g))
            counts = {
                "examples": _deleted(s, delete(DatasetItem).where(DatasetItem.guild_id == g, DatasetItem.author_id == user_id)),
                "ratings and feedback": _deleted(s, delete(Feedback).where(Feedback.guild_id == g, Feedback.user_id == user_id)),
                "corrections": _deleted(s, delete(Correction).where(Correction.guild_id == g, Correction.user_id == user_id)),
                "chat messages": _deleted(
                    s, delete(Message).where(Message.guild_id == g, Message.role == "user", Message.author_id == user_id)
                ),
                "revisions": revisions.forget(s, g, user_id),
            }
            # That a forget happened, and how much went: never what was said.
            repo.audit(s, g, caller.user_id, "forget", "their own data" if user_id == caller.user_id else f"<@{user_id}>'s data",
                       ", ".join(count(n, *FORGOTTEN[what]) for what, n in counts.items() if n) or "nothing was held")
            return counts


def _deleted(s: Session, statement: Delete) -> int:
    """Run a DELETE; how many rows it removed."""
    result = s.execute(statement)
    return int(result.rowcount or 0) if isinstance(result, CursorResult) else 0
