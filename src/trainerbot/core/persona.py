"""``persona``: the server's system instruction, which every runtime answers under.

Trainers set it (``persona <text>``) or restore the shipped one (``persona reset``); anyone
can see it (``persona``). It is kept in the guild's settings. Chat reads it for every reply
(the local model, a user's pretrained folder, an OpenAI-compatible server); training jobs
build their rows under the persona in force when they start and record it in the version's
metrics, and the held-out and general checks ask under it. Changing it after training is
allowed; the reply then says that the active version was taught under the old one.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainerbot.core.base import Basis, Group
from trainerbot.core.text import quote_user_text
from trainerbot.core.types import Caller, Reply
from trainerbot.errors import BadInput
from trainerbot.model.runtime import Runtimes
from trainerbot.store import repo
from trainerbot.store.tables import ModelVersion

MAX_PERSONA_CHARS = 1000  # a system instruction, not a document: the facts share the context with it
RESET = "reset"


@dataclass(frozen=True)
class PersonaView:
    """What ``persona`` shows: the text in force, whether it is the shipped one, and the
    persona the active version was taught under when that differs."""

    text: str
    shipped: bool
    version: str | None = None
    taught_under_other: bool = False


class PersonaCommands(Group):
    def __init__(self, basis: Basis, runtimes: Runtimes) -> None:
        super().__init__(basis)
        self.runtimes = runtimes  # the shipped persona depends on the runtime's backend

    async def persona(self, caller: Caller, text: str | None = None) -> Reply:
        """Show the persona (no text), set it (trainers), or ``reset`` it to the shipped one."""
        text = (text or "").strip()
        if not text:
            view = await self.view(caller)
            kind = "the shipped one" if view.shipped else "set by a trainer"
            lines = [f"🎭 The persona here ({kind}):", f"> {quote_user_text(view.text, MAX_PERSONA_CHARS)}"]
            if view.taught_under_other:
                lines.append(f"The active version `{view.version}` was taught under another persona.")
            return Reply.text("\n".join(lines), data={"persona": view.text, "shipped": view.shipped})
        self._require_trainer(caller, "change the persona")
        if text.lower() == RESET:
            view = await self._blocking(self._save, caller, None)
            head = "🎭 The persona is the shipped one again"
        else:
            if len(text) > MAX_PERSONA_CHARS:
                raise BadInput(f"A persona is limited to {MAX_PERSONA_CHARS} characters; yours has {len(text)}.")
            view = await self._blocking(self._save, caller, text)
            head = "🎭 Persona set; every reply from now on is answered under it"
        tail = (f" The active version `{view.version}` was taught under the old persona; the next training teaches "
                "under this one." if view.taught_under_other else "")
        return Reply.text(f"{head}.{tail}", data={"persona": view.text, "shipped": view.shipped})

    async def view(self, caller: Caller) -> PersonaView:
        """The persona in force here (the dashboard's models page shows it)."""
        return await self._blocking(self._view, caller)

    def shipped(self, version: ModelVersion | None) -> str:
        """The persona a server has before a trainer sets one, for the runtime that answers."""
        return self.runtimes.shipped_system(version.backend if version is not None else None)

    def _view(self, caller: Caller) -> PersonaView:
        with self.store.read() as s:
            guild = self._find_guild(s, caller)
            own = repo.persona(guild) if guild is not None else None
            version = repo.active_version(s, guild.id) if guild is not None else None
            return self._describe(own, version)

    def _save(self, caller: Caller, text: str | None) -> PersonaView:
        with self.store.session() as s:
            guild = self._guild(s, caller)
            settings = dict(guild.settings or {})
            if text is None:
                settings.pop(repo.PERSONA_KEY, None)
            else:
                settings[repo.PERSONA_KEY] = text
            guild.settings = settings
            repo.audit(s, guild.id, caller.user_id, "persona", "reset" if text is None else "set",
                       None if text is None else f"{len(text)} characters")
            return self._describe(text, repo.active_version(s, guild.id))

    def _describe(self, own: str | None, version: ModelVersion | None) -> PersonaView:
        other = False
        if version is not None and version.backend == "local" and "persona" in (version.metrics or {}):
            other = version.metrics.get("persona") != own  # None on both sides: the shipped one
        return PersonaView(text=own or self.shipped(version), shipped=own is None,
                           version=version.name if version is not None else None, taught_under_other=other)
