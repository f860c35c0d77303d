"""Speech: text-to-speech real-time factor, and an STT round trip with word error rate.

TTS: espeak-ng real-time factor (synthesis time / audio length) for English and Russian;
target ≤ 0.05. STT: English sentences synthesised with espeak-ng, encoded to OGG Opus (as
Discord voice messages are), converted back and recognised with the default engine
(faster-whisper, Whisper tiny.en): WER (target ≤ 15 %) and real-time factor (target ≤ 0.3).
Real human speech: the LibriVox recordings of Debian's pocketsphinx-testdata. The
PocketSphinx fallback is measured on both sets too. Russian:
espeak-ng sentences recognised with the multilingual Whisper base (targets WER ≤ 40 %,
real-time factor ≤ 1.0). The baseline for WER is the empty transcript (100 %).

    .venv/bin/python bench/speech.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from trainerbot.evaluation.wer import corpus_wer
from trainerbot.voice.audio import encode, to_wav16k, wav_seconds
from trainerbot.voice.stt import SphinxEngine, STTEngine, WhisperEngine
from trainerbot.voice.tts import CachedEngine, EspeakEngine, PiperEngine
from trainerbot.voice.weights import multilingual_model_dir

ENGLISH = [
    "open the door please", "the weather is nice today", "please turn off the lights", "what time is it now",
    "i would like a cup of tea", "the train leaves at seven", "where is the nearest station", "thank you very much",
    "the children are playing outside", "can you help me with this", "the book is on the table", "we need more water",
    "my phone is out of battery", "the meeting starts in ten minutes", "she reads a new book every week",
    "turn left at the next corner", "the store closes at nine", "he plays the guitar very well",
    "it is raining in the city", "please send me the report",
]
RUSSIAN = [
    "привет как дела", "сегодня хорошая погода", "открой дверь пожалуйста", "который сейчас час", "я хочу чашку чая",
    "поезд уходит в семь", "где ближайшая станция", "большое спасибо", "дети играют на улице", "книга лежит на столе",
]
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def tts_rtf(engine: CachedEngine, sentences: list[str], language: str) -> tuple[float, float]:
    synth = audio = 0.0
    for s in sentences:
        engine._cache.clear()
        start = time.perf_counter()
        wav = engine.synthesize(s, language)
        synth += time.perf_counter() - start
        audio += wav_seconds(wav)
    return synth / audio, audio


def main() -> None:
    tts = EspeakEngine()
    for language, sentences in (("en", ENGLISH), ("ru", RUSSIAN)):
        rtf, audio = tts_rtf(tts, sentences, language)
        print(f"TTS espeak-ng {language}: real-time factor {rtf:.4f} over {audio:.1f} s of speech  (target ≤ 0.05)")
    piper = PiperEngine()
    piper.synthesize("warm up", "en")
    rtf, audio = tts_rtf(piper, ENGLISH, "en")
    print(f"TTS piper en (option): real-time factor {rtf:.4f} over {audio:.1f} s of speech")

    stt = WhisperEngine(threads=2)
    stt.transcribe(to_wav16k(tts.synthesize("warm up", "en"), max_seconds=60), "en")  # load once, outside the timing
    spoken = [(s, encode(tts.synthesize(s, "en"), "ogg")) for s in ENGLISH]
    pairs, rtf, _ = recognise(stt, spoken, "en")
    print(f"STT faster-whisper tiny.en, {len(pairs)} English espeak sentences via OGG Opus: WER {corpus_wer(pairs):.1%} "
          f"(baseline, empty transcript: 100 %; target ≤ 15 %), real-time factor {rtf:.3f} (target ≤ 0.3)")
    hardest(pairs)
    pairs, _, _ = recognise(stt, [(s, encode(piper.synthesize(s, "en"), "ogg")) for s in ENGLISH], "en")
    print(f"STT tiny.en on the same sentences spoken by piper: WER {corpus_wer(pairs):.1%}")

    if LIBRIVOX.is_dir():
        human = []
        for line in (LIBRIVOX / "transcription").read_text().splitlines():
            text, _, name = line.rpartition(" (")
            human.append(
                (text.replace("<s>", "").replace("</s>", "").strip(), (LIBRIVOX / f"{name.rstrip(')')}.wav").read_bytes())
            )
        pairs, rtf, audio = recognise(stt, human, "en")
        print(
            f"STT tiny.en on LibriVox human speech ({len(pairs)} utterances, {audio:.0f} s): WER {corpus_wer(pairs):.1%}, "
            f"real-time factor {rtf:.3f}"
        )

    sphinx = SphinxEngine()
    sphinx.transcribe(to_wav16k(tts.synthesize("warm up", "en"), max_seconds=60), "en")
    pairs, rtf, _ = recognise(sphinx, spoken, "en")
    print(
        f"STT pocketsphinx (fallback), the same English espeak sentences: WER {corpus_wer(pairs):.1%}, real-time factor {rtf:.3f}"
    )
    if LIBRIVOX.is_dir():
        pairs, rtf, _ = recognise(sphinx, human, "en")
        print(f"STT pocketsphinx on LibriVox human speech: WER {corpus_wer(pairs):.1%}, real-time factor {rtf:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        folder = multilingual_model_dir(Path(tmp))
        joined = time.perf_counter() - start
        base = WhisperEngine(folder, threads=2)
        base.transcribe(to_wav16k(tts.synthesize("разминка", "ru"), max_seconds=60), "ru")
        pairs, rtf, _ = recognise(base, [(s, encode(tts.synthesize(s, "ru"), "ogg")) for s in RUSSIAN], "ru")
    print(
        f"STT faster-whisper base (multilingual, joined in {joined:.1f} s), {len(pairs)} Russian espeak sentences via OGG Opus: "
        f"WER {corpus_wer(pairs):.1%} (target ≤ 40 %), real-time factor {rtf:.3f} (target ≤ 1.0)"
    )
    hardest(pairs)


def recognise(engine: STTEngine, clips: list[tuple[str, bytes]], language: str) -> tuple[list[tuple[str, str]], float, float]:
    """(reference, transcript) pairs, the real-time factor of recognition alone, and the audio seconds."""
    pairs, spent, audio = [], 0.0, 0.0
    for reference, data in clips:
        wav = to_wav16k(data, max_seconds=60)
        start = time.perf_counter()
        pairs.append((reference, engine.transcribe(wav, language)))
        spent += time.perf_counter() - start
        audio += wav_seconds(wav)
    return pairs, spent / audio, audio


def hardest(pairs: list[tuple[str, str]]) -> None:
    worst = sorted(pairs, key=lambda p: -corpus_wer([p]))[:3]
    print("  hardest: " + "; ".join(f"{r!r} → {h!r}" for r, h in worst))


if __name__ == "__main__":
    main()
