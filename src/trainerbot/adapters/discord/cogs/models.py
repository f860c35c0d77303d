"""Model commands: ``model list|use|compare`` (a group: ``/model list``, ``/model use``,
``/model compare``), ``persona``, ``test`` and ``handle_errors``."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from trainerbot.adapters.discord import complete
from trainerbot.adapters.discord.base import Ctx, TrainerBotBase
from trainerbot.adapters.discord.render import ctx_caller, first_attachment, read_attachment, send_reply, trainer_only
from trainerbot.adapters.discord.ui import answer
from trainerbot.core import Reply
from trainerbot.core.commands import describe


class ModelsCog(commands.Cog, name="Models"):
    def __init__(self, bot: TrainerBotBase) -> None:
        self.bot = bot

    # A hybrid group runs without a subcommand too (`model` lists the versions).
    @commands.hybrid_group(name="model", description=describe("model"), fallback="list")
    async def model(self, ctx: Ctx) -> None:
        await send_reply(ctx, await self.bot.core.models.versions(ctx_caller(ctx)))

    @model.command(name="use", description="Switch to a model version, or roll back")
    @app_commands.describe(version="A version as `model list` shows it (v3), or a remote model (openai:gpt-4.1-mini)")
    @trainer_only()
    @commands.guild_only()
    async def model_use(self, ctx: Ctx, version: str) -> None:
        await send_reply(ctx, await answer(ctx, lambda: self.bot.core.models.use(ctx_caller(ctx), version)))

    model_use.autocomplete("version")(complete.versions)

    @model.command(name="compare", description="Two versions side by side on the held-out questions")
    @app_commands.describe(first="One version (v1)", second="The other version (v2)")
    @commands.cooldown(2, 60, commands.BucketType.user)
    async def model_compare(self, ctx: Ctx, first: str, second: str) -> None:
        await send_reply(ctx, await answer(ctx, lambda: self.bot.core.models.compare(ctx_caller(ctx), first, second)))

    model_compare.autocomplete("first")(complete.versions)
    model_compare.autocomplete("second")(complete.versions)

    @commands.hybrid_command(name="persona", description=describe("persona"))
    @app_commands.describe(text="The new persona (trainers), or `reset` for the shipped one; left out: show it")
    @commands.guild_only()
    async def persona(self, ctx: Ctx, *, text: str = "") -> None:
        await send_reply(ctx, await self.bot.core.persona.persona(ctx_caller(ctx), text))

    @commands.hybrid_command(name="test", description=describe("test"))
    @app_commands.describe(attachment="A .json or .jsonl file of cases: {\"prompt\": …, \"expected\": …}",
                           cases="Cases as JSON, e.g. [{\"prompt\": \"2+2?\", \"expected\": \"4\"}]")
    @commands.cooldown(2, 60, commands.BucketType.user)
    async def test(self, ctx: Ctx, attachment: discord.Attachment | None = None, *, cases: str = "") -> None:
        att = first_attachment(ctx, attachment)

        async def work() -> Reply:
            data = await read_attachment(att, self.bot.settings.limits.max_attachment_bytes) if att is not None else None
            return await self.bot.core.models.test(ctx_caller(ctx), cases, data)
        await send_reply(ctx, await answer(ctx, work))

    @commands.hybrid_command(name="handle_errors", description=describe("handle_errors"))
    @app_commands.describe(test_id="The test run (left out: the latest)")
    async def handle_errors(self, ctx: Ctx, test_id: int | None = None) -> None:
        await send_reply(ctx, await answer(ctx, lambda: self.bot.core.models.handle_errors(
            ctx_caller(ctx), str(test_id) if test_id is not None else None)))

    handle_errors.autocomplete("test_id")(complete.tests)
