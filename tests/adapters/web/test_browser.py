"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright
from PyPI through ``executable_path``; nothing is downloaded) against a real core and store:
signing in with a link, a running job's progress and loss curve updating without a reload,
three corrections approved with the keyboard, a member's and another server's sessions, and
a replayed or expired link."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.adapters.web.conftest import link_for, seed
from trainerbot.core import Caller, CoreService
from trainerbot.store.tables import Correction, DashboardLogin, JobStatus, utcnow
from trainerbot.training import queue

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def expect(locator):  # type: ignore[no-untyped-def]
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            await chromium.close()


async def _page(browser: object, core: CoreService, base: str, caller: Caller):  # type: ignore[no-untyped-def]
    """A fresh browser context (its own cookies), signed in through a link."""
    context = await browser.new_context()  # type: ignore[attr-defined]
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(base + await link_for(core, caller))
    await page.wait_for_url(base + "/jobs")  # the signed-in page refreshes to the jobs
    page.script_errors = errors
    return page


async def test_a_link_signs_in_and_a_running_job_updates_without_a_reload(served: tuple[CoreService, str], browser: object,
                                                                         trainer: Caller, member: Caller) -> None:
    core, base = served
    await seed(core, trainer, member, corrections=0)
    job_id = (await core.training.train(trainer, "facts")).job.job_id  # type: ignore[union-attr]
    assert queue.claim_next(core.store, "test-worker") == job_id
    queue.add_event(core.store, job_id, step=1, total_steps=10, loss=2.5, eta_s=30)
    page = await _page(browser, core, base, trainer)
    assert page.url == base + "/jobs"
    assert await page.locator("#jobs").inner_text() != ""
    await page.click(f"a[href='/jobs/{job_id}']")
    await page.wait_for_selector("#live")
    assert await page.locator("#status").inner_text() == "running"
    first_url = page.url
    assert await page.locator("#curve").get_attribute("data-points") == "1"
    for step, loss in ((4, 1.9), (7, 1.2)):
        queue.add_event(core.store, job_id, step=step, total_steps=10, loss=loss, eta_s=10)
        await expect(page.locator("#step")).to_have_text(f"{step}/10", timeout=10_000)
    assert await page.locator("#loss").inner_text() == "1.2000"
    assert await page.locator("#curve").get_attribute("data-points") == "3"  # drawn from the stream, point by point
    assert float(await page.locator("#progress").get_attribute("value") or 0) == pytest.approx(0.1)  # the status as first sent
    queue.finish(core.store, job_id, JobStatus.SUCCEEDED, message="model v1 is active")
    await expect(page.locator("#status")).to_have_text("succeeded", timeout=10_000)
    assert "model v1 is active" in await page.locator("#events").inner_text()
    assert page.url == first_url  # never reloaded
    assert page.script_errors == []


async def test_three_corrections_approved_with_the_keyboard(served: tuple[CoreService, str], browser: object, trainer: Caller,
                                                            member: Caller) -> None:
    core, base = served
    ids = await seed(core, trainer, member, corrections=4)
    page = await _page(browser, core, base, trainer)
    await page.goto(base + "/review")
    rows = page.locator("#queue tbody tr")
    assert await rows.count() == 4
    await page.keyboard.press("j")  # skip the first one …
    for left in (3, 2, 1):
        await page.keyboard.press("a")  # … and approve the next three
        await expect(rows).to_have_count(left, timeout=10_000)
    assert "approved" in await page.locator("#said").inner_text()
    with core.store.read() as s:
        assert [s.get(Correction, i).status for i in ids] == ["pending", "approved", "approved", "approved"]  # type: ignore[union-attr]
    assert await page.locator("#queue tbody tr").get_attribute("data-id") == str(ids[0])
    assert page.script_errors == []


async def test_answers_to_one_question_stand_together_and_one_approval_closes_the_rest(
        served: tuple[CoreService, str], browser: object, trainer: Caller, member: Caller) -> None:
    core, base = served
    ids = await seed(core, trainer, member, corrections=2)
    others = []
    for n, user in enumerate(("u-other", "u-third")):  # two more answers to Question 0, on another reply
        await core.delivery.record_exchange(member, "question 0", "Still wrong.", reply_message_id=f"again{n}")
        others.append(int((await core.feedback.correct(replace(member, user_id=user), f"again{n}", f"Answer {n}.")
                           ).data["correction_id"]))  # type: ignore[call-overload]
    page = await _page(browser, core, base, trainer)
    await page.goto(base + "/review")
    rows = page.locator("#queue tbody tr")
    assert [await rows.nth(i).get_attribute("data-id") for i in range(4)] == [str(i) for i in (ids[0], *others, ids[1])]
    assert f"also #{others[0]}, #{others[1]}" in await rows.nth(0).inner_text()
    await page.keyboard.press("j")
    await page.keyboard.press("a")  # the second answer to Question 0: the first and the third close with it
    await expect(rows).to_have_count(1, timeout=10_000)
    assert "superseded" in await page.locator("#said").inner_text()
    assert await rows.nth(0).get_attribute("data-id") == str(ids[1])
    with core.store.read() as s:
        assert [s.get(Correction, i).status for i in (ids[0], *others)] == [  # type: ignore[union-attr]
            "superseded", "approved", "superseded"]
    assert page.script_errors == []


async def test_a_member_and_another_server_see_what_they_may(served: tuple[CoreService, str], browser: object, trainer: Caller,
                                                             member: Caller, other_guild_trainer: Caller) -> None:
    core, base = served
    ids = await seed(core, trainer, member)
    await core.training.train(trainer, "facts")
    as_member = await _page(browser, core, base, member)
    assert "look only" in await as_member.locator("header").inner_text()
    assert await as_member.locator("nav a[href='/review']").count() == 0
    response = await as_member.goto(base + "/review")
    assert response.status == 403 and "Only trainers" in await as_member.locator("#message").inner_text()
    # Even a hand-made request from the member's page is refused, and nothing changes.
    said = await as_member.evaluate(
        """async (id) => {
             const r = await fetch(`/review/${id}/approve`, {method: "POST", headers: {"Accept": "application/json",
               "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content}});
             return [r.status, (await r.json()).error];
           }""", ids[0])
    assert said[0] == 403 and "Only trainers" in said[1]
    with core.store.read() as s:
        assert s.get(Correction, ids[0]).status == "pending"  # type: ignore[union-attr]
    elsewhere = await _page(browser, core, base, other_guild_trainer)
    assert "No training jobs yet" in await elsewhere.locator("main").inner_text()
    await elsewhere.goto(base + "/review")
    assert "No corrections wait" in await elsewhere.locator("main").inner_text()
    assert (await elsewhere.goto(base + "/jobs/1")).status == 404


async def test_a_replayed_or_expired_link_is_refused(served: tuple[CoreService, str], browser: object, trainer: Caller) -> None:
    core, base = served
    path = await link_for(core, trainer)
    context = await browser.new_context()  # type: ignore[attr-defined]
    page = await context.new_page()
    assert (await page.goto(base + path)).status == 200
    await page.wait_for_url(base + "/jobs")
    other = await (await browser.new_context()).new_page()  # type: ignore[attr-defined]
    replayed = await other.goto(base + path)
    assert replayed.status == 403 and "not valid" in await other.locator("#message").inner_text()
    late = await link_for(core, trainer)
    with core.store.session() as s:
        s.execute(update(DashboardLogin).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = await other.goto(base + late)
    assert expired.status == 403
    assert (await other.goto(base + "/jobs")).status == 401  # still signed out


async def test_a_link_clicked_on_another_site_signs_in(served: tuple[CoreService, str], browser: object, trainer: Caller) -> None:
    """As from Discord: the link is followed from another site, where a SameSite=Strict
    cookie set on a redirect would not come back on the redirect's next hop."""
    from aiohttp import web

    core, base = served
    link = base + await link_for(core, trainer)
    elsewhere = web.Application()

    async def chat(request: web.Request) -> web.Response:
        return web.Response(text=f'<a id="go" href="{link}">your dashboard link</a>', content_type="text/html")

    elsewhere.router.add_get("/", chat)
    runner = web.AppRunner(elsewhere)
    await runner.setup()
    await web.TCPSite(runner, "localhost", 0).start()  # "localhost" is another site than 127.0.0.1
    try:
        page = await (await browser.new_context()).new_page()  # type: ignore[attr-defined]
        await page.goto(f"http://localhost:{runner.addresses[0][1]}/")
        await page.click("#go")
        await expect(page.locator("h1")).to_have_text("Training jobs", timeout=10_000)
        assert page.url == base + "/jobs"
    finally:
        await runner.cleanup()


async def test_a_trainer_reverts_a_taught_answer_from_its_revisions(served: tuple[CoreService, str], browser: object,
                                                                   trainer: Caller, member: Caller) -> None:
    core, base = served
    await seed(core, trainer, member, corrections=0)
    await core.revisions.edit(trainer, "1", "Vandalised.")  # revision 2, example #4
    page = await _page(browser, core, base, trainer)
    await page.goto(base + "/items/4")
    rows = page.locator("#revisions tbody tr")
    await expect(rows).to_have_count(2)
    assert await page.locator("#revisions tr.current").get_attribute("data-revision") == "2"
    first = page.locator('#revisions tr[data-revision="1"]')
    await first.get_by_placeholder("why (optional)").fill("undo the vandalism")
    await first.get_by_role("button", name="Revert").click()
    await expect(rows).to_have_count(3, timeout=10_000)
    assert await page.locator("#revisions tr.current").get_attribute("data-revision") == "3"
    assert "undo the vandalism" in await rows.nth(2).inner_text()
    assert (await core.chat.reply(member, "What is the capital of Zorbia?")).content == "Quillport."

    looker = await _page(browser, core, base, member)
    await looker.goto(base + "/items/4")
    await expect(looker.locator("#revisions tbody tr")).to_have_count(3)
    assert await looker.get_by_role("button", name="Revert").count() == 0
    assert page.script_errors == [] and looker.script_errors == []
