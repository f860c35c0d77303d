"""Feedback ingest with group commit: 👍/👎 reactions and text feedback from many people at
once are written by one thread, many events to a transaction.

Each caller still waits for *its* event to be committed (``submit`` resolves after the
commit), so "thanks, noted" is only ever said about a stored event. A batch looks up
everything it needs in a few queries (replies, existing ratings), decides every event in
order in memory — so a rating added and removed within one batch nets out — and writes
with multi-row statements. An event that cannot apply (an unknown reply) fails alone;
a batch that cannot commit (a full disk) fails every event in it with that reason.
The thread stops after a few idle seconds and starts again on the next event.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from trainerbot.core.types import Caller
from trainerbot.errors import NotFound
from trainerbot.store import Store, repo
from trainerbot.store.keys import question_key
from trainerbot.store.tables import DatasetItem, Feedback, Message, utcnow

MAX_BATCH = 512
IDLE_STOP_S = 5.0


@dataclass
class Event:
    caller: Caller
    kind: str  # "reaction" | "text"
    mid: str | None = None
    label: str | None = None
    added: bool = True
    text: str | None = None
    future: asyncio.Future[Any] | None = field(default=None, repr=False)
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)


def _resolve(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class Ingest:
    def __init__(self, store: Store, feedback_dataset: str) -> None:
        self.store = store
        self.feedback_dataset = feedback_dataset
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.batches = 0  # committed transactions (for benchmarks)

    async def submit(self, event: Event) -> Any:
        event.loop = asyncio.get_running_loop()
        event.future = event.loop.create_future()
        self._queue.put(event)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="feedback-ingest", daemon=True)
                self._thread.start()
        return await event.future

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_STOP_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                try:
                    results = self._apply(batch)
                except IntegrityError:  # another bot process rated the same reply meanwhile: read again, once
                    results = self._apply(batch)
                self.batches += 1
            except Exception as exc:  # the transaction failed: nothing of the batch was stored
                results = [(False, exc)] * len(batch)
            for event, (ok, value) in zip(batch, results, strict=True):
                assert event.loop is not None and event.future is not None
                event.loop.call_soon_threadsafe(_resolve, event.future, ok, value)

    # ------------------------------------------------------------- one batch
    def _apply(self, batch: list[Event]) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = [(False, None)] * len(batch)
        with self.store.session() as s:
            guilds = {pid: repo.ensure_guild(s, pid, name).id
                      for pid, name in {(e.caller.guild_id, e.caller.guild_name) for e in batch}}
            texts = [i for i, e in enumerate(batch) if e.kind == "text"]
            if texts:
                rows = [{"guild_id": guilds[batch[i].caller.guild_id], "user_id": batch[i].caller.user_id, "kind": "text",
                         "text": batch[i].text, "created_at": utcnow(), "updated_at": utcnow()} for i in texts]
                ids = s.scalars(insert(Feedback).returning(Feedback.id, sort_by_parameter_order=True), rows).all()
                for i, fid in zip(texts, ids, strict=True):
                    results[i] = (True, fid)
            reactions = [i for i, e in enumerate(batch) if e.kind == "reaction"]
            if reactions:
                self._reactions(s, batch, reactions, guilds, results)
        return results

    def _reactions(self, s: Any, batch: list[Event], indexes: list[int], guilds: dict[str, int],
                   results: list[tuple[bool, Any]]) -> None:
        wanted = {(guilds[batch[i].caller.guild_id], batch[i].mid) for i in indexes}
        replies: dict[tuple[int, str], Message] = {}
        for gid in {g for g, _ in wanted}:
            mids = [m for g, m in wanted if g == gid]
            for msg in s.scalars(select(Message).where(Message.guild_id == gid, Message.role == "assistant",
                                                       Message.platform_message_id.in_(mids))):
                replies[(gid, msg.platform_message_id)] = msg
        # Current ratings of these replies: (message id, user) -> [feedback id or None (new), label]
        state: dict[tuple[int, str], list[Any]] = {}
        if replies:
            for fid, mid, uid, label in s.execute(
                select(Feedback.id, Feedback.message_id, Feedback.user_id, Feedback.label).where(
                    Feedback.kind == "reaction", Feedback.message_id.in_([m.id for m in replies.values()])
                )
            ):
                state[(mid, uid)] = [fid, label]
        original = {k: list(v) for k, v in state.items()}
        for i in indexes:
            event = batch[i]
            msg = replies.get((guilds[event.caller.guild_id], str(event.mid)))
            if msg is None:
                results[i] = (False, NotFound(f"I don't know a reply of mine with ID `{event.mid}` in this server."))
                continue
            key = (msg.id, event.caller.user_id)
            current = state.get(key)
            if not event.added:
                if current is None or current[1] != event.label:
                    results[i] = (True, "Nothing to remove.")
                else:
                    del state[key]
                    results[i] = (True, "Rating removed.")
            elif current is not None and current[1] == event.label:
                results[i] = (True, "Already rated.")
            else:
                state[key] = [current[0] if current else None, event.label]
                results[i] = (True, f"Rated {'👍' if event.label == 'positive' else '👎'} — thanks.")
        self._write_ratings(s, original, state, {m.id: m for m in replies.values()})

    def _write_ratings(
        self,
        s: Any,
        before: dict[tuple[int, str], list[Any]],
        after: dict[tuple[int, str], list[Any]],
        messages: dict[int, Message],
    ) -> None:
        """Turn the net change of ratings into a handful of multi-row statements."""
        gone = [v[0] for k, v in before.items() if k not in after]
        changed = [(k, v) for k, v in after.items() if k in before and before[k][1] != v[1]]
        new = [(k, v) for k, v in after.items() if k not in before]
        stale = gone + [v[0] for _, v in changed]
        if stale:  # their current examples go; archived ones stay in their archives
            s.execute(delete(DatasetItem).where(DatasetItem.feedback_id.in_(stale), DatasetItem.archived_in.is_(None)))
        if gone:
            s.execute(delete(Feedback).where(Feedback.id.in_(gone)))
        now = utcnow()
        for (_, _), v in changed:
            # A 👎 turned 👍 (or back) loses the reason it had.
            s.execute(update(Feedback).where(Feedback.id == v[0]).values(label=v[1], updated_at=now, reason=None,
                                                                          reason_note=None))
        if new:
            rows = [
                {
                    "guild_id": messages[mid].guild_id,
                    "user_id": uid,
                    "kind": "reaction",
                    "message_id": mid,
                    "label": v[1],
                    "created_at": now,
                    "updated_at": now,
                }
                for (mid, uid), v in new
            ]
            ids = s.scalars(insert(Feedback).returning(Feedback.id, sort_by_parameter_order=True), rows).all()
            for (_, v), fid in zip(new, ids, strict=True):
                v[0] = fid
        examples = changed + new
        if not examples:
            return
        datasets: dict[int, Any] = {}
        items = []
        for (mid, uid), v in examples:
            msg = messages[mid]
            ds = datasets.get(msg.guild_id) or datasets.setdefault(
                msg.guild_id, repo.ensure_dataset(s, msg.guild_id, self.feedback_dataset)
            )
            items.append(
                {
                    "dataset_id": ds.id,
                    "guild_id": msg.guild_id,
                    "prompt": msg.prompt or "",
                    "response": msg.content,
                    "history": repo.reply_history(s, msg) or None,
                    "label": v[1],
                    "source": "reaction",
                    "source_ref": f"reaction:{msg.platform_message_id}"[:300],
                    "author_id": uid,
                    "feedback_id": v[0],
                    "created_at": now,
                    "question_key": question_key(msg.prompt or ""),
                }
            )
        s.execute(insert(DatasetItem), items)
        for ds in datasets.values():
            ds.updated_at = now
