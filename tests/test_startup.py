"""Start-up failures in plain words: Discord unreachable, refusing the token or failing
(at discord.py's HTTP boundary), the store down and then up, the data folder unusable.
Each asserts plain lines on stderr (no traceback), the exit status, and that no secret
shows."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import discord
import pytest

from tests.conftest import fill_disk
from tests.httpfake import Response, serve
from trainerbot import cli, startup

TOKEN = "MTIzNDU2Nzg5.dummy-token-for-startup-tests.abcdefghijklmnop"
PASSWORD = "pg-secret-7d1f"


@pytest.fixture
def root_logging() -> Iterator[None]:
    """`main()` sets up logging for the process; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    for handler in list(root.handlers):
        if handler not in saved[0]:
            root.removeHandler(handler)
            handler.close()
    for handler in saved[0]:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(saved[1])


def _run_bot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, base: str, capsys: pytest.CaptureFixture[str],
             **env: str) -> tuple[int, list[str], float]:
    """`trainerbot run` in this process, with discord.py's API base pointed at ``base``."""
    monkeypatch.setattr(discord.http.Route, "BASE", base)
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("TRAINERBOT_STARTUP_RETRY_S", "0.05")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    started = time.monotonic()
    status = cli.main(["run", "--no-worker", "--data-dir", str(tmp_path / "data")])
    took = time.monotonic() - started
    err = capsys.readouterr().err
    assert TOKEN not in err and "Traceback" not in err, err
    return status, [line for line in err.splitlines() if line.startswith("trainerbot: ")], took


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def test_discord_refusing_connections_is_retried_then_given_up(monkeypatch, tmp_path, capsys, root_logging) -> None:
    port = _refused_port()
    status, lines, _ = _run_bot(monkeypatch, tmp_path, f"http://127.0.0.1:{port}/api/v10", capsys, TRAINERBOT_DISCORD_RETRIES="2")
    assert status == startup.EXIT_DISCORD
    assert all("cannot reach Discord: no connection to 127.0.0.1" in line and "trying again in" in line for line in lines[:2])
    assert len(lines) == 3 and "Gave up after 2 retries" in lines[2]


def test_an_unresolvable_discord_is_a_dns_line(monkeypatch, tmp_path, capsys, root_logging) -> None:
    status, lines, _ = _run_bot(monkeypatch, tmp_path, "http://discord.invalid/api/v10", capsys, TRAINERBOT_DISCORD_RETRIES="1")
    assert status == startup.EXIT_DISCORD
    assert "does not resolve (DNS)" in lines[0] and "trying again in" in lines[0] and len(lines) == 2


def test_a_refused_token_ends_at_once(monkeypatch, tmp_path, capsys, root_logging) -> None:
    body = b'{"message": "401: Unauthorized", "code": 0}'
    with serve(lambda r: Response(401, body, {"Content-Type": "application/json"})) as fake:
        status, lines, _ = _run_bot(monkeypatch, tmp_path, fake.url + "/api/v10", capsys)
    assert status == startup.EXIT_TOKEN
    assert lines == ["trainerbot: Discord refused the token (check DISCORD_TOKEN: the bot's token from the developer portal, "
                     "Bot → Reset Token)."]
    assert len(fake.requests) == 1 and fake.requests[0].path == "/api/v10/users/@me"  # no retry loop on a bad token
    assert fake.requests[0].headers["authorization"] == f"Bot {TOKEN}"  # (the token was really sent)


def test_discord_answering_5xx_is_retried(monkeypatch, tmp_path, capsys, root_logging) -> None:
    with serve(lambda r: Response(503, b"upstream unavailable")) as fake:
        status, lines, _ = _run_bot(monkeypatch, tmp_path, fake.url + "/api/v10", capsys, TRAINERBOT_DISCORD_RETRIES="2")
    assert status == startup.EXIT_DISCORD and len(fake.requests) == 3
    assert all("Discord answered with an error of its own (HTTP 503)" in line for line in lines)


def test_unusable_data_folders_are_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for folder, words in ((blocker / "data", "part of that path is a file"), (blocker, "is a file, not a folder")):
        proc = subprocess.run([sys.executable, "-m", "trainerbot", "console", "--no-worker", "--data-dir", str(folder)],
                              input="", capture_output=True, text=True, timeout=60, env=_env())
        assert proc.returncode == startup.EXIT_DATA_DIR, proc.stderr
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and str(folder) in proc.stderr and words in proc.stderr


def test_a_full_disk_at_start_is_named(small_disk: Path) -> None:
    fill_disk(small_disk)
    proc = subprocess.run([sys.executable, "-m", "trainerbot", "console", "--no-worker", "--data-dir", str(small_disk / "data")],
                          input="", capture_output=True, text=True, timeout=60, env=_env())
    assert proc.returncode == startup.EXIT_DATA_DIR, proc.stderr
    assert (
        proc.stderr.strip()
        == f"trainerbot: the disk holding the data folder {small_disk / 'data'} is full; free some space and start again."
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINERBOT_") and k != "DISCORD_TOKEN"}
    env["TRAINERBOT_MODEL"] = "scratch"
    env.update(extra)
    return env


def test_the_store_down_at_start_then_up_and_down_mid_run(tmp_path: Path) -> None:
    from tests.pg import PgServer, new_database

    server = PgServer()
    try:
        server.start()
        url = new_database(server.url).replace(f"{server.url.split('@')[0]}@", f"postgresql+psycopg://trainerbot:{PASSWORD}@")
        server.stop()
        # Down for good: a few tries, then one line and exit 5.
        proc = subprocess.run(
            [sys.executable, "-m", "trainerbot", "console", "--no-worker", "--data-dir", str(tmp_path / "d1")],
            input="!hi\n",
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(TRAINERBOT_DATABASE_URL=url, TRAINERBOT_STORE_RETRIES="2", TRAINERBOT_STARTUP_RETRY_S="0.05"),
        )
        lines = proc.stderr.strip().splitlines()
        hidden = url.replace(PASSWORD, "***")
        assert proc.returncode == startup.EXIT_STORE and "Traceback" not in proc.stderr and PASSWORD not in proc.stderr
        assert len(lines) == 3 and all(f"cannot reach the database at {hidden}: connection refused" in line for line in lines)
        assert "trying again in" in lines[0] and "(1 of 2)" in lines[0] and "Check that it is running" in lines[2]

        # Down at start, up a moment later: the bot waits, then works; down mid-run: a plain reply, and it stays up.
        bot = subprocess.Popen(
            [sys.executable, "-m", "trainerbot", "console", "--no-worker", "--data-dir", str(tmp_path / "d2")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(TRAINERBOT_DATABASE_URL=url, TRAINERBOT_STORE_RETRIES="60", TRAINERBOT_STARTUP_RETRY_S="0.2"),
        )
        out: list[str] = []
        threading.Thread(target=lambda: out.extend(bot.stdout), daemon=True).start()  # type: ignore[arg-type]

        def wait_for(text: str, timeout: float = 60) -> None:
            deadline = time.monotonic() + timeout
            while not any(text in line for line in out):
                assert time.monotonic() < deadline and bot.poll() is None, (text, out)
                time.sleep(0.1)

        def send(line: str) -> None:
            assert bot.stdin is not None
            bot.stdin.write(line + "\n")
            bot.stdin.flush()

        time.sleep(1.5)  # a few refused tries
        server.start()
        send("!hi")
        wait_for("Hi operator!")
        server.stop()
        send("!datasets")
        wait_for("can't reach my database right now")
        server.start()
        send("!feedback back again")
        wait_for("feedback is noted")
        send("!quit")
        _, err = bot.communicate(timeout=60)
        assert bot.returncode == 0, err[-2000:]
        assert "cannot reach the database at" in err and "connection refused; trying again in" in err
        assert "Traceback" not in err and PASSWORD not in err + "".join(out)
    finally:
        server.remove()
