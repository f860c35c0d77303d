"""Chat while a job trains, on this machine: replies through the bot's llama.cpp runtime with
nothing else running, with a worker that does not give way (as before issue 31: nice 0, no
pause, not compiled), and with a worker as the bot starts it now (nice 19, pausing at every
training step and decoder layer while a reply is written; a job this long compiles its layers).

Two real ``trainerbot worker`` processes each train a real LoRA SFT job on the shipped
model (two servers, 200 facts each, 1000 epochs so they outlast the bench). The bench holds
all but one side with SIGSTOP and alternates the sides in short rounds: ``idle`` (both
workers held), ``before`` and ``now``. In each round and side: the job trains alone for a
span (its rate from its own progress events), then a member asks ``--replies`` questions,
one after another, each exactly 64 tokens through ``ServedModel.stream`` inside
``ChatFirst.replying`` (what ``core.chat`` does), and the job's rate over that span too.

Reported: time to first token and the 64-token reply, p50 per side, and their ratio to
idle per round (median and spread); each job's rate with chat against alone, beside the
share of that span chat spent writing. Targets (issue 31): TTFT and 64-token p50 ≤ 1.5×
idle; the job slows by at most what chat takes.

    .venv/bin/python bench/chat_while_training.py [--rounds 4] [--replies 6] [--before-replies 2] [--alone-s 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from bench.chat_concurrency import FACTS
from trainerbot.config import Settings
from trainerbot.core import Attachment, Caller, CoreService
from trainerbot.datasets.sample import generate
from trainerbot.evaluation.general_questions import questions
from trainerbot.model.llamacpp import ServedModel
from trainerbot.model.prompt import SYSTEM, conversation
from trainerbot.store.tables import Job, JobEvent, JobStatus

SIDES = {  # the worker's environment on each side
    "before": {"TRAINERBOT_WORKER_NICE": "0", "TRAINERBOT_WORKER_YIELDS": "false", "TRAINERBOT_TRAIN_COMPILE": "off"},
    "now": {},  # the defaults: nice 19, pausing at every step and layer while chat writes, layers compiled (a long job)
}


def spawn(data: Path, extra: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env |= {"TRAINERBOT_DATA_DIR": str(data), "TRAINERBOT_TRAIN_EPOCHS": "1000", "TRAINERBOT_MODEL": "smollm2", **extra}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "trainerbot", "worker"], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def hold(proc: subprocess.Popen[bytes], run: bool) -> None:
    os.killpg(proc.pid, signal.SIGCONT if run else signal.SIGSTOP)


def cpu_s(proc: subprocess.Popen[bytes]) -> float:
    """CPU seconds the worker process (all its threads) has used."""
    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def progress(core: CoreService, job_id: int) -> list[tuple[float, int]]:
    with core.store.read() as s:
        rows = s.execute(select(JobEvent.created_at, JobEvent.step).where(JobEvent.job_id == job_id,
                                                                         JobEvent.kind == "progress")).all()
    return [(_epoch(at), int(step)) for at, step in rows if step is not None]


def _epoch(at: datetime) -> float:
    return at.timestamp() if at.tzinfo is not None else at.replace(tzinfo=datetime.now().astimezone().tzinfo).timestamp()


def rate(events: list[tuple[float, int]], start: float, end: float) -> float | None:
    """Steps per second between the first and last progress event inside [start, end]."""
    inside = [(t, s) for t, s in events if start <= t <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def reply(core: CoreService, served: ServedModel, question: str) -> tuple[float, float]:
    """(first token s, 64-token reply s), marked as chat marks a reply."""
    turns = conversation([], {"role": "user", "content": question}, persona=SYSTEM, facts=FACTS, max_chars=600)
    start = time.perf_counter()
    first = None
    with core.chat_first.replying() as refresh:
        for _ in served.stream(turns, max_new_tokens=64, ignore_eos=True):
            refresh()
            if first is None:
                first = time.perf_counter() - start
    whole = time.perf_counter() - start
    return first if first is not None else whole, whole


async def setup(core: CoreService, guild: str) -> int:
    trainer = Caller(guild_id=guild, user_id="t", user_name="Tess", roles=frozenset({"trainer"}))
    rows = "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in generate(200, seed=len(guild)))
    await core.datasets.import_data(trainer, "facts", "positive", Attachment("f.jsonl", "application/jsonl", rows.encode()))
    reply = await core.training.train(trainer, "facts")
    return int(reply.data["job_id"])


def wait_training(core: CoreService, job_id: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(progress(core, job_id)) >= 2:
            return
        with core.store.read() as s:
            job = s.get(Job, job_id)
            if job is not None and job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
                raise SystemExit(f"job {job_id} ended: {job.status} {job.error}")
        time.sleep(1)
    raise SystemExit(f"job {job_id} did not start training in {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--replies", type=int, default=6)
    parser.add_argument("--before-replies", type=int, default=2,
                        help="replies on the before side (each takes 10-70 s there)")
    parser.add_argument("--alone-s", type=float, default=12.0)
    parser.add_argument("--gap-s", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        settings = Settings(_env_file=None, data_dir=data, model="smollm2", start_worker=False,  # type: ignore[call-arg]
                            user_rate_per_minute=10_000, train_epochs=1000)
        core = CoreService.open(settings)
        # Each worker has a data folder and store of its own (the base shared): held by SIGSTOP
        # longer than a lease, a worker on a shared store would see the other's job as
        # abandoned and fail it. Chat runs on the "now" worker's folder, whose mark it reads.
        stores = {"now": core}
        for side in SIDES:
            if side not in stores:
                other = data / side
                (other / "models").mkdir(parents=True)
                (other / "models" / "base").symlink_to(data / "models" / "base", target_is_directory=True)
                stores[side] = CoreService.open(settings.model_copy(update={"data_dir": other}))
        served = core.runtimes.for_chat(None)
        assert isinstance(served, ServedModel)
        asked = [q.prompt for q in questions()]
        workers: dict[str, subprocess.Popen[bytes]] = {}
        jobs: dict[str, int] = {}
        try:
            for side, extra in SIDES.items():  # one at a time, so each worker claims its own job
                jobs[side] = asyncio.run(setup(stores[side], side))
                folder = stores[side].settings.resolved_data_dir
                workers[side] = spawn(folder, extra, data / f"worker-{side}.log")
                wait_training(stores[side], jobs[side])
                hold(workers[side], False)
            first_token: dict[str, list[float]] = {s: [] for s in ("idle", *SIDES)}
            whole: dict[str, list[float]] = {s: [] for s in ("idle", *SIDES)}
            ratios: dict[str, list[tuple[float, float]]] = {s: [] for s in SIDES}
            job_rates: dict[str, list[tuple[float, float, float]]] = {s: [] for s in SIDES}  # alone, with chat, chat share
            order = ["idle", *SIDES]
            n = 0
            for r in range(args.rounds):
                idle_round: tuple[float, float] | None = None
                for side in order[r % 3:] + order[:r % 3]:
                    for name, proc in workers.items():
                        hold(proc, name == side)
                    time.sleep(1.0)
                    alone_from = time.time()
                    cpu0 = cpu_s(workers[side]) if side != "idle" else 0.0
                    if side != "idle":
                        time.sleep(args.alone_s)
                    alone_to = chat_from = time.time()
                    cpu1 = cpu_s(workers[side]) if side != "idle" else 0.0
                    busy = 0.0
                    firsts, wholes = [], []
                    for _ in range(args.before_replies if side == "before" else args.replies):
                        f, w = reply(core, served, asked[n % len(asked)])
                        n += 1
                        firsts.append(f)
                        wholes.append(w)
                        busy += w
                        time.sleep(args.gap_s)
                    chat_to = time.time()
                    cpu2 = cpu_s(workers[side]) if side != "idle" else 0.0
                    first_token[side] += firsts
                    whole[side] += wholes
                    line = (f"round {r + 1} {side:>6}: first token p50 {statistics.median(firsts) * 1000:6.0f} ms, 64 tokens "
                            f"p50 {statistics.median(wholes):5.2f} s")
                    if side == "idle":
                        idle_round = (statistics.median(firsts), statistics.median(wholes))
                    else:
                        events = progress(stores[side], jobs[side])
                        alone, with_chat = rate(events, alone_from, alone_to), rate(events, chat_from, chat_to)
                        share = busy / (chat_to - chat_from)
                        cpu_alone, cpu_chat = (cpu1 - cpu0) / (alone_to - alone_from), (cpu2 - cpu1) / (chat_to - chat_from)
                        job_rates[side].append((cpu_alone, cpu_chat, share))
                        steps = (f"{alone:.2f} steps/s alone, " if alone else "") + (
                            f"{with_chat:.2f} with chat; " if with_chat is not None else "")
                        line += (f"; job {steps}worker CPU {cpu_alone:.2f} cores alone, {cpu_chat:.2f} with chat "
                                 f"(chat writing {share:.0%} of that span)")
                    print(line, flush=True)
                for side in SIDES:  # ratios against this round's idle side
                    if idle_round is not None and first_token[side]:
                        count = args.before_replies if side == "before" else args.replies
                        mine = (statistics.median(first_token[side][-count:]), statistics.median(whole[side][-count:]))
                        ratios[side].append((mine[0] / idle_round[0], mine[1] / idle_round[1]))
        finally:
            for proc in workers.values():
                hold(proc, True)
                proc.terminate()
            for proc in workers.values():
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            for service in stores.values():
                asyncio.run(service.close())
    print(f"\n{args.rounds} rounds × {args.replies} replies a side; 64-token replies, shipped model via llama.cpp q8_0; "
          "LoRA SFT jobs on 200 facts")
    for side in first_token:
        print(f"{side:>6}: first token p50 {statistics.median(first_token[side]) * 1000:.0f} ms, 64-token reply p50 "
              f"{statistics.median(whole[side]):.2f} s")
    for side, pairs in ratios.items():
        ft, wh = [p[0] for p in pairs], [p[1] for p in pairs]
        print(f"{side:>6} / idle: first token {statistics.median(ft):.2f}x ({min(ft):.2f}-{max(ft):.2f}), "
              f"64-token reply {statistics.median(wh):.2f}x ({min(wh):.2f}-{max(wh):.2f})  (target ≤ 1.5x)")
    for side, rows in job_rates.items():
        if rows:
            kept = [w / a for a, w, _ in rows]
            share = [c for _, _, c in rows]
            print(f"{side:>6} job: worker CPU {statistics.median([a for a, _, _ in rows]):.2f} cores alone; with chat "
                  f"{statistics.median(kept):.0%} of that ({min(kept):.0%}-{max(kept):.0%}), while chat wrote "
                  f"{statistics.median(share):.0%} of the time (the job keeps ≥ {1 - statistics.median(share):.0%} "
                  "if it slows by at most what chat takes)")


if __name__ == "__main__":
    main()
