"""Real speech: espeak-ng synthesis, ffmpeg conversion, faster-whisper recognition."""

from __future__ import annotations

import io
import subprocess
import time
import wave
from pathlib import Path

import pytest

from trainerbot.errors import BadInput
from trainerbot.evaluation.wer import corpus_wer, wer
from trainerbot.voice.audio import encode, to_wav16k, wav_seconds
from trainerbot.voice.stt import WhisperEngine
from trainerbot.voice.tts import EspeakEngine, split_sentences

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")  # Debian's pocketsphinx-testdata (`make test` installs it)


@pytest.fixture(scope="module")
def stt() -> WhisperEngine:
    return WhisperEngine(threads=2)


def _rms(wav: bytes) -> float:
    import array

    with wave.open(io.BytesIO(wav)) as w:
        samples = array.array("h", w.readframes(w.getnframes()))
    return (sum(s * s for s in samples) / max(1, len(samples))) ** 0.5


@pytest.mark.parametrize("language,text", [("en", "The capital of Zorbia is Quillport."),
                                           ("ru", "Столица страны Зорбия — город Квилпорт.")])
def test_espeak_speaks_audible_audio_of_plausible_length(language: str, text: str) -> None:
    wav = EspeakEngine().synthesize(text, language)
    seconds = wav_seconds(wav)
    assert 1.0 < seconds < 8.0  # a short sentence, not silence and not a runaway
    assert _rms(wav) > 300


def test_long_text_is_split_and_sentences_are_cached() -> None:
    engine = EspeakEngine(cache_size=2)
    parts = split_sentences("One. Two! Three? " + "word " * 100, limit=120)
    assert parts[:3] == ["One.", "Two!", "Three?"] and all(len(p) <= 120 for p in parts)
    engine.synthesize("Hello there. General Kenobi.", "en")
    start = time.perf_counter()
    engine.synthesize("Hello there. General Kenobi.", "en")
    assert time.perf_counter() - start < 0.01 and len(engine._cache) == 2


@pytest.mark.parametrize(
    "text,language,message", [("", "en", "some text"), ("x" * 3000, "en", "at most"), ("hi", "xx", "can't speak")]
)
def test_tts_refuses_bad_requests(text: str, language: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        EspeakEngine().synthesize(text, language)


def test_round_trip_through_ogg_opus(stt: WhisperEngine) -> None:
    ogg = encode(EspeakEngine().synthesize("open the door please", "en"), "ogg")
    assert ogg[:4] == b"OggS"
    start = time.perf_counter()
    text = stt.transcribe(to_wav16k(ogg, max_seconds=60), "en")
    assert wer("open the door please", text) <= 0.25, text
    assert time.perf_counter() - start < 10


def test_bad_audio_is_refused_clearly(tmp_path) -> None:
    with pytest.raises(BadInput, match="empty"):
        to_wav16k(b"", max_seconds=10)
    with pytest.raises(BadInput, match="couldn't read"):
        to_wav16k(b"this is not audio at all" * 100, max_seconds=10)
    with pytest.raises(BadInput, match="couldn't read"):
        to_wav16k(b"OggS" + b"\x00" * 500, max_seconds=10)  # a corrupt voice message
    long_wav = tmp_path / "long.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(long_wav), "synth", "5", "sine", "440"], check=True)
    with pytest.raises(BadInput, match="longer than 2 s"):
        to_wav16k(long_wav.read_bytes(), max_seconds=2)


def test_english_only_model_refuses_russian_clearly(stt: WhisperEngine) -> None:
    wav = to_wav16k(EspeakEngine().synthesize("Привет", "ru"), max_seconds=10)
    with pytest.raises(BadInput, match="English only"):
        stt.transcribe(wav, "ru")


def test_real_human_speech_librivox(stt: WhisperEngine) -> None:
    references = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, name = line.rpartition(" (")
        references[name.rstrip(")")] = text.replace("<s>", "").replace("</s>", "").strip()
    pairs = []
    for name, reference in references.items():
        wav = to_wav16k((LIBRIVOX / f"{name}.wav").read_bytes(), max_seconds=60)
        pairs.append((reference, stt.transcribe(wav, "en")))
    assert corpus_wer(pairs) <= 0.15, pairs


def test_the_multilingual_model_is_joined_once_and_hears_russian(tmp_path) -> None:
    from trainerbot.voice.weights import multilingual_model_dir

    folder = multilingual_model_dir(tmp_path)
    assert (folder / "DONE.json").is_file() and (folder / "model.bin").stat().st_size > 100_000_000
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert multilingual_model_dir(tmp_path) == folder and (folder / "model.bin").stat().st_mtime_ns == stamp
    engine = WhisperEngine(folder)
    assert not engine.english_only
    wav = to_wav16k(encode(EspeakEngine().synthesize("сегодня хорошая погода", "ru"), "ogg"), max_seconds=10)
    assert "хорош" in engine.transcribe(wav, "ru").lower()


def test_a_half_joined_model_is_redone(tmp_path) -> None:
    from trainerbot.voice.weights import multilingual_model_dir

    partial = tmp_path / "models" / ".whisper-base.partial"
    partial.mkdir(parents=True)
    (partial / "model.bin").write_bytes(b"half")
    folder = multilingual_model_dir(tmp_path)
    assert not partial.exists() and (folder / "DONE.json").is_file()


def test_piper_speaks_english_that_whisper_understands(stt: WhisperEngine) -> None:
    from trainerbot.voice.tts import PiperEngine

    engine = PiperEngine()
    wav = engine.synthesize("Open the door, please.", "en")
    assert 0.8 < wav_seconds(wav) < 5 and _rms(wav) > 300
    heard = stt.transcribe(to_wav16k(wav, max_seconds=10), "en").lower()
    assert "door" in heard and "please" in heard, heard
    with pytest.raises(BadInput, match="with piper"):
        engine.synthesize("Привет", "ru")


def test_a_model_package_that_is_not_the_pinned_one_is_refused(tmp_path, monkeypatch) -> None:
    from trainerbot.errors import NotAvailable
    from trainerbot.voice import weights

    monkeypatch.setattr(weights, "BASE_SHA256", "0" * 64)
    with pytest.raises(NotAvailable, match="not the pinned"):
        weights.multilingual_model_dir(tmp_path)
    assert not (tmp_path / "models" / "whisper-base").exists() and not (tmp_path / "models" / ".whisper-base.partial").exists()
