"""``mydata``: everything the bot stores about one member in one server, as one JSON file.

What it holds: the member's own chat messages, their ratings (👍/👎, with what was wrong) and text feedback, their
corrections with what became of each (pending, approved, rejected, superseded by #N), the
examples they authored, the revisions of taught answers that hold their words or that they made,
and their dashboard sign-ins (when and until when; never a token or
its hash). Rows are selected by the caller's own user ID and server only: nobody can ask for
another member's file. Each section holds at most ``MAX_ROWS`` rows, newest first, and the
file at most the size the bot may send; what was left out is counted in ``left_out``.

The file is written under the server's folder in ``private/`` (not a file area ``getfile``
lists), one per member, replaced by the next ``mydata`` and deleted by ``forget``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainerbot.datasets import revisions
from trainerbot.store.tables import (
    Conversation,
    Correction,
    DashboardSession,
    Dataset,
    DatasetItem,
    Feedback,
    Guild,
    Message,
    Revision,
)

MAX_ROWS = 5000  # per section, newest first


def file_for(root: Path, user_id: str) -> Path:
    """Where ``user_id``'s file lies under a server's folder ``root``."""
    return root / "private" / f"mydata-{hashlib.sha256(user_id.encode()).hexdigest()[:16]}.json"


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _revision(r: Revision, user_id: str) -> dict[str, Any]:
    """A revision as the member's file holds it. One they made to another member's answer says
    what they did, never the other's words."""
    mine = r.author_id == user_id
    return {"question": r.prompt if mine else None, "answer": r.answer if mine else None, "revision": r.number,
            "change": r.action, "from": r.source, "your_words": mine, "made_by_you": r.actor_id == user_id,
            "why": r.why if r.actor_id == user_id else None, "at": _at(r.created_at)}


def collect(s: Session, guild: Guild, user_id: str) -> dict[str, Any]:
    """The member's rows in ``guild``, section by section (each newest first, at most ``MAX_ROWS``)."""
    gid = guild.id
    channels = dict(s.execute(select(Conversation.id, Conversation.channel_id).where(Conversation.guild_id == gid)).all())
    messages = [{"id": m.platform_message_id, "channel": channels.get(m.conversation_id), "said": m.content,
                 "at": _at(m.created_at)}
                for m in s.scalars(select(Message).where(Message.guild_id == gid, Message.role == "user",
                                                         Message.author_id == user_id)
                                   .order_by(Message.id.desc()).limit(MAX_ROWS + 1))]
    rated = s.execute(select(Feedback, Message.platform_message_id, Message.content)
                      .outerjoin(Message, Message.id == Feedback.message_id)
                      .where(Feedback.guild_id == gid, Feedback.user_id == user_id)
                      .order_by(Feedback.id.desc()).limit(2 * MAX_ROWS + 2)).all()
    ratings = [{"reply": mid, "reply_said": said, "rating": f.label, "reason": f.reason, "reason_words": f.reason_note,
                "at": _at(f.updated_at)}
               for f, mid, said in rated if f.kind == "reaction"][: MAX_ROWS + 1]
    feedback = [{"id": f.id, "text": f.text, "at": _at(f.created_at)} for f, _, _ in rated if f.kind == "text"][: MAX_ROWS + 1]
    corrections = [{"id": c.id, "question": c.prompt, "bot_said": c.original, "your_answer": c.corrected,
                    "outcome": c.status, "superseded_by": c.superseded_by, "supporters": c.supporters,
                    "from": c.source, "at": _at(c.created_at), "decided_at": _at(c.reviewed_at)}
                   for c in s.scalars(select(Correction).where(Correction.guild_id == gid, Correction.user_id == user_id)
                                      .order_by(Correction.id.desc()).limit(MAX_ROWS + 1))]
    examples = [{"id": i.id, "dataset": name, "prompt": i.prompt, "response": i.response, "label": i.label,
                 "from": i.source, "archived": i.archived_in is not None, "at": _at(i.created_at)}
                for i, name in s.execute(select(DatasetItem, Dataset.name).join(Dataset, Dataset.id == DatasetItem.dataset_id)
                                         .where(DatasetItem.guild_id == gid, DatasetItem.author_id == user_id)
                                         .order_by(DatasetItem.id.desc()).limit(MAX_ROWS + 1))]
    revised = [_revision(r, user_id) for r in revisions.by_person(s, gid, user_id, MAX_ROWS + 1)]
    sessions = [{"signed_in": _at(d.created_at), "expires": _at(d.expires_at), "signed_out": _at(d.revoked_at),
                 "as_trainer": d.trainer}
                for d in s.scalars(select(DashboardSession).where(DashboardSession.guild_id == gid,
                                                                  DashboardSession.user_id == user_id)
                                   .order_by(DashboardSession.created_at.desc()).limit(MAX_ROWS + 1))]
    sections: dict[str, list[dict[str, Any]]] = {
        "messages": messages, "ratings": ratings, "feedback": feedback, "corrections": corrections, "examples": examples,
        "revisions": revised, "dashboard_sessions": sessions}
    left_out = {name: f"rows older than the newest {MAX_ROWS}" for name, rows in sections.items() if len(rows) > MAX_ROWS}
    return {"server": guild.name or guild.platform_id, "user_id": user_id,
            **{name: rows[:MAX_ROWS] for name, rows in sections.items()}, "left_out": left_out}


def encode(data: dict[str, Any], limit: int) -> bytes:
    """``data`` as JSON of at most ``limit`` bytes: the longest section loses its oldest rows
    (a quarter at a time) until it fits; ``left_out`` says how many."""
    lost: dict[str, int] = {}
    while True:
        blob = json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")
        sections = [k for k, v in data.items() if isinstance(v, list) and v]
        if len(blob) <= limit or not sections:
            return blob
        longest = max(sections, key=lambda k: len(json.dumps(data[k], ensure_ascii=False)))
        cut = max(1, len(data[longest]) // 4)
        data[longest] = data[longest][:-cut]
        lost[longest] = lost.get(longest, 0) + cut
        data["left_out"][longest] = f"the oldest {lost[longest]} rows, to keep the file under {limit} bytes"
