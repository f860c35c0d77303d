"""``TrainerBotBase``: the bot's own behaviour on top of discord.py's ``commands.Bot``.

It receives the core in its constructor, starts the loop that edits training-progress
messages, and turns every ``TrainerBotError`` into a friendly reply in one error handler
(anything else is logged with its trace and answered with a short apology). The token is
only ever handed to ``start``; it is never logged or sent. ``bot.py`` adds the cogs and the
connection kind (one gateway connection or several shards).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands, tasks

from trainerbot.adapters.discord.protocol import BotSettings
from trainerbot.adapters.discord.render import NO_MENTIONS, shown
from trainerbot.adapters.discord.ui import DYNAMIC_ITEMS, fail, tell
from trainerbot.core import Caller, CoreService
from trainerbot.errors import BadInput, Busy, NotAllowed, TrainerBotError
from trainerbot.ops import metrics

log = logging.getLogger(__name__)
EDIT_INTERVAL_S = 1.0  # at most one edit a second per message

# A mixin of both bot kinds: to a type checker it is a ``commands.Bot``; at run time the
# concrete classes put ``commands.Bot`` or ``commands.AutoShardedBot`` after it.
_Bot = commands.Bot if TYPE_CHECKING else object


def intents() -> discord.Intents:
    wanted = discord.Intents.default()
    wanted.message_content = True
    wanted.members = True
    wanted.voice_states = True
    return wanted


def _as_user_error(err: BaseException) -> BaseException:
    """discord.py's own refusals counted as the core's kinds (usage: bad input, …)."""
    if isinstance(err, (commands.MissingRequiredArgument, commands.BadArgument, commands.TooManyArguments)):
        return BadInput("usage")
    if isinstance(err, commands.CommandOnCooldown):
        return Busy("cooldown")
    if isinstance(err, commands.CheckFailure):
        return NotAllowed("check")
    return err


def unwrap(error: BaseException) -> BaseException:
    """The exception under discord.py's wrappers (invoke errors, hybrid errors)."""
    while (original := getattr(error, "original", None)) is not None and original is not error:
        error = original
    return error


class TrainerBotBase(_Bot):
    """Everything the bot does but wire its cogs (``bot.py``); ``TrainerBot`` and
    ``ShardedTrainerBot`` add the connection kind. Cogs take it as their bot: a
    ``commands.Bot`` with ``protocol.BotServices``' attributes."""

    def __init__(self, core: CoreService, settings: BotSettings, **kwargs: Any) -> None:
        super().__init__(command_prefix=commands.when_mentioned_or(settings.discord.prefix), intents=intents(),
                         allowed_mentions=NO_MENTIONS, help_command=None, **kwargs)
        self.core = core
        self.settings = settings
        self.owner_ids_known: set[int] = set()
        # The voice connection class; tests put a fake one here (Discord's voice servers are out of reach).
        self.voice_client_class: type[discord.VoiceProtocol] = discord.VoiceClient
        self._last_edit: dict[int, tuple[float, str]] = {}
        self.refusal_dm_at: dict[int, float] = {}  # user ID → when a refused reaction was last told by DM
        self.reason_dm_at: dict[int, float] = {}  # user ID → when they were last asked by DM what was wrong

    async def setup_hook(self) -> None:
        # Review buttons carry their state in their custom_id: they work on messages sent
        # before a restart too.
        self.add_dynamic_items(*DYNAMIC_ITEMS)

        async def on_app_command_error(
            interaction: discord.Interaction[Any], error: discord.app_commands.AppCommandError
        ) -> None:
            await fail(interaction, unwrap(error))

        # Assigning the tree's handler is discord.py's documented way short of subclassing CommandTree.
        self.tree.on_error = on_app_command_error  # type: ignore[method-assign]
        if not self.progress_loop.is_running():
            self.progress_loop.start()

    async def on_ready(self) -> None:
        app = await self.application_info() if self.application_id else None
        if app is not None:
            team = getattr(app, "team", None)
            self.owner_ids_known = {m.id for m in team.members} if team else {app.owner.id}
        log.info("connected as %s to %d guild(s)", self.user, len(self.guilds))

    # (override: Bot types the context by its own type variable; this handler is for this bot's contexts)
    async def on_command_error(self, ctx: commands.Context[Any], error: commands.CommandError) -> None:  # type: ignore[override]
        err = unwrap(error)
        if isinstance(err, commands.CommandNotFound):
            return
        metrics.user_error(_as_user_error(err))
        if isinstance(err, TrainerBotError):
            text = shown(err.user_message)
        elif isinstance(err, commands.CommandOnCooldown):
            text = f"You're going fast — try `{ctx.invoked_with}` again in {err.retry_after:.0f} s."
        elif isinstance(err, (commands.MissingRequiredArgument, commands.BadArgument, commands.TooManyArguments)):
            text = (
                f"Usage: `{self.settings.discord.prefix}{ctx.command.qualified_name} {ctx.command.signature}`"
                if ctx.command
                else str(err)
            )
            param = ctx.current_parameter
            if isinstance(err, commands.BadArgument) and param is not None and param.converter in (int, int | None):
                text = f"`{param.name}` takes a number, as the lists show it (e.g. `12`). {text}"
        elif isinstance(err, commands.NoPrivateMessage):
            text = f"`{ctx.invoked_with}` works in a server, not in DMs."
        elif isinstance(err, commands.CheckFailure):
            text = str(err) or "You can't use that command here."
        else:
            log.error("command %s failed", ctx.command, exc_info=err)
            text = "Sorry, something went wrong on my side. The error is in the bot's log."
        if ctx.interaction is not None:  # a slash command's error is for its caller only
            await tell(ctx.interaction, text)
            return
        await ctx.send(text, allowed_mentions=NO_MENTIONS)

    # ------------------------------------------------------- live progress
    @tasks.loop(seconds=2.0)
    async def progress_loop(self) -> None:
        try:
            await self.update_progress()
        except Exception:  # the loop must survive a bad round
            log.exception("progress update failed")

    @progress_loop.before_loop
    async def _before_progress(self) -> None:
        await self.wait_until_ready()

    async def update_progress(self) -> int:
        """Edit each watched job's message (once a second at most); returns how many were edited."""
        edited = 0
        updates = await self.core.delivery.progress_updates({str(g.id) for g in self.guilds})
        for upd in updates:
            channel = self.get_channel(int(upd.channel_id))
            if not isinstance(channel, discord.abc.Messageable):
                continue
            mid = int(upd.message_id)
            last_at, last_text = self._last_edit.get(mid, (0.0, ""))
            if upd.text != last_text and time.monotonic() - last_at >= EDIT_INTERVAL_S:
                try:
                    message = await channel.fetch_message(mid)
                    await message.edit(content=shown(upd.text), allowed_mentions=NO_MENTIONS)
                except discord.NotFound:
                    await self.core.delivery.mark_announced(upd.job_id)  # the message is gone; stop watching
                    continue
                self._last_edit[mid] = (time.monotonic(), upd.text)
                edited += 1
            if upd.finished and upd.text == self._last_edit.get(mid, (0.0, ""))[1]:
                caller = Caller(
                    guild_id=upd.guild_id, user_id=str(self.user.id) if self.user else "bot", channel_id=upd.channel_id
                )
                detail = await self.core.training.job(caller, upd.job_id)
                if detail.files:
                    await channel.send(
                        f"Job #{upd.job_id}: {detail.job_status}.",
                        files=[discord.File(f.path, filename=f.name) for f in detail.files],
                        allowed_mentions=NO_MENTIONS,
                    )
                await self.core.delivery.mark_announced(upd.job_id)
                self._last_edit.pop(mid, None)
        return edited


Ctx = commands.Context[TrainerBotBase]  # a command's context in a cog: ``ctx.bot`` is this bot
