"""The model commands: ``model list|use|compare``, ``test`` and ``handle_errors``.

``model list`` shows the server's versions with their figures; ``model use`` switches to
one (or to a remote model, ``openai:<name>``), which is also how a trainer rolls back.

``test`` runs the active model on the caller's cases (inline JSON or an attached JSON/JSONL
file), replies with the summary — exact match, chrF, loss and perplexity of the expected
answers — and attaches the full report (JSONL in the guild's artifacts). Each run is kept
in the store, so ``handle_errors`` can turn its wrong predictions into pending corrections
for the review queue; they are never trained on until a trainer approves them.
``model compare`` answers the guild's held-out questions with two versions side by side.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainerbot.config import LimitsSettings, ModelSettings, TeachingSettings, TrainingSettings
from trainerbot.core.base import Basis, Group
from trainerbot.core.corrections import pending_count, same_correction
from trainerbot.core.permissions import is_trainer
from trainerbot.core.text import quote_user_text, row_number
from trainerbot.core.types import Attachment, Caller, OutFile, Reply
from trainerbot.datasets import paths
from trainerbot.datasets.items import item_to_example
from trainerbot.errors import COMMAND, BadInput, NotAllowed, NotAvailable, NotFound
from trainerbot.evaluation import heldout
from trainerbot.evaluation.cases import Case, parse_cases, read_report
from trainerbot.evaluation.run import score_cases
from trainerbot.evaluation.scores import Summary
from trainerbot.fileio import atomic_write_bytes, unique_path
from trainerbot.model.runtime import Runtime, Runtimes
from trainerbot.plural import count
from trainerbot.store import repo
from trainerbot.store.keys import question_key
from trainerbot.store.tables import Correction, CorrectionStatus, DatasetItem, ModelVersion, TestRun

SHOWN_WRONG = 3
REMOTE_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}")


class ModelCommands(Group):
    def __init__(self, basis: Basis, runtimes: Runtimes, *,
                 model: ModelSettings, training: TrainingSettings, teaching: TeachingSettings,
                 limits: LimitsSettings) -> None:
        super().__init__(basis)
        self.model, self.training, self.teaching, self.limits = model, training, teaching, limits
        self.runtimes = runtimes  # the loaded models chat answers with: a test runs the same ones

    # ------------------------------------------------------------- versions
    async def use(self, caller: Caller, version: str) -> Reply:
        """Switch the server to a version (or a remote model, ``openai:<name>``), or roll back."""
        self._require_trainer(caller, "switch models")
        if not (version or "").strip():
            raise BadInput(f"Usage: `{COMMAND}model use <version>` (see `{COMMAND}model list`).")
        return await self._model_use(caller, version.strip())

    async def versions(self, caller: Caller) -> Reply:
        """The server's model versions and which one is active."""
        def load() -> list[ModelVersion]:
            with self.store.read() as s:
                guild = self._find_guild(s, caller)
                return repo.versions(s, guild.id) if guild else []

        versions = await self._blocking(load)
        if not versions:
            return Reply.text(f"No model versions yet; each finished `{COMMAND}train` job makes one.")
        lines = ["**Model versions**"]
        for v in versions:
            loss = v.metrics.get("final_loss")
            held = v.metrics.get("heldout") or {}
            mark = " ← active" if v.active else " (not promoted)" if v.metrics.get("promoted") is False else ""
            what = (
                f"remote `{v.base}`" + (f", {v.recipe.upper()} job #{v.job_id}" if v.job_id else "")
                if v.backend == "openai"
                else f"{v.recipe.upper()} from {v.base}, job #{v.job_id}"
            )
            lines.append(
                f"• `{v.name}` — {what}"
                + (f", final loss {loss:.3f}" if isinstance(loss, (int, float)) else "")
                + (f", held-out chrF {held['chrf']:.1f}" if isinstance(held.get("chrf"), (int, float)) else "")
                + (
                    f", general questions {v.metrics['general']:.0f} %"
                    if isinstance(v.metrics.get("general"), (int, float))
                    else ""
                )
                + mark
            )
        return Reply.text(
            "\n".join(lines),
            data={
                "names": [v.name for v in versions],
                "active": next((v.name for v in versions if v.active), None),
                "backends": {v.name: v.backend for v in versions},
            },
        )

    async def _model_use(self, caller: Caller, name: str) -> Reply:
        remote = name[len("openai:") :].strip() if name.lower().startswith("openai:") else None
        if remote is not None and not REMOTE_MODEL.fullmatch(remote):
            raise BadInput(
                "Give a remote model's name, e.g. `model use openai:gpt-4.1-mini` or `openai:ft:gpt-4.1-mini:org::abc123`."
            )

        def switch() -> str:
            with self.store.session() as s:
                guild = self._guild(s, caller) if remote is not None else self._known_guild(s, caller)
                if remote is not None:  # a remote model by its name: registered once as a version of its own
                    target = s.scalar(
                        select(ModelVersion).where(
                            ModelVersion.guild_id == guild.id, ModelVersion.backend == "openai", ModelVersion.base == remote
                        )
                    )
                    if target is None:
                        target = ModelVersion(guild_id=guild.id, name=repo.next_version_name(s, guild.id), backend="openai",
                                              base=remote, recipe="remote", metrics={})
                        s.add(target)
                        s.flush()
                else:
                    target = self._runnable_version(s, guild.id, name)
                for v in repo.versions(s, guild.id):
                    v.active = v.id == target.id
                repo.audit(s, guild.id, caller.user_id, "model use", target.name,
                           f"remote `{target.base}`" if target.backend == "openai" else None)
                return target.name + (f" (remote `{target.base}`)" if target.backend == "openai" else "")

        active = await self._blocking(switch)
        return Reply.text(f"Model `{active}` is now active.", data={"active": active.split(" ", 1)[0]})

    # ------------------------------------------------------------------- test
    async def test(self, caller: Caller, text: str | None = None, attachment: Attachment | None = None) -> Reply:
        if attachment is not None:
            data, filename = attachment.data, attachment.filename
        elif text and text.strip():
            data, filename = text.strip().encode("utf-8"), None
        else:
            raise BadInput(
                f"Give test cases as JSON, e.g. `{COMMAND}test [{{\"prompt\": \"What is 2+2?\", \"expected\": \"4\"}}]`, "
                "or attach a .json / .jsonl file."
            )
        if len(data) > self.limits.max_attachment_bytes:
            raise BadInput("That test is over the attachment limit.")
        cases = parse_cases(
            data,
            filename=filename,
            max_cases=self.training.max_test_cases,
            max_bytes=self.limits.max_attachment_bytes,
            max_field_chars=self.limits.max_field_chars,
        )
        self._limit(caller, "test")
        name, model, system = await self._blocking(self._model_to_test, caller)
        rows, summary = await self._blocking(score_cases, model, cases, max_new_tokens=self.model.reply_max_tokens,
                                             system=system)
        run_id, report = await self._blocking(self._save_run, caller, name, rows, summary)
        wrong = [r for r in rows if r["match"] is False]
        lines = [f"🧪 Test #{run_id} of model `{name}` — {summary.line()}."]
        for r in wrong[:SHOWN_WRONG]:
            lines.append(
                f"✗ {quote_user_text(r['prompt'], 80)} → got “{quote_user_text(r['prediction'], 80)}”, "
                f"expected “{quote_user_text(r['expected'], 80)}”"
            )
        if wrong:
            more = f" (and {len(wrong) - SHOWN_WRONG} more in the report)" if len(wrong) > SHOWN_WRONG else ""
            lines.append(f"{len(wrong)} wrong{more}. `{COMMAND}handle_errors {run_id}` sends them to the review queue "
                         "as corrections.")
        return Reply.text(
            "\n".join(lines),
            files=(OutFile(name=report.name, path=report),),
            data={"run_id": run_id, "version": name, "wrong": len(wrong), **summary.as_dict()},
        )

    def _model_to_test(self, caller: Caller) -> tuple[str, Runtime, str | None]:
        """(name, runtime, the persona to ask under): the active version, or before any the
        model chat answers with (the pretrained base, the configured server, a user's GGUF)."""
        with self.store.read() as s:
            guild = self._find_guild(s, caller)
            version = repo.active_version(s, guild.id) if guild else None
            persona = repo.persona(guild) if guild else None
        runtime = self.runtimes.for_scoring(version)
        if runtime is None:
            what = f"Model `{version.name}` cannot run here" if version else "There is no active model to test here yet"
            raise NotFound(f"{what}; `{COMMAND}train` makes one.")
        system = self.runtimes.system_for(runtime, persona, version)
        return (version.name if version is not None else runtime.label), runtime, system

    def _scorer(self, version: ModelVersion) -> Runtime:
        """The version's runtime for scoring (torch from the shared hub, or the server)."""
        runtime = self.runtimes.for_scoring(version)
        if runtime is None:
            raise NotAvailable(f"Model `{version.name}` cannot run here.")
        return runtime

    def _save_run(self, caller: Caller, version: str, rows: list[dict[str, Any]], summary: Summary) -> tuple[int, Path]:
        folder = paths.area_dir(self._root(caller), "artifacts")
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        report = unique_path(folder, f"test-{stamp}", ".jsonl")
        atomic_write_bytes(report, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))
        with self.store.session() as s:
            guild = self._guild(s, caller)
            run = TestRun(
                guild_id=guild.id,
                user_id=caller.user_id,
                model_version=version,
                cases=len(rows),
                wrong=sum(1 for r in rows if r["match"] is False),
                metrics=summary.as_dict(),
                report_file=report.name,
            )
            s.add(run)
            s.flush()
            return run.id, report

    # ---------------------------------------------------------- handle_errors
    async def handle_errors(self, caller: Caller, run_id: str | None = None) -> Reply:
        """Every wrong prediction of a test run (the latest here, by default) becomes a pending correction."""
        rid = None
        if run_id is not None and run_id.strip():
            rid = row_number(run_id, f"Give a test number, e.g. `{COMMAND}handle_errors 3`.")
        self._limit(caller, "handle_errors")
        return await self._blocking(self._handle_errors, caller, rid)

    def _handle_errors(self, caller: Caller, rid: int | None) -> Reply:
        trainer = is_trainer(caller, self.trainer_role)
        with self.store.session() as s:
            guild = self._guild(s, caller)
            query = select(TestRun).where(TestRun.guild_id == guild.id)
            run = s.scalar(query.where(TestRun.id == rid) if rid is not None else query.order_by(TestRun.id.desc()).limit(1))
            if run is None:
                raise NotFound(
                    "There is no such test here."
                    if rid is not None
                    else f"No test has run here yet; `{COMMAND}test` runs one."
                )
            if run.user_id != caller.user_id and not trainer:
                raise NotAllowed("Only the one who ran that test, or a trainer, can send its errors to review.")
            if run.handled:
                return Reply.text(f"Test #{run.id}'s errors were already sent to review.", data={"run_id": run.id, "queued": 0})
            rows = read_report(self._root(caller), run.report_file)
            room = None if trainer else self.teaching.max_pending_per_user - pending_count(s, guild.id, caller.user_id)
            queued = merged = skipped = 0
            for row in rows:
                if row.get("match") is not False or not row.get("expected"):
                    continue
                same = same_correction(s, guild.id, str(row["prompt"]), str(row["expected"]))
                if same is not None:
                    if same.status == CorrectionStatus.PENDING and same.user_id != caller.user_id:
                        same.supporters += 1
                    merged += 1
                    continue
                if room is not None and queued >= room:
                    skipped += 1
                    continue
                s.add(
                    Correction(
                        guild_id=guild.id,
                        message_id=None,
                        user_id=caller.user_id,
                        prompt=str(row["prompt"]),
                        original=str(row.get("prediction") or ""),
                        corrected=str(row["expected"]),
                        status=CorrectionStatus.PENDING,
                        source=f"test:{run.id}",
                        question_key=question_key(str(row["prompt"])),
                    )
                )
                queued += 1
            run.handled = True
        text = (
            f"Test #{run.id}: {count(queued, 'wrong answer')} now {'waits' if queued == 1 else 'wait'} in the review queue "
            f"as {'a correction' if queued == 1 else 'corrections'}"
        )
        text += f" (`{COMMAND}review`)." if queued else "."
        if merged:
            text += f" {merged} {'was' if merged == 1 else 'were'} already there."
        if skipped:
            text += (
                f" {skipped} {'was' if skipped == 1 else 'were'} not queued: you may have "
                f"{count(self.teaching.max_pending_per_user, 'correction')} "
                "waiting at once; ask a trainer to review them first."
            )
        return Reply.text(text, data={"run_id": run.id, "queued": queued, "merged": merged, "skipped": skipped})

    # ----------------------------------------------------------- model compare
    async def compare(self, caller: Caller, a: str, b: str) -> Reply:
        if not (a or "").strip() or not (b or "").strip():
            raise BadInput(f"Usage: `{COMMAND}model compare <version> <version>`, e.g. `model compare v1 v2`.")
        self._limit(caller, "compare")
        versions, cases = await self._blocking(self._compare_inputs, caller, a.strip(), b.strip())
        if not cases:
            lines = [f"**{v.name}**: " + (_stored(v) or "no held-out figures") for v in versions]
            return Reply.text(
                "No held-out questions here to compare on (datasets under "
                f"{heldout.MIN_EXAMPLES} examples hold none out).\n" + "\n".join(lines),
                data={"cases": 0},
            )
        summaries = []
        for v in versions:
            model = await self._blocking(self._scorer, v)
            summaries.append((await self._blocking(score_cases, model, cases, max_new_tokens=self.model.reply_max_tokens))[1])
        (va, sa), (vb, sb) = zip(versions, summaries, strict=True)
        metric = self.training.promotion_metric

        def fmt(value: float | None, spec: str) -> str:
            return "n/a" if value is None else format(value, spec)  # a remote model has no loss to read

        rows = [
            ("exact match", fmt(sa.exact_match, ".1%"), fmt(sb.exact_match, ".1%")),
            ("chrF", fmt(sa.chrf, ".1f"), fmt(sb.chrf, ".1f")),
            ("loss", fmt(sa.loss, ".3f"), fmt(sb.loss, ".3f")),
            ("perplexity", fmt(sa.perplexity, ".4g"), fmt(sb.perplexity, ".4g")),
        ]
        width = max(len(va.name), len(vb.name), 8)
        table = [f"{'':12} {va.name:>{width}} {vb.name:>{width}}"] + [f"{k:12} {x:>{width}} {y:>{width}}" for k, x, y in rows]
        better = va.name if not heldout.not_worse(metric, sb, sa) else vb.name if not heldout.not_worse(metric, sa, sb) else None
        verdict = f"By {metric}, `{better}` is better." if better else f"By {metric}, they are even."
        active = next((v.name for v in versions if v.active), None)
        text = (
            f"**{va.name}** vs **{vb.name}** on {len(cases)} held-out questions"
            + (f" (`{active}` is active)" if active else "")
            + ":\n```\n"
            + "\n".join(table)
            + "\n```\n"
            + verdict
        )
        return Reply.text(text, data={"cases": len(cases), va.name: sa.as_dict(), vb.name: sb.as_dict(), "better": better})

    def _runnable_version(self, s: Session, guild_id: int, name: str) -> ModelVersion:
        """The guild's version called ``name``; ``NotFound``, or ``BadInput`` when its files are not all on disk."""
        from trainerbot.model.files import is_complete

        version = repo.version_named(s, guild_id, name)
        if version is None:
            raise NotFound(f"There is no model version `{name[:30]}` here. `{COMMAND}model list` shows them.")
        if version.backend == "local" and (not version.path or not is_complete(self.data_dir / version.path)):
            raise BadInput(f"Model `{version.name}` has no complete files on disk to run.")
        return version

    def _compare_inputs(self, caller: Caller, a: str, b: str) -> tuple[list[ModelVersion], list[Case]]:

        with self.store.read() as s:
            guild = self._find_guild(s, caller)
            if guild is None:
                raise NotFound(f"No model versions here yet; `{COMMAND}train` makes one.")
            versions = [self._runnable_version(s, guild.id, name) for name in (a, b)]
            items = s.scalars(
                select(DatasetItem)
                .where(DatasetItem.guild_id == guild.id, *repo.CURRENT)
                .order_by(DatasetItem.id)
            ).all()
            by_dataset: dict[int, list[Any]] = {}
            for item in items:
                by_dataset.setdefault(item.dataset_id, []).append(item_to_example(item))
        held = [ex for examples in by_dataset.values() for ex in heldout.split(examples, self.training.heldout_share)[1]]
        return versions, heldout.cases(held, self.training.max_test_cases)


def _stored(version: ModelVersion) -> str:
    figures = (version.metrics or {}).get("heldout")
    if not figures or not figures.get("scored"):
        return ""
    return f"chrF {figures['chrf']:.1f}, exact match {figures['exact_match']:.1%} (when it was trained)"
