"""What a correction is and what happens to it, shared by the groups that meet corrections
(``review`` decides them, ``feedback`` stores them, ``models`` sends a test's wrong answers
to review, the dashboard lists them): the proposals for one question, approving one (its
example, its revision, the others superseded), auto-approval by trusted supporters, the
probation of a member whose corrections were all rejected, each author's record, and the
replies flagged 👎. Functions over an open session; no command group lives here.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from trainerbot.config import TeachingSettings
from trainerbot.core.text import quote_user_text
from trainerbot.datasets import items as dataset_items
from trainerbot.datasets import revisions
from trainerbot.datasets.records import Example
from trainerbot.evaluation.scores import normalise_answer
from trainerbot.store import repo
from trainerbot.store.keys import question_key
from trainerbot.store.tables import Correction, CorrectionStatus, Feedback, Message, utcnow


def pending_count(s: Any, guild_id: int, user_id: str) -> int:
    return s.scalar(select(func.count()).select_from(Correction).where(
        Correction.guild_id == guild_id, Correction.user_id == user_id, Correction.status == CorrectionStatus.PENDING)) or 0


# What makes a proposal wait for a trainer whatever its support: a link, a mention or an invite.
# What was wrong with a reply, given after a 👎 (optional): the key stored, the words shown.
REASONS: dict[str, str] = {"wrong": "wrong fact", "outdated": "outdated", "unsafe": "rude or unsafe",
                           "off_topic": "off-topic", "too_long": "too long", "other": "other"}
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


def auto_approve(s: Any, teaching: TeachingSettings, corr: Correction) -> bool:
    """Approve a pending ``corr`` once ``teaching.auto_approve_supporters`` different members
    (its author among them) support it, none of them with more corrections rejected than
    approved here, and it carries no link, mention or invite. Recorded in the audit log."""
    need = teaching.auto_approve_supporters
    people = {corr.user_id, *(corr.supporter_ids or [])}
    if not need or corr.status != CorrectionStatus.PENDING or len(people) < need or carries_link(corr.corrected):
        return False
    record = records(s, corr.guild_id, people)
    if any(r.get(CorrectionStatus.REJECTED, 0) > r.get(CorrectionStatus.APPROVED, 0) for r in record.values()):
        return False
    others = approve_correction(s, teaching.feedback_dataset, corr, AUTO)
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
    item = revisions.current_item(s, guild_id, corr.question_key or question_key(corr.prompt))
    return item.response if item is not None else None


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
