from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import JSONL_FACTS
from trainerbot.adapters.console.repl import Console, console_caller
from trainerbot.core import CoreService
from trainerbot.errors import COMMAND

TOKEN = "MTIzNDU2Nzg5.dummy-token-for-console.abcdefghijklmnop"


def _run(args: list[str], stdin: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINERBOT_") and k != "DISCORD_TOKEN"}
    full_env["TRAINERBOT_MODEL"] = "scratch"  # the shipped pretrained model is tested in tests/model
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "trainerbot", *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=120)


def test_the_console_writes_commands_with_its_configured_prefix(tmp_path: Path) -> None:
    proc = _run(["console", "--no-worker", "--data-dir", str(tmp_path / "d")], "?hi\n?datasets\n?quit\n", tmp_path,
                env={"TRAINERBOT_PREFIX": "?"})
    assert proc.returncode == 0, proc.stderr
    assert "correct me with `?correct`" in proc.stdout and "`?instruction`" in proc.stdout
    assert "`?import <name> positive`" in proc.stdout and COMMAND not in proc.stdout and "`!" not in proc.stdout


def test_scripted_console_session(tmp_path: Path) -> None:
    facts = tmp_path / "my facts.jsonl"
    facts.write_text(JSONL_FACTS)
    script = "\n".join([
        "!hi",
        f'!import facts --attach "{facts}"',
        "!datasets",
        "!export facts sft",
        "!archive facts",
        "!getfile",
        "hello bot",
        "!nonsense",
        "!halp",
        "!quit",
        "!hi",  # never reached
    ]) + "\n"
    proc = _run(
        ["console", "--no-worker", "--data-dir", str(tmp_path / "d"), "--guild", "Test Guild", "--user", "ann"], script, tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count("Hi ann!") == 1
    assert "correct me with `!correct`" in out and COMMAND not in out  # the core's commands, with the console's prefix
    assert "Imported 3 examples into `facts`" in out
    assert "`facts` — 3 examples (2 👍 / 1 👎)" in out
    outbox = tmp_path / "d" / "outbox"
    [exported] = list(outbox.iterdir())
    assert f"📎 {exported}" in out and exported.read_text().count("\n") == 2
    assert "Archived 3 examples of `facts`" in out
    assert "haven't been trained yet" in out
    assert "Unknown command `nonsense`" in out and "Did you mean `!help`?" in out
    assert "\x1b[" not in out  # a pipe gets no colours or control codes
    assert "INFO" not in out + proc.stderr  # a quiet console: the logs go to the data folder
    assert "settings:" in (tmp_path / "d" / "trainerbot.log").read_text()


def test_run_without_a_token_opens_the_console(tmp_path: Path) -> None:
    proc = _run(["run", "--no-worker", "--data-dir", str(tmp_path / "d")], "!hi\n", tmp_path)
    assert proc.returncode == 0 and "Hi operator!" in proc.stdout


def test_bad_settings_exit_2_with_the_setting_named(tmp_path: Path) -> None:
    proc = _run(["console"], "", tmp_path, {"TRAINERBOT_USER_RATE_PER_MINUTE": "lots", "DISCORD_TOKEN": TOKEN})
    assert proc.returncode == 2 and "user_rate_per_minute" in proc.stderr and TOKEN not in proc.stderr


def test_member_console_is_refused_trainer_commands(tmp_path: Path) -> None:
    proc = _run(
        ["console", "--no-worker", "--data-dir", str(tmp_path / "d"), "--role", "member"],
        "!export facts\n!feedback great bot\n",
        tmp_path,
    )
    assert "Only trainers can export" in proc.stdout and "feedback is noted" in proc.stdout


@pytest.fixture
def console(core: CoreService) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    console = Console(core, console_caller("g", "ann", "trainer", core.settings.trainer_role), out,
                      prefix=core.settings.prefix, max_attachment_bytes=core.settings.max_attachment_bytes)
    return console, out


async def test_mydata_puts_the_caller_s_file_into_the_outbox(console: tuple[Console, io.StringIO], core: CoreService) -> None:
    import json

    con, out = console
    await core.delivery.record_exchange(con.caller, "Capital?", "Paris.", reply_message_id="42")
    await con.handle_line("!correct 42 Quillport.")
    await con.handle_line("!mydata")
    text = out.getvalue()
    assert "Everything I hold about you here: 1 chat message, 1 correction, 1 example, 1 revision of a taught answer." in text
    [sent] = list((core.data_dir / "outbox").iterdir())
    assert f"📎 {sent}" in text and sent.name.startswith("mydata")
    data = json.loads(sent.read_text())
    assert data["corrections"][0]["your_answer"] == "Quillport." and data["corrections"][0]["outcome"] == "approved"


async def test_the_teaching_commands_of_a_community_in_the_console(console: tuple[Console, io.StringIO],
                                                                   core: CoreService) -> None:
    """Two members answer one question differently; the trainer's review shows them side by
    side and one approval closes the other; a 👎 says what was wrong; audit and contributors."""
    from dataclasses import replace

    con, out = console
    await core.delivery.record_exchange(con.caller, "Who runs the bakery?", "Nobody.", reply_message_id="42")
    await core.delivery.record_exchange(con.caller, "Is it open on Sundays?", "Never.", reply_message_id="43")
    milo = replace(con.caller, user_id="console-milo", roles=frozenset(), can_manage=False)
    nina = replace(milo, user_id="console-nina")
    await core.feedback.correct(milo, "42", "Greta Okafor runs it.")
    await core.feedback.correct(nina, "42", "Jonas Weber runs it.")
    start = out.tell()
    for line in ("!review", "!approve 2", "!react 43 👎 outdated", "!react 43 👎 " + "x" * 201, "!audit", "!contributors"):
        await con.handle_line(line)
    text = out.getvalue()[start:]
    assert "⚖️ **2 answers proposed for one question**" in text and "**#1** by <@console-milo>" in text
    assert "#1 (another answer to the same question) was closed as superseded by #2" in text
    assert "Noted: outdated." in text and "A reason is limited to 200 characters" in text
    assert "**approve** correction #2 — closed #1 as superseded" in text
    assert "1. <@console-ann> — 1 rating" in text and "2. <@console-nina> — 1 correction approved" in text


async def test_revisions_revert_and_edit_in_the_console(console: tuple[Console, io.StringIO], core: CoreService,
                                                        tmp_path: Path) -> None:
    """Ask, get the imported answer, correct it, see both answers in `revisions`, revert to the
    first with a reason, edit it; the usage and the bad numbers answer plainly."""
    con, out = console
    facts = tmp_path / "facts.jsonl"
    facts.write_text('{"prompt": "Who runs the bakery on Mill Street?", "response": "Hans Berger runs it."}\n')
    start = out.tell()
    for line in (f"!import facts --attach {facts}", "Who runs the bakery on Mill Street?",
                 "!correct 2 Greta Okafor runs it.", "!revisions 1", "!revert 1 1 Hans bought it back",
                 "Who runs the bakery on Mill Street?", "!edit 1 Hans and Greta run it together.",
                 "who runs the bakery on mill street", "!revisions 1", "!revert 1", "!revert 1 x", "!edit 1", "!revisions 99"):
        await con.handle_line(line)
    text = out.getvalue()[start:]
    assert text.count("Hans Berger runs it.  [#") == 2 and "Hans and Greta run it together.  [#" in text
    assert "**2** ✅ **current** · " in text and "correction #1 by <@console-ann>, approved by <@console-ann>" in text
    assert "Revision 1 of Who runs the bakery on Mill Street? is the taught answer again (as revision 3)" in text
    assert "**4** ✅ **current** · " in text and "edited by <@console-ann>: Hans and Greta run it together." in text
    assert "revision 1 made current again by <@console-ann> (“Hans bought it back”)" in text
    assert "Usage: `!revert <example id> <revision> [why]`" in text and "Usage: `!edit <example id> <new answer>`" in text
    assert "There is no example #99 here." in text


async def test_correct_and_react_commands(console: tuple[Console, io.StringIO], core: CoreService) -> None:
    con, out = console
    await core.delivery.record_exchange(con.caller, "Capital?", "Paris.", reply_message_id="42")
    await con.handle_line("!correct 42 It's Quillport, not Paris.")  # an apostrophe must not break parsing
    await con.handle_line("!react 42 👎")
    await con.handle_line("!react 42 👎 remove")
    await con.handle_line("!react 42 🎉")
    await con.handle_line("!correct 42")
    text = out.getvalue()
    assert "correction #1 stored (approved" in text
    assert "Rated 👎" in text and "Rating removed." in text
    assert "Only 👍 and 👎" in text and "Usage: `!correct <message id> <better answer>`" in text
    feedback = await core.datasets.stats(con.caller, "feedback")
    assert feedback.data["total"] == 1


async def test_attach_errors_and_unexpected_errors_are_friendly(
    console: tuple[Console, io.StringIO], tmp_path: Path, caplog
) -> None:
    con, out = console
    await con.handle_line(f"!import facts --attach {tmp_path / 'missing.jsonl'}")
    assert "No such file to attach" in out.getvalue()

    async def boom(*_: object) -> None:
        raise RuntimeError("internal detail")

    con.commands["hi"] = lambda a, r, f: boom()
    await con.handle_line("!hi")
    assert "Sorry, something went wrong" in out.getvalue() and "internal detail" not in out.getvalue()
    assert "internal detail" in caplog.text


def test_interactive_terminal_gets_a_prompt_and_history(tmp_path: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # child: the console on a real terminal
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINERBOT_")} | {"TRAINERBOT_MODEL": "scratch"}
        os.execve(
            sys.executable, [sys.executable, "-m", "trainerbot", "console", "--no-worker", "--data-dir", str(tmp_path / "d")], env
        )
    output = b""

    def read_until(marker: bytes, timeout: float = 60) -> None:
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    output += os.read(fd, 4096)
                except OSError:
                    break
        assert marker in output, output.decode(errors="replace")[-2000:]

    read_until(b"> ")
    os.write(fd, b"!hi\r")
    read_until(b"Hi operator!")
    read_until(b"> ")
    hi = output.split(b"Hi operator!", 1)[1]
    assert b"\x1b[" in hi and b"`!correct`" not in hi  # Markdown rendered: code spans styled, not backticked
    os.write(fd, b"!lang\t\r")  # tab completes the command word
    read_until(b"I speak and listen in")
    os.write(fd, b"!halp\r")
    read_until(b"Did you mean `!help`?")
    os.write(fd, b"!train sample\r")  # no worker here: the job waits, and its live line says so
    read_until(b"Job #1 ")
    read_until(b"queued")
    os.write(fd, b"!quit\r")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "!hi" in (tmp_path / "d" / ".console_history").read_text()


async def test_chat_replies_carry_an_id_to_correct_and_rate(console: tuple[Console, io.StringIO], tmp_path: Path) -> None:
    con, out = console
    facts = tmp_path / "facts.jsonl"
    facts.write_text(JSONL_FACTS)
    await con.handle_line(f"!import facts --attach {facts}")
    await con.handle_line("what is the capital of zorbia?")
    last = out.getvalue().strip().splitlines()[-1]
    assert last.startswith("Quillport.  [#")
    reply_id = last.rsplit("[#", 1)[1].rstrip("]")
    await con.handle_line(f"!correct {reply_id} Quillport, on the coast.")
    await con.handle_line(f"!react {reply_id} 👍")
    await con.handle_line("what is the capital of zorbia?")
    assert "Rated 👍" in out.getvalue()
    assert out.getvalue().strip().splitlines()[-1].startswith("Quillport, on the coast.  [#")


async def test_review_provenance_and_forget_words(
    console: tuple[Console, io.StringIO], core: CoreService, tmp_path: Path
) -> None:
    con, out = console
    facts = tmp_path / "facts.jsonl"
    facts.write_text(JSONL_FACTS)
    await con.handle_line(f"!import facts --attach {facts}")
    await con.handle_line("!dataset item 1")
    await con.handle_line("!review")
    await con.handle_line('!test [{"prompt": "Capital of Zorbia?", "expected": "Quillport."}]')
    await con.handle_line("!approve 7")
    await con.handle_line("!model compare v1")
    await con.handle_line("!forget me")
    text = out.getvalue()
    assert "Example #1" in text and "facts.jsonl line 1" in text
    assert "Nothing waits for review" in text and "no active model" in text
    assert "no correction #7" in text and "Usage: `!model compare" in text
    assert "Forgot everything from you here: 3 examples" in text
    assert (await core.datasets.stats(con.caller, "facts")).data["total"] == 0
