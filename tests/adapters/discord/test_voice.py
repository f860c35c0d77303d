"""The voice cog with a fake voice connection at the boundary (Discord's voice servers are
out of reach): join/leave, spoken replies queued without overlap, idle leave, voice
messages, and the real audio source the bot would play."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import replace

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext import commands

from tests.conftest import JSONL_FACTS
from trainerbot.adapters.discord.bot import TrainerBot
from trainerbot.adapters.discord.cogs.voice import pcm_source
from trainerbot.voice.audio import encode
from trainerbot.voice.tts import EspeakEngine


class FakeVoiceClient(discord.VoiceProtocol):
    """Stands in for ``discord.VoiceClient``: records what is played, plays it in a thread."""

    instances: list[FakeVoiceClient] = []

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        super().__init__(client, channel)
        self.connected = False
        self.played: list[bytes] = []
        self.overlaps = 0
        self._playing = False
        FakeVoiceClient.instances.append(self)

    async def connect(self, *, timeout: float, reconnect: bool, self_deaf: bool = False, self_mute: bool = False) -> None:
        self.connected = True  # discord.py registers the client with its guild itself
        self.guild = self.channel.guild

    async def disconnect(self, *, force: bool = False) -> None:
        self.connected = False
        self.cleanup()

    async def move_to(self, channel: discord.abc.Snowflake | None) -> None:
        self.channel = channel  # type: ignore[assignment]

    def is_connected(self) -> bool:
        return self.connected

    def is_playing(self) -> bool:
        return self._playing

    def play(self, source: discord.AudioSource, *, after=None) -> None:  # type: ignore[no-untyped-def]
        if self._playing:
            self.overlaps += 1

        def run() -> None:
            self._playing = True
            pcm = b""
            while frame := source.read():
                pcm += frame
            source.cleanup()
            self.played.append(pcm)
            self._playing = False
            if after:
                after(None)
        threading.Thread(target=run, daemon=True).start()


@pytest.fixture
def voice_bot(bot: TrainerBot) -> TrainerBot:
    FakeVoiceClient.instances.clear()
    bot.voice_client_class = FakeVoiceClient
    return bot


async def _send(content: str, member: int = 0, channel: int = 0, attachments=None) -> discord.Message:  # type: ignore[no-untyped-def]
    with contextlib.suppress(commands.CommandError):
        await dpytest.message(content, channel=channel, member=member, attachments=attachments)
    return dpytest.get_message()


async def _enter_voice(member_index: int) -> discord.VoiceChannel:
    cfg = dpytest.get_config()
    member = cfg.members[member_index]
    channel = member.guild.voice_channels[0]
    await member.move_to(channel)
    return channel


async def test_join_needs_the_caller_in_a_voice_channel(voice_bot: TrainerBot) -> None:
    assert "Join a voice channel first" in (await _send("!join")).content
    assert "not in a voice channel" in (await _send("!leave")).content


async def test_join_speak_queue_and_leave(voice_bot: TrainerBot, tmp_path) -> None:
    facts = tmp_path / "f.jsonl"
    facts.write_text(JSONL_FACTS)
    await _send("!import facts", attachments=[str(facts)])
    channel = await _enter_voice(1)
    await _enter_voice(0)
    assert f"Joined **{channel.name}**" in (await _send("!join")).content
    [vc] = FakeVoiceClient.instances
    me = voice_bot.user
    await _send(f"<@{me.id}> what is the capital of zorbia?", member=1)
    await _send(f"<@{me.id}> who founded quillport?", member=1)
    for _ in range(200):
        if len(vc.played) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(vc.played) == 2 and vc.overlaps == 0  # both spoken, one after the other
    assert all(len(pcm) > 48000 * 4 * 0.5 for pcm in vc.played)  # at least half a second of 48 kHz stereo
    assert "Left the voice channel" in (await _send("!leave")).content
    assert not vc.is_connected()


async def test_idle_bot_leaves_by_itself(voice_bot: TrainerBot) -> None:
    await _enter_voice(0)
    await _send("!join")
    cog = voice_bot.get_cog("Voice")
    assert await cog.leave_idle() == 0
    voice_bot.settings = replace(voice_bot.settings, voice_idle_seconds=0.01)
    await asyncio.sleep(0.02)
    assert await cog.leave_idle() == 1
    assert not FakeVoiceClient.instances[0].is_connected()


async def test_a_voice_message_is_answered(voice_bot: TrainerBot, tmp_path) -> None:
    doors = tmp_path / "d.jsonl"
    doors.write_text('{"prompt": "open the door please", "response": "The door is open."}\n')
    await _send("!import doors", attachments=[str(doors)])
    voice = tmp_path / "voice-message.ogg"
    voice.write_bytes(encode(EspeakEngine().synthesize("open the door please", "en"), "ogg"))
    me = voice_bot.user
    reply = await _send(f"<@{me.id}>", member=1, attachments=[str(voice)])
    assert reply.content.startswith("> Open the door") and reply.content.endswith("The door is open.")


def test_the_played_source_yields_20ms_pcm_frames() -> None:
    source = pcm_source(EspeakEngine().synthesize("Testing one two three.", "en"))
    frames = []
    while frame := source.read():
        frames.append(frame)
    source.cleanup()
    assert len(frames) > 25 and all(len(f) == 3840 for f in frames[:-1])  # 20 ms of 48 kHz stereo 16-bit


async def test_join_says_plainly_when_voice_programs_are_missing(voice_bot: TrainerBot, monkeypatch) -> None:
    import shutil as real_shutil

    which = real_shutil.which
    monkeypatch.setattr(real_shutil, "which", lambda name, *a, **k: None if name == "ffmpeg" else which(name, *a, **k))
    await _enter_voice(0)
    refused = await _send("!join")
    assert "can't speak on this machine: ffmpeg is not installed" in refused.content
    assert "apt-get install ffmpeg" in refused.content
    assert FakeVoiceClient.instances == []  # it did not connect
