"""Dataset commands: ``import``, ``datasets``, ``dataset`` (a dataset's statistics, or one
example's provenance), ``archive``, ``select_dataset``, ``export`` and ``getfile``.

Imports are all-or-nothing (the file is parsed completely before one row is written).
Snapshots are written to disk inside the store transaction that records them, and
removed again if that transaction fails, so the store never points at a missing file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainerbot.config import LimitsSettings, TrainingSettings
from trainerbot.core.base import Basis, Group
from trainerbot.core.text import quote_user_text, row_number
from trainerbot.core.types import Attachment, Caller, Embed, EmbedField, OutFile, Reply
from trainerbot.datasets import items as dataset_items
from trainerbot.datasets import paths, revisions
from trainerbot.datasets.exporters import EXPORT_FORMATS, export_rows, serialise, why_none
from trainerbot.datasets.importers import Limits, human_size, parse_label, parse_upload
from trainerbot.datasets.records import Example, Label
from trainerbot.datasets.snapshots import write_snapshot
from trainerbot.errors import COMMAND, BadInput, NotFound
from trainerbot.evaluation import heldout
from trainerbot.fileio import atomic_write_bytes, unique_path
from trainerbot.plural import count
from trainerbot.store import repo
from trainerbot.store.tables import Dataset, DatasetItem, Guild, Snapshot


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


class DatasetCommands(Group):
    def __init__(self, basis: Basis, *, limits: LimitsSettings, training: TrainingSettings) -> None:
        super().__init__(basis)
        self.limits, self.training = limits, training

    # ----------------------------------------------------------------- import
    async def import_data(self, caller: Caller, dataset: str, label: str | None, attachment: Attachment | None) -> Reply:
        self._require_trainer(caller, "import data")
        name = paths.dataset_name(dataset)
        default_label = parse_label(label)
        if attachment is None:
            raise BadInput(
                f"Attach a file to import (JSONL, JSON, CSV or TXT), e.g. `{COMMAND}import {name} "
                f"positive` with the file."
            )
        self._limit(caller, "import")
        limits = Limits(self.limits.max_attachment_bytes, self.limits.max_import_items, self.limits.max_field_chars)
        examples = await self._blocking(
            parse_upload,
            attachment.filename,
            attachment.content_type,
            attachment.data,
            default_label=default_label,
            limits=limits,
        )
        added, dupes, replaced, total = await self._blocking(self._store_import, caller, name, examples)
        pos = sum(e.label == "positive" for e in examples)
        parts = [f"Imported {count(added, 'example')} into `{name}`"]
        if len(examples) != pos:
            parts.append(f" ({pos} positive, {len(examples) - pos} negative in the file)")
        if dupes:
            parts.append(f"; {count(dupes, 'duplicate')} skipped")
        if replaced:
            parts.append(f"; {count(replaced, 'answer')} taught before replaced by the file's "
                         f"(`{COMMAND}revisions <example>` shows the earlier ones)")
        parts.append(f". `{name}` now holds {total}.")
        return Reply.text("".join(parts), data={"added": added, "duplicates": dupes, "replaced": replaced, "total": total})

    def _store_import(self, caller: Caller, name: str, examples: list[Example]) -> tuple[int, int, int, int]:
        with self.store.session() as s:
            guild = self._guild(s, caller)
            ds = repo.ensure_dataset(s, guild.id, name)
            tagged = [replace(e, source_ref=f"file:{e.source_ref}") for e in examples]
            added, dupes = dataset_items.add_examples(s, ds, tagged, source="file", author_id=caller.user_id)
            replaced = revisions.teach(s, added, action="import", actor_id=caller.user_id)
            s.flush()
            total = repo.count_current(s, ds.id)
        return len(added), dupes, replaced, total

    # ---------------------------------------------------------------- listing
    async def summary(self, caller: Caller) -> Reply:
        """Every dataset with its size (``datasets``)."""
        rows, selected = await self._blocking(self._list_datasets, caller)
        if not rows:
            return Reply.text(
                f"No datasets yet. A trainer can start one with `{COMMAND}import <name> positive` and a file."
            )
        lines = ["**Datasets**"]
        for ds, total, pos, neg, archives in rows:
            mark = " ← selected for training" if selected and selected.dataset_id == ds.id else ""
            arch = f", {count(archives, 'archive')}" if archives else ""
            lines.append(f"• `{ds.name}` — {count(total, 'example')} ({pos} 👍 / {neg} 👎){arch}{mark}")
        return Reply.text("\n".join(lines), data={"names": [r[0].name for r in rows]})

    def _list_datasets(self, caller: Caller) -> tuple[list[tuple[Dataset, int, int, int, int]], Snapshot | None]:
        with self.store.read() as s:
            guild = self._find_guild(s, caller)
            if guild is None:
                return [], None
            selected = s.get(Snapshot, guild.selected_snapshot_id) if guild.selected_snapshot_id else None
            return repo.dataset_summaries(s, guild.id), selected

    async def stats(self, caller: Caller, name: str) -> Reply:
        """One dataset's statistics (``dataset <name>``; ``dataset item <id>`` is ``item``)."""
        name = paths.dataset_name(name)
        return await self._blocking(self._dataset_stats, caller, name)

    def _dataset_stats(self, caller: Caller, name: str) -> Reply:
        with self.store.read() as s:
            ds = self._existing_dataset(s, caller, name)
            items = repo.current_items(s, ds.id)
            snaps = s.scalars(select(Snapshot).where(Snapshot.dataset_id == ds.id).order_by(Snapshot.id)).all()
            guild = s.get(Guild, ds.guild_id)
            selected = guild is not None and any(sn.id == guild.selected_snapshot_id for sn in snaps)
        examples = [dataset_items.item_to_example(i) for i in items]
        held = len(heldout.split(examples, self.training.heldout_share)[1])
        labels = Counter(i.label for i in items)
        authors = Counter(i.author_id for i in items)
        sources = Counter(i.source for i in items)
        text_bytes = sum(len(i.prompt.encode()) + len(i.response.encode()) for i in items)
        archives = [sn for sn in snaps if sn.kind == "archive"]
        top = ", ".join(f"{a} ({n})" for a, n in authors.most_common(3)) or "—"
        fields = (
            EmbedField("Examples", str(len(items))),
            EmbedField("👍 positive", str(labels["positive"])),
            EmbedField("👎 negative", str(labels["negative"])),
            EmbedField("Corrections", str(sum(i.rejected is not None for i in items))),
            EmbedField("Authors", f"{len(authors)} — top: {top}", inline=False),
            EmbedField("Sources", ", ".join(f"{k} {v}" for k, v in sorted(sources.items())) or "—"),
            EmbedField("Held out", f"{held} (evaluation only)"),
            EmbedField("Text size", human_size(text_bytes)),
            EmbedField(
                "Archives", f"{len(archives)}" + (f" (latest `{archives[-1].file_name}`)" if archives else ""), inline=False
            ),
            EmbedField("Updated", repo.latest(ds.updated_at)),
            EmbedField("Selected for training", "yes" if selected else "no"),
        )
        embed = Embed(title=f"Dataset {name}", fields=fields, footer=f"created {repo.latest(ds.created_at)}")
        return Reply(
            messages=tuple([embed.as_text()]),
            embed=embed,
            data={
                "total": len(items),
                "positive": labels["positive"],
                "negative": labels["negative"],
                "authors": len(authors),
                "bytes": text_bytes,
                "archives": len(archives),
                "heldout": held,
            },
        )

    def _existing_dataset(self, s: Session, caller: Caller, name: str) -> Dataset:
        guild = self._find_guild(s, caller)
        ds = repo.find_dataset(s, guild.id, name) if guild is not None else None
        if ds is None:
            raise NotFound(f"There is no dataset `{name}` here. `{COMMAND}datasets` lists them.")
        return ds

    # ------------------------------------------------------------- provenance
    async def item(self, caller: Caller, item_id: str | int) -> Reply:
        """Where one example came from: who gave it, how, when, and whether it is held out (``dataset item <id>``)."""
        iid = row_number(item_id, f"Give an example's number: `{COMMAND}dataset item <id>`.")
        return await self._blocking(self._item_provenance, caller, iid)

    def _item_provenance(self, caller: Caller, iid: int) -> Reply:
        with self.store.read() as s:
            item = self.guild_item(s, caller, iid)
            ds = s.get(Dataset, item.dataset_id)
            archive = s.get(Snapshot, item.archived_in) if item.archived_in else None
            example = dataset_items.item_to_example(item)
            big_enough = repo.count_current(s, item.dataset_id) >= heldout.MIN_EXAMPLES
        where = (f"archived in `{archive.file_name}`" if archive else
                 f"replaced by a later answer on {repo.latest(item.replaced_at)}" if item.replaced_at else "current")
        how = {
            "file": f"imported from {quote_user_text(item.source_ref, 120)}",
            "correction": f"from correction #{item.correction_id}" if item.correction_id else "from a correction",
            "reaction": f"a {'👍' if item.label == 'positive' else '👎'} rating ({quote_user_text(item.source_ref, 60)})",
            "edit": f"as an {quote_user_text(item.source_ref, 60)}",
            "revert": f"bringing back {quote_user_text(item.source_ref, 60)}",
        }
        lines = [
            f"**Example #{item.id}** in `{ds.name if ds else '?'}` ({where}) — {item.label}",
            f"**Given by** <@{item.author_id}>, {how.get(item.source, item.source)}, on {repo.latest(item.created_at)}",
            f"**Prompt:** {quote_user_text(item.prompt, 600)}",
            f"**Answer:** {quote_user_text(item.response, 800)}",
        ]
        if item.rejected:
            lines.append(f"**Instead of:** {quote_user_text(item.rejected, 400)}")
        if big_enough and heldout.is_heldout(example, self.training.heldout_share):
            lines.append("Held out: used to evaluate models, not to train them.")
        if revisions.is_taught(item):
            lines.append(f"Every answer taught to this question: `{COMMAND}revisions {item.id}`.")
        return Reply.text("\n".join(lines), data={"item_id": item.id, "author_id": item.author_id, "source": item.source})

    def guild_item(self, s: Session, caller: Caller, iid: int) -> DatasetItem:
        """The caller's server's example ``iid``; ``NotFound`` for any other (or none)."""
        guild = self._find_guild(s, caller)
        item = s.get(DatasetItem, iid)
        if guild is None or item is None or item.guild_id != guild.id:
            raise NotFound(f"There is no example #{iid} here.")
        return item

    async def delete_item(self, caller: Caller, item_id: str | int) -> Reply:
        """Delete one example (trainers). Archives written before keep their copy."""
        self._require_trainer(caller, "delete examples")
        iid = row_number(item_id, "Give an example's number.")

        untaught = False

        def remove() -> str:
            nonlocal untaught
            with self.store.session() as s:
                item = self.guild_item(s, caller, iid)
                ds = s.get(Dataset, item.dataset_id)
                name = ds.name if ds is not None else "?"
                repo.audit(s, item.guild_id, caller.user_id, "delete", f"example #{iid}", f"from `{name}`")
                untaught = revisions.untaught(s, item, actor_id=caller.user_id)
                s.delete(item)
                return name
        name = await self._blocking(remove)
        left = (f" Its question has no taught answer now; `{COMMAND}revisions {iid}` lists the earlier ones "
                "and a trainer can bring one back." if untaught else "")
        return Reply.text(f"🗑️ Example #{iid} deleted from `{name}` (archives written before keep their copy).{left}")

    # -------------------------------------------------------------- snapshots
    async def archive(self, caller: Caller, name: str) -> Reply:
        self._require_trainer(caller, "archive datasets")
        name = paths.dataset_name(name)
        snap, _ = await self._blocking(self.snapshot, caller, name, "archive", None)
        return Reply.text(
            f"Archived {count(snap.item_count, 'example')} of `{name}` as `archives/{snap.file_name}` (sha256 "
            f"`{snap.sha256[:12]}…`). "
            f"`{name}` starts afresh; get the archive with `{COMMAND}getfile {snap.file_name}`.",
            data={"file": snap.file_name, "count": snap.item_count},
        )

    async def select_dataset(self, caller: Caller, name: str, label: str | None = None) -> Reply:
        self._require_trainer(caller, "select the training data")
        name = paths.dataset_name(name)
        only: Label | None = parse_label(label) if label else None
        snap, _ = await self._blocking(self.snapshot, caller, name, "selection", only)
        which = f"{only} " if only else ""
        return Reply.text(
            f"Selected `{name}` for the next training: a snapshot of {snap.item_count} {which}examples "
            f"(`snapshots/{snap.file_name}`). Later changes to `{name}` need another `{COMMAND}select_dataset`.",
            data={"file": snap.file_name, "count": snap.item_count},
        )

    def snapshot(self, caller: Caller, name: str, kind: str, only: Label | None) -> tuple[Snapshot, list[Example]]:
        area = paths.snapshot_area(kind)
        written: list[Path] = []
        try:
            with self.store.session() as s:
                ds = self._existing_dataset(s, caller, name)
                guild = s.get(Guild, ds.guild_id)
                assert guild is not None
                items = [i for i in repo.current_items(s, ds.id) if only is None or i.label == only]
                if not items:
                    which = f" {only}" if only else ""
                    raise BadInput(f"`{name}` has no{which} examples to {'archive' if kind == 'archive' else 'select'}.")
                folder = paths.area_dir(self._root(caller), area)
                target = unique_path(folder, f"{name}-{_stamp()}", ".tar.gz")
                written.append(target)
                examples = [dataset_items.item_to_example(i) for i in items]
                info = write_snapshot(
                    target,
                    examples,
                    {
                        "dataset": name,
                        "kind": kind,
                        "label": only,
                        "guild": caller.guild_id,
                        "created_by": caller.user_id,
                    },
                )
                snap = Snapshot(
                    guild_id=guild.id,
                    dataset_id=ds.id,
                    kind=kind,
                    label=only,
                    file_name=target.name,
                    item_count=info.item_count,
                    sha256=info.sha256,
                    created_by=caller.user_id,
                )
                s.add(snap)
                s.flush()
                if kind == "archive":
                    repo.archive_items(s, ds.id, [i.id for i in items], snap.id)
                    repo.audit(s, guild.id, caller.user_id, "archive", f"`{name}`",
                               f"{count(info.item_count, 'example')} into archives/{target.name}")
                else:
                    guild.selected_snapshot_id = snap.id
            return snap, examples
        except BaseException:
            for p in written:
                p.unlink(missing_ok=True)
            raise

    # ----------------------------------------------------------------- export
    async def export(self, caller: Caller, name: str, fmt: str | None = None) -> Reply:
        self._require_trainer(caller, "export datasets")
        name = paths.dataset_name(name)
        fmt = (fmt or "openai").strip().lower()
        if fmt not in EXPORT_FORMATS:
            raise BadInput(f"`{fmt[:20]}` is not an export format: use one of {', '.join(f'`{f}`' for f in EXPORT_FORMATS)}.")
        path, rows = await self._blocking(self._export, caller, name, fmt)
        return self._send(path, f"Exported {count(rows, f'{fmt} row')} of `{name}` as `exports/{path.name}`.")

    def _export(self, caller: Caller, name: str, fmt: str) -> tuple[Path, int]:
        with self.store.read() as s:
            ds = self._existing_dataset(s, caller, name)
            examples = [dataset_items.item_to_example(i) for i in repo.current_items(s, ds.id)]
        rows = export_rows(examples, fmt)
        if not rows:
            raise BadInput(f"Nothing to export from `{name}` as {fmt}: {why_none(fmt)}.")
        text, suffix = serialise(rows, fmt)
        target = unique_path(paths.area_dir(self._root(caller), "exports"), f"{name}-{fmt}-{_stamp()}", suffix)
        atomic_write_bytes(target, text.encode("utf-8"))
        return target, len(rows)

    # ---------------------------------------------------------------- getfile
    async def getfile(self, caller: Caller, name: str | None = None) -> Reply:
        self._require_trainer(caller, "get files")
        root = self._root(caller)
        if not name:
            listing = await self._blocking(paths.list_files, root)
            if not listing:
                return Reply.text("There are no files yet: `archive`, `select_dataset` and `export` make them.")
            lines = ["**Files** (get one with `getfile <name>`)"]
            for area, entries in listing.items():
                lines.extend(f"• `{area}/{n}` — {human_size(size)}" for n, size in entries[-25:])
            return Reply.text("\n".join(lines))
        path = await self._blocking(paths.resolve_file, root, name)
        return self._send(path, f"Here is `{path.parent.name}/{path.name}`.")

    def _send(self, path: Path, text: str) -> Reply:
        size = path.stat().st_size
        if size > self.limits.max_send_bytes:
            return Reply.text(
                f"{text} It is {human_size(size)}, over the {human_size(self.limits.max_send_bytes)} I may send; "
                f"it stays in the bot's data folder."
            )
        return Reply.text(text, files=(OutFile(name=path.name, path=path),))
