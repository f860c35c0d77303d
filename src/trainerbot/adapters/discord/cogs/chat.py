"""Chat: the bot answers mentions, DMs, replies to its own messages, and chat channels.

It shows typing while the core answers, replies in place with no pings, remembers the
Discord ID of its reply (for ``correct`` and reactions) and adds 👍/👎 to it.
"""

from __future__ import annotations

import logging
import re

import discord
from discord.ext import commands

from trainerbot.adapters.discord.base import TrainerBotBase
from trainerbot.adapters.discord.protocol import Speaker
from trainerbot.adapters.discord.render import RATINGS, SLASH, caller_of, read_attachment, send_reply, shown
from trainerbot.core import Caller, Reply
from trainerbot.core.turns import waiting_words
from trainerbot.core.voice import is_audio
from trainerbot.errors import TrainerBotError

log = logging.getLogger(__name__)


class ChatCog(commands.Cog, name="Chat"):
    def __init__(self, bot: TrainerBotBase, speaker: Speaker) -> None:
        self.bot = bot
        self.speaker = speaker  # speaks replies where the bot joined a voice channel (the voice cog)

    def _addressed(self, message: discord.Message) -> bool:
        me = self.bot.user
        if message.guild is None:
            return True
        if me is not None and me in message.mentions:
            return True
        ref = message.reference.resolved if message.reference else None
        if isinstance(ref, discord.Message) and me is not None and ref.author.id == me.id:
            return True
        return str(message.channel.id) in self.bot.settings.discord.chat_channels

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.content.startswith(self.bot.settings.discord.prefix):
            return
        audio = next((a for a in message.attachments if is_audio(a.filename, a.content_type)), None)
        if audio is not None and (message.flags.voice or self._addressed(message)):
            await self._voice_message(message, audio)
            return
        if not message.content.strip() or not self._addressed(message):
            return
        text = re.sub(rf"<@!?{self.bot.user.id}>", "", message.content).strip() if self.bot.user else message.content
        if not text:
            return
        ctx = await self.bot.get_context(message)
        if ctx.valid:  # "@bot !hi" style commands are the command handler's
            return
        caller = caller_of(message.author, message.guild, message.channel.id, owner_ids=self.bot.owner_ids_known)
        streamed: list[discord.Message] = []

        async def show(content: str) -> None:  # one message of ours, edited as the answer grows
            if streamed:
                await streamed[0].edit(content=content, allowed_mentions=discord.AllowedMentions.none())
            else:
                streamed.append(await message.reply(content, mention_author=False,
                                                    allowed_mentions=discord.AllowedMentions.none()))

        async def partial(text_so_far: str) -> None:  # show the answer as it grows
            await show(text_so_far[:1990] + " …")

        async def waiting(ahead: int) -> None:  # every reply slot is taken: say where they stand
            await show(f"-# {waiting_words(ahead)}")
        try:
            async with message.channel.typing():
                reply = await self.bot.core.chat.reply(caller, text, message_id=str(message.id), on_partial=partial,
                                                       on_wait=waiting)
        except TrainerBotError as exc:
            if streamed:
                await streamed[0].edit(content=shown(exc.user_message), allowed_mentions=discord.AllowedMentions.none())
            else:
                await message.reply(shown(exc.user_message), mention_author=False,
                                    allowed_mentions=discord.AllowedMentions.none())
            return
        await self._deliver(message, caller, reply, reply.content, streamed[0] if streamed else None)

    async def _voice_message(self, message: discord.Message, audio: discord.Attachment) -> None:
        caller = caller_of(message.author, message.guild, message.channel.id, owner_ids=self.bot.owner_ids_known)
        try:
            data = await read_attachment(audio, self.bot.settings.limits.max_attachment_bytes)
            async with message.channel.typing():
                reply = await self.bot.core.chat.voice_message(caller, data, message_id=str(message.id))
        except TrainerBotError as exc:
            await message.reply(shown(exc.user_message), mention_author=False, allowed_mentions=discord.AllowedMentions.none())
            return
        await self._deliver(message, caller, reply, reply.answer or "")

    async def _deliver(self, message: discord.Message, caller: Caller, reply: Reply, spoken: str,
                       streamed: discord.Message | None = None) -> None:
        """Send the answer (or finish the streamed message), remember its ID, add the rating
        buttons, and speak it if joined."""
        reply, spoken = reply.for_prefix(SLASH), shown(spoken)
        if streamed is not None:
            await streamed.edit(content=reply.messages[0], allowed_mentions=discord.AllowedMentions.none())
            if len(reply.messages) > 1 or reply.files:
                await send_reply(message.channel, Reply(messages=reply.messages[1:], files=reply.files))
            sent: discord.Message | None = streamed  # the ID and the rating buttons: the message with the answer's start
        else:
            sent = await send_reply(message.channel, reply, reference=message)
        reply_id = reply.reply_id
        if sent is not None and reply_id is not None:
            await self.bot.core.delivery.bind_reply(caller, reply_id, str(sent.id))
            for emoji in RATINGS:
                await sent.add_reaction(emoji)
        if reply_id is not None:
            try:
                await self.speaker.speak_reply(message.guild, message.author, caller, spoken)
            except TrainerBotError as exc:
                log.info("not speaking a reply: %s", exc.user_message)
