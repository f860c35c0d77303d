"""``contributors``: who taught the bot what in this server — corrections approved, examples
imported, ratings given — most first. Anyone may look; each member may leave the list
(``contributors hide``, kept in the server's settings) and come back (``contributors show``).
Hidden members are counted, never named.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trainerbot.core.base import Group
from trainerbot.core.types import Caller, Reply
from trainerbot.errors import COMMAND, BadInput
from trainerbot.plural import count
from trainerbot.store.tables import Correction, CorrectionStatus, DatasetItem, Feedback

HIDDEN_KEY = "contributors_hidden"  # in Guild.settings: the user IDs who asked not to be listed
SHOWN = 20


@dataclass(frozen=True)
class ContributorRow:
    user_id: str
    corrections: int  # approved
    examples: int  # imported from files
    ratings: int  # 👍/👎 given

    @property
    def total(self) -> int:
        return self.corrections + self.examples + self.ratings

    def words(self) -> str:
        parts = [count(self.corrections, "correction approved", "corrections approved") if self.corrections else "",
                 count(self.examples, "example imported", "examples imported") if self.examples else "",
                 count(self.ratings, "rating") if self.ratings else ""]
        return ", ".join(p for p in parts if p)


def tally(s: Session, guild_id: int) -> list[ContributorRow]:
    """Everyone's contributions in the guild, most first (then by user ID)."""
    found: dict[str, list[int]] = {}
    queries = (
        select(Correction.user_id, func.count()).where(Correction.guild_id == guild_id,
                                                       Correction.status == CorrectionStatus.APPROVED)
        .group_by(Correction.user_id),
        select(DatasetItem.author_id, func.count()).where(DatasetItem.guild_id == guild_id, DatasetItem.source == "file")
        .group_by(DatasetItem.author_id),
        select(Feedback.user_id, func.count()).where(Feedback.guild_id == guild_id, Feedback.kind == "reaction")
        .group_by(Feedback.user_id),
    )
    for i, query in enumerate(queries):
        for user_id, n in s.execute(query):
            found.setdefault(user_id, [0, 0, 0])[i] = int(n)
    rows = [ContributorRow(u, *v) for u, v in found.items()]
    return sorted(rows, key=lambda r: (-r.total, r.user_id))


class ContributorsCommands(Group):
    async def rows(self, caller: Caller) -> tuple[list[ContributorRow], int]:
        """(the listed contributors, most first; how many asked not to be listed)."""
        def load(s: Session, gid: int) -> tuple[list[ContributorRow], int]:
            guild = self._find_guild(s, caller)
            hidden = set((guild.settings or {}).get(HIDDEN_KEY, [])) if guild is not None else set()
            everyone = tally(s, gid)
            return [r for r in everyone if r.user_id not in hidden], sum(1 for r in everyone if r.user_id in hidden)
        return await self._in_guild(caller, ([], 0), load)

    async def contributors(self, caller: Caller, action: str | None = None) -> Reply:
        """The list; ``hide`` / ``show``: the caller leaves it or comes back."""
        action = (action or "").strip().lower()
        if action in ("hide", "show"):
            self._limit(caller, "contributors")
            await self._blocking(self._set_hidden, caller, action == "hide")
            if action == "hide":
                return Reply.text("You are no longer listed among the contributors here (what you taught still counts). "
                                  f"`{COMMAND}contributors show` lists you again.", data={"hidden": True})
            return Reply.text("You are listed among the contributors here again.", data={"hidden": False})
        if action:
            raise BadInput(f"Usage: `{COMMAND}contributors`, `{COMMAND}contributors hide` "
                           f"or `{COMMAND}contributors show`.")
        listed, hidden = await self.rows(caller)
        if not listed and not hidden:
            return Reply.text("Nobody has taught me anything here yet: correct a reply, rate one 👍/👎, or import examples.",
                              data={"listed": []})
        lines = ["🏅 **Who taught me here**"]
        lines += [f"{n}. <@{r.user_id}> — {r.words()}" for n, r in enumerate(listed[:SHOWN], 1)]
        if len(listed) > SHOWN:
            lines.append(f"… and {count(len(listed) - SHOWN, 'more contributor')}.")
        if hidden:
            lines.append(f"{count(hidden, 'contributor')} asked not to be listed.")
        return Reply.text("\n".join(lines), data={"listed": [r.user_id for r in listed], "hidden": hidden})

    def _set_hidden(self, caller: Caller, hide: bool) -> None:
        with self.store.session() as s:
            guild = self._guild(s, caller)
            settings = dict(guild.settings or {})
            hidden = set(settings.get(HIDDEN_KEY, []))
            hidden = hidden | {caller.user_id} if hide else hidden - {caller.user_id}
            settings[HIDDEN_KEY] = sorted(hidden)
            guild.settings = settings
