"""The dashboard over HTTP: every route's status codes, sign-in links (once, for minutes,
for one server), CSRF, a member's look-only session, guild isolation, the header set, and
bad input answered plainly with nothing changed."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.adapters.web.conftest import link_for, seed, sign_in
from tests.conftest import row_counts
from trainerbot.adapters.web.server import CSP
from trainerbot.core import Caller, CoreService
from trainerbot.errors import COMMAND, NotAvailable
from trainerbot.store.tables import Correction, CorrectionStatus, DashboardLogin, Job, utcnow
from trainerbot.training import queue


async def test_a_link_signs_in_once_and_sets_a_strict_httponly_cookie(served: tuple[CoreService, str], trainer: Caller) -> None:
    core, base = served
    browser = await sign_in(core, base, trainer)
    try:
        cookie = next(c for c in browser.http.cookie_jar if c.key == "trainerbot_session")
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        # The same link again: refused, and no second session.
        path = await link_for(core, trainer)
        first = await browser.http.get(base + path, allow_redirects=False)
        again = await browser.http.get(base + path, allow_redirects=False)
        assert first.status == 200 and again.status == 403
        assert "not valid" in await again.text()
    finally:
        await browser.http.close()


async def test_an_expired_or_unknown_link_is_refused(served: tuple[CoreService, str], trainer: Caller) -> None:
    import aiohttp

    core, base = served
    path = await link_for(core, trainer)
    with core.store.session() as s:
        s.execute(update(DashboardLogin).values(expires_at=utcnow() - timedelta(seconds=1)))
    async with aiohttp.ClientSession() as http:
        for target in (path, "/login/" + "x" * 43, "/login/short"):
            response = await http.get(base + target, allow_redirects=False)
            assert response.status == 403 and "trainerbot_session" not in response.cookies


async def test_without_a_session_every_page_asks_for_a_link(served: tuple[CoreService, str]) -> None:
    import aiohttp

    _, base = served
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/jobs", "/jobs/1", "/jobs/1/events", "/models", "/review", "/datasets", "/items/1", "/tests",
                     "/feedback", "/audit", "/archives/x.jsonl"):
            response = await http.get(base + path, allow_redirects=False)
            assert response.status == 401, path
            assert "dashboard" in await response.text()
        forged = await http.post(base + "/review/1/approve", data={"csrf": "x"}, allow_redirects=False)
        assert forged.status == 401
        static = await http.get(base + "/static/dashboard.js")
        assert static.status == 200 and static.headers["Content-Type"].startswith("text/javascript")


async def test_every_page_answers_with_the_security_headers(served: tuple[CoreService, str], trainer: Caller,
                                                              member: Caller) -> None:
    core, base = served
    await seed(core, trainer, member)
    await core.training.train(trainer, "facts")  # job #1, queued
    browser = await sign_in(core, base, trainer)
    try:
        pages = {"/jobs": 200, "/jobs/1": 200, "/models": 200, "/review": 200, "/datasets": 200, "/datasets?q=Zorbia": 200,
                 "/items/1": 200, "/tests": 200, "/feedback": 200, "/audit": 200, "/audit?before=5": 200, "/audit?before=x": 400,
                 "/contributors": 200,
                 "/help": 200, "/": 303, "/nope": 404, "/jobs/999": 404,
                 "/jobs/abc": 400, "/items/999": 404, "/tests/5": 404, "/static/nope.js": 404, "/datasets?page=x": 400}
        for path, status in pages.items():
            response = await browser.get(path)
            assert response.status == status, (path, response.status, await response.text())
            assert response.headers["Content-Security-Policy"] == CSP, path
            assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert response.headers["X-Frame-Options"] == "DENY"
        assert "<script>" not in await (await browser.get("/review")).text()  # no inline script anywhere
    finally:
        await browser.http.close()


async def test_decisions_need_the_csrf_token(served: tuple[CoreService, str], trainer: Caller, member: Caller) -> None:
    core, base = served
    ids = await seed(core, trainer, member)
    browser = await sign_in(core, base, trainer)
    try:
        before = row_counts(core)
        for data in ({}, {"csrf": "wrong"}):
            response = await browser.http.post(base + f"/review/{ids[0]}/approve", data=data, allow_redirects=False)
            assert response.status == 403 and "stale" in await response.text()
        assert row_counts(core) == before
        done = await browser.post(f"/review/{ids[0]}/approve")
        assert done.status == 303 and done.headers["Location"] == "/review"
        with core.store.read() as s:
            assert s.get(Correction, ids[0]).status == CorrectionStatus.APPROVED  # type: ignore[union-attr]
    finally:
        await browser.http.close()


async def test_keyboard_calls_answer_json_and_edit_approves_the_new_text(served: tuple[CoreService, str], trainer: Caller,
                                                                       member: Caller) -> None:
    core, base = served
    ids = await seed(core, trainer, member)
    browser = await sign_in(core, base, trainer)
    try:
        edited = await browser.post(f"/review/{ids[0]}/approve", {"corrected": "Edited answer."}, json_reply=True)
        assert edited.status == 200 and (await edited.json())["ok"] is True
        rejected = await browser.post(f"/review/{ids[1]}/reject", json_reply=True)
        assert (await rejected.json())["ok"] is True
        twice = await browser.post(f"/review/{ids[1]}/reject", json_reply=True)
        assert "already rejected" in (await twice.json())["text"]
        with core.store.read() as s:
            assert s.get(Correction, ids[0]).corrected == "Edited answer."  # type: ignore[union-attr]
        unknown = await browser.post("/review/999/approve", json_reply=True)
        assert unknown.status == 404 and (await unknown.json())["ok"] is False
        bad = await browser.post("/review/1x/approve")
        assert bad.status == 400
    finally:
        await browser.http.close()


async def test_bulk_approve_takes_the_selection(served: tuple[CoreService, str], trainer: Caller, member: Caller) -> None:
    core, base = served
    ids = await seed(core, trainer, member)
    browser = await sign_in(core, base, trainer)
    try:
        before = row_counts(core)
        assert (await browser.post("/review/approve", [("id", "abc")])).status == 400
        assert (await browser.post("/review/approve", [])).status == 400
        assert row_counts(core) == before
        response = await browser.post("/review/approve", [("id", str(ids[0])), ("id", str(ids[2]))])
        assert response.status == 303
        with core.store.read() as s:
            assert [s.get(Correction, i).status for i in ids] == ["approved", "pending", "approved"]  # type: ignore[union-attr]
    finally:
        await browser.http.close()


async def test_a_members_session_looks_but_cannot_decide(served: tuple[CoreService, str], trainer: Caller,
                                                         member: Caller) -> None:
    core, base = served
    ids = await seed(core, trainer, member)
    await core.training.train(trainer, "facts")
    browser = await sign_in(core, base, member)
    try:
        assert (await browser.get("/jobs")).status == 200
        assert (await browser.get("/datasets")).status == 200
        assert "look only" in await (await browser.get("/jobs")).text()
        before = row_counts(core)
        decisions = ((f"/review/{ids[0]}/approve", {}), (f"/review/{ids[0]}/reject", {}),
                     ("/review/approve", {"id": str(ids[0])}), ("/jobs/1/cancel", {}), ("/items/1/delete", {}),
                     ("/models/use", {"version": "v1"}))
        for path, data in decisions:
            response = await browser.post(path, data)
            assert response.status == 403, path
            assert "Only trainers" in await response.text()
        assert (await browser.get("/review")).status == 403 and (await browser.get("/feedback")).status == 403
        assert row_counts(core) == before
        with core.store.read() as s:
            assert s.get(Job, 1).status not in queue.FINISHED  # type: ignore[union-attr]  # not cancelled
    finally:
        await browser.http.close()


async def test_another_servers_session_sees_nothing_of_this_one(served: tuple[CoreService, str], trainer: Caller, member: Caller,
                                                                other_guild_trainer: Caller) -> None:
    core, base = served
    ids = await seed(core, trainer, member)
    await core.training.train(trainer, "facts")
    await core.feedback.leave(member, "secret feedback of guild A")
    browser = await sign_in(core, base, other_guild_trainer)
    try:
        for path in ("/jobs", "/review", "/datasets", "/datasets?q=Zorbia", "/feedback", "/models", "/tests"):
            page = await (await browser.get(path)).text()
            assert "Quillport" not in page and "Right answer" not in page and "secret feedback" not in page, path
            assert "facts" not in page and "#1" not in page, path
        assert "0 examples" in await (await browser.get("/datasets?q=Zorbia")).text()
        for path in ("/jobs/1", "/items/1", "/jobs/1/events", "/jobs/1/loss.png"):
            assert (await browser.get(path)).status == 404, path
        before = row_counts(core)
        assert (await browser.post(f"/review/{ids[0]}/approve")).status == 404
        assert (await browser.post("/items/1/delete")).status == 404
        assert (await browser.post("/jobs/1/cancel")).status == 404
        assert row_counts(core) == before
    finally:
        await browser.http.close()


async def test_datasets_search_provenance_delete_and_archives(served: tuple[CoreService, str], trainer: Caller,
                                                              member: Caller) -> None:
    core, base = served
    await seed(core, trainer, member, corrections=0)
    await core.datasets.archive(trainer, "facts")
    await core.datasets.import_data(trainer, "facts", None, __import__("tests.conftest", fromlist=["att"]).att(
        "more.jsonl", '{"prompt": "What is <b>bold</b>?", "response": "<script>alert(1)</script>"}\n'))
    browser = await sign_in(core, base, trainer)
    try:
        overview = await (await browser.get("/datasets")).text()
        assert "<td>1</td><td>file 1</td>" in overview  # one author; one current example from a file (3 archived)
        page = await (await browser.get("/datasets?q=bold")).text()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page  # escaped
        assert "1 example" in page
        item_id = int(page.split('href="/items/')[1].split('"')[0])
        provenance = await (await browser.get(f"/items/{item_id}")).text()
        assert "Given by" in provenance and "imported from" in provenance
        assert f"`/revisions {item_id}`" in provenance
        assert COMMAND not in provenance  # the core's command mark, turned into Discord's `/`
        archive = page.split('href="/archives/')[1].split('"')[0]
        download = await browser.get(f"/archives/{archive}")
        assert download.status == 200 and "attachment" in download.headers["Content-Disposition"]
        assert (await browser.get("/archives/..%2F..%2Fstore.db")).status in (400, 404)
        deleted = await browser.post(f"/items/{item_id}/delete")
        assert deleted.status == 303
        assert (await browser.get(f"/items/{item_id}")).status == 404
    finally:
        await browser.http.close()


async def test_logout_ends_every_session(served: tuple[CoreService, str], trainer: Caller) -> None:
    core, base = served
    first, second = await sign_in(core, base, trainer), await sign_in(core, base, trainer)
    try:
        out = await first.post("/logout")
        assert out.status == 200 and "Signed out" in await out.text()
        assert (await second.get("/jobs")).status == 200  # each browser signs out alone …
        reply = await core.dashboard.logout(trainer)  # … and `dashboard logout` ends them all
        assert "1 session" in reply.content
        assert (await second.get("/jobs")).status == 401
    finally:
        await first.http.close()
        await second.http.close()


async def test_the_dashboard_command_refuses_when_it_is_off_or_in_a_dm(core: CoreService, trainer: Caller) -> None:
    with pytest.raises(NotAvailable, match="TRAINERBOT_DASHBOARD_PORT"):
        await core.dashboard.link(trainer)


async def test_a_link_is_for_its_server_only(served: tuple[CoreService, str], trainer: Caller) -> None:
    from trainerbot.errors import BadInput

    core, _ = served
    dm = Caller(guild_id="dm-u", user_id="u-trainer", channel_id="dm", is_dm=True)
    with pytest.raises(BadInput, match="in a server"):
        await core.dashboard.link(dm)
    reply = await core.dashboard.link(trainer)
    assert "10 minutes" in reply.content and "once" in reply.content
    with core.store.read() as s:
        login = s.query(DashboardLogin).one()
        assert login.token_hash not in reply.content and len(login.token_hash) == 64  # only the hash is stored




async def test_the_commands_page_reads_the_command_table(served: tuple[CoreService, str], member: Caller) -> None:
    from trainerbot.core.commands import COMMANDS

    core, base = served
    browser = await sign_in(core, base, member)
    try:
        page = await (await browser.get("/help")).text()
        for c in COMMANDS:
            if "discord" in c.where:
                assert f"!{c.word}" in page and c.description.replace("'", "&#39;") in page, c.word
        assert "!quit" not in page  # console-only
    finally:
        await browser.http.close()


async def test_spent_links_and_ended_sessions_do_not_pile_up(served: tuple[CoreService, str], trainer: Caller) -> None:
    from trainerbot.store.tables import DashboardSession

    core, base = served
    browser = await sign_in(core, base, trainer)
    await browser.http.close()
    await core.dashboard.link(trainer)  # unused
    with core.store.session() as s:
        s.execute(update(DashboardLogin).values(expires_at=utcnow() - timedelta(days=2)))
        s.execute(update(DashboardSession).values(expires_at=utcnow() - timedelta(days=2)))
    await core.dashboard.link(trainer)  # asking again sweeps what is long over
    with core.store.read() as s:
        assert s.query(DashboardLogin).count() == 1 and s.query(DashboardSession).count() == 0


async def test_a_jobs_curve_comes_as_a_png_without_script_and_cancel_works(served: tuple[CoreService, str], trainer: Caller,
                                                                            member: Caller) -> None:
    core, base = served
    await seed(core, trainer, member, corrections=0)
    job_id = (await core.training.train(trainer, "facts")).job.job_id  # type: ignore[union-attr]
    browser = await sign_in(core, base, trainer)
    try:
        assert (await browser.get(f"/jobs/{job_id}/loss.png")).status == 404  # no loss yet
        queue.add_event(core.store, job_id, step=1, total_steps=4, loss=2.0)
        queue.add_event(core.store, job_id, step=2, total_steps=4, loss=1.5)
        png = await browser.get(f"/jobs/{job_id}/loss.png")
        assert png.status == 200 and png.headers["Content-Type"] == "image/png" and (await png.read())[:4] == b"\x89PNG"
        page = await (await browser.get(f"/jobs/{job_id}")).text()
        assert f'<noscript><img src="/jobs/{job_id}/loss.png"' in page
        cancelled = await browser.post(f"/jobs/{job_id}/cancel")
        assert cancelled.status == 303
        with core.store.read() as s:
            assert s.get(Job, job_id).status == "cancelled"  # type: ignore[union-attr]
    finally:
        await browser.http.close()


async def test_the_models_page_shows_the_persona_escaped(served: tuple[CoreService, str], trainer: Caller,
                                                         member: Caller) -> None:
    core, base = served
    await seed(core, trainer, member)
    browser = await sign_in(core, base, member)
    try:
        shipped = await (await browser.get("/models")).text()
        assert "the shipped one" in shipped and "You are trainerbot" in shipped
        await core.persona.persona(trainer, "You are <b>Quill</b>, the harbour's guide.")
        page = await (await browser.get("/models")).text()
        assert "set by a trainer" in page and "You are &lt;b&gt;Quill&lt;/b&gt;, the harbour&#39;s guide." in page
    finally:
        await browser.http.close()


async def test_the_audit_page_pages_through_the_decisions_for_trainers_only(
        served: tuple[CoreService, str], trainer: Caller, member: Caller) -> None:
    core, base = served
    ids = await seed(core, trainer, member, corrections=3)
    for cid in ids:
        await core.review.approve(trainer, cid)
    for n in range(22):
        await core.persona.persona(trainer, f"You are helper number {n}.")
    browser = await sign_in(core, base, trainer)
    try:
        first = await (await browser.get("/audit")).text()
        assert first.count('<tr data-id="') == 20 and "helper number" not in first  # the persona's words stay out
        assert "persona" in first and 'id="older"' in first
        older = re.search(r'href="/audit\?before=(\d+)"', first)
        assert older is not None
        rest = await (await browser.get(f"/audit?before={older.group(1)}")).text()
        assert rest.count('<tr data-id="') == 5 and rest.count("approve") == 3 and 'id="older"' not in rest
    finally:
        await browser.http.close()
    as_member = await sign_in(core, base, member)
    try:
        assert (await as_member.get("/audit")).status == 403
        assert 'href="/audit"' not in await (await as_member.get("/jobs")).text()
    finally:
        await as_member.http.close()


async def test_an_examples_page_shows_its_questions_revisions_and_a_trainer_reverts_or_edits(
        served: tuple[CoreService, str], trainer: Caller, member: Caller) -> None:
    core, base = served
    await seed(core, trainer, member, corrections=0)
    await core.revisions.edit(trainer, "1", "<b>Quillport</b>, by the sea.")  # example #4, revision 2
    looker = await sign_in(core, base, member)
    browser = await sign_in(core, base, trainer)
    try:
        page = await (await looker.get("/items/1")).text()
        assert 'id="revisions"' in page and "&lt;b&gt;Quillport&lt;/b&gt;, by the sea." in page  # escaped
        assert re.search(r'<tr data-revision="2" class="current">', page)
        assert "Revert</button>" not in page and 'id="edit"' not in page  # a member looks only
        listing = await (await looker.get("/datasets")).text()
        assert re.search(r'href="/items/1">#1</a></td><td>facts</td><td>positive \(replaced\)', listing)
        before = row_counts(core)
        assert (await looker.post("/items/1/revert", {"revision": "1"})).status == 403
        assert (await looker.post("/items/1/edit", {"answer": "Vandalised."})).status == 403
        assert row_counts(core) == before
        assert 'id="revisions"' not in await (await browser.get("/items/3")).text()  # a 👎 example: none

        page = await (await browser.get("/items/4")).text()
        assert page.count("Revert</button>") == 1 and 'id="edit"' in page
        assert (await browser.post("/items/4/revert", {"revision": "x"})).status == 400
        assert (await browser.post("/items/4/revert", {"revision": "9"})).status == 404
        assert row_counts(core) == before
        reverted = await browser.post("/items/4/revert", {"revision": "1", "why": "keep it short"})
        assert reverted.status == 303 and reverted.headers["Location"] == "/items/4"
        page = await (await browser.get("/items/4")).text()
        assert '<tr data-revision="3" class="current">' in page and "keep it short" in page
        assert (await core.chat.reply(member, "What is the capital of Zorbia?")).content == "Quillport."

        edited = await browser.post("/items/1/edit", {"answer": "Quillport, the port city."}, json_reply=True)
        assert edited.status == 200 and "revision 4" in (await edited.json())["text"]
        assert (await core.chat.reply(member, "What is the capital of Zorbia?")).content == "Quillport, the port city."
    finally:
        await browser.http.close()
        await looker.http.close()
