"""General commands: ``hi``, ``help`` and ``instruction``."""

from __future__ import annotations

from trainerbot.config import TeachingSettings
from trainerbot.core.base import Basis, Group
from trainerbot.core.commands import Surface, help_embed, help_text
from trainerbot.core.text import quote_user_text
from trainerbot.core.types import Caller, Reply
from trainerbot.errors import COMMAND


class GeneralCommands(Group):
    def __init__(self, basis: Basis, *, teaching: TeachingSettings, language: str) -> None:
        super().__init__(basis)
        self.teaching = teaching  # where the instructions file is
        self.language = language  # the instructions' language when none is configured

    async def hi(self, caller: Caller) -> Reply:
        name = quote_user_text(caller.user_name or "there", 80)
        return Reply.text(
            f"Hi {name}! I'm trainerbot, a language model this community teaches. "
            f"Talk to me, rate my replies with 👍/👎, correct me with `{COMMAND}correct`, "
            f"and read `{COMMAND}instruction` to see how to teach me."
        )

    async def instruction(self, caller: Caller) -> Reply:
        text = await self._blocking(self.teaching.instructions_text, self.language)
        return Reply.text(text.replace("`!", f"`{COMMAND}"))  # the shipped file writes commands as `!word`

    async def help(self, caller: Caller, surface: Surface = "discord") -> Reply:
        """Every command of this surface, by purpose, from the one command table."""
        if surface == "console":
            return Reply.text(help_text("console"))
        embed = help_embed()
        return Reply.text(embed.as_text(), embed=embed)
