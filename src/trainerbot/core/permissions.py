"""Who may do what, decided in the core (adapters check too, but this is the rule)."""

from __future__ import annotations

from trainerbot.core.types import Caller
from trainerbot.errors import NotAllowed


def is_trainer(caller: Caller, trainer_role: str) -> bool:
    if caller.is_owner:
        return True
    if caller.is_dm:
        return False
    return caller.can_manage or trainer_role.casefold() in {r.casefold() for r in caller.roles}


def require_trainer(caller: Caller, trainer_role: str, action: str) -> None:
    if not is_trainer(caller, trainer_role):
        where = " in a server" if caller.is_dm else ""
        raise NotAllowed(f"Only trainers can {action}{where}: you need the `{trainer_role}` role or Manage Server.")
