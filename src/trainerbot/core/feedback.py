"""Teaching by everyone: ``feedback``, ``correct``, 👍/👎 reactions.

Every bot reply is stored with its prompt and context (``Delivery.record_exchange``), so a
correction or a reaction can later be turned into a training example. Reactions and
approved corrections become examples in the guild's feedback dataset (a setting,
``feedback`` by default), where ``archive``, ``select_dataset`` and ``export`` treat them
like any other data. A trainer's correction is approved at once; anyone else's waits as
``pending`` for a trainer's review.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from trainerbot.config import LimitsSettings, TeachingSettings
from trainerbot.core.base import Basis, Group
from trainerbot.core.corrections import (
    PROBATION_AFTER,
    PROBATION_EVERY_S,
    REASONS,
    approve_correction,
    auto_approve,
    closed_words,
    on_probation,
    pending_count,
    same_correction,
)
from trainerbot.core.ingest import Event, Ingest
from trainerbot.core.limits import RateLimiter
from trainerbot.core.permissions import is_trainer
from trainerbot.core.text import MESSAGE_ID, read_message_id
from trainerbot.core.types import Caller, Reply
from trainerbot.datasets.records import Label
from trainerbot.errors import COMMAND, BadInput, Busy, NotFound
from trainerbot.ops import metrics
from trainerbot.store import repo
from trainerbot.store.keys import question_key
from trainerbot.store.tables import Correction, CorrectionStatus, Feedback, Message

MAX_FEEDBACK_CHARS = 2000
REACTIONS: dict[str, Label] = {"👍": "positive", "👎": "negative"}
# Skin-tone variants and the text forms some clients send.
for _tone in ("🏻", "🏼", "🏽", "🏾", "🏿"):
    REACTIONS["👍" + _tone] = "positive"
    REACTIONS["👎" + _tone] = "negative"
REACTIONS.update({"+1": "positive", "-1": "negative", "thumbsup": "positive", "thumbsdown": "negative"})
# What was wrong with a reply rated 👎: key -> words. "unsafe" goes to the top of the review queue.
_SAID = {"wrong fact": "wrong", "wrong": "wrong", "false": "wrong", "incorrect": "wrong", "outdated": "outdated",
         "out of date": "outdated", "old": "outdated", "rude or unsafe": "unsafe", "rude": "unsafe", "unsafe": "unsafe",
         "offensive": "unsafe", "off-topic": "off_topic", "off topic": "off_topic", "too long": "too_long",
         "long": "too_long", "other": "other", **{k: k for k in REASONS}}
MAX_REASON_CHARS = 200


def parse_reason(text: str) -> tuple[str, str | None]:
    """(reason key, the rater's own words or None): one of the reasons as people say them,
    or anything else as "other" with its words (at most ``MAX_REASON_CHARS``)."""
    words = " ".join(text.split())
    key = _SAID.get(words.lower().rstrip(".!"))
    if key is not None:
        return key, None
    if len(words) > MAX_REASON_CHARS:
        raise BadInput(f"A reason is limited to {MAX_REASON_CHARS} characters; yours has {len(words)}. "
                       f"Or give one of: {', '.join(REASONS.values())}.")
    return "other", words


class FeedbackCommands(Group):
    def __init__(self, basis: Basis, ingest: Ingest, *, teaching: TeachingSettings, limits: LimitsSettings) -> None:
        super().__init__(basis)
        self.teaching, self.limits = teaching, limits
        self.ingest = ingest  # reactions and text feedback, group-committed
        # Members whose last corrections were all rejected: one correction in ten minutes.
        self.probation = RateLimiter(1, window=PROBATION_EVERY_S)

    # ---------------------------------------------------------------- feedback
    async def leave(self, caller: Caller, text: str) -> Reply:
        """Text feedback for the trainers (``feedback``)."""
        text = text.strip()
        if not text:
            raise BadInput(f"Write your feedback after the command, e.g. `{COMMAND}feedback answers are too short`.")
        if len(text) > MAX_FEEDBACK_CHARS:
            raise BadInput(f"Feedback is limited to {MAX_FEEDBACK_CHARS} characters; yours has {len(text)}.")
        self._limit(caller, "feedback")

        fid = await self.ingest.submit(Event(caller, "text", text=text))
        metrics.FEEDBACK.labels("text").inc()
        return Reply.text(f"Thanks — your feedback is noted (#{fid}). Trainers read it when they plan the next training.",
                          data={"feedback_id": fid})

    # -------------------------------------------------------------- corrections
    async def correct(self, caller: Caller, message_id: str, text: str) -> Reply:
        mid = read_message_id(message_id)
        text = text.strip()
        if not text:
            raise BadInput(
                f"Write the better answer after the message ID: `{COMMAND}correct <message id> <answer>`."
            )
        if len(text) > self.limits.max_field_chars:
            raise BadInput(f"A correction is limited to {self.limits.max_field_chars} characters; yours has {len(text)}.")
        self._limit(caller, "correct")
        approved = is_trainer(caller, self.trainer_role)
        cid, status, existed = await self._blocking(self._store_correction, caller, mid, text, approved)
        metrics.FEEDBACK.labels("correction").inc()
        if existed == "mine":
            return Reply.text(
                f"You already gave that correction (#{cid}, {status}).", data={"correction_id": cid, "status": status}
            )
        if existed in ("merged", "auto"):
            tail = " With yours, enough members asked for it: it is approved and answers at once." if existed == "auto" else ""
            return Reply.text(
                f"Someone already suggested that (#{cid}, {status}); I counted your support.{tail}",
                data={"correction_id": cid, "status": status},
            )
        if status == CorrectionStatus.APPROVED:
            tail = f"approved, and added to `{self.teaching.feedback_dataset}` for training"
        else:
            tail = "waiting for a trainer's review before it is used"
        return Reply.text(f"Thanks — correction #{cid} stored ({tail}).", data={"correction_id": cid, "status": status})

    async def bot_reply_text(self, caller: Caller, message_id: str) -> str | None:
        """The text of one of the bot's replies by its platform message ID, or None when the
        message is not a reply of the bot's in the caller's server (nothing is created)."""
        if not MESSAGE_ID.fullmatch(message_id.strip()):
            return None

        def load() -> str | None:
            with self.store.read() as s:
                guild = self._find_guild(s, caller)
                msg = repo.find_bot_reply(s, guild.id, message_id.strip()) if guild is not None else None
                return msg.content if msg is not None else None

        return await self._blocking(load)

    def _bot_reply(self, s: Any, caller: Caller, mid: str) -> tuple[Any, Message]:
        """The caller's guild and the bot reply with platform ID ``mid`` in it, or ``NotFound``."""
        guild = self._guild(s, caller)
        msg = repo.find_bot_reply(s, guild.id, mid)
        if msg is None:
            raise NotFound(f"I don't know a reply of mine with ID `{mid}` in this server.")
        return guild, msg

    def _store_correction(self, caller: Caller, mid: str, text: str, approved: bool) -> tuple[int, str, str | None]:
        """(correction id, status, None | "mine" | "merged" | "auto"): duplicates merge into the
        first ("auto": and that support approved it)."""
        with self.store.session() as s:
            guild, msg = self._bot_reply(s, caller, mid)
            same = same_correction(s, guild.id, msg.prompt or "", text, message_id=msg.id)
            if same is not None and same.user_id == caller.user_id:
                return same.id, same.status, "mine"
            if not approved:
                self._probation(s, guild.id, caller)
            if same is not None and not (approved and same.status == CorrectionStatus.PENDING):
                same.supporters += 1
                same.supporter_ids = sorted({*(same.supporter_ids or []), caller.user_id})
                if auto_approve(s, self.teaching, same):  # enough trusted members asked for it (if the server allows)
                    return same.id, same.status, "auto"
                return same.id, same.status, "merged"
            if same is not None:  # a trainer gives the answer a member suggested: approve that one
                approve_correction(s, self.teaching.feedback_dataset, same, caller.user_id)
                repo.audit(s, guild.id, caller.user_id, "approve", f"correction #{same.id}",
                           "the same answer, corrected by a trainer")
                return same.id, same.status, None
            if not approved and pending_count(s, guild.id, caller.user_id) >= self.teaching.max_pending_per_user:
                raise Busy(
                    f"You have {self.teaching.max_pending_per_user} corrections waiting for review already; "
                    "a trainer reviews them first (`review`)."
                )
            corr = Correction(
                guild_id=guild.id,
                message_id=msg.id,
                user_id=caller.user_id,
                prompt=msg.prompt or "",
                original=msg.content,
                corrected=text,
                status=CorrectionStatus.PENDING,
                source=f"message:{mid}",
                question_key=question_key(msg.prompt or ""),
            )
            s.add(corr)
            s.flush()
            if approved:  # a trainer's answer decides the question: members' pending ones are superseded
                others = approve_correction(s, self.teaching.feedback_dataset, corr, caller.user_id)
                repo.audit(s, guild.id, caller.user_id, "approve", f"correction #{corr.id}",
                           "; ".join(filter(None, ("a trainer's own correction", closed_words(others)))))
            else:
                auto_approve(s, self.teaching, corr)
            return corr.id, corr.status, None

    def _probation(self, s: Any, guild_id: int, caller: Caller) -> None:
        """A member whose last corrections here were all rejected may send one every ten
        minutes, and is told why."""
        if not on_probation(s, guild_id, caller.user_id):
            return
        try:
            self.probation.check(f"{caller.guild_id}:{caller.user_id}")
        except Busy as exc:
            minutes = max(1, round((exc.retry_after or PROBATION_EVERY_S) / 60))
            raise Busy(f"Your last {PROBATION_AFTER} corrections here were all rejected, so for now you can send one "
                       f"correction every {PROBATION_EVERY_S // 60} minutes; try again in {minutes} min. "
                       "An approved correction lifts this.", retry_after=exc.retry_after) from None

    # ---------------------------------------------------------------- reactions
    async def react(self, caller: Caller, message_id: str, emoji: str, added: bool = True,
                    reason: str | None = None) -> Reply | None:
        """A 👍/👎 put on (or taken off) one of the bot's replies; other emoji are ignored (None).
        ``reason``: what was wrong, with a 👎 (``parse_reason``)."""
        label = REACTIONS.get(emoji.strip().lower() if emoji.isascii() else emoji.strip())
        if label is None:
            return None
        why = parse_reason(reason) if reason and reason.strip() else None
        if why is not None and (label != "negative" or not added):
            raise BadInput("A reason goes with a 👎: what was wrong with the reply.")
        mid = read_message_id(message_id)
        self._limit(caller, "react")
        result = await self.ingest.submit(Event(caller, "reaction", mid=mid, label=label, added=added))
        metrics.FEEDBACK.labels("reaction").inc()
        if why is not None:
            await self._blocking(self._set_reason, caller, mid, *why)
            result += f" Noted: {REASONS[why[0]]}."
        return Reply.text(result, rating=label if added else None,
                          data={"label": label if added else None, "reason": why[0] if why else None})

    async def reason(self, caller: Caller, message_id: str, reason: str) -> Reply:
        """What was wrong with a reply the caller rated 👎 (optional; asked after the 👎)."""
        key, note = parse_reason(reason)
        mid = read_message_id(message_id)
        self._limit(caller, "react")
        await self._blocking(self._set_reason, caller, mid, key, note)
        return Reply.text(f"Thanks — noted: {REASONS[key]}. Trainers see it when they review.", data={"reason": key})

    def _set_reason(self, caller: Caller, mid: str, key: str, note: str | None) -> None:
        with self.store.session() as s:
            guild, msg = self._bot_reply(s, caller, mid)
            rating = s.scalar(select(Feedback).where(Feedback.guild_id == guild.id, Feedback.message_id == msg.id,
                                                     Feedback.user_id == caller.user_id, Feedback.kind == "reaction",
                                                     Feedback.label == "negative"))
            if rating is None:
                raise NotFound("Rate that reply 👎 first; the reason says what was wrong with it.")
            rating.reason, rating.reason_note = key, note
