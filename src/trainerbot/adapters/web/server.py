"""The trainers' web dashboard: a third adapter over the same core, served by the bot process
with aiohttp and Jinja2 templates (server-rendered; one small script file, no build step).

Off unless ``TRAINERBOT_DASHBOARD_PORT`` is set; binds ``TRAINERBOT_DASHBOARD_HOST``
(127.0.0.1 by default; put a reverse proxy in front for other machines and set
``TRAINERBOT_DASHBOARD_URL`` to the address people open).

Security: sign-in only through a one-time link from ``dashboard`` (``/login/<token>``),
which becomes an HttpOnly, SameSite=Strict session cookie; every POST carries the session's
CSRF token (a form field, or the ``X-CSRF-Token`` header from the page's script); a
member's session may look but not decide (the core refuses, too); every view reads the
session's own server only. Unknown IDs answer 404, malformed forms 400, both changing
nothing. Responses carry a Content-Security-Policy without inline script, and Jinja2
escapes everything it renders.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from trainerbot.core import CoreService
from trainerbot.core.audit import PAGE
from trainerbot.core.commands import COMMANDS, GROUP_TITLES
from trainerbot.core.dashboard import WebSession
from trainerbot.core.revisions import RevisionChain
from trainerbot.core.text import with_prefix
from trainerbot.core.types import Caller, Reply
from trainerbot.errors import BadInput, Busy, NotAllowed, NotAvailable, NotFound, TrainerBotError
from trainerbot.training.queue import FINISHED

log = logging.getLogger(__name__)

COOKIE = "trainerbot_session"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # a login link's token never leaves in a Referer
    "Cache-Control": "no-store",
}
STATUS = {NotFound: 404, BadInput: 400, NotAllowed: 403, Busy: 429, NotAvailable: 503}
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
SSE_POLL_S = 1.0
SLASH = "/"  # what the core's command mark becomes on the pages: members type commands in Discord
SSE_KEEPALIVE_S = 15.0
NUMBER = re.compile(r"[0-9]{1,12}")
SESSION = web.RequestKey("session", WebSession)  # set by the sign-in middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _number(raw: str | None, what: str) -> int:
    if raw is None or not NUMBER.fullmatch(raw):
        raise BadInput(f"{what} must be a number.")
    return int(raw)


class Dashboard:
    def __init__(self, core: CoreService, *, host: str, port: int, trainer_role: str, prefix: str, session_hours: float,
                 secure_cookie: bool = False) -> None:
        self.core = core
        self.host = host
        self.port = port
        self.secure_cookie = secure_cookie  # set when served over https (TRAINERBOT_DASHBOARD_URL)
        self.trainer_role = trainer_role
        self.prefix = prefix  # the Discord prefix, which the help page names beside the slash commands
        self.session_hours = session_hours  # how long a sign-in lasts (the cookie's age)
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("trainerbot.adapters.web", "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    # ----------------------------------------------------------- lifecycle
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers, self._errors, self._auth], client_max_size=64 * 1024)
        r = app.router
        r.add_get("/", self.home)
        r.add_get("/login/{token}", self.login)
        r.add_post("/logout", self.logout)
        r.add_get("/static/{name}", self.static)
        r.add_get("/favicon.ico", self.favicon)
        r.add_get("/jobs", self.jobs)
        r.add_get("/jobs/{id}", self.job)
        r.add_get("/jobs/{id}/events", self.job_events)
        r.add_get("/jobs/{id}/loss.png", self.job_png)
        r.add_post("/jobs/{id}/cancel", self.job_cancel)
        r.add_get("/models", self.models)
        r.add_post("/models/use", self.model_use)
        r.add_get("/review", self.review)
        r.add_post("/review/{id}/approve", self.approve)
        r.add_post("/review/{id}/reject", self.reject)
        r.add_post("/review/approve", self.approve_many)
        r.add_get("/datasets", self.datasets)
        r.add_get("/items/{id}", self.item)
        r.add_post("/items/{id}/delete", self.item_delete)
        r.add_post("/items/{id}/revert", self.item_revert)
        r.add_post("/items/{id}/edit", self.item_edit)
        r.add_get("/archives/{name}", self.archive_file)
        r.add_get("/tests", self.tests)
        r.add_get("/tests/{id}", self.test_report)
        r.add_get("/feedback", self.feedback)
        r.add_get("/audit", self.audit)
        r.add_get("/contributors", self.contributors)
        r.add_get("/help", self.help)
        return app

    async def start(self) -> int:
        """Start serving; returns the port (useful with port 0)."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])
        log.info("dashboard on http://%s:%d/", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        self._closing.set()  # live event streams end
        if self._runner is not None:
            await self._runner.cleanup()

    # ---------------------------------------------------------- middleware
    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects travel as exceptions
            exc.headers.update(HEADERS)
            raise
        response.headers.update(HEADERS)
        return response

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400 and exc.text and exc.content_type == "text/plain":
                return self._page(request, "error.html", status=exc.status, message=exc.reason)
            raise
        except TrainerBotError as exc:
            status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)
            return self._failed(request, status, exc.user_message)
        except Exception:  # a fault of ours: the trace goes to the log, the page says so plainly
            log.exception("dashboard: %s %s failed", request.method, request.path)
            return self._failed(request, 500, "Something went wrong on the bot's side; the details are in its log.")

    def _failed(self, request: web.Request, status: int, message: str) -> web.Response:
        if _wants_json(request):
            return web.json_response({"ok": False, "error": with_prefix(message, SLASH)}, status=status)
        return self._page(request, "error.html", status=status, message=message)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every page but the login link and the static files needs a live session; every POST its CSRF token."""
        if request.path.startswith(("/login/", "/static/")) or request.path == "/favicon.ico":
            return await handler(request)
        session = await self.core.dashboard.session(request.cookies.get(COOKIE, ""))
        if session is None:
            return self._page(request, "error.html", status=401,
                              message="Sign in with a link from the bot: type `dashboard` in your server.")
        request[SESSION] = session
        if request.method == "POST":
            sent = request.headers.get("X-CSRF-Token") or (await request.post()).get("csrf")
            if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf):
                return self._page(request, "error.html", status=403, message="That form is stale; reload the page and try again.")
        return await handler(request)

    # ------------------------------------------------------------- helpers
    def _page(self, request: web.Request, template: str, *, status: int = 200, **values: Any) -> web.Response:
        session = request.get(SESSION)
        html = self.templates.get_template(template).render(session=session, path=request.path, **values)
        html = with_prefix(html, SLASH)  # the commands the core's texts name, as the server's members type them
        return web.Response(text=html, status=status, content_type="text/html")

    def _caller(self, request: web.Request) -> Caller:
        return request[SESSION].caller(self.trainer_role)

    async def _decided(self, request: web.Request, reply: Reply, back: str) -> web.StreamResponse:
        """After a decision: JSON for the page's script, else back to the page (post/redirect/get)."""
        if _wants_json(request):
            closed = list(reply.decision.superseded) if reply.decision is not None else []
            return web.json_response({"ok": True, "text": with_prefix(reply.content, SLASH), "closed": closed})
        raise web.HTTPSeeOther(back)

    # ---------------------------------------------------------------- login
    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/jobs")

    async def login(self, request: web.Request) -> web.StreamResponse:
        try:
            sid, session = await self.core.dashboard.redeem(request.match_info["token"])
        except NotFound as exc:
            return self._page(request, "error.html", status=403, message=exc.user_message)
        # A page of ours, not a redirect: the link is opened from Discord (another site), and a
        # browser sends a SameSite=Strict cookie on no hop of a redirect chain that began
        # there; the page's own refresh to /jobs starts on this site, so the cookie goes along.
        response = self._page(request, "signed_in.html")
        response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", secure=self.secure_cookie, path="/",
                            max_age=int(self.session_hours * 3600))
        log.info("dashboard sign-in for user %s in guild %s", session.user_id, session.guild_platform_id)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        await self.core.dashboard.end_session(request.cookies.get(COOKIE, ""))
        request.pop(SESSION, None)
        response = self._page(request, "error.html", message="Signed out. A new link from `dashboard` signs you in again.")
        response.del_cookie(COOKIE, path="/")
        return response

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            raise NotFound("No such file.")
        body = resources.files("trainerbot.adapters.web").joinpath("static", name).read_bytes()
        return web.Response(body=body, content_type=STATIC[name])

    async def favicon(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)  # none: browsers ask anyway

    # ----------------------------------------------------------------- jobs
    async def jobs(self, request: web.Request) -> web.StreamResponse:
        return self._page(request, "jobs.html", jobs=await self.core.dashboard.jobs(self._caller(request)))

    async def job(self, request: web.Request) -> web.StreamResponse:
        job_id = _number(request.match_info["id"], "A job ID")
        job, events = await self.core.dashboard.job(self._caller(request), job_id)
        losses = [[e.step, e.loss] for e in events if e.kind == "progress" and e.step is not None and e.loss is not None]
        notes = [e for e in events if e.kind != "progress" and e.message][-10:]
        return self._page(request, "job.html", job=job, notes=notes, losses=json.dumps(losses),
                          last_event=events[-1].id if events else 0, finished=job.status in FINISHED)

    async def job_events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: each new progress event (step, loss, ETA) and each status change,
        until the job ends or the page goes."""
        caller = self._caller(request)
        job_id = _number(request.match_info["id"], "A job ID")
        after = _number(request.query.get("after", "0") or "0", "after")
        job, events = await self.core.dashboard.job(caller, job_id, after)  # 404 before the stream starts
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                             "X-Accel-Buffering": "no", **HEADERS})
        await stream.prepare(request)
        status, quiet = None, 0.0
        try:
            while True:
                for e in events:
                    data = {"id": e.id, "kind": e.kind, "step": e.step, "total": e.total_steps, "loss": e.loss,
                            "eta": e.eta_s, "message": e.message}
                    await stream.write(f"id: {e.id}\nevent: progress\ndata: {json.dumps(data)}\n\n".encode())
                    after, quiet = e.id, 0.0
                if job.status != status:
                    status = job.status
                    data = {"status": job.status, "progress": job.progress, "error": job.error}
                    await stream.write(f"event: status\ndata: {json.dumps(data)}\n\n".encode())
                if job.status in FINISHED:
                    await stream.write(b"event: end\ndata: {}\n\n")
                    break
                if quiet >= SSE_KEEPALIVE_S:
                    await stream.write(b": still here\n\n")
                    quiet = 0.0
                try:
                    await asyncio.wait_for(self._closing.wait(), SSE_POLL_S)
                    break
                except TimeoutError:
                    quiet += SSE_POLL_S
                job, events = await self.core.dashboard.job(caller, job_id, after)
        except ConnectionResetError:
            pass  # the page went away (aiohttp cancels the handler then, too: that propagates)
        return stream

    async def job_png(self, request: web.Request) -> web.StreamResponse:
        job_id = _number(request.match_info["id"], "A job ID")
        reply = await self.core.training.job(self._caller(request), job_id)
        if not reply.files:
            raise NotFound("That job has no loss curve yet.")
        return web.FileResponse(reply.files[0].path, headers={"Content-Type": "image/png"})

    async def job_cancel(self, request: web.Request) -> web.StreamResponse:
        job_id = _number(request.match_info["id"], "A job ID")
        reply = await self.core.training.cancel(self._caller(request), job_id)
        return await self._decided(request, reply, f"/jobs/{job_id}")

    # --------------------------------------------------------------- models
    async def models(self, request: web.Request) -> web.StreamResponse:
        caller = self._caller(request)
        compared = None
        a, b = request.query.get("a", "").strip(), request.query.get("b", "").strip()
        if a and b:
            compared = (await self.core.models.compare(caller, a, b)).content
        versions = await self.core.dashboard.versions(caller)
        persona = await self.core.persona.view(caller)
        return self._page(request, "models.html", versions=versions, compared=compared, a=a, b=b, persona=persona)

    async def model_use(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        version = form.get("version")
        if not isinstance(version, str) or not version.strip():
            raise BadInput("Say which version to use.")
        reply = await self.core.models.use(self._caller(request), version)
        return await self._decided(request, reply, "/models")

    # --------------------------------------------------------------- review
    async def review(self, request: web.Request) -> web.StreamResponse:
        caller = self._caller(request)
        return self._page(request, "review.html", pending=await self.core.dashboard.pending(caller),
                          flagged=await self.core.dashboard.flagged(caller))

    async def approve(self, request: web.Request) -> web.StreamResponse:
        cid = _number(request.match_info["id"], "A correction ID")
        form = await request.post()
        corrected = form.get("corrected")
        if corrected is not None and not isinstance(corrected, str):
            raise BadInput("The corrected answer must be text.")
        reply = await self.core.review.approve(self._caller(request), cid, corrected=corrected or None)
        return await self._decided(request, reply, "/review")

    async def reject(self, request: web.Request) -> web.StreamResponse:
        cid = _number(request.match_info["id"], "A correction ID")
        reply = await self.core.review.reject(self._caller(request), cid)
        return await self._decided(request, reply, "/review")

    async def approve_many(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        ids = [_number(v if isinstance(v, str) else None, "A correction ID") for v in form.getall("id", [])]
        if not ids or len(ids) > 200:
            raise BadInput("Select between 1 and 200 corrections to approve.")
        caller = self._caller(request)
        self.core.dashboard.require_decider(caller)
        texts = [(await self.core.review.approve(caller, cid)).content for cid in ids]
        return await self._decided(request, Reply.text("\n".join(texts)), "/review")

    # ------------------------------------------------------------- datasets
    async def datasets(self, request: web.Request) -> web.StreamResponse:
        caller = self._caller(request)
        dataset = request.query.get("dataset", "").strip() or None
        query = request.query.get("q", "")
        page = _number(request.query.get("page", "1") or "1", "The page")
        found = await self.core.dashboard.items(caller, dataset, query, page)
        archives = await self.core.dashboard.archives(caller) if request[SESSION].trainer else []
        return self._page(request, "datasets.html", datasets=await self.core.dashboard.datasets(caller), found=found,
                          dataset=dataset or "", query=query, archives=archives)

    async def item(self, request: web.Request) -> web.StreamResponse:
        item_id = _number(request.match_info["id"], "An example ID")
        caller = self._caller(request)
        reply = await self.core.datasets.item(caller, item_id)
        try:
            chain: RevisionChain | None = await self.core.revisions.chain(caller, item_id)
        except NotFound:  # a 👎 example or a 👍 vote: no answer, no revisions
            chain = None
        return self._page(request, "item.html", item_id=item_id, text=reply.content, chain=chain)

    async def item_revert(self, request: web.Request) -> web.StreamResponse:
        item_id = _number(request.match_info["id"], "An example ID")
        form = await request.post()
        raw, why = form.get("revision"), form.get("why")
        revision = _number(raw if isinstance(raw, str) else None, "A revision")
        reply = await self.core.revisions.revert(self._caller(request), item_id, revision,
                                                why if isinstance(why, str) else None)
        return await self._decided(request, reply, f"/items/{item_id}")

    async def item_edit(self, request: web.Request) -> web.StreamResponse:
        item_id = _number(request.match_info["id"], "An example ID")
        answer = (await request.post()).get("answer")
        if not isinstance(answer, str):
            raise BadInput("Write the new answer.")
        reply = await self.core.revisions.edit(self._caller(request), item_id, answer)
        return await self._decided(request, reply, f"/items/{item_id}")  # its revisions show the new one

    async def item_delete(self, request: web.Request) -> web.StreamResponse:
        item_id = _number(request.match_info["id"], "An example ID")
        reply = await self.core.datasets.delete_item(self._caller(request), item_id)
        return await self._decided(request, reply, "/datasets")

    async def archive_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        reply = await self.core.datasets.getfile(self._caller(request), f"archives/{name}")
        if not reply.files:
            raise NotFound("No such archive.")
        out = reply.files[0]
        return web.FileResponse(out.path, headers={"Content-Disposition": f'attachment; filename="{out.name}"',
                                                   "Content-Type": "application/octet-stream"})

    # ---------------------------------------------------------------- tests
    async def tests(self, request: web.Request) -> web.StreamResponse:
        return self._page(request, "tests.html", runs=await self.core.dashboard.test_runs(self._caller(request)))

    async def test_report(self, request: web.Request) -> web.StreamResponse:
        run_id = _number(request.match_info["id"], "A test ID")
        run, rows = await self.core.dashboard.test_report(self._caller(request), run_id)
        return self._page(request, "test.html", run=run, rows=rows)

    # --------------------------------------------------------- contributors
    async def contributors(self, request: web.Request) -> web.StreamResponse:
        listed, hidden = await self.core.contributors.rows(self._caller(request))
        return self._page(request, "contributors.html", listed=listed, hidden=hidden)

    # ---------------------------------------------------------------- audit
    async def audit(self, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("before", "")
        if raw and not (raw.isdigit() and len(raw) <= 12):
            raise BadInput("`before` is an entry's number.")
        before = int(raw) if raw else None
        entries = await self.core.audit.entries(self._caller(request), before)
        older = entries[-1].id if len(entries) == PAGE else None
        return self._page(request, "audit.html", entries=entries, older=older, before=before)

    # ------------------------------------------------------------- feedback
    async def feedback(self, request: web.Request) -> web.StreamResponse:
        return self._page(request, "feedback.html", feedback=await self.core.dashboard.feedback(self._caller(request)))


    # ----------------------------------------------------------------- help
    async def help(self, request: web.Request) -> web.StreamResponse:
        """The bot's commands, from the one command table (as ``help`` on Discord and in the console)."""
        groups = [(title, [c for c in COMMANDS if c.group == group and "discord" in c.where])
                  for group, title in GROUP_TITLES.items()]
        return self._page(request, "help.html", groups=groups, prefix=self.prefix)


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")
