"""Voice: ``say`` (text to a WAV), speech for voice channels, transcribing audio
attachments, and the guild's ``language`` (which voice speaks, which language is recognised).

Speech engines are built lazily and shared; all audio work runs in worker threads.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trainerbot.config import LimitsSettings, VoiceSettings
from trainerbot.core.base import Basis, Group
from trainerbot.core.text import quote_user_text
from trainerbot.core.types import Attachment, Caller, OutFile, Reply
from trainerbot.datasets import paths
from trainerbot.errors import BadInput
from trainerbot.fileio import atomic_write_bytes, unique_path
from trainerbot.ops import metrics

if TYPE_CHECKING:
    from trainerbot.voice.stt import STTEngine
    from trainerbot.voice.tts import TTSEngine

AUDIO_EXTENSIONS = (".ogg", ".oga", ".opus", ".mp3", ".m4a", ".wav", ".webm", ".flac", ".aac")
LANGUAGES = ("en", "ru")


def is_audio(filename: str, content_type: str | None) -> bool:
    """Whether an upload is audio (a voice message or a sound file), by its type or name."""
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    return ctype.startswith("audio/") or filename.lower().endswith(AUDIO_EXTENSIONS)


class VoiceCommands(Group):
    def __init__(self, basis: Basis, *, voice: VoiceSettings, limits: LimitsSettings, threads: int | None = None) -> None:
        super().__init__(basis)
        self.voice, self.limits = voice, limits
        self.threads = threads  # Whisper's torch threads (TRAINERBOT_TORCH_THREADS; None: 2)
        self._lock = threading.Lock()  # engines are built from worker threads
        self._tts: dict[str, TTSEngine] = {}  # by engine name, built on first use
        self._stt: dict[str, STTEngine] = {}  # by engine name / Whisper model

    def _tts_engine(self, language: str) -> TTSEngine:
        """The configured engine; piper speaks English only, so other languages fall back to espeak-ng."""
        name = self.voice.tts_engine
        if name == "piper" and language != "en":
            name = "espeak-ng"
        with self._lock:
            if name not in self._tts:
                from trainerbot.voice.tts import EspeakEngine, GTTSEngine, PiperEngine

                s = self.voice
                engine: TTSEngine
                if name == "piper":
                    engine = PiperEngine(str(s.piper_voice) if s.piper_voice else None)
                elif name == "gtts":
                    engine = GTTSEngine(s.google_tts_endpoint, timeout_s=s.online_speech_timeout_s)
                else:
                    engine = EspeakEngine()
                self._tts[name] = engine
            return self._tts[name]

    def _stt_engine(self, language: str) -> STTEngine:
        """PocketSphinx or Google when configured; else Whisper: the configured folder if any,
        tiny.en for English, the multilingual base otherwise."""
        s = self.voice
        key = s.stt_engine if s.stt_engine != "whisper" else (
            "configured" if s.whisper_model_dir else ("en" if language == "en" else "multi"))
        with self._lock:
            engine: STTEngine | None = self._stt.get(key)
            if engine is None:
                from trainerbot.voice.stt import GoogleEngine, SphinxEngine, WhisperEngine
                from trainerbot.voice.weights import multilingual_model_dir

                if key == "pocketsphinx":
                    engine = SphinxEngine()
                elif key == "google":
                    secret = s.google_speech_key.get_secret_value() if s.google_speech_key else None
                    engine = GoogleEngine(key=secret, endpoint=s.google_speech_endpoint, timeout_s=s.online_speech_timeout_s)
                else:
                    folder = s.whisper_model_dir or (None if key == "en" else multilingual_model_dir(self.data_dir))
                    engine = WhisperEngine(folder, threads=self.threads or 2)
                self._stt[key] = engine
            return engine

    def missing(self) -> list[str]:
        """The system programs speaking needs that this machine lacks: ffmpeg always (audio
        for Discord), espeak-ng for the espeak-ng engine (and for Russian, piper's fallback)."""
        import shutil

        need = ["ffmpeg"] + (["espeak-ng"] if self.voice.tts_engine in ("espeak-ng", "piper") else [])
        return [program for program in need if shutil.which(program) is None]

    async def guild_language(self, caller: Caller) -> str:
        def load() -> str:
            with self.store.read() as s:
                guild = self._find_guild(s, caller)
                return (guild.settings or {}).get("language", self.voice.language) if guild else self.voice.language
        return await self._blocking(load)

    async def language(self, caller: Caller, language: str | None = None) -> Reply:
        if language is None:
            return Reply.text(f"I speak and listen in `{await self.guild_language(caller)}` here.")
        self._require_trainer(caller, "change the language")
        language = language.strip().lower()
        if language not in LANGUAGES:
            raise BadInput(f"Languages: {', '.join(f'`{x}`' for x in LANGUAGES)}.")

        def save() -> None:
            with self.store.session() as s:
                guild = self._guild(s, caller)
                guild.settings = {**(guild.settings or {}), "language": language}
        await self._blocking(save)
        return Reply.text(f"From now on I speak and listen in `{language}` here.")

    async def speech(self, caller: Caller, text: str) -> bytes:
        """The WAV of ``text`` in the guild's language (for playing in a voice channel)."""
        language = await self.guild_language(caller)
        return await self._blocking(self._tts_engine(language).synthesize, text, language)

    async def say(self, caller: Caller, text: str) -> Reply:
        self._limit(caller, "say")
        wav = await self.speech(caller, text)
        folder = await self._blocking(paths.area_dir, self._root(caller), "artifacts")
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        target: Path = unique_path(folder, f"say-{stamp}", ".wav")
        await self._blocking(atomic_write_bytes, target, wav)
        return Reply.text(f"🔊 \u201c{quote_user_text(text, 80)}\u201d", files=(OutFile(name=target.name, path=target),))

    async def transcribe(self, caller: Caller, attachment: Attachment) -> str:
        """The words in an audio attachment, in the guild's language."""
        from trainerbot.voice.audio import to_wav16k

        if len(attachment.data) > self.limits.max_attachment_bytes:
            raise BadInput("That audio file is over the attachment limit.")
        self._limit(caller, "transcribe")
        wav = await self._blocking(to_wav16k, attachment.data, max_seconds=self.voice.max_audio_seconds)
        language = await self.guild_language(caller)
        engine = await self._blocking(self._stt_engine, language)
        text = await self._blocking(engine.transcribe, wav, language)
        metrics.TRANSCRIPTIONS.inc()
        metrics.TRANSCRIBED_SECONDS.inc(_wav_seconds(wav))
        if not text.strip():
            raise BadInput("I couldn't understand that audio — could you say it again, or type it?")
        return text


def _wav_seconds(wav: bytes) -> float:
    """The length of a WAV file's audio (0 when it cannot be read)."""
    import io
    import wave

    try:
        with wave.open(io.BytesIO(wav)) as w:
            return float(w.getnframes()) / float(w.getframerate() or 1)
    except (wave.Error, EOFError):
        return 0.0
