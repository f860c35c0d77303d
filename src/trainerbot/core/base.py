"""What every command group of the core is built on: the store, the rate limit, the data
folder and the trainer role (each group receives the sections of the settings it reads), and
the helpers they all use (the caller's guild and folder, the trainer check, running
blocking work in a thread)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

from sqlalchemy.orm import Session

from trainerbot.core.limits import RateLimiter
from trainerbot.core.permissions import require_trainer
from trainerbot.core.types import Caller
from trainerbot.datasets import paths
from trainerbot.errors import NotFound
from trainerbot.store import Store, repo
from trainerbot.store.tables import Guild

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Basis:
    """What every group is built on (``CoreService`` makes one and hands it to each)."""

    store: Store
    rate: RateLimiter  # one limit per person and action, across groups
    data_dir: Path
    trainer_role: str  # the role (or Manage Server) that trainers' commands need


class Group:
    """A command group. Blocking work (the store, files, models) runs via ``_blocking`` in a thread."""

    def __init__(self, basis: Basis) -> None:
        self.store = basis.store
        self.rate = basis.rate
        self.data_dir = basis.data_dir
        self.trainer_role = basis.trainer_role

    async def _blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    async def _in_guild(self, caller: Caller, empty: T, query: Callable[[Session, int], T]) -> T:
        """``query(session, guild row ID)`` in a read session of the caller's server, in a
        thread; ``empty`` when the server has never used the bot."""
        def load() -> T:
            with self.store.read() as s:
                guild = self._find_guild(s, caller)
                return empty if guild is None else query(s, guild.id)
        return await self._blocking(load)

    def _audit(self, caller: Caller, action: str, target: str, detail: str | None = None) -> None:
        """An audit entry of its own (blocking), for a decision whose change another layer
        committed; decisions made here record theirs in their own transaction (``repo.audit``)."""
        with self.store.session() as s:
            repo.audit(s, self._guild(s, caller).id, caller.user_id, action, target, detail)

    def _guild(self, session: Session, caller: Caller) -> Guild:
        """The caller's guild, created on first use (write sessions)."""
        return repo.ensure_guild(session, caller.guild_id, caller.guild_name)

    def _find_guild(self, session: Session, caller: Caller) -> Guild | None:
        """The caller's guild, or None when it has never used the bot (read sessions)."""
        return repo.find_guild(session, caller.guild_id)

    def _known_guild(self, session: Session, caller: Caller) -> Guild:
        """The caller's guild; ``NotFound`` when it has never used the bot."""
        guild = self._find_guild(session, caller)
        if guild is None:
            raise NotFound("Nothing here yet.")
        return guild

    def _root(self, caller: Caller) -> Path:
        return paths.guild_root(self.data_dir, caller.guild_id)

    def _require_trainer(self, caller: Caller, action: str) -> None:
        require_trainer(caller, self.trainer_role, action)

    def _limit(self, caller: Caller, what: str) -> None:
        self.rate.check(f"{caller.guild_id}:{caller.user_id}:{what}")
