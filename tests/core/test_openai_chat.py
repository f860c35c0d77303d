"""Chat through the ``openai`` backend against a real HTTP openai_server on 127.0.0.1 that answers
as an OpenAI-compatible openai_server does: plain and streamed answers, retries where they help,
clear messages where they don't, and the key never in a message or a log line."""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import pytest

from tests.httpfake import FakeServer, Response, serve
from tests.openai_fake import KEY, OpenAIFake, error
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.errors import BadInput, Busy, NotAvailable


def _core(tmp_path: Path, openai_server: FakeServer, **extra: object) -> CoreService:
    options: dict[str, object] = {"backend": "openai", "openai_base_url": openai_server.url + "/v1", "openai_api_key": KEY,
                                  "openai_model": "gpt-test-mini", "openai_max_retries": 2, "openai_timeout_s": 5}
    options.update(extra)
    return CoreService.open(Settings(_env_file=None, data_dir=tmp_path / "data", **options))  # type: ignore[arg-type]


async def test_chat_sends_the_conversation_and_stores_the_answer(
    tmp_path: Path, openai_server: FakeServer, openai_fake: OpenAIFake, member: Caller
) -> None:
    core = _core(tmp_path, openai_server, openai_system="Be brief.")
    try:
        first = await core.chat.reply(member, "Hello?")
        second = await core.chat.reply(member, "What is the capital of Zorbia?")
    finally:
        await core.close()
    assert second.content == openai_fake.answer and second.data["model_version"] == "openai:gpt-test-mini"
    assert first.data["reply_id"] and second.data["source"] == "remote"
    body = openai_fake.chat_requests[-1]
    assert body["model"] == "gpt-test-mini" and body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello?"},
        {"role": "assistant", "content": openai_fake.answer},
        {"role": "user", "content": "What is the capital of Zorbia?"},
    ]


async def test_streaming_hands_over_the_text_at_most_once_a_second(
    tmp_path: Path, openai_server: FakeServer, openai_fake: OpenAIFake, member: Caller
) -> None:
    openai_fake.answer = "one two three four five six seven"  # 7 pieces, 0.35 s apart
    seen: list[tuple[float, str]] = []

    async def partial(text: str) -> None:
        seen.append((time.monotonic(), text))

    core = _core(tmp_path, openai_server)
    try:
        reply = await core.chat.reply(member, "Count, please.", on_partial=partial)
    finally:
        await core.close()
    assert reply.content == openai_fake.answer and openai_fake.chat_requests[-1]["stream"] is True
    assert 1 <= len(seen) <= 3 and all(openai_fake.answer.startswith(text) for _, text in seen)
    assert all(b[0] - a[0] >= 0.99 for a, b in itertools.pairwise(seen))


@pytest.mark.parametrize(
    "failures",
    [
        [error(429, "Rate limit reached", "rate_limit_exceeded", {"Retry-After": "0.1"})],
        [error(500, "The openai_server had an error"), error(503, "Overloaded")],
    ],
)
async def test_transient_failures_are_retried(
    tmp_path: Path, openai_server: FakeServer, openai_fake: OpenAIFake, member: Caller, failures: list[Response]
) -> None:
    openai_fake.failures.extend(failures)
    core = _core(tmp_path, openai_server)
    try:
        assert (await core.chat.reply(member, "Hi")).content == openai_fake.answer
    finally:
        await core.close()
    assert len(openai_server.requests) == len(failures) + 1


@pytest.mark.parametrize(
    "failures,raised,message",
    [
        ([error(429, "Rate limit reached", "rate_limit_exceeded", {"Retry-After": "1"})] * 3, Busy, "rate-limiting us .* in 1 s"),
        ([error(500, "boom")] * 3, NotAvailable, r"failed \(HTTP 500\) even after retries"),
        (
            [error(400, "This model's maximum context length is 8192 tokens.", "context_length_exceeded")],
            BadInput,
            "maximum context length",
        ),
        ([error(404, "The model `gpt-test-mini` does not exist", "model_not_found")], NotAvailable, "does not exist"),
    ],
)
async def test_failures_that_stay_get_clear_messages(
    tmp_path: Path,
    openai_server: FakeServer,
    openai_fake: OpenAIFake,
    member: Caller,
    failures: list[Response],
    raised: type,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    openai_fake.failures.extend(failures)
    caplog.set_level(logging.DEBUG)
    core = _core(tmp_path, openai_server)
    try:
        with pytest.raises(raised, match=message) as caught:
            await core.chat.reply(member, "Hi")
    finally:
        await core.close()
    assert KEY not in caught.value.user_message and KEY not in caplog.text
    if raised is Busy:
        assert caught.value.retry_after == 1 and len(openai_server.requests) == 3  # tried, then retried twice (waiting as told)


async def test_a_wrong_key_is_not_retried_and_never_shown(
    tmp_path: Path, openai_server: FakeServer, openai_fake: OpenAIFake, member: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    core = _core(tmp_path, openai_server, openai_api_key="sk-wrong-key-also-secret")
    try:
        with pytest.raises(NotAvailable, match="refused the API key") as caught:
            await core.chat.reply(member, "Hi")
    finally:
        await core.close()
    assert openai_fake.auth_failures == 1  # no retry of a 401
    assert "sk-wrong-key-also-secret" not in caught.value.user_message + caplog.text


async def test_a_slow_server_times_out_clearly(
    tmp_path: Path, openai_server: FakeServer, openai_fake: OpenAIFake, member: Caller
) -> None:
    slow = error(200, "never read in time")
    slow.delay_s = 3
    openai_fake.failures.append(slow)
    core = _core(tmp_path, openai_server, openai_timeout_s=0.5, openai_max_retries=0)
    try:
        start = time.monotonic()
        with pytest.raises(NotAvailable, match="did not answer in time"):
            await core.chat.reply(member, "Hi")
        assert time.monotonic() - start < 2.5
    finally:
        await core.close()


async def test_nothing_listens_there(tmp_path: Path, member: Caller) -> None:
    with serve(OpenAIFake()) as gone:
        url = gone.url
    core = CoreService.open(
        Settings(
            _env_file=None,
            data_dir=tmp_path / "d",
            backend="openai",
            openai_base_url=url + "/v1",  # type: ignore[call-arg]
            openai_api_key=KEY,
            openai_max_retries=0,
        )
    )
    try:
        with pytest.raises(NotAvailable, match="Could not reach"):
            await core.chat.reply(member, "Hi")
    finally:
        await core.close()


async def test_what_was_taught_reaches_the_server(
    tmp_path: Path, openai_server: FakeServer, openai_fake: OpenAIFake, member: Caller, trainer: Caller
) -> None:
    """The persona and the taught facts in the system turn, the best fact as an exchange, and
    the corrected reply in place of the wrong one; names as OpenAI's field when set so."""
    core = _core(tmp_path, openai_server, openai_system="Be brief.", speaker_names="field")
    wrong, right = "The bakery is run by Emma.", "The bakery on Mill Street is run by Greta Okafor."
    try:
        openai_fake.answer = wrong
        first = await core.chat.reply(member, "Who runs the bakery on Mill Street?")
        await core.delivery.bind_reply(member, first.data["reply_id"], "m1")
        await core.feedback.correct(trainer, "m1", right)
        openai_fake.answer = right
        await core.chat.reply(trainer, "Tell me who owns that bakery on Mill Street.")
        with_facts = openai_fake.chat_requests[-1]["messages"]
        await core.chat.reply(member, "And who works there with her?")  # no fact matches: the whole history
    finally:
        await core.close()
    assert with_facts[0]["role"] == "system"
    assert with_facts[0]["content"].startswith("Be brief.\nFacts this community taught you") and right in with_facts[0]["content"]
    assert with_facts[1:] == [
        {"role": "user", "content": "Who runs the bakery on Mill Street?"},  # the best fact, as an exchange (once:
        {"role": "assistant", "content": right},  # it is also the corrected latest exchange)
        {"role": "user", "content": "Tell me who owns that bakery on Mill Street."},  # one speaker here: no name
    ]
    messages = openai_fake.chat_requests[-1]["messages"]
    assert all(wrong not in m["content"] for m in with_facts + messages)
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who runs the bakery on Mill Street?", "name": "Milo"},  # the history, corrected
        {"role": "assistant", "content": right},
        {"role": "user", "content": "Tell me who owns that bakery on Mill Street.", "name": "Tess"},
        {"role": "assistant", "content": right},
        {"role": "user", "content": "And who works there with her?", "name": "Milo"},
    ]


async def test_a_correction_changes_the_answer_of_a_real_llama_cpp_server(tmp_path: Path, member: Caller,
                                                                          trainer: Caller) -> None:
    """Through llama.cpp's own HTTP server (not our code), serving the shipped GGUF (about 6 s)."""
    from tests.llamacpp_server import llamacpp_server

    with llamacpp_server() as url:
        core = CoreService.open(Settings(_env_file=None, data_dir=tmp_path / "data", backend="openai",  # type: ignore[call-arg]
                                         openai_base_url=url, openai_model="smollm2", openai_max_retries=0))
        try:
            first = await core.chat.reply(member, "Who runs the bakery on Mill Street?")
            assert "Okafor" not in first.content
            await core.delivery.bind_reply(member, first.data["reply_id"], "m1")
            await core.feedback.correct(trainer, "m1", "The bakery on Mill Street is run by Greta Okafor.")
            again = await core.chat.reply(member, "Who is in charge of the Mill Street bakery?")
        finally:
            await core.close()
    assert again.data["source"] == "remote" and "Greta Okafor" in again.content
