"""``audit``: the server's decisions, newest first, for trainers.

Every decision is recorded where it is made, in the same transaction (``repo.audit``):
approve, reject, edit (an edited correction approved), delete (an example), ``model use``,
``persona``, ``cancel``, ``archive`` and ``forget`` (that it happened and how much went,
never the forgotten words). Entries are never edited; the console and Discord page through
them with ``audit [older than #N]``, the dashboard with its Older link.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import desc, select
from sqlalchemy.orm import Session

from trainerbot.core.base import Group
from trainerbot.core.text import quote_user_text, row_number
from trainerbot.core.types import Caller, Reply
from trainerbot.errors import COMMAND
from trainerbot.store import repo
from trainerbot.store.tables import AuditEntry

PAGE = 20


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: str  # when, as people read it
    actor_id: str
    action: str
    target: str
    detail: str | None


class AuditCommands(Group):
    async def entries(self, caller: Caller, before: int | None = None, limit: int = PAGE) -> list[AuditRow]:
        """Up to ``limit`` entries of the caller's server older than #``before``, newest first (trainers)."""
        self._require_trainer(caller, "read the audit log")

        def load(s: Session, gid: int) -> list[AuditRow]:
            query = select(AuditEntry).where(AuditEntry.guild_id == gid)
            if before is not None:
                query = query.where(AuditEntry.id < before)
            return [AuditRow(e.id, repo.latest(e.created_at), e.actor_id, e.action, e.target, e.detail)
                    for e in s.scalars(query.order_by(desc(AuditEntry.id)).limit(limit))]
        return await self._in_guild(caller, [], load)

    async def latest(self, caller: Caller, before: str | int | None = None) -> Reply:
        """``audit [#N]``: the latest decisions here (or those older than #N)."""
        older = row_number(before, f"Give an entry's number to see older ones: `{COMMAND}audit 120`.") \
            if before not in (None, "") else None
        rows = await self.entries(caller, older)
        if not rows:
            return Reply.text("Nothing older is recorded here." if older else "No decisions are recorded here yet.",
                              data={"entries": []})
        lines = ["🧾 **Audit log**, newest first"]
        for r in rows:
            detail = f" — {quote_user_text(r.detail, 200)}" if r.detail else ""
            lines.append(f"`#{r.id}` {r.at} · <@{r.actor_id}> · **{r.action}** {r.target}{detail}")
        if len(rows) == PAGE:
            lines.append(f"Older: `{COMMAND}audit {rows[-1].id}`")
        return Reply.text("\n".join(lines), data={"entries": [r.id for r in rows]})
