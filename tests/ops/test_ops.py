"""Health, metrics and logs for operators: scraped from a real console session and parsed
with prometheus-client's own parser; JSON logs with secrets redacted."""

from __future__ import annotations

import json
import logging
import os
import queue as stdlib_queue
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.conftest import JSONL_FACTS
from trainerbot.config import OperationsSettings, Settings
from trainerbot.core import CoreService
from trainerbot.ops import logs
from trainerbot.ops.server import OpsServer
from trainerbot.training import queue

TOKEN = "MTIzNDU2Nzg5.dummy-token-for-ops-tests.abcdefghijklmnop"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_a_console_session_is_scraped(tmp_path: Path) -> None:
    port = _free_port()
    facts = tmp_path / "facts.jsonl"
    facts.write_text(JSONL_FACTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINERBOT_") and k != "DISCORD_TOKEN"}
    env.update({"TRAINERBOT_MODEL": "scratch", "TRAINERBOT_METRICS_PORT": str(port), "DISCORD_TOKEN": TOKEN})
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainerbot", "console", "--no-worker", "--data-dir", str(tmp_path / "d")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines: stdlib_queue.Queue[str] = stdlib_queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]

    def say(line: str, expect: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if expect in lines.get(timeout=1):
                    return
            except stdlib_queue.Empty:
                pass
        raise AssertionError(f"no {expect!r} after {line!r}")

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the console never served /healthz"
                time.sleep(0.2)
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok" and health["console"]["ok"] and health["store"]["ok"]
        assert health["worker"] == {"ok": True, "alive": 0, "expected": False, "jobs_waiting": 0, "heartbeat_age_s": None}

        say(f"!import facts --attach {facts}", "Imported 3 examples")
        say("What is the capital of Zorbia?", "Quillport.")
        say("!nonsense", "Unknown command")
        say("!feedback more please", "feedback is noted")
        say("!train facts", "queued")
        status, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        m = _samples(text)
        assert m[("trainerbot_replies_total", (("source", "taught"),))] == 1
        assert m[("trainerbot_reply_seconds_count", (("source", "taught"),))] == 1
        assert m[("trainerbot_user_errors_total", (("kind", "bad_input"),))] == 1
        assert m[("trainerbot_feedback_events_total", (("kind", "text"),))] == 1
        assert m[("trainerbot_jobs", (("status", "queued"),))] == 1
        assert m[("trainerbot_jobs_finished_total", (("outcome", "succeeded"),))] == 0
        assert m[("trainerbot_worker_heartbeat_age_seconds", ())] == -1
        assert TOKEN not in text
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(body)["worker"]["jobs_waiting"] == 1
    finally:
        out, err = proc.communicate("!quit\n", timeout=60)
    assert proc.returncode == 0, err[-2000:]
    # A quiet console: no log lines on the terminal, all of them in the data folder's log.
    assert "INFO" not in err and "alembic" not in err
    logged = (tmp_path / "d" / "trainerbot.log").read_text()
    assert "settings:" in logged and "health and metrics on http://127.0.0.1" in logged and TOKEN not in logged


async def test_healthz_says_what_is_wrong(core: CoreService) -> None:
    up = {"ok": False}
    server = OpsServer(core.store, host="127.0.0.1", port=0, connected=lambda: ("gateway", up["ok"]), worker_expected=True)
    port = await server.start()
    try:
        import asyncio

        status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz")
        report = json.loads(body)
        assert status == 503 and report["status"] == "unhealthy"
        assert report["gateway"] == {"ok": False} and report["worker"]["ok"] is False and report["store"]["ok"] is True
        up["ok"] = True
        await asyncio.to_thread(queue.beat, core.store, "here:1")
        status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(body)["worker"]["alive"] == 1
        core.store.engine.dispose()
        (core.data_dir / "trainerbot.db").unlink()
        (core.data_dir / "trainerbot.db").mkdir()  # the store's file is gone and cannot come back
        status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz")
        report = json.loads(body)
        assert status == 503 and report["store"]["ok"] is False and "trainerbot.db" not in body
        status, text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "trainerbot_replies_total" in text  # the process's own numbers still come
    finally:
        await server.stop()


def test_json_logs_one_object_a_line_with_secrets_redacted(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        log_format="json",  # type: ignore[call-arg]
        discord_token=SecretStr(TOKEN),
        database_url=SecretStr("postgresql+psycopg://bot:hunter2-pw@db/x"),
        google_speech_key=SecretStr("gsk-speech-secret"),
    )
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure(settings.section(OperationsSettings), settings.secret_values(), log_file=tmp_path / "t.log",
                       to_stderr=False)
        log = logging.getLogger("trainerbot.test")
        log.info("job %s: started with %s", 7, TOKEN, extra={"job": 7, "guild": "111"})
        try:
            raise RuntimeError(f"boom hunter2-pw {TOKEN} gsk-speech-secret")
        except RuntimeError:
            log.exception("failed")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    records = [json.loads(line) for line in (tmp_path / "t.log").read_text().splitlines()]
    assert [(r["level"], r["logger"], r["job"], r["guild"]) for r in records] == [
        ("INFO", "trainerbot.test", 7, "111"),
        ("ERROR", "trainerbot.test", None, None),
    ]
    assert records[0]["message"] == "job 7: started with ***" and "T" in records[0]["time"]
    assert "RuntimeError: boom *** *** ***" in records[1]["exc"]
    raw = (tmp_path / "t.log").read_text()
    assert TOKEN not in raw and "hunter2-pw" not in raw and "gsk-speech-secret" not in raw
