"""General commands: ``hi``, ``instruction``, and the ones that await the model issue."""

from __future__ import annotations

from trainerbot.core.base import CoreBase
from trainerbot.core.text import quote_user_text
from trainerbot.core.types import Caller, Reply
from trainerbot.errors import NotAvailable

NO_MODEL = (
    "I can't {what} yet: this build has no language model. Trainers can already collect data "
    "with `{prefix}import <dataset> positive` and a file; training arrives with the local model."
)


class GeneralCommands(CoreBase):
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

    async def chat(self, caller: Caller, text: str) -> Reply:
        raise NotAvailable(NO_MODEL.format(what="chat", prefix=self.settings.prefix))

    async def train(self, caller: Caller, *args: object) -> Reply:
        raise NotAvailable(NO_MODEL.format(what="train", prefix=self.settings.prefix))

    async def jobs(self, caller: Caller, *args: object) -> Reply:
        raise NotAvailable(NO_MODEL.format(what="run training jobs", prefix=self.settings.prefix))

    async def model(self, caller: Caller, *args: object) -> Reply:
        raise NotAvailable(NO_MODEL.format(what="switch models", prefix=self.settings.prefix))
