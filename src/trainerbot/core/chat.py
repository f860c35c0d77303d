"""Chat: answer a message with a taught fact at once, else with the active model.

The conversation is the channel's recent messages (``history_messages`` of them) plus the
new one. Taught facts (approved corrections and dataset answers) are looked up first, in
an index cached per guild and rebuilt when the guild's data changes; a local model runs in
a worker thread, a remote one (the ``openai`` backend) is awaited on its async client, and
can stream. Every answer is stored with its prompt and context, so it can be
corrected and rated. Before any model exists, the bot says how to train one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import case, func, select

from trainerbot.core.base import CoreBase
from trainerbot.core.types import Caller, Reply
from trainerbot.errors import BadInput
from trainerbot.model.taught import TaughtIndex
from trainerbot.store.models import Conversation, DatasetItem, Message, ModelVersion

TAUGHT_CACHE_GUILDS = 64


class ChatCommands(CoreBase):
    async def chat(self, caller: Caller, text: str, *, message_id: str | None = None,
                   on_partial: Callable[[str], Awaitable[None]] | None = None) -> Reply:
        """The answer to ``text``. With the ``openai`` backend and ``on_partial``, the text so far
        is handed over while the server streams (at most once a second)."""
        text = text.strip()
        if not text:
            raise BadInput("Say something and I'll answer.")
        if len(text) > self.settings.max_field_chars:
            raise BadInput(f"That message is {len(text)} characters; I read at most {self.settings.max_field_chars}.")
        self._limit(caller, "chat")
        guild_id, version, history = await self._blocking(self._chat_context, caller)
        taught = await self._blocking(self._taught_index, guild_id)
        hit = taught.lookup(text) if taught is not None else None
        if hit is not None:
            answer, source, model_name = hit.answer, "taught", None
        elif version is not None and version.backend == "local":
            conversation = history + [{"role": "user", "content": text}]
            model = await self._blocking(self._model_hub().get, self.data_dir / version.path)
            answer = await self._blocking(model.reply, conversation, max_new_tokens=self.settings.reply_max_tokens)
            answer = answer or "…"
            source, model_name = "model", version.name
        elif version is not None or self.settings.backend == "openai":
            # A remote version, or — before any version of ours — the configured remote model.
            model_id = str(version.base) if version is not None else self.settings.openai_model
            answer = await self._remote_chat().reply(history + [{"role": "user", "content": text}], model=model_id,
                                                     max_tokens=self.settings.reply_max_tokens, on_partial=on_partial)
            answer, source = answer or "…", "model"
            model_name = version.name if version is not None else f"openai:{model_id}"
        else:
            p = self.settings.prefix
            return Reply.text(f"I haven't been trained yet, so I can't answer. A trainer can teach me with "
                              f"`{p}train sample` (a shipped sample) or `{p}train <dataset>` with a file; "
                              f"`{p}instruction` explains how.", data={"source": "none"})
        reply_id = await self.record_exchange(caller, text, answer, prompt_message_id=message_id, context=history,
                                              model_version=model_name)
        return Reply.text(answer, data={"reply_id": reply_id, "source": source, "model_version": model_name})

    def _chat_context(self, caller: Caller) -> tuple[int | None, ModelVersion | None, list[dict[str, str]]]:
        with self.store.read() as s:
            guild = self._find_guild(s, caller)
            if guild is None:
                return None, None, []
            version = s.scalar(select(ModelVersion).where(ModelVersion.guild_id == guild.id, ModelVersion.active.is_(True)))
            history: list[dict[str, str]] = []
            limit = self.settings.history_messages
            if limit:
                conv = s.scalar(select(Conversation.id).where(Conversation.guild_id == guild.id, Conversation.channel_id == caller.channel_id))
                if conv is not None:
                    rows = s.execute(select(Message.role, Message.content).where(Message.conversation_id == conv)
                                     .order_by(Message.id.desc()).limit(limit)).all()
                    history = [{"role": r, "content": c} for r, c in reversed(rows)]
            return guild.id, version, history

    def _taught_index(self, guild_id: int | None) -> TaughtIndex | None:
        if guild_id is None:
            return None
        # Taught facts are what trainers imported and corrections approved; a member's 👍 on a
        # model reply is a training signal, not a fact (and would rebuild the index per rating).
        current = (DatasetItem.guild_id == guild_id, DatasetItem.archived_in.is_(None), DatasetItem.label == "positive",
                   DatasetItem.source != "reaction")
        with self.store.read() as s:
            stamp_row = s.execute(select(func.count(), func.max(DatasetItem.id)).where(*current)).one()
            stamp = (int(stamp_row[0] or 0), int(stamp_row[1] or 0))
            with self._cache_lock:
                cached = self._taught.get(guild_id)
                if cached is not None and cached[0] == stamp:
                    self._taught.move_to_end(guild_id)
                    return cached[1]
            # Later pairs win; corrections win over everything else, whenever they came.
            corrections_last = case((DatasetItem.source == "correction", 1), else_=0)
            pairs = s.execute(select(DatasetItem.prompt, DatasetItem.response).where(*current)
                              .order_by(corrections_last, DatasetItem.id)).all()
        index = TaughtIndex(((p, r) for p, r in pairs), threshold=self.settings.taught_threshold)
        with self._cache_lock:
            self._taught[guild_id] = (stamp, index)
            while len(self._taught) > TAUGHT_CACHE_GUILDS:
                self._taught.popitem(last=False)
        return index
