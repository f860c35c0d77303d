"""PocketSphinx (offline fallback) on real speech, and the two online Google services the
original bot used, against a real HTTP server on 127.0.0.1 that answers as they do."""

from __future__ import annotations

import base64
import json
import traceback
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.conftest import att
from tests.httpfake import Request, Response, serve
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.errors import BadInput, NotAvailable
from trainerbot.evaluation.wer import corpus_wer
from trainerbot.voice.audio import encode, to_wav16k, wav_seconds
from trainerbot.voice.stt import GoogleEngine, SphinxEngine
from trainerbot.voice.tts import EspeakEngine, GTTSEngine

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
KEY = "AIza-dummy-speech-key-123"


def test_pocketsphinx_hears_real_human_speech_with_one_decoder() -> None:
    engine = SphinxEngine()
    pairs = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, name = line.rpartition(" (")
        wav = to_wav16k((LIBRIVOX / f"{name.rstrip(')')}.wav").read_bytes(), max_seconds=60)
        pairs.append((text.replace("<s>", "").replace("</s>", "").strip(), engine.transcribe(wav, "en")))
        decoder = engine._decoder
    assert decoder is engine._decoder  # loaded once, reused for every clip
    assert corpus_wer(pairs) <= 0.35, pairs  # measured 28 % (Whisper tiny.en: 6 %)
    with pytest.raises(BadInput, match="English only"):
        engine.transcribe(wav, "ru")


def _google_answer(transcript: str | None) -> Response:
    lines = ['{"result":[]}']
    if transcript is not None:
        lines.append(json.dumps({"result": [{"alternative": [{"transcript": transcript, "confidence": 0.93}], "final": True}],
                                 "result_index": 0}))
    return Response(200, ("\n".join(lines) + "\n").encode(), {"Content-Type": "application/json; charset=utf-8"})


@pytest.fixture(scope="module")
def door_wav() -> bytes:
    return to_wav16k(EspeakEngine().synthesize("open the door please", "en"), max_seconds=10)


def test_google_recognition_speaks_the_real_protocol(door_wav: bytes) -> None:
    with serve(lambda r: _google_answer("open the door please")) as server:
        engine = GoogleEngine(key=KEY, endpoint=server.url + "/speech-api/v2/recognize", timeout_s=5)
        assert engine.transcribe(door_wav, "ru") == "open the door please"
    [request] = server.requests
    assert request.method == "POST" and request.path == "/speech-api/v2/recognize"
    assert request.query["lang"] == ["ru-RU"] and request.query["key"] == [KEY]
    assert request.headers["content-type"].startswith("audio/x-flac") and "rate=16000" in request.headers["content-type"]
    assert request.body[:4] == b"fLaC"


@pytest.mark.parametrize("response,message", [
    (Response(401, b"Unauthorized"), "Unauthorized"),
    (Response(429, b"slow down", {"Retry-After": "30"}), "Too Many Requests"),
    (Response(500, b"boom"), "Internal Server Error"),
    (Response(200, b'{"result":[]}\n', delay_s=3), "timed out"),
])
def test_google_recognition_failures_are_clear_and_never_show_the_key(door_wav: bytes, response: Response, message: str) -> None:
    with serve(lambda r: response) as server:
        engine = GoogleEngine(key=KEY, endpoint=server.url + "/recognize", timeout_s=1)
        with pytest.raises(NotAvailable, match=message) as caught:
            engine.transcribe(door_wav, "en")
    assert KEY not in "".join(traceback.format_exception(caught.value))  # nor in a chained exception's URL


def _mp3(text: str) -> bytes:
    return encode(EspeakEngine().synthesize(text, "en"), "mp3")


def _translate_tts(seen_text: list[str]) -> callable:
    """Google Translate's batchexecute endpoint for the jQ1olc (text-to-speech) RPC."""
    def handler(request: Request) -> Response:
        form = parse_qs(request.body.decode())
        [[[rpc, params, _, _]]] = json.loads(form["f.req"][0])
        text, lang, _, _ = json.loads(params)
        assert rpc == "jQ1olc" and lang in ("en", "ru")
        seen_text.append(text)
        audio = base64.b64encode(_mp3(text)).decode()
        payload = json.dumps([["wrb.fr", "jQ1olc", json.dumps([audio]), None, None, None, "generic"]], separators=(",", ":"))
        return Response(
            200, f")]}}'\n\n{len(payload)}\n{payload}\n".encode(), {"Content-Type": "application/json; charset=utf-8"}
        )

    return handler


def test_gtts_engine_speaks_the_translate_protocol_in_chunks_of_100() -> None:
    seen: list[str] = []
    long_sentence = "This sentence goes on " + "and on " * 20 + "until it ends."
    with serve(_translate_tts(seen)) as server:
        engine = GTTSEngine(server.url + "/_/TranslateWebserverUi/data/batchexecute", timeout_s=5)
        wav = engine.synthesize(f"Hello there. {long_sentence}", "en")
    assert seen[0] == "Hello there." and len(seen) >= 3 and all(len(t) <= 100 for t in seen)
    assert " ".join(seen[1:]) == long_sentence
    assert wav_seconds(wav) > 5  # every chunk's audio, joined
    assert all(r.headers["content-type"].startswith("application/x-www-form-urlencoded") for r in server.requests)


@pytest.mark.parametrize(
    "response,message",
    [
        (Response(500, b"oops"), "refused: HTTP 500"),
        (Response(200, b")]}'\n\n[]\n"), "no audio"),
        (Response(200, b"", delay_s=3), "did not answer"),
    ],
)
def test_gtts_failures_are_clear(response: Response, message: str) -> None:
    with serve(lambda r: response) as server:
        with pytest.raises(NotAvailable, match=message):
            GTTSEngine(server.url + "/batchexecute", timeout_s=1).synthesize("Hello.", "en")


async def test_core_uses_the_configured_online_engines(tmp_path: Path, member: Caller) -> None:
    seen: list[str] = []
    with serve(_translate_tts(seen)) as tts, serve(lambda r: _google_answer(None)) as stt:
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path / "data",
            tts_engine="gtts",
            stt_engine="google",  # type: ignore[call-arg]
            google_tts_endpoint=tts.url + "/batchexecute",
            google_speech_endpoint=stt.url + "/recognize",
            google_speech_key=KEY,
        )
        core = CoreService.open(settings)
        try:
            reply = await core.voice.say(member, "Good morning.")
            assert seen == ["Good morning."] and reply.files[0].path.stat().st_size > 10_000
            ogg = encode(EspeakEngine().synthesize("good morning", "en"), "ogg")
            with pytest.raises(BadInput, match="couldn't understand"):  # Google found no words
                await core.voice.transcribe(member, att("v.ogg", ogg, "audio/ogg"))
            assert stt.requests[0].query["key"] == [KEY]
        finally:
            core.store.close()
    assert KEY not in settings.redacted().__repr__()
