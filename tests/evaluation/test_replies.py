"""Check questions are asked as many at once as a local runtime writes at once (llama.cpp's
slots), in order, with the worker's pause before each; torch and remote servers one at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from trainerbot.evaluation.run import replies


class Echo:
    """A runtime at the protocol's boundary that answers with the question, slowly, and counts
    how many it answers at once."""

    takes_system, takes_names, engine, label = True, False, "echo", "echo"

    def __init__(self, slots: int, source: str = "model") -> None:
        self.slots, self.source = slots, source
        self.now = self.most = 0
        self.lock = threading.Lock()

    def reply(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> str:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.05)
        with self.lock:
            self.now -= 1
        return conversation[-1]["content"]

    def stream(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> Iterator[str]:
        yield self.reply(conversation, max_new_tokens=max_new_tokens)

    def answer_loss(self, conversation: list[dict[str, str]], answer: str) -> float | None:
        return None


@pytest.mark.parametrize(("slots", "source", "most"), [(4, "model", 4), (1, "model", 1), (8, "remote", 1)])
def test_questions_go_as_many_at_once_as_the_runtime_writes(slots: int, source: str, most: int) -> None:
    model = Echo(slots, source)
    paused: list[int] = []
    asked = [[{"role": "user", "content": f"q{i}"}] for i in range(10)]
    got = replies(model, asked, max_new_tokens=8, pause=lambda: paused.append(1))
    assert got == [f"q{i}" for i in range(10)] and len(paused) == 10
    assert model.most == most
