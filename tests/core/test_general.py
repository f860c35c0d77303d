from __future__ import annotations

from dataclasses import replace

import pytest

from trainerbot.core import Caller, CoreService
from trainerbot.core.limits import RateLimiter
from trainerbot.core.text import quote_user_text, split_message
from trainerbot.errors import COMMAND, Busy


async def test_hi_greets_by_name_and_points_to_instruction(core: CoreService, member: Caller) -> None:
    reply = await core.general.hi(member)
    assert reply.content.startswith("Hi Milo!")
    assert f"{COMMAND}instruction" in reply.content


async def test_hi_defuses_mentions_in_the_name(core: CoreService) -> None:
    caller = Caller(guild_id="1", user_id="2", user_name="@everyone")
    reply = await core.general.hi(caller)
    assert "@everyone" not in reply.content


async def test_instruction_is_split_on_lines_and_keeps_everything(core: CoreService, member: Caller, tmp_path) -> None:
    long_file = tmp_path / "long.md"
    lines = [f"line {i}: " + "x" * 90 for i in range(120)]
    long_file.write_text("\n".join(lines), encoding="utf-8")
    core.general.teaching = replace(core.general.teaching, instructions_file=long_file)
    reply = await core.general.instruction(member)
    assert len(reply.messages) > 1
    assert all(len(m) <= 2000 for m in reply.messages)
    assert "\n".join(reply.messages).splitlines() == lines


async def test_shipped_instruction_names_commands_for_the_adapter_to_prefix(core: CoreService, member: Caller) -> None:
    """The core writes no prefix: its commands carry the mark each adapter replaces with its own."""
    reply = await core.general.instruction(member)
    assert f"`{COMMAND}correct" in reply.content and "`!correct" not in reply.content
    shown = reply.for_prefix("?").content
    assert "`?correct" in shown and COMMAND not in shown and "`/correct" in reply.for_prefix("/").content


@pytest.mark.settings(language="ru")
async def test_russian_instruction_ships(core: CoreService, member: Caller) -> None:
    reply = await core.general.instruction(member)
    assert "как меня обучать" in reply.content


def test_split_message_cuts_long_lines_at_spaces() -> None:
    text = ("word " * 1000).strip()
    parts = split_message(text, limit=100)
    assert all(len(p) <= 100 for p in parts)
    assert " ".join(parts).split() == text.split()


def test_split_message_of_empty_text_is_empty() -> None:
    assert split_message("") == []
    assert split_message("\n\n") == []


def test_quote_user_text_shortens_and_defuses() -> None:
    assert quote_user_text("`@here` " + "a" * 300, 50).endswith("…")
    assert "@here" not in quote_user_text("@here")


def test_rate_limiter_blocks_then_recovers() -> None:
    now = [0.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("u")
    with pytest.raises(Busy) as exc:
        limiter.check("u")
    assert 59 <= exc.value.retry_after <= 60
    limiter.check("other")  # other users are not affected
    now[0] = 60.5
    limiter.check("u")


def test_rate_limiter_is_bounded() -> None:
    limiter = RateLimiter(1, max_keys=100)
    for i in range(1000):
        limiter.check(f"user{i}")
    assert len(limiter._events) == 100
