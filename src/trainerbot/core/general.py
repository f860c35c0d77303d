"""General commands: ``hi``, ``help`` and ``instruction``."""

from __future__ import annotations

from trainerbot.core.base import Group
from trainerbot.core.commands import Surface, help_embed, help_text
from trainerbot.core.text import quote_user_text
from trainerbot.core.types import Caller, Reply


class GeneralCommands(Group):
    async def hi(self, caller: Caller) -> Reply:
        name = quote_user_text(caller.user_name or "there", 80)
        p = self.settings.prefix
        return Reply.text(
            f"Hi {name}! I'm trainerbot, a language model this community teaches. "
            f"Talk to me, rate my replies with 👍/👎, correct me with `{p}correct`, "
            f"and read `{p}instruction` to see how to teach me."
        )

    async def instruction(self, caller: Caller) -> Reply:
        text = await self._blocking(self.settings.instructions_text)
        return Reply.text(text.replace("`!", f"`{self.settings.prefix}"))

    async def help(self, caller: Caller, surface: Surface = "discord") -> Reply:
        """Every command of this surface, by purpose, from the one command table."""
        p = self.settings.prefix
        if surface == "console":
            return Reply.text(help_text(p, "console"))
        embed = help_embed(p)
        return Reply.text(embed.as_text(), embed=embed)
