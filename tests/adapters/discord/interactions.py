"""A harness for Discord interactions, which dpytest cannot send.

- ``FakeDiscord`` is Discord's REST API on 127.0.0.1 (aiohttp), as much of it as the bot
  uses: it answers with Discord's own payload shapes and records every call (the route,
  the JSON body — also out of a multipart upload's ``payload_json`` — and file names).
  ``discord.http.Route.BASE`` points the real client at it.
- ``Gateway`` builds ``INTERACTION_CREATE`` payloads shaped as Discord sends them
  (application commands, message context menus, autocomplete, button presses, modal
  submits) and feeds them into the real client's ``ConnectionState``, then waits for the
  callback the bot answers with.

Interaction callback types: 4 a message, 5 a deferred message ("thinking…"), 6 a deferred
update, 7 an updated message, 8 autocomplete choices, 9 a modal. Flag 64 is ephemeral.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import discord
from aiohttp import web

from trainerbot.errors import COMMAND

EPHEMERAL = 64
APP_ID = 700_000_000_000_000_001
BOT_ID = 700_000_000_000_000_002


@dataclass
class Call:
    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)


def user_payload(uid: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {"id": str(uid), "username": name, "global_name": name, "discriminator": "0", "avatar": None, "bot": bot,
            "public_flags": 0, "flags": 0}


def _json(data: Any, status: int = 200) -> web.Response:
    # Discord answers "application/json" with no charset, and discord.py checks for exactly that.
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


class FakeDiscord:
    """Discord's REST API for one bot: records calls, keeps the messages it was sent."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.unrendered: list[str] = []  # sent texts that still hold the core's command mark (a bug)
        self.messages: dict[int, dict[str, Any]] = {}
        self.interactions: dict[str, dict[str, Any]] = {}  # token → the payload it came with
        self.originals: dict[str, int] = {}  # interaction token → its response message
        self._ids = itertools.count(800_000_000_000_000_000)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/v10/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Every text the core wrote reached Discord with its commands as slash commands.
        assert not self.unrendered, f"sent with the core's command mark left in: {self.unrendered}"

    # ------------------------------------------------------------- recording
    async def _read(self, request: web.Request) -> tuple[dict[str, Any], list[str]]:
        if request.content_type.startswith("multipart/"):
            body: dict[str, Any] = {}
            files: list[str] = []
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                else:
                    files.append(part.filename or "")
                    await part.read()
            return body, files
        raw = await request.read()
        return (json.loads(raw) if raw else {}), []

    def callbacks(self, token: str) -> list[Call]:
        return [c for c in self.calls if c.method == "POST" and c.path.endswith(f"/{token}/callback")]

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> Call:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((c for c in self.calls if predicate(c)), None)
            if found is not None:
                return found
            await asyncio.sleep(0.01)
        raise AssertionError(f"no such call within {timeout} s; calls: {[(c.method, c.path) for c in self.calls]}")

    # ------------------------------------------------------------- messages
    def message(self, channel_id: int, body: dict[str, Any], *, author: dict[str, Any] | None = None,
                mid: int | None = None) -> dict[str, Any]:
        mid = mid or next(self._ids)
        msg = {"id": str(mid), "channel_id": str(channel_id), "author": author or user_payload(BOT_ID, "trainerbot", bot=True),
               "content": body.get("content", ""), "timestamp": "2026-11-26T12:00:00+00:00", "edited_timestamp": None,
               "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [],
               "embeds": body.get("embeds", []), "pinned": False, "type": 0, "components": body.get("components", []),
               "flags": body.get("flags", 0)}
        self.messages[mid] = msg
        return msg

    def _edit(self, mid: int, body: dict[str, Any]) -> dict[str, Any]:
        msg = self.messages[mid]
        for key in ("content", "embeds", "components"):
            if key in body:
                msg[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
        msg["edited_timestamp"] = "2026-11-26T12:00:01+00:00"
        return msg

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body, files = await self._read(request)
        if COMMAND in json.dumps(body, ensure_ascii=False):
            self.unrendered.append(json.dumps(body, ensure_ascii=False)[:300])
        path = "/" + request.match_info["tail"]
        self.calls.append(Call(request.method, path, body, files))
        parts = path.strip("/").split("/")
        method = request.method
        if path == "/users/@me" and method == "GET":
            return _json(user_payload(BOT_ID, "trainerbot", bot=True))
        if path == "/oauth2/applications/@me":
            return _json({"id": str(APP_ID), "name": "trainerbot", "description": "", "icon": None,
                                      "bot_public": True, "bot_require_code_grant": False, "verify_key": "0" * 64,
                                      "owner": user_payload(1, "owner"), "team": None, "flags": 0})
        if parts[0] == "interactions" and parts[-1] == "callback":
            return self._callback(parts[2], body)
        if parts[0] == "webhooks":
            token = parts[2]
            payload = self.interactions.get(token, {})
            channel_id = int(payload.get("channel_id", 0))
            if len(parts) == 3 and method == "POST":  # a follow-up message
                return _json(self.message(channel_id, body))
            target = self.originals.get(token) if parts[4] == "@original" else int(parts[4])
            if target is None or target not in self.messages:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            if method == "DELETE":
                del self.messages[target]
                return web.Response(status=204)
            if method == "PATCH":
                return _json(self._edit(target, body))
            return _json(self.messages[target])
        if parts[0] == "channels" and len(parts) >= 3 and parts[2] == "messages":
            channel_id = int(parts[1])
            if len(parts) == 3 and method == "POST":
                return _json(self.message(channel_id, body))
            mid = int(parts[3])
            if "reactions" in parts:
                return web.Response(status=204)
            if mid not in self.messages:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            if method == "PATCH":
                return _json(self._edit(mid, body))
            return _json(self.messages[mid])
        if path == "/users/@me/channels" and method == "POST":
            return _json({"id": str(next(self._ids)), "type": 1, "last_message_id": None,
                                      "recipients": [user_payload(int(body["recipient_id"]), "someone")]})
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    def _callback(self, token: str, body: dict[str, Any]) -> web.Response:
        payload = self.interactions.get(token, {})
        kind = body["type"]
        data = body.get("data") or {}
        interaction = {"id": payload.get("id", "0"), "type": payload.get("type", 2),
                       "response_message_loading": kind == 5,
                       "response_message_ephemeral": bool(int(data.get("flags", 0)) & EPHEMERAL)}
        resource: dict[str, Any] = {"type": kind}
        if kind in (4, 5):
            msg = self.message(int(payload.get("channel_id", 0)), data if kind == 4 else {"flags": data.get("flags", 0)})
            self.originals[token] = int(msg["id"])
            interaction["response_message_id"] = msg["id"]
            resource["message"] = msg
        elif kind == 7 and payload.get("message"):
            mid = int(payload["message"]["id"])
            self.messages.setdefault(mid, payload["message"])
            resource["message"] = self._edit(mid, data)
            self.originals[token] = mid
        return _json({"interaction": interaction, "resource": resource})


class Gateway:
    """One guild as the gateway describes it, and interactions in it, fed to a real client."""

    def __init__(self, fake: FakeDiscord, guild_id: int, *, name: str = "Guild A") -> None:
        self.fake = fake
        self.guild_id = guild_id
        self.name = name
        self.channel_id = guild_id + 10
        self.trainer_role = guild_id + 20
        self._ids = itertools.count(guild_id * 1000)
        self.users: dict[str, dict[str, Any]] = {}

    def add_user(self, name: str, uid: int, *, trainer: bool = False) -> dict[str, Any]:
        member = {"user": user_payload(uid, name), "roles": [str(self.trainer_role)] if trainer else [], "nick": None,
                  "joined_at": "2026-01-01T00:00:00+00:00", "deaf": False, "mute": False, "flags": 0, "pending": False,
                  "avatar": None}
        self.users[name] = member
        return member

    def guild_payload(self) -> dict[str, Any]:
        everyone = {
            "id": str(self.guild_id),
            "name": "@everyone",
            "permissions": str(discord.Permissions.general().value & ~discord.Permissions(manage_guild=True).value),
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        trainer = {**everyone, "id": str(self.trainer_role), "name": "trainer", "permissions": "0", "position": 1}
        return {
            "id": str(self.guild_id),
            "name": self.name,
            "owner_id": "1",
            "icon": None,
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [everyone, trainer],
            "member_count": len(self.users) + 1,
            "members": [
                *self.users.values(),
                {
                    "user": user_payload(BOT_ID, "trainerbot", bot=True),
                    "roles": [],
                    "joined_at": "2026-01-01T00:00:00+00:00",
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                },
            ],
            "channels": [
                {
                    "id": str(self.channel_id),
                    "type": 0,
                    "name": "general",
                    "position": 0,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "parent_id": None,
                    "guild_id": str(self.guild_id),
                }
            ],
            "threads": [],
            "voice_states": [],
            "presences": [],
            "large": False,
            "unavailable": False,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "system_channel_flags": 0,
        }

    def join(self, client: discord.Client) -> discord.Guild:
        """The guild in the client's cache, as after a GUILD_CREATE."""
        guild = client._connection._add_guild_from_data(self.guild_payload())  # type: ignore[attr-defined]
        return guild

    # ---------------------------------------------------------- payloads
    def _base(self, kind: int, user: str, data: dict[str, Any], message: dict[str, Any] | None = None) -> dict[str, Any]:
        iid = next(self._ids)
        token = f"tok-{iid}"
        member = dict(self.users[user])
        member["permissions"] = "0"
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(APP_ID),
            "type": kind,
            "data": data,
            "guild_id": str(self.guild_id),
            "guild": {"id": str(self.guild_id), "locale": "en-US", "features": []},
            "channel_id": str(self.channel_id),
            "channel": {
                "id": str(self.channel_id),
                "type": 0,
                "name": "general",
                "guild_id": str(self.guild_id),
                "permissions": str(discord.Permissions.all().value),
            },
            "member": member,
            "token": token,
            "version": 1,
            "locale": "en-US",
            "guild_locale": "en-US",
            "app_permissions": str(discord.Permissions.all().value),
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if message is not None:
            payload["message"] = message
        self.fake.interactions[token] = payload
        return payload

    def slash(
        self, user: str, name: str, options: list[dict[str, Any]] | None = None, *, resolved: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"id": str(next(self._ids)), "name": name, "type": 1, "options": options or []}
        if resolved:
            data["resolved"] = resolved
        return self._base(2, user, data)

    def message_menu(self, user: str, name: str, target: dict[str, Any]) -> dict[str, Any]:
        data = {
            "id": str(next(self._ids)),
            "name": name,
            "type": 3,
            "target_id": target["id"],
            "resolved": {"messages": {target["id"]: target}},
        }
        return self._base(2, user, data)

    def autocomplete(self, user: str, name: str, options: list[dict[str, Any]]) -> dict[str, Any]:
        return self._base(4, user, {"id": str(next(self._ids)), "name": name, "type": 1, "options": options})

    def button(self, user: str, custom_id: str, message: dict[str, Any]) -> dict[str, Any]:
        return self._base(3, user, {"custom_id": custom_id, "component_type": 2}, message=message)

    def select(self, user: str, custom_id: str, values: list[str], message: dict[str, Any]) -> dict[str, Any]:
        """A choice in a string select menu of ``message``."""
        return self._base(3, user, {"custom_id": custom_id, "component_type": 3, "values": values}, message=message)

    def react(self, client: discord.Client, user: str, message_id: int, emoji: str) -> None:
        """``user`` adds ``emoji`` to a message in the guild's channel, as the gateway tells it."""
        uid = self.users[user]["user"]["id"]
        client._connection.parse_message_reaction_add({  # type: ignore[attr-defined]
            "user_id": uid, "channel_id": str(self.channel_id), "message_id": str(message_id), "guild_id": str(self.guild_id),
            "emoji": {"id": None, "name": emoji}, "member": self.users[user], "type": 0, "burst": False})

    def dm_select(self, user: str, custom_id: str, values: list[str], message: dict[str, Any]) -> dict[str, Any]:
        """A choice in a select menu of ``message``, a message the bot sent ``user`` by DM."""
        payload = self._base(3, user, {"custom_id": custom_id, "component_type": 3, "values": values}, message=message)
        for key in ("guild_id", "guild", "member"):
            payload.pop(key)
        payload["user"] = self.users[user]["user"]
        payload["channel_id"] = message["channel_id"]
        payload["channel"] = {"id": message["channel_id"], "type": 1}
        payload["context"] = 1
        return payload

    def modal_submit(
        self, user: str, modal: dict[str, Any], values: dict[str, str], message: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The submit of a modal the bot opened (``modal``: the data of its type-9 callback)."""
        rows = []
        for row in modal["components"]:
            row_items = []
            for comp in row.get("components", [row.get("component")] if row.get("component") else []):
                row_items.append(
                    {"type": 4, "custom_id": comp["custom_id"], "value": values.get(comp["custom_id"], comp.get("value", ""))}
                )
            rows.append({"type": 1, "components": row_items})
        return self._base(5, user, {"custom_id": modal["custom_id"], "components": rows}, message=message)

    # ---------------------------------------------------------- sending
    async def send(
        self, client: discord.Client, payload: dict[str, Any], *, expect: int = 1, timeout: float = 20.0
    ) -> list[Call]:
        """Feed ``payload`` as the gateway would; return the first ``expect`` callbacks and follow-ups."""
        token = payload["token"]
        client._connection.parse_interaction_create(payload)  # type: ignore[attr-defined]
        await self.fake.wait_for(lambda c: c.path.endswith(f"/{token}/callback"), timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = [c for c in self.fake.calls if f"/{token}" in c.path]
            if len(calls) >= expect:
                await asyncio.sleep(0.05)  # let the handler finish what follows
                return [c for c in self.fake.calls if f"/{token}" in c.path]
            await asyncio.sleep(0.01)
        raise AssertionError(f"fewer than {expect} calls for {token}: {[(c.method, c.path) for c in self.fake.calls]}")
