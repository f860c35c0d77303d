"""Chat: answer a message with a taught fact at once, else with the active model.

The conversation is the channel's recent messages (``history_messages`` of them) plus the
new one. Taught facts (approved corrections and dataset answers) are looked up first, in
an index cached per guild and rebuilt when the guild's data changes: an exact or
near-exact match answers at once; otherwise the best-matching facts (top ``taught_context``,
at most ``taught_context_chars``) go into the model's system prompt, so a correction
changes the answer to rephrasings of its question before any training. Before any version
is trained, the pretrained base model answers (the default ``smollm2``); with the
from-scratch model (``TRAINERBOT_MODEL=scratch``) the bot says how to train one. The
runtime (``model.runtime``: llama.cpp, torch or an OpenAI-compatible server) runs in a
worker thread and streams its text; the history it reads carries corrected replies in
place (``store.repo.history``). Every answer is stored with its
prompt and context, so it can be corrected and rated. A voice message is transcribed
(``VoiceCommands.transcribe``) and answered like typed text.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

from sqlalchemy import func, select

from trainerbot.config import LimitsSettings, ModelSettings, TeachingSettings
from trainerbot.core.base import Basis, Group
from trainerbot.core.delivery import Delivery
from trainerbot.core.text import quote_user_text, speaker_name
from trainerbot.core.turns import ReplyLine
from trainerbot.core.types import Attachment, Caller, Reply
from trainerbot.core.voice import VoiceCommands
from trainerbot.datasets import revisions
from trainerbot.errors import COMMAND, BadInput
from trainerbot.model import embeddings, prompt
from trainerbot.model.embeddings import Embedder
from trainerbot.model.prompt import SpeakerNames
from trainerbot.model.runtime import Runtime, Runtimes
from trainerbot.model.taught import Meaning, TaughtIndex
from trainerbot.ops import metrics
from trainerbot.store import repo
from trainerbot.store.tables import DatasetItem, ModelVersion
from trainerbot.training.chat_first import ChatFirst

log = logging.getLogger(__name__)

TAUGHT_CACHE_GUILDS = 64
MEANING_NOW = 256  # new taught questions embedded while a message waits (about 0.6 s); more go to the background
FACTS_MIN_SHARE = 0.7  # a related fact goes into the context only if it scores this share of the best one (bench/RESULTS.md)
FACTS_MIN_COVER = 0.5  # ... and only if the message holds this share of its question's words, IDF-weighted (bench/RESULTS.md)


class ChatCommands(Group):
    def __init__(self, basis: Basis, *, model: ModelSettings, teaching: TeachingSettings, limits: LimitsSettings,
                 runtimes: Runtimes, delivery: Delivery, voice: VoiceCommands, chat_first: ChatFirst) -> None:
        super().__init__(basis)
        self.model, self.teaching, self.limits = model, teaching, limits
        self.runtimes = runtimes  # the models that answer
        self.chat_first = chat_first  # a training worker on this machine pauses while a reply is written
        self.delivery = delivery  # every answer is recorded there
        self.voice = voice  # voice messages are transcribed there
        self._lock = threading.Lock()  # the taught-facts cache is used from worker threads
        self._taught: OrderedDict[int, tuple[tuple[int, int, int], TaughtIndex]] = OrderedDict()
        self._embedding: set[int] = set()  # guilds whose taught questions are being embedded in the background
        self._embedders: list[threading.Thread] = []  # those background threads, joined on close
        self._closing = threading.Event()
        self.line = ReplyLine(model.chat_queue)  # members waiting for a reply slot
        # Replies stream in threads of their own, one per slot: the shared default pool (a few
        # threads on 2 cores) would otherwise be filled by them, and store reads would wait.
        self._writers = ThreadPoolExecutor(max_workers=model.chat_slots, thread_name_prefix="reply")

    async def reply(self, caller: Caller, text: str, *, message_id: str | None = None,
                    on_partial: Callable[[str], Awaitable[None]] | None = None, partial_every_s: float = 1.0,
                    on_wait: Callable[[int], Awaitable[None]] | None = None) -> Reply:
        """The answer to ``text``. With ``on_partial``, the text so far is handed over while the
        model (local or a streaming server) produces it, at most once per ``partial_every_s``
        (remote: once a second). When every reply slot is taken the member waits in line
        (``turns``): ``on_wait(ahead)`` is awaited once, with how many wait before them
        (``turns.waiting_words`` says it); past the line's bound this raises ``Busy``."""
        text = text.strip()
        if not text:
            raise BadInput("Say something and I'll answer.")
        if len(text) > self.limits.max_field_chars:
            raise BadInput(f"That message is {len(text)} characters; I read at most {self.limits.max_field_chars}.")
        self._limit(caller, "chat")
        started = time.perf_counter()
        reply = await self._chat(caller, text, message_id, on_partial, partial_every_s, on_wait)
        source = str(reply.data.get("source"))
        metrics.REPLIES.labels(source).inc()
        metrics.REPLY_SECONDS.labels(source).observe(time.perf_counter() - started)
        return reply

    async def _chat(self, caller: Caller, text: str, message_id: str | None,
                    on_partial: Callable[[str], Awaitable[None]] | None, partial_every_s: float,
                    on_wait: Callable[[int], Awaitable[None]] | None = None) -> Reply:
        guild_id, version, history, persona = await self._blocking(self._chat_context, caller)
        taught = await self._blocking(self._taught_index, guild_id)
        hit = taught.lookup(text) if taught is not None else None
        message = {"role": "user", "content": text}
        if (name := speaker_name(caller.user_name)) is not None:
            message["name"] = name
        if hit is not None:
            answer, source, model_name = hit.answer, "taught", None
        else:
            runtime = await self._blocking(self.runtimes.for_chat, version)
            if runtime is None:
                return Reply.text(f"I haven't been trained yet, so I can't answer. A trainer can teach me with "
                                  f"`{COMMAND}train sample` (a shipped sample) or `{COMMAND}train <dataset>` with a file; "
                                  f"`{COMMAND}instruction` explains how.", data={"source": "none"})
            names = self.model.speaker_names
            if names == "field" and not runtime.takes_names:
                names = "content"  # a chat template has no place for OpenAI's name field
            conversation = self._conversation(taught, history, message, self.runtimes.system_for(runtime, persona, version),
                                              names=names)
            async with self.line.turn(runtime.slots, on_wait):
                answer = await self._stream(runtime, conversation, on_partial, partial_every_s) or "…"
            source = runtime.source
            model_name = version.name if version is not None else runtime.label
        reply_id = await self.delivery.record_exchange(caller, text, answer, prompt_message_id=message_id, context=history,
                                              model_version=model_name)
        return Reply.text(answer, data={"reply_id": reply_id, "source": source, "model_version": model_name}, reply_id=reply_id)

    def close(self) -> None:
        """Stop the reply threads and the background embedding: it stops after the batch it is
        on (a torch thread still running at interpreter exit aborts the process)."""
        self._closing.set()
        self._writers.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            embedders = list(self._embedders)
        for thread in embedders:
            thread.join(timeout=60)

    async def voice_message(self, caller: Caller, attachment: Attachment, *, message_id: str | None = None,
                            on_wait: Callable[[int], Awaitable[None]] | None = None) -> Reply:
        """Transcribe a voice message, then answer the transcript like typed chat."""
        transcript = await self.voice.transcribe(caller, attachment)
        answer = await self.reply(caller, transcript, message_id=message_id, on_wait=on_wait)
        quoted = "> " + quote_user_text(transcript, 1500)
        return Reply.text(f"{quoted}\n{answer.content}", data={**answer.data, "transcript": transcript, "answer": answer.content},
                          reply_id=answer.reply_id, answer=answer.content)

    def _conversation(self, taught: TaughtIndex | None, history: list[dict[str, str]], message: dict[str, str],
                      persona: str | None, *, names: SpeakerNames = "content") -> list[dict[str, str]]:
        """What the model reads (``prompt.conversation``): the persona with the taught facts
        that best match the message (bounded), the history, and the message. ``persona``
        None: a model that takes no system turn, which gets no facts either."""
        found = (taught.related(message["content"], self.teaching.taught_context, min_share=FACTS_MIN_SHARE,
                                min_cover=FACTS_MIN_COVER) if taught is not None and persona is not None else [])
        return prompt.conversation(history, message, persona=persona, facts=[(f.prompt, f.answer) for f in found],
                                   max_chars=self.teaching.taught_context_chars, names=names)

    async def _stream(self, model: Runtime, conversation: list[dict[str, str]],
                      on_partial: Callable[[str], Awaitable[None]] | None, every_s: float) -> str:
        """Run the runtime in a thread; with ``on_partial``, hand over its text as it grows.
        While a model on this machine writes, a training worker here pauses (``chat_first``)."""
        limit = self.model.reply_max_tokens
        here = model.source == "model"  # a remote server's work is not on these cores
        loop = asyncio.get_running_loop()
        latest: asyncio.Queue[str | None] = asyncio.Queue()

        def produce() -> str:
            text = ""
            with self.chat_first.replying() if here else nullcontext(lambda: None) as refresh:
                if on_partial is None and not here:
                    return str(model.reply(conversation, max_new_tokens=limit))
                try:
                    for text in model.stream(conversation, max_new_tokens=limit):
                        refresh()  # the mark lasts while the reply streams, however long
                        if on_partial is not None:
                            loop.call_soon_threadsafe(latest.put_nowait, text)
                finally:
                    loop.call_soon_threadsafe(latest.put_nowait, None)
            return text

        task = loop.run_in_executor(self._writers, produce)
        if on_partial is None:
            return await task
        shown, last = "", 0.0
        while True:
            item = await latest.get()
            while item is not None and not latest.empty():  # skip ahead to the newest text
                item = latest.get_nowait()
            if item is None:
                break
            if item != shown and time.monotonic() - last >= every_s:
                shown, last = item, time.monotonic()
                await on_partial(item)
        return str(await task)

    def _chat_context(self, caller: Caller) -> tuple[int | None, ModelVersion | None, list[dict[str, str]], str | None]:
        """(guild row ID, active version, the channel's history as the model reads it, the
        server's persona when a trainer set one)."""
        with self.store.read() as s:
            guild = self._find_guild(s, caller)
            if guild is None:
                return None, None, [], None
            version = repo.active_version(s, guild.id)
            history: list[dict[str, str]] = []
            conv = repo.conversation_id(s, guild.id, caller.channel_id)
            if conv is not None:
                history = repo.history(s, conv, self.model.history_messages)
            return guild.id, version, history, repo.persona(guild)

    def _taught_index(self, guild_id: int | None) -> TaughtIndex | None:
        if guild_id is None:
            return None
        # Taught facts are the current answers trainers imported, edited and approved
        # (``repo.TAUGHT``); a member's 👍 on a model reply is a training signal, not a fact (and
        # would rebuild the index per rating). Each revision (a revert, too) moves the stamp.
        current = (DatasetItem.guild_id == guild_id, *repo.TAUGHT)
        with self.store.read() as s:
            stamp_row = s.execute(select(func.count(), func.max(DatasetItem.id)).where(*current)).one()
            stamp = (int(stamp_row[0] or 0), int(stamp_row[1] or 0), revisions.latest_change(s, guild_id))
            with self._lock:
                cached = self._taught.get(guild_id)
                if cached is not None and cached[0] == stamp:
                    self._taught.move_to_end(guild_id)
                    return cached[1]
            # One current answer per question (``datasets.revisions``).
            pairs = s.execute(select(DatasetItem.prompt, DatasetItem.response).where(*current).order_by(DatasetItem.id)).all()
        index = TaughtIndex(((p, r) for p, r in pairs), threshold=self.teaching.taught_threshold)
        self._with_meaning(guild_id, index)
        with self._lock:
            self._taught[guild_id] = (stamp, index)
            while len(self._taught) > TAUGHT_CACHE_GUILDS:
                self._taught.popitem(last=False)
        return index

    def _with_meaning(self, guild_id: int, index: TaughtIndex) -> None:
        """Give the index its questions' embeddings, each computed once and stored. A few new
        ones are embedded here; a big import is embedded in the background (one guild at a
        time), and until then facts are found by words alone."""
        embedder = self.runtimes.embedder()
        if embedder is None or not len(index):
            return
        keys = [hashlib.sha256(" ".join(toks).encode()).hexdigest() for toks, _, _ in index.docs]
        with self.store.read() as s:
            stored = repo.fact_vectors(s, guild_id, embedder.name, keys)
        missing = [(k, doc[1]) for k, doc in zip(keys, index.docs, strict=True) if k not in stored]
        if len(missing) > MEANING_NOW:
            with self._lock:
                if guild_id in self._embedding:
                    return
                self._embedding.add(guild_id)
                thread = threading.Thread(target=self._embed_later, args=(guild_id, embedder, missing), daemon=True,
                                          name=f"embed-facts-{guild_id}")
                self._embedders = [t for t in self._embedders if t.is_alive()] + [thread]
            thread.start()
            return
        if missing:
            stored |= self._embed(guild_id, embedder, missing)
        index.meaning = Meaning(embedder.encode, embeddings.from_bytes([stored[k] for k in keys]),
                                self.teaching.taught_meaning_threshold)

    def _embed(self, guild_id: int, embedder: Embedder, texts: list[tuple[str, str]]) -> dict[str, bytes]:
        vectors = dict(zip((k for k, _ in texts), embeddings.to_bytes(embedder.encode([t for _, t in texts])), strict=True))
        with self.store.session() as s:
            repo.save_fact_vectors(s, guild_id, embedder.name, vectors)
        return vectors

    def _embed_later(self, guild_id: int, embedder: Embedder, texts: list[tuple[str, str]]) -> None:
        try:  # in batches, each stored as it is done, so that closing waits for one batch at most
            for start in range(0, len(texts), MEANING_NOW):
                if self._closing.is_set():
                    return
                self._embed(guild_id, embedder, texts[start:start + MEANING_NOW])
        except Exception:  # the facts stay findable by their words; the next rebuild tries again
            log.exception("embedding %d taught questions failed", len(texts))
        finally:
            with self._lock:
                self._embedding.discard(guild_id)
                self._taught.pop(guild_id, None)  # rebuilt with the vectors on the next message
