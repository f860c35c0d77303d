"""Chat comes first: the mark the bot sets while it writes a reply, the worker's wait on it
(bounded, and stale marks ignored), a real training run that holds its steps while a reply
is being written, and the worker's lower CPU priority (in a child process of its own)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.training.test_recipes import _tiny
from trainerbot.datasets.sample import generate
from trainerbot.training import chat_first, dpo, kto, sft
from trainerbot.training.chat_first import ChatFirst
from trainerbot.training.common import JobCallback, TrainParams


def test_a_reply_marks_chat_busy_until_the_last_one_ends(tmp_path: Path) -> None:
    bot = ChatFirst(chat_first.path_for(tmp_path))
    worker = ChatFirst(chat_first.path_for(tmp_path))  # another process's view: the same file
    assert not worker.busy() and worker.wait() == 0.0
    with bot.replying():
        assert worker.busy()
        with bot.replying():  # two replies at once
            assert worker.busy()
        assert worker.busy()  # one still being written
    assert not worker.busy()
    bot.close()
    worker.close()


def test_the_worker_waits_while_chat_writes_and_no_longer(tmp_path: Path) -> None:
    bot = ChatFirst(chat_first.path_for(tmp_path))
    worker = ChatFirst(chat_first.path_for(tmp_path))
    entered = threading.Event()

    def reply() -> None:
        with bot.replying() as refresh:
            entered.set()
            for _ in range(6):
                time.sleep(0.05)
                refresh()
    writer = threading.Thread(target=reply)
    writer.start()
    entered.wait(5)
    waited = worker.wait()
    writer.join()
    assert 0.15 < waited < 5  # it waited for the reply to end
    assert worker.wait() == 0.0


def test_a_stale_mark_and_a_long_busy_spell_do_not_stop_training_for_ever(tmp_path: Path) -> None:
    now = [100.0]
    bot = ChatFirst(chat_first.path_for(tmp_path), clock=lambda: now[0])
    with bot.replying():
        pass
    bot._write(now[0] + chat_first.HOLD_S)  # a bot that died mid-reply left its mark
    worker = ChatFirst(chat_first.path_for(tmp_path), clock=lambda: now[0])
    assert worker.busy()
    now[0] += chat_first.HOLD_S + 1
    assert not worker.busy()
    real = ChatFirst(chat_first.path_for(tmp_path))
    with real.replying():  # chat busy the whole time: one wait still ends at its bound
        started = time.monotonic()
        assert 0.2 <= real.wait(max_s=0.2) < 2
        assert time.monotonic() - started < 2


def test_training_holds_its_steps_while_a_reply_is_written(tmp_path: Path) -> None:
    examples = generate(8, seed=3)
    model, tok = _tiny(examples)
    bot = ChatFirst(chat_first.path_for(tmp_path))
    worker = ChatFirst(chat_first.path_for(tmp_path))
    asked = threading.Event()

    calls = [0]

    def pause() -> float:
        calls[0] += 1
        asked.set()
        return worker.wait()
    steps: list[int] = []
    callback = JobCallback(lambda p: steps.append(p.step), lambda: False, check_every=0.0, pause=pause)
    params = TrainParams(epochs=10, batch_size=8, learning_rate=3e-3, warmup_steps=2, logging_steps=1)
    done: list[object] = []
    trainer = threading.Thread(target=lambda: done.append(sft.train(model, tok, examples, params, callback,
                                                                         str(tmp_path / "out"))))
    with bot.replying():
        trainer.start()
        assert asked.wait(60)  # the trainer is at its first step...
        time.sleep(0.8)
        assert steps == []  # ...and holds it while the reply is being written
    trainer.join(120)
    assert done and steps[-1] == 10  # and then it trained to the end
    assert callback.paused_s >= 0.5 and done[0][1].metrics["paused_for_chat_s"] >= 0.5  # the job's version records it
    # It is asked at every step and around each of the 2 layers, forward and backward, so it
    # gives way within a step; the hooks are gone afterwards.
    assert calls[0] >= 10 * (1 + 2 * 2)
    assert not callback._hooks


def _asked_before_training(recipe: str, precompute: bool, out: Path) -> int:
    """How often a KTO or DPO job asks chat first before its first training step."""
    from tests.training.test_recipes import _preference_data

    examples = _preference_data(recipe)
    model, tok = _tiny(examples)
    started: list[bool] = []
    before_training: list[int] = []

    def pause() -> float:
        if not started:
            before_training.append(1)
        return 0.0
    callback = JobCallback(lambda p: None, lambda: False, check_every=0.0, pause=pause)
    callback.on_step_begin = lambda *a, **kw: started.append(True)  # type: ignore[method-assign]
    params = TrainParams(epochs=1, batch_size=4, learning_rate=1e-4, warmup_steps=1, precompute_reference=precompute)
    _, result = {"kto": kto.train, "dpo": dpo.train}[recipe](model, tok, examples, params, callback, str(out))
    assert result.steps >= 1 and not callback._hooks
    return len(before_training)


@pytest.mark.parametrize("recipe", ["kto", "dpo"])
def test_the_reference_pass_before_training_gives_way_to_chat_too(tmp_path: Path, recipe: str) -> None:
    """KTO and DPO compute the reference's log-probabilities once, as their trainer is built
    (before training begins): that pass asks chat first too, layer by layer. Without it
    nothing runs before the first step, so nothing is asked there."""
    # the reference pass: every example, each of the 2 layers
    assert _asked_before_training(recipe, True, tmp_path / "once") >= 2 * 2
    assert _asked_before_training(recipe, False, tmp_path / "per-step") == 0


def test_the_worker_runs_at_a_lower_cpu_priority(tmp_path: Path) -> None:
    code = ("import os; from trainerbot.training.chat_first import lower_priority; "
            "print(lower_priority(7), lower_priority(3), os.getpriority(os.PRIO_PROCESS, 0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    before = os.getpriority(os.PRIO_PROCESS, 0)
    assert out.stdout.split() == [str(max(7, before)), str(max(7, before)), str(max(7, before))]  # never raised back
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # this process untouched
