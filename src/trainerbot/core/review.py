"""The review queue and consent: ``review``, ``approve``, ``reject`` and ``forget``.

Members' corrections and the wrong answers a test found wait as ``pending`` corrections;
``review`` shows trainers the oldest one (then replies the community flagged 👎 and nobody
corrected yet), one at a time. Only an approved correction becomes a training example and a
taught fact. ``forget`` deletes one person's examples, ratings, corrections and chat
messages from the store, so no later snapshot has them.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import CursorResult, Delete, case, delete, func, select
from sqlalchemy.orm import Session

from trainerbot.core.base import Group
from trainerbot.core.permissions import is_trainer
from trainerbot.core.text import quote_user_text, row_number
from trainerbot.core.types import Caller, Decision, Reply, ReviewItem
from trainerbot.datasets import items as dataset_items
from trainerbot.datasets.records import Example
from trainerbot.errors import BadInput, NotAllowed, NotFound
from trainerbot.evaluation.metrics import normalise_answer
from trainerbot.plural import count
from trainerbot.store import repo
from trainerbot.store.models import Correction, CorrectionStatus, DatasetItem, FactEmbedding, Feedback, Message, utcnow

APPROVE_EMOJI, REJECT_EMOJI = "✅", "❌"
FORGOTTEN = {"examples": ("example", "examples"), "ratings and feedback": ("rating or feedback", "ratings and feedback"),
             "corrections": ("correction", "corrections"), "chat messages": ("chat message", "chat messages")}
USER = re.compile(r"<@!?([A-Za-z0-9_-]{1,64})>|([A-Za-z0-9_-]{1,64})")


def pending_count(s: Any, guild_id: int, user_id: str) -> int:
    return s.scalar(select(func.count()).select_from(Correction).where(
        Correction.guild_id == guild_id, Correction.user_id == user_id, Correction.status == CorrectionStatus.PENDING)) or 0


def same_correction(s: Any, guild_id: int, prompt: str, corrected: str, message_id: int | None = None) -> Correction | None:
    """A pending or approved correction that teaches the same answer to the same reply (or prompt)."""
    query = select(Correction).where(Correction.guild_id == guild_id, Correction.status != CorrectionStatus.REJECTED)
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
    dataset_items.add_examples(s, ds, [ex], source="correction", author_id=corr.user_id, correction_id=corr.id)


def flagged_replies(s: Session, guild_id: int, *, limit: int) -> list[tuple[Message, int, int]]:
    """Bot replies with more 👎 than 👍 and no correction on the way, oldest first: (reply, 👎, 👍)."""
    neg = func.sum(case((Feedback.label == "negative", 1), else_=0))
    pos = func.sum(case((Feedback.label == "positive", 1), else_=0))
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
        .having(neg > pos)
        .order_by(Message.id)
        .limit(limit)
    ).all()
    return [(row[0], int(row[1]), int(row[2])) for row in rows]


def _correction_id(raw: str | int) -> int:
    return row_number(raw, "Give the number of a correction, as `review` shows it (e.g. `approve 12`).")


def _origin(corr: Correction) -> str:
    kind, _, ref = corr.source.partition(":")
    return {"message": f"a reply of mine (`{ref}`)", "test": f"test #{ref}"}.get(kind, corr.source)


class ReviewCommands(Group):
    # ----------------------------------------------------------------- review
    async def next(self, caller: Caller, after: int | None = None) -> Reply:
        """The oldest pending correction (or, with ``after``, the next one after that ID,
        wrapping round), then the flagged replies."""
        self._require_trainer(caller, "review corrections")
        return await self._blocking(self._next_review, caller, after)

    def _next_review(self, caller: Caller, after: int | None = None) -> Reply:
        p = self.settings.prefix
        with self.store.read() as s:
            guild = self._find_guild(s, caller)
            if guild is None:
                return Reply.text("Nothing waits for review.", data={"kind": None})
            pending = select(Correction).where(Correction.guild_id == guild.id, Correction.status == CorrectionStatus.PENDING)
            waiting = s.scalar(select(func.count()).select_from(pending.subquery())) or 0
            corr = s.scalar(pending.where(Correction.id > after).order_by(Correction.id).limit(1)) if after is not None else None
            corr = corr or s.scalar(pending.order_by(Correction.id).limit(1))
            if corr is not None:
                people = f" · asked by {corr.supporters}" if corr.supporters > 1 else ""
                text = (
                    f"📝 **Correction #{corr.id}** — 1 of {waiting} waiting · by <@{corr.user_id}> · from "
                    f"{_origin(corr)}{people}\n"
                    f"**Prompt:** {quote_user_text(corr.prompt, 500)}\n"
                    f"**Bot said:** {quote_user_text(corr.original, 500) or '—'}\n"
                    f"**Better:** {quote_user_text(corr.corrected, 700)}\n"
                    f"`{p}approve {corr.id}` or `{p}reject {corr.id}`."
                )
                return Reply.text(
                    text,
                    data={"kind": "correction", "correction_id": corr.id, "waiting": waiting},
                    review=ReviewItem("correction", correction_id=corr.id),
                )
            flagged = flagged_replies(s, guild.id, limit=1)
            if flagged:
                msg, neg, pos = flagged[0]
                text = (
                    f"🚩 **Flagged reply `{msg.platform_message_id or msg.id}`** — 👎 {neg} / 👍 {pos}, not corrected yet\n"
                    f"**Prompt:** {quote_user_text(msg.prompt or '', 500)}\n"
                    f"**Bot said:** {quote_user_text(msg.content, 700)}\n"
                    f"Teach the right answer with `{p}correct {msg.platform_message_id or msg.id} <answer>`; "
                    "a trainer's 👍 clears the flag if the reply was fine."
                )
                return Reply.text(
                    text,
                    data={"kind": "flagged", "message_id": msg.platform_message_id},
                    review=ReviewItem("flagged", message_id=msg.platform_message_id),
                )
        return Reply.text("Nothing waits for review. 🎉", data={"kind": None})

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

        def decide() -> str:
            nonlocal already
            with self.store.session() as s:
                guild = self._guild(s, caller)
                # Locked for the decision (PostgreSQL; SQLite writes are serialised already):
                # two trainers pressing Approve at once decide it once.
                corr = s.get(Correction, cid, with_for_update=True)
                if corr is None or corr.guild_id != guild.id:
                    raise NotFound(f"There is no correction #{cid} here.")
                if corr.status != CorrectionStatus.PENDING:
                    already = True
                    by = f" by <@{corr.reviewed_by}>" if corr.reviewed_by else ""
                    return f"Correction #{cid} was already {corr.status}{by}; nothing changed."
                if corrected is not None:
                    corr.corrected = corrected
                corr.status, corr.reviewed_by, corr.reviewed_at = status, caller.user_id, utcnow()
                if status == CorrectionStatus.APPROVED:
                    add_correction_example(s, self.settings.feedback_dataset, corr)
                    return (
                        f"✅ Correction #{cid} approved: it answers at once from now on and is in "
                        f"`{self.settings.feedback_dataset}` for the next training."
                    )
                return f"❌ Correction #{cid} rejected; it will not be used."

        text = await self._blocking(decide)
        if already:
            return Reply.text(
                text, data={"correction_id": cid, "status": None, "already": True}, decision=Decision(cid, None, already=True)
            )
        return Reply.text(
            text + f" `{self.settings.prefix}review` shows the next.",
            data={"correction_id": cid, "status": status},
            decision=Decision(cid, status),
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

    def _forget(self, caller: Caller, user_id: str) -> dict[str, int]:
        with self.store.session() as s:
            guild = self._find_guild(s, caller)
            if guild is None:
                return {}
            g = guild.id
            # Embeddings are made from questions, some of them this person's: all are dropped
            # and made again from what remains on the next message.
            s.execute(delete(FactEmbedding).where(FactEmbedding.guild_id == g))
            return {
                "examples": _deleted(s, delete(DatasetItem).where(DatasetItem.guild_id == g, DatasetItem.author_id == user_id)),
                "ratings and feedback": _deleted(s, delete(Feedback).where(Feedback.guild_id == g, Feedback.user_id == user_id)),
                "corrections": _deleted(s, delete(Correction).where(Correction.guild_id == g, Correction.user_id == user_id)),
                "chat messages": _deleted(
                    s, delete(Message).where(Message.guild_id == g, Message.role == "user", Message.author_id == user_id)
                ),
            }


def _deleted(s: Session, statement: Delete) -> int:
    """Run a DELETE; how many rows it removed."""
    result = s.execute(statement)
    return int(result.rowcount or 0) if isinstance(result, CursorResult) else 0
