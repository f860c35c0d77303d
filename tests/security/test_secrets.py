"""Secrets never leak: with a known dummy Discord token, speech API key and database
password, a whole console session walks the error paths at DEBUG logging — and no log
line, reply or file under the data folder contains any of them. Settings that fail
validation are named, never echoed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.httpfake import Response, serve
from trainerbot.voice.audio import encode
from trainerbot.voice.tts import EspeakEngine

TOKEN = "MTIzNDU2Nzg5.dummy-token-never-shown.abcdefghijklmnop"
KEY = "AIza-dummy-speech-key-never-shown-42"
PASSWORD = "hunter2-never-shown"
OPENAI_KEY = "sk-dummy-openai-key-never-shown-0123456789"
SECRETS = (TOKEN, KEY, PASSWORD, OPENAI_KEY)


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINERBOT_") and k != "DISCORD_TOKEN"}
    env["TRAINERBOT_MODEL"] = "scratch"
    env.update(extra)
    return env


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def test_no_secret_in_logs_replies_or_files_along_the_error_paths(tmp_path: Path) -> None:
    data = tmp_path / "data"
    voice = tmp_path / "question.ogg"
    voice.write_bytes(encode(EspeakEngine().synthesize("open the door please", "en"), "ogg"))
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a"}\n')
    (tmp_path / "cases.json").write_text('[{"prompt": 1}]')
    script = "\n".join([
        "!hi", "!nonsense", "hello there", f"!getfile ../../{KEY}", "!import facts --attach " + str(tmp_path / "bad.jsonl"),
        "!import facts --attach /does/not/exist.jsonl", "!train", "!job 99", "!cancel abc", "!model use v7",
        "!test --attach " + str(tmp_path / "cases.json"), "!test {", "!correct 1 nope", "!react 5 👍", "!review",
        "!approve 3", "!forget ../x", "!say", "!language klingon", f"!feedback {TOKEN[:5]}",
        f"hi --attach {voice}",  # transcription through the (failing) online engine that holds the key
    ]) + "\n"
    with serve(lambda r: Response(401, b"Unauthorized")) as google, serve(
            lambda r: Response(401, b'{"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}',
                               {"Content-Type": "application/json"})) as chat_server:
        proc = subprocess.run(
            [sys.executable, "-m", "trainerbot", "console", "--no-worker", "--verbose", "--data-dir", str(data)],
            input=script, capture_output=True, text=True, timeout=180, cwd=tmp_path,
            env=_env({"DISCORD_TOKEN": TOKEN, "TRAINERBOT_GOOGLE_SPEECH_KEY": KEY, "TRAINERBOT_LOG_LEVEL": "DEBUG",
                      "TRAINERBOT_STT_ENGINE": "google", "TRAINERBOT_GOOGLE_SPEECH_ENDPOINT": google.url + "/recognize",
                      "TRAINERBOT_DATABASE_URL": f"sqlite:///{data / 'trainerbot.db'}?user=bot&password={PASSWORD}",
                      "OPENAI_API_KEY": OPENAI_KEY, "TRAINERBOT_BACKEND": "openai",
                      "TRAINERBOT_OPENAI_BASE_URL": chat_server.url + "/v1"}))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "Google speech recognition failed (HTTP 401 Unauthorized)" in proc.stdout  # the key's path was walked
    assert google.requests and google.requests[0].query["key"] == [KEY]  # …and really used the key
    assert "refused the API key (HTTP 401)" in proc.stdout  # the chat server's path too
    assert chat_server.requests[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert "settings:" in proc.stderr and "DEBUG" in proc.stderr and proc.stdout.count("⚠") >= 15
    for secret in SECRETS:
        assert secret not in out, secret
        for path in _files_under(data):
            assert secret.encode() not in path.read_bytes(), (secret, path)


@pytest.mark.parametrize("setting,value", [
    ("TRAINERBOT_PREFIX", "has spaces"),
    ("TRAINERBOT_MAX_TEST_CASES", "0"),
    ("TRAINERBOT_GOOGLE_SPEECH_ENDPOINT", f"ftp://{KEY}@host"),
    ("TRAINERBOT_PROMOTION_METRIC", PASSWORD),
])
def test_settings_validation_names_the_setting_and_echoes_no_secret(tmp_path: Path, setting: str, value: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "trainerbot", "console", "--no-worker", "--data-dir", str(tmp_path / "d")],
                          input="", capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=_env({"DISCORD_TOKEN": TOKEN, "TRAINERBOT_GOOGLE_SPEECH_KEY": KEY, setting: value}))
    assert proc.returncode == 2 and setting.removeprefix("TRAINERBOT_").lower() in proc.stderr
    for secret in SECRETS:
        assert secret not in proc.stdout + proc.stderr
