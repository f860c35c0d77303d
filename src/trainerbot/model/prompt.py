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

from collections.abc import Iterable
from typing import Any

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


def system_prompt(facts: Iterable[tuple[str, str]], max_chars: int) -> str:
    """``SYSTEM``, then the facts that fit (see ``facts_block``)."""
    block = facts_block(facts, max_chars)
    return f"{SYSTEM}\n{block}" if block else SYSTEM


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
