"""Voice: ``join`` / ``leave`` the caller's voice channel; while joined, replies to members in
that channel are also spoken there, one after another (a queue per guild), and the bot
leaves by itself after ``voice_idle_seconds`` of silence. Speech is synthesised by the
core (espeak-ng by default) and played with ffmpeg (ffmpeg to 48 kHz PCM, ``discord.PCMAudio``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands, tasks

from trainerbot.adapters.discord.base import Ctx, TrainerBotBase
from trainerbot.adapters.discord.protocol import VoiceLink, voice_link
from trainerbot.adapters.discord.render import SLASH, ctx_caller, send_reply
from trainerbot.adapters.discord.ui import answer
from trainerbot.core import Caller, Reply
from trainerbot.core.commands import describe
from trainerbot.errors import BadInput, NotAvailable
from trainerbot.voice.audio import to_discord_pcm

log = logging.getLogger(__name__)
MAX_QUEUE = 20


def pcm_source(wav: bytes) -> discord.AudioSource:
    """What the bot plays: 48 kHz stereo 16-bit PCM in 20 ms frames, converted by ffmpeg.

    The conversion runs to completion first (blocking: call it in a thread), so playback
    reads from memory and no ffmpeg process outlives a reply.
    """
    return discord.PCMAudio(io.BytesIO(to_discord_pcm(wav)))


class VoiceCog(commands.Cog, name="Voice"):
    def __init__(self, bot: TrainerBotBase) -> None:
        self.bot = bot
        self.queues: dict[int, asyncio.Queue[bytes]] = {}
        self.players: dict[int, asyncio.Task[None]] = {}
        self.last_active: dict[int, float] = {}
        self.idle_check.start()

    async def cog_unload(self) -> None:
        self.idle_check.cancel()
        for task in self.players.values():
            task.cancel()

    @commands.hybrid_command(name="join", description=describe("join"))
    @commands.guild_only()
    async def join(self, ctx: Ctx) -> None:
        state = getattr(ctx.author, "voice", None)
        if state is None or state.channel is None:
            raise BadInput("Join a voice channel first, then ask me to come.")
        missing = self.bot.core.voice.missing()
        if missing:
            raise NotAvailable(f"I can't speak on this machine: {' and '.join(missing)} "
                               f"{'is' if len(missing) == 1 else 'are'} not installed (the operator can install "
                               f"{'it' if len(missing) == 1 else 'them'} as root with `apt-get install {' '.join(missing)}`).")
        guild = ctx.guild
        assert guild is not None  # guild_only
        vc = voice_link(ctx.voice_client)
        await ctx.defer()  # connecting to voice can take seconds (a slash command waits "thinking…")
        if vc is not None and vc.is_connected():
            await vc.move_to(state.channel)
        else:
            await state.channel.connect(timeout=15.0, cls=self.bot.voice_client_class)
        self.last_active[guild.id] = time.monotonic()
        await send_reply(
            ctx,
            Reply.text(
                f"Joined **{state.channel.name}**; I'll speak my replies there. `{SLASH}leave` sends me away."
            ),
        )

    @commands.hybrid_command(name="leave", description=describe("leave"))
    @commands.guild_only()
    async def leave(self, ctx: Ctx) -> None:
        vc = ctx.voice_client
        if vc is None or ctx.guild is None:
            raise BadInput("I'm not in a voice channel here.")
        await self._disconnect(ctx.guild.id, vc)
        await send_reply(ctx, Reply.text("Left the voice channel."))

    @commands.hybrid_command(name="language", description=describe("language"))
    @app_commands.describe(language="en: English, ru: Russian (trainers change it; left out: show it)")
    async def language(self, ctx: Ctx, language: Literal["en", "ru"] | None = None) -> None:
        await send_reply(ctx, await self.bot.core.voice.language(ctx_caller(ctx), language))

    @commands.hybrid_command(name="say", description=describe("say"))
    @app_commands.describe(text="What to say, in this server's language")
    @commands.cooldown(3, 60, commands.BucketType.user)
    async def say(self, ctx: Ctx, *, text: str) -> None:
        await send_reply(ctx, await answer(ctx, lambda: self.bot.core.voice.say(ctx_caller(ctx), text)))

    async def _disconnect(self, guild_id: int, vc: discord.VoiceProtocol | VoiceLink) -> None:
        task = self.players.pop(guild_id, None)
        if task is not None:
            task.cancel()
        self.queues.pop(guild_id, None)
        await vc.disconnect(force=True)

    async def speak_reply(self, guild: discord.Guild | None, author: discord.abc.User, caller: Caller, text: str) -> bool:
        """Speak ``text`` if the bot is in the author's voice channel; returns whether it was queued."""
        if guild is None or not text.strip():
            return False
        vc = voice_link(guild.voice_client)
        member_voice = getattr(author, "voice", None)
        if vc is None or not vc.is_connected() or member_voice is None or member_voice.channel != vc.channel:
            return False
        queue = self.queues.setdefault(guild.id, asyncio.Queue(MAX_QUEUE))
        if queue.full():
            return False
        await queue.put(await self.bot.core.voice.speech(caller, text))
        self.last_active[guild.id] = time.monotonic()
        if guild.id not in self.players or self.players[guild.id].done():
            self.players[guild.id] = asyncio.create_task(self._play_queue(guild.id, vc))
        return True

    async def _play_queue(self, guild_id: int, vc: VoiceLink) -> None:
        queue = self.queues[guild_id]
        loop = asyncio.get_running_loop()
        while not queue.empty() and vc.is_connected():
            wav = await queue.get()
            source = await asyncio.to_thread(pcm_source, wav)
            done = asyncio.Event()
            vc.play(source, after=lambda err, done=done: loop.call_soon_threadsafe(done.set))
            await done.wait()  # never overlap: the next reply starts when this one ended
            self.last_active[guild_id] = time.monotonic()

    @tasks.loop(seconds=15.0)
    async def idle_check(self) -> None:
        await self.leave_idle()

    async def leave_idle(self) -> int:
        left = 0
        for vc in filter(None, map(voice_link, self.bot.voice_clients)):
            guild_id = vc.guild.id
            idle = time.monotonic() - self.last_active.get(guild_id, 0.0)
            if not vc.is_playing() and idle >= self.bot.settings.voice_idle_seconds:
                await self._disconnect(guild_id, vc)
                left += 1
        return left

    @idle_check.before_loop
    async def _before_idle(self) -> None:
        await self.bot.wait_until_ready()
