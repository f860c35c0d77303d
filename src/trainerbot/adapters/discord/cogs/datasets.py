"""Dataset commands: ``datasets``, ``dataset``, ``revisions``, ``revert``, ``edit``, ``import``,
``archive``, ``select_dataset``, ``export``, ``getfile``. Trainer-only ones are checked here and again in the core."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from trainerbot.adapters.discord import complete
from trainerbot.adapters.discord.base import Ctx, TrainerBotBase
from trainerbot.adapters.discord.render import (
    ROW_LABEL_HELP,
    ctx_caller,
    first_attachment,
    read_attachment,
    send_reply,
    trainer_only,
)
from trainerbot.adapters.discord.ui import answer
from trainerbot.core import Reply
from trainerbot.core.commands import describe
from trainerbot.datasets.exporters import EXPORT_FORMATS
from trainerbot.datasets.records import Label
from trainerbot.errors import BadInput
from trainerbot.training import recipes

# The export formats as a closed set of choices: OpenAI's chat rows, each registered
# recipe's own rows (``training.recipes``), a spreadsheet.
FORMATS = [app_commands.Choice(name=fmt, value=fmt) for fmt in EXPORT_FORMATS]
LABEL_HELP = "Only this label's examples (positive: good answers, negative: bad ones); all when left out"


class DatasetsCog(commands.Cog, name="Datasets"):
    def __init__(self, bot: TrainerBotBase) -> None:
        self.bot = bot

    @commands.hybrid_command(name="datasets", description=describe("datasets"))
    async def datasets(self, ctx: Ctx) -> None:
        await send_reply(ctx, await self.bot.core.datasets.summary(ctx_caller(ctx)))

    @commands.hybrid_command(name="dataset", description=describe("dataset"))
    @app_commands.describe(name="The dataset (or `item`, to look up one example)",
                           item="With name `item`: the example's number, as `dataset` lists it")
    async def dataset(self, ctx: Ctx, name: str, item: str | None = None) -> None:
        caller = ctx_caller(ctx)
        if name.strip().lower() == "item" and item is not None:  # `dataset item <id>`: one example's provenance
            await send_reply(ctx, await self.bot.core.datasets.item(caller, item))
        else:
            await send_reply(ctx, await self.bot.core.datasets.stats(caller, name))

    dataset.autocomplete("name")(complete.datasets)

    @commands.hybrid_command(name="revisions", description=describe("revisions"))
    @app_commands.describe(example="An example's number (`dataset item` and the dashboard show them)")
    @commands.guild_only()
    async def revisions(self, ctx: Ctx, example: str) -> None:
        await send_reply(ctx, await self.bot.core.revisions.show(ctx_caller(ctx), example))

    @commands.hybrid_command(name="revert", description=describe("revert"))
    @app_commands.describe(example="An example of the question", revision="The revision to make current again",
                           why="Why (kept with the revision and in the audit log)")
    @trainer_only()
    @commands.guild_only()
    async def revert(self, ctx: Ctx, example: str, revision: str, *, why: str | None = None) -> None:
        await send_reply(ctx, await answer(
            ctx, lambda: self.bot.core.revisions.revert(ctx_caller(ctx), example, revision, why)))

    @commands.hybrid_command(name="edit", description=describe("edit"))
    @app_commands.describe(example="An example of the question", new_answer="The answer I should give from now on")
    @app_commands.rename(new_answer="answer")
    @trainer_only()
    @commands.guild_only()
    async def edit(self, ctx: Ctx, example: str, *, new_answer: str) -> None:
        await send_reply(ctx, await answer(ctx, lambda: self.bot.core.revisions.edit(ctx_caller(ctx), example, new_answer)))

    @commands.hybrid_command(name="import", description=describe("import"))
    @app_commands.describe(dataset="The dataset to add to (made if new): letters, digits, - and _",
                           label=ROW_LABEL_HELP,
                           attachment="A JSONL, JSON, CSV or TXT file")
    @trainer_only()
    @commands.guild_only()
    @commands.cooldown(3, 60, commands.BucketType.user)
    async def import_(self, ctx: Ctx, dataset: str, label: Label | None = None,
                      attachment: discord.Attachment | None = None) -> None:
        att = first_attachment(ctx, attachment)
        if att is None:
            raise BadInput("Attach a file to import (JSONL, JSON, CSV or TXT).")

        async def work() -> Reply:
            data = await read_attachment(att, self.bot.settings.limits.max_attachment_bytes)
            return await self.bot.core.datasets.import_data(ctx_caller(ctx), dataset, label, data)
        await send_reply(ctx, await answer(ctx, work))

    import_.autocomplete("dataset")(complete.datasets)

    @commands.hybrid_command(name="archive", description=describe("archive"))
    @app_commands.describe(dataset="The dataset to archive")
    @trainer_only()
    @commands.guild_only()
    async def archive(self, ctx: Ctx, dataset: str) -> None:
        await send_reply(ctx, await answer(ctx, lambda: self.bot.core.datasets.archive(ctx_caller(ctx), dataset)))

    archive.autocomplete("dataset")(complete.datasets)

    @commands.hybrid_command(name="select_dataset", description=describe("select_dataset"))
    @app_commands.describe(dataset="The dataset the next `train` uses", label=LABEL_HELP)
    @trainer_only()
    @commands.guild_only()
    async def select_dataset(self, ctx: Ctx, dataset: str, label: Label | None = None) -> None:
        await send_reply(ctx, await answer(ctx, lambda: self.bot.core.datasets.select_dataset(ctx_caller(ctx), dataset, label)))

    select_dataset.autocomplete("dataset")(complete.datasets)

    @commands.hybrid_command(name="export", description=describe("export"))
    @app_commands.describe(dataset="The dataset to export",
                           fmt="openai: chat JSONL; " + ", ".join(recipes.names()) + ": TRL's formats; csv: a spreadsheet")
    @app_commands.rename(fmt="format")
    @app_commands.choices(fmt=FORMATS)
    @trainer_only()
    @commands.guild_only()
    @commands.cooldown(3, 60, commands.BucketType.user)
    async def export(self, ctx: Ctx, dataset: str, fmt: str = "openai") -> None:
        await send_reply(ctx, await answer(ctx, lambda: self.bot.core.datasets.export(ctx_caller(ctx), dataset, fmt)))

    export.autocomplete("dataset")(complete.datasets)

    @commands.hybrid_command(name="getfile", description=describe("getfile"))
    @app_commands.describe(name="A file's name as the list shows it, e.g. archives/facts-20261126-120000.jsonl")
    @trainer_only()
    @commands.guild_only()
    async def getfile(self, ctx: Ctx, name: str | None = None) -> None:
        await send_reply(ctx, await answer(ctx, lambda: self.bot.core.datasets.getfile(ctx_caller(ctx), name)))
