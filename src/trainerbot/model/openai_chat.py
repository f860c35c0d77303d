"""The ``openai`` backend: chat through any OpenAI-compatible server (OpenAI, or a local
Ollama, vLLM or llama.cpp server) with the official ``openai`` SDK.

``RemoteRuntime`` is this backend's runtime (``runtime.Runtime``): chat completions with the
conversation the core builds (the server's persona and the taught facts in the system turn,
the bounded history with corrected replies in place), whole or streamed. Timeouts and retries with
backoff are the SDK's (``max_retries``; it honours ``Retry-After``). Every failure becomes
a plain ``TrainerBotError``; the API key is never part of a message or a log line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from trainerbot.config import OpenAISettings
from trainerbot.errors import BadInput, Busy, NotAvailable, TrainerBotError

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam


def client_options(openai: OpenAISettings) -> dict[str, Any]:
    key = openai.openai_api_key.get_secret_value() if openai.openai_api_key else "not-needed"  # local servers take any
    return {"api_key": key, "base_url": openai.openai_base_url, "timeout": openai.openai_timeout_s,
            "max_retries": openai.openai_max_retries}


def provider_reason(exc: Exception) -> str:
    """The server's own words for a refusal, when it gave any (never the request)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:300]
    message = getattr(exc, "message", "") or ""
    return str(message)[:300]


def plain_error(exc: Exception, what: str = "The chat server") -> TrainerBotError:
    import openai

    if isinstance(exc, openai.AuthenticationError):
        return NotAvailable(f"{what} refused the API key (HTTP 401); a trainer should check `OPENAI_API_KEY`.")
    if isinstance(exc, openai.PermissionDeniedError):
        return NotAvailable(f"{what} does not allow that (HTTP 403): {provider_reason(exc)}")
    if isinstance(exc, openai.RateLimitError):
        retry = exc.response.headers.get("retry-after") if exc.response is not None else None
        try:
            after = float(retry) if retry else None
        except ValueError:
            after = None
        wait = f" in {after:.0f} s" if after else " in a minute"
        return Busy(f"{what} is rate-limiting us (HTTP 429); try again{wait}.", retry_after=after)
    if isinstance(exc, openai.NotFoundError):
        return NotAvailable(f"{what} does not know that (HTTP 404): {provider_reason(exc)}")
    if isinstance(exc, openai.BadRequestError):
        return BadInput(f"{what} refused the request (HTTP 400): {provider_reason(exc)}")
    if isinstance(exc, openai.APITimeoutError):
        return NotAvailable(f"{what} did not answer in time; try again later.")
    if isinstance(exc, openai.APIConnectionError):
        return NotAvailable(f"Could not reach {what.lower().removeprefix('the ')} (is the base URL right and the server up?).")
    if isinstance(exc, openai.APIStatusError):
        return NotAvailable(f"{what} failed (HTTP {exc.status_code}) even after retries; try again later.")
    return NotAvailable(f"{what} failed: {type(exc).__name__}.")


def with_system(openai: OpenAISettings, conversation: list[dict[str, str]]) -> list[ChatCompletionMessageParam]:
    """The conversation with the configured system instruction in front, unless it brings its
    own (chat sends the server's persona with the taught facts)."""
    own = bool(conversation) and conversation[0]["role"] == "system"
    messages = ([{"role": "system", "content": openai.openai_system}] if openai.openai_system and not own else [])
    messages += conversation
    # Our turns are {"role": "system" | "user" | "assistant", "content": str}: exactly those message types.
    return cast("list[ChatCompletionMessageParam]", messages)


class RemoteRuntime:
    """An OpenAI-compatible server as a runtime (``runtime.Runtime``): replies, streamed or
    whole, through the SDK's synchronous client (the core calls from a worker thread). There
    is no loss to read from a chat API, so ``answer_loss`` is None. One client per runtime,
    its connections pooled; ``close`` ends them."""

    takes_system = True
    source = "remote"
    takes_names = True

    def __init__(self, openai: OpenAISettings, model: str, *, slots: int) -> None:
        from openai import OpenAI

        self.openai, self.model = openai, model
        self.engine = f"openai:{model}"
        self.slots = slots  # replies asked at once (the chat slots); the server queues the rest itself
        self.client = OpenAI(**client_options(openai))

    @property
    def label(self) -> str:
        return self.engine

    def stream(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> Iterator[str]:
        """The reply so far, after each piece the server sends (the last value is the whole reply)."""
        messages = with_system(self.openai, conversation)
        try:
            chunks = self.client.chat.completions.create(model=self.model, messages=messages, max_tokens=max_new_tokens,
                                                         stream=True)
            text = ""
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
                    yield text.strip()
        except TrainerBotError:
            raise
        except Exception as exc:
            raise plain_error(exc) from None

    def reply(self, conversation: list[dict[str, str]], *, max_new_tokens: int = 128) -> str:
        messages = with_system(self.openai, conversation)
        try:
            response = self.client.chat.completions.create(model=self.model, messages=messages, max_tokens=max_new_tokens)
        except Exception as exc:
            raise plain_error(exc) from None
        return (response.choices[0].message.content or "").strip() if response.choices else ""

    def answer_loss(self, conversation: list[dict[str, str]], answer: str) -> float | None:
        return None

    def close(self) -> None:
        self.client.close()
