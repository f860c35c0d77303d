"""Dataset items as examples: the bridge between the store's rows and ``datasets.records``.

Lives with the datasets (a capability), so the store itself never imports what sits above
it. Each function takes an open ``Session``; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainerbot.datasets.records import Example, as_label
from trainerbot.store import repo
from trainerbot.store.keys import question_key
from trainerbot.store.tables import Dataset, DatasetItem, utcnow


def item_to_example(item: DatasetItem) -> Example:
    return Example(
        prompt=item.prompt, response=item.response, label=as_label(item.label),
        rejected=item.rejected, system=item.system, history=tuple(item.history or ()),
        source_ref=item.source_ref,
        extra={"item_id": item.id, "source": item.source, "author_id": item.author_id,
               "created_at": item.created_at.isoformat(timespec="seconds") if item.created_at else None},
    )


def add_examples(session: Session, dataset: Dataset, examples: Sequence[Example], *, source: str, author_id: str,
                 correction_id: int | None = None, feedback_id: int | None = None,
                 dedupe: bool = True) -> tuple[list[DatasetItem], int]:
    """Add examples not already in the dataset's current items; return (the items added,
    duplicates). Each is keyed by its question; ``revisions.teach`` makes taught ones current.

    ``dedupe=False`` keeps repeats: two users rating the same reply are two votes.
    """
    seen = {
        (p, r, lab, rej)
        for p, r, lab, rej in session.execute(
            select(DatasetItem.prompt, DatasetItem.response, DatasetItem.label, DatasetItem.rejected).where(
                DatasetItem.dataset_id == dataset.id, *repo.CURRENT
            )
        )
    } if dedupe else set()
    added: list[DatasetItem] = []
    for ex in examples:
        if dedupe and ex.key() in seen:
            continue
        seen.add(ex.key())
        item = DatasetItem(
            dataset_id=dataset.id, guild_id=dataset.guild_id, prompt=ex.prompt, response=ex.response,
            rejected=ex.rejected, system=ex.system, history=list(ex.history) or None, label=ex.label,
            source=source, source_ref=ex.source_ref[:300], author_id=author_id,
            correction_id=correction_id, feedback_id=feedback_id, question_key=question_key(ex.prompt),
        )
        session.add(item)
        added.append(item)
    if added:
        dataset.updated_at = utcnow()
    return added, len(examples) - len(added)
