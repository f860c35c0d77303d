"""How long the bot takes to answer an interaction, against Discord's 3-second deadline.

Through the same boundary as the tests (``tests/adapters/discord/interactions.py``): a real
``TrainerBot`` over a real core and SQLite store, gateway-shaped ``INTERACTION_CREATE``
payloads in, the callback timed when it reaches the local stand-in for Discord's API.
Alternating rounds of:

- baseline: ``/hi`` (a message with no store work — discord.py's own path and our HTTP);
- ``Approve`` pressed on a review message (decide the correction, load the next one, edit
  the message: a type-7 callback), with ``--queue`` corrections waiting;
- autocomplete of ``/import dataset`` with ``--datasets`` datasets in the server;
- the "Correct this reply" menu (look the reply up, open the modal: type 9).

    .venv/bin/python bench/interactions.py [--rounds 40] [--queue 500] [--datasets 200]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' harness

import discord

from bench.review_queue import fill
from bench.scratch import scratch
from tests.adapters.discord.interactions import FakeDiscord, Gateway
from trainerbot.adapters.discord.bot import TrainerBot, bot_settings
from trainerbot.config import Settings
from trainerbot.core import Attachment, Caller, CoreService

GUILD, TESS, MILO, REPLY = 100_000_000_000_000_001, 500_000_000_000_000_001, 500_000_000_000_000_002, 900_000_000_000_000_001


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def timed(gw: Gateway, bot: TrainerBot, payload: dict[str, Any]) -> float:
    t0 = time.monotonic()
    await gw.send(bot, payload)
    return gw.fake.callbacks(payload["token"])[0].at - t0  # when the callback reached "Discord"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--queue", type=int, default=500)
    parser.add_argument("--datasets", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("TRAINERBOT_MODEL", "scratch")

    fake = FakeDiscord()
    discord.http.Route.BASE = f"{await fake.start()}/api/v10"
    folder = scratch("interactions")
    core = CoreService.open(Settings(_env_file=None, data_dir=folder, user_rate_per_minute=10_000,  # type: ignore[call-arg]
                                     max_pending_per_user=100_000))
    trainer = Caller(guild_id=str(GUILD), guild_name="Guild A", user_id=str(TESS), roles=frozenset({"trainer"}))
    member = Caller(guild_id=str(GUILD), guild_name="Guild A", user_id=str(MILO))
    facts = '{"prompt": "What is the capital of Zorbia?", "response": "Quillport."}\n'
    for i in range(args.datasets):
        await core.datasets.import_data(trainer, f"set-{i:03d}", None, Attachment("f.jsonl", None, facts.encode()))
    reply = await core.chat.reply(member, "What is the capital of Zorbia?", message_id="1")
    await core.delivery.bind_reply(member, int(reply.data["reply_id"]), str(REPLY))
    # One correction per question (corrections of one question are reviewed as one item, and
    # approving one closes the others), written as the core stores them.
    fill(core, str(GUILD), args.queue + args.rounds, args.queue + args.rounds)

    gw = Gateway(fake, GUILD)
    gw.add_user("Tess", TESS, trainer=True)
    gw.add_user("Milo", MILO)
    bot = TrainerBot(core, bot_settings(core.settings))
    await bot.__aenter__()
    await bot.login("bench-token")
    gw.join(bot)
    target = fake.message(gw.channel_id, {"content": reply.content}, mid=REPLY)

    review = gw.slash("Tess", "review")
    await gw.send(bot, review)
    message_id = fake.originals[review["token"]]
    print(fake.messages[message_id]["content"].splitlines()[0])

    times: dict[str, list[float]] = {"hi (baseline)": [], "approve → next": [], "autocomplete": [], "correct menu": []}
    for _ in range(args.rounds):
        times["hi (baseline)"].append(await timed(gw, bot, gw.slash("Milo", "hi")))
        shown = copy.deepcopy(fake.messages[message_id])
        approve = next(c["custom_id"] for row in shown["components"] for c in row["components"] if ":approve:" in c["custom_id"])
        times["approve → next"].append(await timed(gw, bot, gw.button("Tess", approve, shown)))
        times["autocomplete"].append(await timed(gw, bot, gw.autocomplete("Tess", "import", [
            {"name": "dataset", "type": 3, "value": "set-1", "focused": True}])))
        times["correct menu"].append(await timed(gw, bot, gw.message_menu("Milo", "Correct this reply", target)))

    base = statistics.median(times["hi (baseline)"])
    print(f"{args.rounds} alternating rounds; {args.queue} corrections waiting, {args.datasets} datasets; deadline 3000 ms")
    print(f"{'interaction':<18} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'p50 / baseline':>15}")
    for name, values in times.items():
        ms = [v * 1000 for v in values]
        print(
            f"{name:<18} {statistics.median(ms):8.1f} {pct(ms, 0.95):8.1f} {max(ms):8.1f} "
            f"{statistics.median(values) / base:15.2f}"
        )
    await bot.close()
    await fake.stop()
    core.store.close()


if __name__ == "__main__":
    asyncio.run(main())
