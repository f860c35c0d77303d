"""What hostile-looking input is *allowed* to do: good archives import (our own archives
round-trip), spreadsheet formulas are escaped on export, and mentions in taught text never ping."""

from __future__ import annotations

import csv
import io

from tests.conftest import att
from tests.security.test_hostile_inputs import _tar, _zip
from trainerbot.core import Caller, CoreService


async def test_archives_of_good_files_import_whole(core: CoreService, trainer: Caller) -> None:
    data = _zip(("set/a.jsonl", b'{"prompt": "a", "response": "b"}\n'), ("b.txt", b"Q: c\nA: d\n"), ("set/", b""))
    assert (await core.datasets.import_data(trainer, "facts", None, att("bundle.zip", data, "application/zip"))).data[
        "added"
    ] == 2
    await core.datasets.import_data(trainer, "facts", None, att("more.tar.gz", _tar(("x.csv", b"prompt,response\ne,f\n"))))
    archived = await core.datasets.archive(trainer, "facts")
    sent = (await core.datasets.getfile(trainer, archived.data["file"])).files[0]
    again = await core.datasets.import_data(trainer, "restored", None, att(sent.name, sent.path.read_bytes()))
    assert again.data["added"] == 3  # our own archive: items.jsonl imports, the manifest is skipped
    assert (await core.datasets.stats(trainer, "restored")).data["total"] == 3


async def test_csv_export_escapes_formulas(core: CoreService, trainer: Caller) -> None:
    evil = 'prompt,response\n"=cmd|\' /C calc\'!A0",ok\n"+1+1","@SUM(A1)"\n"-2","\tx"\nplain,"multi\nline"\n'
    await core.datasets.import_data(trainer, "evil", None, att("evil.csv", evil))
    exported = await core.datasets.export(trainer, "evil", "csv")
    path = exported.files[0].path
    assert path.suffix == ".csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert rows[0] == ["prompt", "response", "label", "rejected", "source", "author"]
    cells = [cell for row in rows[1:] for cell in row[:2]]
    assert cells == ["'=cmd|' /C calc'!A0", "ok", "'+1+1", "'@SUM(A1)", "'-2", "x", "plain", "multi\nline"]
    # ("\tx" was stripped on import: fields are trimmed) — no cell starts a formula
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows[1:] for cell in row)


async def test_mentions_in_taught_text_are_kept_but_defused_when_quoted(
    core: CoreService, trainer: Caller, member: Caller
) -> None:
    await core.datasets.import_data(
        trainer, "pings", None, att("p.jsonl", '{"prompt": "@everyone who is here?", "response": "@here hi <@&123>"}\n')
    )
    answer = await core.chat.reply(member, "@everyone who is here?")
    assert answer.content == "@here hi <@&123>"  # stored as taught; the Discord adapter sends with no mentions allowed
    shown = await core.datasets.item(member, 1)
    assert "@everyone" not in shown.content and "@\u200beveryone" in shown.content  # quoted text is defused
