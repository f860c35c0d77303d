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

from sqlalchemy import CursorResult, Delete, delete, func, or_, select
from sqlalchemy.orm import Session

from trainerbot.config import LimitsSettings, TeachingSettings
from trainerbot.core import mydata
from trainerbot.core.base import Basis, Group
from trainerbot.core.corrections import (
    AUTO,
    approve_correction,
    carries_link,
    closed_words,
    flagged_replies,
    proposals,
    rating_reasons,
    record_words,
    records,
    superseded_words,
    taught_now,
)
from trainerbot.core.permissions import is_trainer
from trainerbot.core.text import quote_user_text, row_number
from trainerbot.core.types import Caller, Decision, OutFile, Reply, ReviewItem
from trainerbot.datasets import revisions
from trainerbot.errors import COMMAND, BadInput, NotAllowed, NotFound
from trainerbot.fileio import atomic_write_bytes
from trainerbot.plural import count
from trainerbot.store import repo
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
    def __init__(self, basis: Basis, *, teaching: TeachingSettings, limits: LimitsSettings) -> None:
        super().__init__(basis)
        self.teaching, self.limits = teaching, limits

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
        why = rating_reasons(s, [msg.id]).get(msg.id)
        text = (
            f"🚩 **Flagged reply `{msg.platform_message_id or msg.id}`** — 👎 {neg} / 👍 {pos}, not corrected yet\n"
            + (f"**What was wrong:** {why}\n" if why else "")
            + f"**Prompt:** {quote_user_text(msg.prompt or '', 500)}\n"
            f"**Bot said:** {quote_user_text(msg.content, 700)}\n"
            f"Teach the right answer with `{COMMAND}correct {msg.platform_message_id or msg.id} <answer>`; "
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
                + f"`{COMMAND}approve {corr.id}` or `{COMMAND}reject {corr.id}`."
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
        lines.append(f"Pick one: `{COMMAND}approve <number>` teaches it and closes the others as superseded by it; "
                     f"`{COMMAND}reject <number>` drops one.")
        return Reply.text("\n".join(lines), data=data, review=item)

    async def approve(self, caller: Caller, correction_id: str | int, corrected: str | None = None) -> Reply:
        """Approve a pending correction; ``corrected`` first replaces its text (an edit)."""
        if corrected is not None:
            corrected = corrected.strip()
            if not corrected:
                raise BadInput("The corrected answer is empty; write the answer I should give.")
            if len(corrected) > self.limits.max_field_chars:
                raise BadInput(
                    f"A correction is limited to {self.limits.max_field_chars} characters; yours has {len(corrected)}."
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
                    others = approve_correction(s, self.teaching.feedback_dataset, corr, caller.user_id)
                    edited = "approved the edited answer" if corrected is not None else ""
                    repo.audit(s, guild.id, caller.user_id, "approve" if corrected is None else "edit", f"correction #{cid}",
                               "; ".join(filter(None, (edited, closed_words(others)))) or None)
                    return (
                        f"✅ Correction #{cid} approved: it answers at once from now on and is in "
                        f"`{self.teaching.feedback_dataset}` for the next training." + superseded_words(cid, others)
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
            text + f" `{COMMAND}review` shows the next.",
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
                raise BadInput(f"Usage: `{COMMAND}forget me`, or (trainers) `{COMMAND}forget @user`.")
            user_id = m.group(1) or m.group(2)
            if user_id != caller.user_id and not is_trainer(caller, self.trainer_role):
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
            f"`{COMMAND}forget me` deletes it all.",
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
        atomic_write_bytes(target, mydata.encode(data, self.limits.max_send_bytes), mode=0o600)
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
