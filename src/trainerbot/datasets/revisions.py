"""Revisions: what the bot treats as the taught answer to a question, and every change to it.

A question (its ``store.keys.question_key``) has at most one current taught answer in a
server: a positive example that is neither archived nor replaced (``repo.TAUGHT``). Each
change is a numbered ``Revision`` with who made it, when, why and from what:

- ``teach``: new examples become the current answers to their questions (an import, an
  approved correction, an edit); the answers they displace are marked replaced, not lost;
- ``revert``: an older revision's answer becomes current again, as a new revision;
- ``untaught``: the current answer was deleted, and the question has none now;
- ``forget``: a person's words leave every revision (the chain keeps its shape).

Chat's facts in context and every training snapshot read the current answers only. Each
function takes an open ``Session``; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from trainerbot.errors import BadInput, NotFound
from trainerbot.store import repo
from trainerbot.store.keys import question_key
from trainerbot.store.tables import DatasetItem, Revision, utcnow

CHUNK = 500  # keys per IN (…) query
T = TypeVar("T")


def is_taught(item: DatasetItem) -> bool:
    """Whether ``item`` is a taught answer when current (a positive example, 👍 votes aside)."""
    return item.label == "positive" and item.source != "reaction"


def key_of(item: DatasetItem) -> str:
    """The question ``item`` answers (``store.keys.question_key``; every stored row carries it)."""
    return item.question_key or question_key(item.prompt)


def _source(item: DatasetItem) -> str:
    if item.source == "correction" and item.correction_id is not None:
        return f"correction #{item.correction_id}"
    return item.source_ref.removeprefix("file:") or item.source


def _chunks(values: Iterable[T]) -> Iterable[list[T]]:
    values = list(values)
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _next_numbers(s: Session, guild_id: int, keys: Iterable[str]) -> dict[str, int]:
    numbers: dict[str, int] = {}
    for chunk in _chunks(keys):
        numbers.update((str(k), int(n)) for k, n in s.execute(
            select(Revision.question_key, func.max(Revision.number))
            .where(Revision.guild_id == guild_id, Revision.question_key.in_(chunk)).group_by(Revision.question_key)))
    return numbers


def teach(s: Session, items: Sequence[DatasetItem], *, action: str, actor_id: str, why: str | None = None) -> int:
    """Make each new taught example of ``items`` (one server's, just added) the current answer
    to its question, in order: the answers current before are marked replaced, and each change
    is a revision. How many answers taught before were replaced."""
    taught = [i for i in items if is_taught(i)]
    if not taught:
        return 0
    for item in taught:
        item.question_key = key_of(item)
    s.flush()  # the new examples' IDs
    guild_id, fresh = taught[0].guild_id, {i.id for i in taught}
    keys = {str(i.question_key) for i in taught}
    now = utcnow()
    replaced = 0
    for chunk in _chunks(keys):
        before = [i for i in s.scalars(select(DatasetItem).where(
            DatasetItem.guild_id == guild_id, DatasetItem.question_key.in_(chunk), *repo.TAUGHT)) if i.id not in fresh]
        for old in before:
            old.replaced_at = now
        replaced += len(before)
    numbers = _next_numbers(s, guild_id, keys)
    latest: dict[str, DatasetItem] = {}
    rows = []
    for item in taught:
        key = str(item.question_key)
        if key in latest:  # an earlier answer to the same question in this batch
            latest[key].replaced_at = now
        latest[key] = item
        numbers[key] = numbers.get(key, 0) + 1
        rows.append({"guild_id": guild_id, "question_key": key, "number": numbers[key], "action": action,
                     "prompt": item.prompt, "answer": item.response, "rejected": item.rejected, "item_id": item.id,
                     "dataset_id": item.dataset_id, "source": _source(item)[:300], "actor_id": actor_id,
                     "author_id": item.author_id, "why": why[:300] if why else None, "forgotten": False, "created_at": now})
    s.execute(insert(Revision), rows)  # one executemany: an import of thousands adds thousands
    return replaced


def untaught(s: Session, item: DatasetItem, *, actor_id: str, why: str | None = None) -> bool:
    """Record that ``item``, about to be deleted, leaves its question without an answer, if it
    was the current one; whether it was."""
    if not is_taught(item) or item.archived_in is not None or item.replaced_at is not None:
        return False
    key = key_of(item)
    number = newest_number(s, item.guild_id, key) + 1
    s.add(Revision(guild_id=item.guild_id, question_key=key, number=number, action="delete", prompt=item.prompt,
                   answer=None, item_id=None, dataset_id=item.dataset_id, source=f"example #{item.id}",
                   actor_id=actor_id, author_id=None, why=why[:300] if why else None))
    return True


@dataclass(frozen=True)
class Step:
    """One revision as it is shown: the row, and whether its answer is the current one."""

    revision: Revision
    current: bool

    @property
    def number(self) -> int:
        return self.revision.number


@dataclass(frozen=True)
class Chain:
    """Every revision of one question in one server, oldest first."""

    key: str
    question: str
    steps: tuple[Step, ...]


def newest_number(s: Session, guild_id: int, key: str) -> int:
    """The number of a question's newest revision (0: it has none)."""
    return _next_numbers(s, guild_id, [key]).get(key, 0)


def current_item(s: Session, guild_id: int, key: str) -> DatasetItem | None:
    """The example that carries the answer taught now to a question (None: none is)."""
    return s.scalar(select(DatasetItem).where(DatasetItem.guild_id == guild_id, DatasetItem.question_key == key,
                                              *repo.TAUGHT).order_by(DatasetItem.id.desc()).limit(1))


def chain(s: Session, item: DatasetItem) -> Chain:
    """The revisions of ``item``'s question (``NotFound`` where it has none: a 👎 example,
    say, or a 👍 vote, which teach no answer)."""
    key = key_of(item)
    rows = list(s.scalars(select(Revision).where(Revision.guild_id == item.guild_id, Revision.question_key == key)
                          .order_by(Revision.number)))
    if not rows:
        raise NotFound(f"Example #{item.id} has no revisions: 👎 examples and 👍 votes teach no answer, and answers "
                       "archived before revisions were kept have none.")
    current = current_item(s, item.guild_id, key)
    # The current answer is the latest revision that carries it (a revert shares its item).
    last = max((r.number for r in rows if current is not None and r.item_id == current.id), default=None)
    question = next((r.prompt for r in reversed(rows) if r.prompt), item.prompt)
    return Chain(key, question, tuple(Step(r, r.number == last) for r in rows))


def revert(s: Session, item: DatasetItem, number: int, *, actor_id: str, fallback_dataset: int,
           why: str | None = None) -> tuple[Revision, DatasetItem]:
    """Make revision ``number`` of ``item``'s question current again, as a new revision: its
    example comes back if it still lies in a dataset, else a copy of it is added (to the
    dataset it was in, else ``fallback_dataset``). The new revision and the example."""
    steps = chain(s, item)
    target = next((step for step in steps.steps if step.number == number), None)
    if target is None:
        raise NotFound(f"This question has no revision {number}; it has {len(steps.steps)}.")
    rev = target.revision
    if target.current:
        raise BadInput(f"Revision {number} is the current answer already; nothing changed.")
    if rev.answer is None:
        raise BadInput(f"Revision {number} " + ("holds words that were forgotten" if rev.forgotten else
                       "left the question without an answer") + "; pick one with an answer.")
    now = utcnow()
    s.execute(update(DatasetItem).where(DatasetItem.guild_id == item.guild_id, DatasetItem.question_key == steps.key,
                                        *repo.TAUGHT).values(replaced_at=now))
    back = s.get(DatasetItem, rev.item_id) if rev.item_id is not None else None
    if back is not None and back.archived_in is None:
        back.replaced_at = None
    else:
        back = DatasetItem(dataset_id=rev.dataset_id or fallback_dataset, guild_id=item.guild_id, prompt=rev.prompt or "",
                           response=rev.answer, rejected=rev.rejected, label="positive", source="revert",
                           source_ref=f"revision {number}", author_id=rev.author_id or actor_id, question_key=steps.key)
        s.add(back)
        s.flush()
    new = Revision(guild_id=item.guild_id, question_key=steps.key, number=steps.steps[-1].number + 1, action="revert",
                   prompt=rev.prompt, answer=rev.answer, rejected=rev.rejected, item_id=back.id, dataset_id=back.dataset_id,
                   source=f"revision {number}", actor_id=actor_id, author_id=rev.author_id, why=why[:300] if why else None,
                   created_at=now)
    s.add(new)
    return new, back


def forget(s: Session, guild_id: int, user_id: str) -> int:
    """Take ``user_id``'s words out of every revision in the server: the answers (and their
    questions) they authored, and the reasons they gave. How many revisions it touched."""
    touched = list(s.scalars(select(Revision.id).where(Revision.guild_id == guild_id, or_(
        Revision.author_id == user_id, and_(Revision.actor_id == user_id, Revision.why.is_not(None))))))
    for chunk in _chunks(touched):
        s.execute(update(Revision).where(Revision.id.in_(chunk), Revision.author_id == user_id)
                  .values(prompt=None, answer=None, rejected=None, author_id=None, forgotten=True)
                  .execution_options(synchronize_session=False))
        s.execute(update(Revision).where(Revision.id.in_(chunk), Revision.actor_id == user_id)
                  .values(why=None).execution_options(synchronize_session=False))
    return len(touched)


def latest_change(s: Session, guild_id: int) -> int:
    """The server's newest revision's ID (0: none): every change to the taught answers moves it."""
    return int(s.scalar(select(func.max(Revision.id)).where(Revision.guild_id == guild_id)) or 0)


def by_person(s: Session, guild_id: int, user_id: str, limit: int) -> list[Revision]:
    """The revisions whose answer is ``user_id``'s words or which they made, newest first."""
    return list(s.scalars(select(Revision).where(Revision.guild_id == guild_id,
                                                 or_(Revision.author_id == user_id, Revision.actor_id == user_id))
                          .order_by(Revision.id.desc()).limit(limit)))

