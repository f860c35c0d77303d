"""Who said what: the 40 shipped general questions asked through chat in one shared channel,
two members taking turns (a pair of names a round), with the speakers' names in the history as the bot
shows them (``TRAINERBOT_SPEAKER_NAMES=content``: "Milo: …") against no names (``off``),
the sides in alternating rounds on fresh data folders, the shipped model through llama.cpp.
Also: who asked, answered from the history ("What did Milo ask?").

Target (issue 30): the general score does not drop with names.

    .venv/bin/python bench/speakers.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.evaluation import general_questions
from trainerbot.model.pretrained import prepare_base

PAIRS = [("Milo", "Tess"), ("Ana", "Bogdan"), ("Kofi", "Lena")]


async def one_side(data_dir: Path, names: str, who: tuple[str, str]) -> tuple[float, bool]:
    settings = Settings(_env_file=None, data_dir=data_dir, model="smollm2", start_worker=False,  # type: ignore[arg-type]
                        user_rate_per_minute=10_000, speaker_names=names)
    core = CoreService.open(settings)
    people = [Caller(guild_id="g", user_id=str(i), user_name=n, channel_id="shared") for i, n in enumerate(who)]
    right = 0
    try:
        questions = general_questions.questions()
        for i, q in enumerate(questions):
            reply = await core.chat.reply(people[i % 2], q.prompt)
            right += q.answered_by(reply.content)
        await core.chat.reply(people[0], "What is the tallest mountain in the world?")
        answer = await core.chat.reply(people[1], "Which of us asked about the tallest mountain?")
    finally:
        await core.close()
    return 100 * right / len(questions), people[0].user_name.lower() in answer.content.lower()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=len(PAIRS), help="one pair of names a round")
    args = parser.parse_args()
    scores: dict[str, list[float]] = {"content": [], "off": []}
    knows: dict[str, list[bool]] = {"content": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        shared = Path(tmp) / "base"
        prepare_base(shared)
        n = 0
        for r in range(args.rounds):
            who = PAIRS[r % len(PAIRS)]
            for names in ("content", "off"):  # alternating sides
                n += 1
                data_dir = Path(tmp) / f"run-{n}"
                (data_dir / "models").mkdir(parents=True)
                (data_dir / "models" / "base").symlink_to(shared / "models" / "base")
                score, knew = await one_side(data_dir, names, who)
                scores[names].append(score)
                knows[names].append(knew)
                print(f"  {who[0]} and {who[1]}, names {names:7}: general {score:.1f} %, knew who asked: {knew}")
    for names in scores:
        print(f"names {names:7}: general through chat in a shared channel {statistics.median(scores[names]):.1f} % "
              f"(runs {scores[names]}); knew who asked {sum(knows[names])}/{len(knows[names])}")
    print(f"drop with names: {statistics.median(scores['off']) - statistics.median(scores['content']):+.1f} points "
          "(target: none)")


if __name__ == "__main__":
    asyncio.run(main())
