"""Revision commands: ``revisions`` (every answer taught to an example's question), ``revert``
and ``edit`` (trainers). The chain itself is ``datasets.revisions``; the Datasets cog and the
dashboard's example page are where people meet these commands.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trainerbot.config import LimitsSettings, TeachingSettings
from trainerbot.core.base import Basis, Group
from trainerbot.core.corrections import AUTO
from trainerbot.core.datasets import DatasetCommands
from trainerbot.core.text import quote_user_text, row_number
from trainerbot.core.types import Caller, Reply
from trainerbot.datasets import items as dataset_items
from trainerbot.datasets import revisions
from trainerbot.errors import COMMAND, BadInput
from trainerbot.plural import count
from trainerbot.store import repo
from trainerbot.store.tables import Dataset, Revision

REVISIONS_SHOWN = 15  # the newest revisions a `revisions` reply lists


@dataclass(frozen=True)
class RevisionRow:
    """One revision of a taught answer, as ``revisions`` and the dashboard show it."""

    number: int
    at: str
    action: str  # import | correction | edit | delete | revert
    source: str  # facts.jsonl line 3 | correction #12 | edit of example #7 | revision 2 | example #7
    actor_id: str
    author_id: str | None
    why: str | None
    answer: str | None  # None: the question was left without one, or its words were forgotten
    forgotten: bool
    current: bool

    def words(self) -> str:
        """Who did what, from what: "imported by <@1> from facts.jsonl line 3"."""
        by = "its supporters" if self.actor_id == AUTO else f"<@{self.actor_id}>"
        said = f" (“{quote_user_text(self.why, 120)}”)" if self.why else ""
        author = f" by <@{self.author_id}>" if self.author_id else ""
        return {
            "import": f"imported by {by} from {quote_user_text(self.source, 80)}",
            "correction": f"{self.source}{author}, approved by {by}",
            "edit": f"edited by {by}",
            "delete": f"answer deleted by {by} ({self.source})",
            "revert": f"{self.source} made current again by {by}",
        }.get(self.action, f"{self.action} by {by}") + said

    @property
    def revertible(self) -> bool:
        return self.answer is not None and not self.current


@dataclass(frozen=True)
class RevisionChain:
    item_id: int
    question: str
    rows: tuple[RevisionRow, ...]


def _row(step: revisions.Step) -> RevisionRow:
    r = step.revision
    return RevisionRow(r.number, repo.latest(r.created_at), r.action, r.source, r.actor_id, r.author_id, r.why, r.answer,
                       r.forgotten, step.current)


class RevisionCommands(Group):
    def __init__(self, basis: Basis, datasets: DatasetCommands, *, teaching: TeachingSettings, limits: LimitsSettings) -> None:
        super().__init__(basis)
        self.teaching, self.limits = teaching, limits
        self.datasets = datasets  # finds an example of the caller's server (guild_item)

    async def chain(self, caller: Caller, item_id: str | int) -> RevisionChain:
        """Every answer taught to example ``item_id``'s question, oldest first (``revisions``)."""
        iid = row_number(item_id, f"Give an example's number: `{COMMAND}revisions <example id>`.")

        def load() -> RevisionChain:
            with self.store.read() as s:
                chain = revisions.chain(s, self.datasets.guild_item(s, caller, iid))
                return RevisionChain(iid, chain.question, tuple(_row(step) for step in chain.steps))
        return await self._blocking(load)

    async def show(self, caller: Caller, item_id: str | int) -> Reply:
        """``revisions <example id>``: who taught what to that example's question, and when."""
        chain = await self.chain(caller, item_id)
        shown = chain.rows[-REVISIONS_SHOWN:]
        lines = [f"📜 **Revisions of** {quote_user_text(chain.question, 200)} (from example #{chain.item_id})"]
        if len(chain.rows) > len(shown):
            lines.append(f"-# {count(len(chain.rows) - len(shown), 'older revision')} not shown")
        for r in shown:
            answer = ("*(forgotten)*" if r.forgotten else "*(no answer)*") if r.answer is None \
                else quote_user_text(r.answer, 200)
            mark = " ✅ **current**" if r.current else ""
            lines.append(f"**{r.number}**{mark} · {r.at} · {r.words()}: {answer}")
        if not any(r.current for r in chain.rows):
            lines.append("No answer is taught for this question now.")
        lines.append(f"Trainers: `{COMMAND}revert {chain.item_id} <revision> [why]` makes an older answer current again; "
                     f"`{COMMAND}edit {chain.item_id} <answer>` teaches a new one.")
        return Reply.text("\n".join(lines), data={"revisions": [r.number for r in chain.rows],
                                                  "current": next((r.number for r in chain.rows if r.current), None)})

    async def revert(self, caller: Caller, item_id: str | int, revision: str | int, why: str | None = None) -> Reply:
        """``revert <example id> <revision> [why]`` (trainers): an older answer is current again, as a new revision."""
        self._require_trainer(caller, "revert taught answers")
        usage = f"Usage: `{COMMAND}revert <example id> <revision> [why]`."
        iid, number = row_number(item_id, usage), row_number(revision, usage)
        why = (why or "").strip()[:300] or None

        def apply() -> tuple[Revision, str]:
            with self.store.session() as s:
                item = self.datasets.guild_item(s, caller, iid)
                fallback = repo.ensure_dataset(s, item.guild_id, self.teaching.feedback_dataset).id
                new, back = revisions.revert(s, item, number, actor_id=caller.user_id, fallback_dataset=fallback, why=why)
                question = quote_user_text(new.prompt or item.prompt, 120)
                repo.audit(s, item.guild_id, caller.user_id, "revert", f"example #{iid}",
                           f"revision {number} is current again as revision {new.number}" + (f": {why}" if why else ""))
                s.flush()
                return new, question
        new, question = await self._blocking(apply)
        return Reply.text(
            f"↩️ Revision {number} of {question} is the taught answer again (as revision {new.number}); I answer with it "
            f"from now on, and the next training uses it: {quote_user_text(new.answer or '', 300)}",
            data={"revision": new.number, "reverted_to": number, "item_id": new.item_id},
        )

    async def edit(self, caller: Caller, item_id: str | int, answer: str) -> Reply:
        """``edit <example id> <answer>`` (trainers): teach a new answer to that example's question, as a revision."""
        self._require_trainer(caller, "edit taught answers")
        iid = row_number(item_id, f"Usage: `{COMMAND}edit <example id> <new answer>`.")
        answer = (answer or "").strip()
        if not answer:
            raise BadInput(f"Write the new answer: `{COMMAND}edit {iid} <new answer>`.")
        if len(answer) > self.limits.max_field_chars:
            raise BadInput(f"An answer is limited to {self.limits.max_field_chars} characters; yours has {len(answer)}.")

        def apply() -> tuple[int, int, str]:
            with self.store.session() as s:
                item = self.datasets.guild_item(s, caller, iid)
                if not revisions.is_taught(item):
                    raise BadInput(f"Example #{iid} is a {'👍 vote' if item.source == 'reaction' else 'negative example'}; "
                                   "it teaches no answer to edit.")
                taught = revisions.current_item(s, item.guild_id, revisions.key_of(item))
                if answer == (taught or item).response:
                    raise BadInput("That is the taught answer already; nothing changed.")
                ds = s.get(Dataset, item.dataset_id)
                assert ds is not None
                ex = replace(dataset_items.item_to_example(item), response=answer, source_ref=f"edit of example #{iid}")
                added, _ = dataset_items.add_examples(s, ds, [ex], source="edit", author_id=caller.user_id, dedupe=False)
                revisions.teach(s, added, action="edit", actor_id=caller.user_id)
                number = revisions.newest_number(s, item.guild_id, revisions.key_of(item))
                repo.audit(s, item.guild_id, caller.user_id, "edit", f"example #{iid}",
                           f"revision {number}, as example #{added[0].id}")
                return added[0].id, number, ds.name
        new_id, number, name = await self._blocking(apply)
        return Reply.text(
            f"✏️ Taught a new answer to example #{iid}'s question (revision {number}, example #{new_id} in `{name}`). "
            f"I answer with it from now on; `{COMMAND}revisions {new_id}` shows the earlier ones.",
            data={"item_id": new_id, "revision": number},
        )
