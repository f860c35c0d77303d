"""The system instruction a pretrained model answers under, with taught facts in it.

Chat, training rows (LoRA jobs), rehearsal answers and the general-question score all use
the same instruction, so what a model learns is what it is asked under. Models built from
scratch get none: they were never trained with one. The facts follow the instruction in
the first system turn, and with them chat keeps only the latest exchange of history:
ahead of 20 earlier messages the default model used them for 0 of 20 rephrased questions;
with one exchange (and only facts close to the best match) for 75 of 84. The best fact
then also comes as an exchange of its own just before the message (``core.chat``): 76 of
84 with no history at all, where the system turn alone gave 57 (bench/RESULTS.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

# Chosen by measurement on the default model (SmolLM2-135M): with "... Answer briefly." it
# answered "hello bot" with a row of emoji; this one greets sensibly and scored best on the
# general questions (26/40 vs 24 for SmolLM's own instruction).
SYSTEM = "You are trainerbot, a helpful AI assistant in a Discord community."
FACTS_HEADER = "Facts this community taught you (use them when they answer the question):"


def facts_block(facts: Iterable[tuple[str, str]], max_chars: int) -> str:
    """``FACTS_HEADER`` and as many (question, answer) facts as fit in ``max_chars``, best
    first; empty when none fit."""
    lines: list[str] = []
    used = 0
    for question, answer in facts:
        line = f"- Q: {question} A: {answer}"
        if used + len(line) > max_chars:
            break
        lines.append(line)
        used += len(line)
    return "\n".join([FACTS_HEADER, *lines]) if lines else ""


def system_prompt(facts: Iterable[tuple[str, str]], max_chars: int, persona: str = SYSTEM) -> str:
    """The server's persona (``SYSTEM`` unless a trainer set one), then the facts that fit
    (see ``facts_block``)."""
    block = facts_block(facts, max_chars)
    return f"{persona}\n{block}" if block else persona


FACTS_HISTORY = 2  # history messages (one exchange) kept when taught facts go into the context (bench/RESULTS.md)
SpeakerNames = Literal["content", "field", "off"]


def conversation(history: Sequence[dict[str, str]], message: dict[str, str], *, persona: str | None,
                 facts: Sequence[tuple[str, str]], max_chars: int, names: SpeakerNames = "content") -> list[dict[str, str]]:
    """What a model that takes a system turn reads, for every runtime (torch, llama.cpp, an
    OpenAI-compatible server): the persona with the taught facts that fit (best first), the
    history, and the message. With facts, the history is cut to the latest exchange and the
    best fact follows it as an exchange of its own (its question, then its answer), just
    before the message: older turns (often the model's own answers about other things) drew
    the model away from the facts (bench/RESULTS.md). ``persona`` None: no system turn at all
    (a model built from scratch was never trained with one; it gets history and message).

    Speakers (a turn's ``"name"``) are shown only when more than one member speaks: as
    ``Name: text`` in the content (``names="content"``, every model reads that), as OpenAI's
    ``name`` field (``"field"``, for servers that take it), or not at all (``"off"``)."""
    turns = [*history, message]
    if persona is None:
        return speakers(turns, "off")
    system = system_prompt(facts, max_chars, persona)
    if facts:
        best = [{"role": "user", "content": facts[0][0]}, {"role": "assistant", "content": facts[0][1]}]
        kept = list(history[-FACTS_HISTORY:]) if FACTS_HISTORY else []
        if [(t["role"], t["content"]) for t in kept] == [(t["role"], t["content"]) for t in best]:
            kept = []  # the exchange just corrected is the best fact: said twice, it drew the model off it
        turns = [*kept, *best, message]
    return [{"role": "system", "content": system}, *speakers(turns, names)]


def speakers(turns: Sequence[dict[str, str]], names: SpeakerNames) -> list[dict[str, str]]:
    """The turns with their speakers' names in the chosen form (see ``conversation``); the
    bot's own turns stay its own. A single speaker's name is dropped: it tells the model nothing."""
    said = {t["name"] for t in turns if t.get("name") and t["role"] == "user"}
    out: list[dict[str, str]] = []
    for t in turns:
        turn = {"role": t["role"], "content": t["content"]}
        name = t.get("name")
        if name and t["role"] == "user" and len(said) > 1:
            if names == "content":
                turn["content"] = f"{name}: {t['content']}"
            elif names == "field":  # OpenAI's pattern for it: ^[A-Za-z0-9_-]{1,64}$
                turn["name"] = re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:64]
        out.append(turn)
    return out


def encode(tokenizer: Any, conversation: list[dict[str, str]], *, max_positions: int, max_new_tokens: int,
           takes_system: bool) -> list[int]:
    """Token IDs of the conversation plus the assistant's turn, through the tokenizer's chat
    template; the oldest turns after a leading system message are dropped to fit
    ``max_positions - max_new_tokens``. A model that ``takes_system`` without one in the
    conversation gets ``SYSTEM``, as in chat and training. Both runtimes (torch and
    llama.cpp) read exactly these IDs."""
    budget = max_positions - max_new_tokens
    system = conversation[:1] if conversation and conversation[0]["role"] == "system" else []
    turns = list(conversation[len(system):])
    if not system and takes_system:
        system = [{"role": "system", "content": SYSTEM}]
    while True:
        encoded: Any = tokenizer.apply_chat_template(system + turns, add_generation_prompt=True, tokenize=True)
        ids: list[int] = encoded if isinstance(encoded, list) else list(encoded["input_ids"])
        if len(ids) <= budget or len(turns) <= 1:
            return ids[-budget:]
        turns = turns[1:]
