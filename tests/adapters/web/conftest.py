"""A real core on a real store with the dashboard served on 127.0.0.1 (port 0), and helpers
to sign in the way people do: a link from ``dashboard``, opened once."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import JSONL_FACTS, att
from trainerbot.adapters.web.server import COOKIE, Dashboard
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService

LINK = re.compile(r"https?://\S+/login/([A-Za-z0-9_-]+)")


@pytest.fixture
def web_settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", dashboard_port=0, user_rate_per_minute=10_000)  # type: ignore[call-arg]


@pytest.fixture
async def served(web_settings: Settings) -> AsyncIterator[tuple[CoreService, str]]:
    core = CoreService.open(web_settings)
    s = core.settings
    dashboard = Dashboard(core, host="127.0.0.1", port=0, trainer_role=s.trainer_role, prefix=s.prefix,
                          session_hours=s.dashboard_session_hours)
    port = await dashboard.start()
    try:
        yield core, f"http://127.0.0.1:{port}"
    finally:
        await dashboard.stop()
        await core.close()


async def link_for(core: CoreService, caller: Caller) -> str:
    """The login path of a fresh link, as the bot would hand it to ``caller``."""
    reply = await core.dashboard.link(caller)
    m = LINK.search(reply.content)
    assert m is not None, reply.content
    return f"/login/{m.group(1)}"


@dataclass
class Browser:
    """An HTTP client with a cookie jar, signed in through a login link."""

    http: aiohttp.ClientSession
    base: str
    csrf: str

    async def get(self, path: str, **kw: object) -> aiohttp.ClientResponse:
        return await self.http.get(self.base + path, allow_redirects=False, **kw)  # type: ignore[arg-type]

    async def post(self, path: str, data: dict[str, str] | list[tuple[str, str]] | None = None, *, csrf: bool = True,
                   json_reply: bool = False) -> aiohttp.ClientResponse:
        form = list(data.items()) if isinstance(data, dict) else list(data or [])
        if csrf:
            form.append(("csrf", self.csrf))
        headers = {"Accept": "application/json"} if json_reply else {}
        return await self.http.post(self.base + path, data=form, headers=headers, allow_redirects=False)


async def sign_in(core: CoreService, base: str, caller: Caller) -> Browser:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    response = await http.get(base + await link_for(core, caller), allow_redirects=False)
    assert response.status == 200 and '<meta http-equiv="refresh" content="0; url=/jobs">' in await response.text()
    assert COOKIE in response.cookies
    page = await (await http.get(base + "/jobs")).text()
    m = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert m is not None
    return Browser(http, base, m.group(1))


async def seed(core: CoreService, trainer: Caller, member: Caller, corrections: int = 3) -> list[int]:
    """A dataset, bot replies and ``corrections`` pending corrections by the member; their IDs."""
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    ids = []
    for i in range(corrections):
        await core.delivery.record_exchange(member, f"Question {i}?", f"Wrong {i}.", reply_message_id=f"m{i}")
        ids.append(int((await core.feedback.correct(member, f"m{i}", f"Right answer {i}.")).data["correction_id"]))  # type: ignore[call-overload]
    return ids
