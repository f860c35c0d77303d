"""The line for reply slots: turns in order, the place each waiting member is told, the
bound with its plain message, and a cancelled wait that leaves without taking a turn."""

from __future__ import annotations

import asyncio

import pytest

from trainerbot.core.turns import BUSY, ReplyLine, waiting_words
from trainerbot.errors import Busy


async def test_turns_go_in_order_and_each_waiting_member_hears_their_place() -> None:
    line = ReplyLine(max_waiting=3)
    gate = asyncio.Event()
    order: list[str] = []
    told: dict[str, int] = {}

    async def member(name: str) -> None:
        async def waiting(ahead: int) -> None:
            told[name] = ahead
        async with line.turn(2, waiting):
            order.append(name)
            await gate.wait()

    tasks = [asyncio.create_task(member(n)) for n in "abcde"]
    await asyncio.sleep(0.05)
    assert order == ["a", "b"] and line.active == 2 and line.waiting == 3
    assert told == {"c": 0, "d": 1, "e": 2}
    gate.set()
    await asyncio.gather(*tasks)
    assert order == list("abcde") and line.active == 0 and line.waiting == 0


async def test_past_the_bound_a_member_is_told_plainly_and_nothing_else_changes() -> None:
    line = ReplyLine(max_waiting=1)
    gate = asyncio.Event()

    async def member() -> None:
        async with line.turn(1):
            await gate.wait()

    first, second = asyncio.create_task(member()), asyncio.create_task(member())
    await asyncio.sleep(0.05)
    with pytest.raises(Busy) as refused:
        async with line.turn(1):
            pytest.fail("a turn past the bound")
    assert refused.value.user_message == BUSY and "try again in a minute" in BUSY
    assert line.active == 1 and line.waiting == 1  # the two before it keep their places
    gate.set()
    await asyncio.gather(first, second)
    assert line.active == 0


async def test_a_member_who_leaves_the_line_takes_no_turn() -> None:
    line = ReplyLine(max_waiting=5)
    gate = asyncio.Event()
    ran: list[str] = []

    async def member(name: str) -> None:
        async with line.turn(1):
            ran.append(name)
            await gate.wait()

    a = asyncio.create_task(member("a"))
    b = asyncio.create_task(member("b"))
    c = asyncio.create_task(member("c"))
    await asyncio.sleep(0.05)
    b.cancel()
    await asyncio.sleep(0.05)
    assert line.waiting == 1
    gate.set()
    await asyncio.gather(a, c)
    assert ran == ["a", "c"] and line.active == 0


def test_the_words_a_waiting_member_sees() -> None:
    assert waiting_words(0) == "I'm answering other people right now; you're next."
    assert waiting_words(1) == "1 person is ahead of you; I'll answer in turn."
    assert waiting_words(3) == "3 people are ahead of you; I'll answer in turn."
