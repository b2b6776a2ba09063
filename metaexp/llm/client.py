"""One chat-completions client: the `openai` package for transport (its own retries and
backoff for 429, 5xx and timeouts), prices for cost, and a recording of every exchange.

A recording (`llm.jsonl`) can answer later requests instead of the network:
`replay_key: request` matches the exact request (model, messages, temperature:
the key was made of these before max_tokens was sent, and shipped recordings
keep matching) and reproduces a run; `replay_key: state` matches a caller-given key (the
operator uses the target files, the style and how often that state was
asked), which lets a run whose prompts differ reuse recorded proposals. The
API key is read from the named variable when the first live request is made
and is never written anywhere.

Every request carries `max_tokens` (unless it is None), so a small local model cannot ramble up to
its context and the client's timeout. An endpoint that refuses it for `max_completion_tokens`
(OpenAI's reasoning models: HTTP 400, "Unsupported parameter") gets the same limit under that name,
from then on.

The recording is bounded: a reply or a message longer than RECORD_LIMIT characters is kept as its
first RECORD_HEAD characters, its size and its sha256 (`"truncated": true`); a truncated reply is
never replayed (its text is gone), a truncated request still matches by its key.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metaexp.errors import MetaexpError

RECORD_LIMIT = 256 * 1024  # characters of one reply or message kept in llm.jsonl
RECORD_HEAD = 4096  # what is kept of a longer one


class LLMError(MetaexpError):
    """No usable reply: the endpoint failed after the client's retries, or a replay miss."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values(), strict=True)))


@dataclass(frozen=True)
class Reply:
    content: str
    usage: Usage
    replayed: bool = False


@dataclass(frozen=True)
class Prices:
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cached_input_per_mtok: float | None = None  # None: cached input costs as much as input

    def cost(self, prompt: int, completion: int, cached: int) -> float:
        cached_price = self.cached_input_per_mtok
        if cached_price is None:
            cached_price = self.input_per_mtok
        return (
            (prompt - cached) * self.input_per_mtok
            + cached * cached_price
            + completion * self.output_per_mtok
        ) / 1e6


def request_key(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


class LLMClient:
    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.7,
        max_tokens: int | None = 4096,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        prices: Prices | None = None,
        record_path: Path | None = None,
        replay_path: Path | None = None,
        replay_key: str = "request",
        replay_miss: str = "error",
    ) -> None:
        self.model, self.base_url, self.api_key_env = model, base_url, api_key_env
        self.temperature, self.timeout_s, self.max_retries = temperature, timeout_s, max_retries
        self.max_tokens = max_tokens
        self._limit_name = "max_tokens"  # max_completion_tokens once the endpoint asks for that
        self.prices = prices or Prices()
        self.record_path = record_path
        self.replay_key, self.replay_miss = replay_key, replay_miss
        self._replay = _Recording(replay_path, replay_key) if replay_path else None
        self._client: Any = None

    def complete(
        self, messages: list[dict[str, str]], *, state_key: str | None = None, purpose: str = ""
    ) -> Reply:
        """One chat completion. Raises LLMError when no reply can be had."""
        request = {"model": self.model, "messages": messages, "temperature": self.temperature}
        key = request_key(request)  # over these three only: recordings made before max_tokens still match
        if self.max_tokens is not None:
            request[self._limit_name] = self.max_tokens
        if self._replay is not None:
            found = self._replay.take(key if self.replay_key == "request" else (state_key or key))
            if found is not None:
                reply = Reply(found["content"], Usage(**found["usage"]), replayed=True)
                self._record(request, key, state_key, purpose, reply, None)
                return reply
            if self.replay_miss != "live":
                what = "request" if self.replay_key == "request" else f"state {state_key}"
                raise LLMError(f"replay: no recorded reply for this {what} (replay_miss: live would ask)")
        try:
            reply = self._ask(request)
        except LLMError as exc:
            self._record(request, key, state_key, purpose, None, str(exc))
            raise
        self._record(request, key, state_key, purpose, reply, None)
        return reply

    def _ask(self, request: dict[str, Any]) -> Reply:
        """The live reply; a request whose `max_tokens` the endpoint refuses is sent once more with
        `max_completion_tokens` (and so is every later one). `request` names the limit that was sent."""
        try:
            return self._live(request)
        except _RenameLimit:
            self._limit_name = "max_completion_tokens"
            request["max_completion_tokens"] = request.pop("max_tokens")
            return self._live(request)

    def _live(self, request: dict[str, Any]) -> Reply:
        import openai

        client = self._connect()
        try:
            response = client.chat.completions.create(**request)
        except openai.BadRequestError as exc:
            if "max_tokens" in request and "max_completion_tokens" in str(exc.message):
                raise _RenameLimit from None
            raise LLMError(f"{self.model}: HTTP 400 from the endpoint: {_short(exc.message)}") from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            message = _short(exc.message)
            raise LLMError(f"{self.model}: HTTP {status} from the endpoint: {message}") from None
        except openai.APITimeoutError:
            raise LLMError(f"{self.model}: no reply within {self.timeout_s:g}s (after retries)") from None
        except openai.APIConnectionError as exc:
            raise LLMError(f"{self.model}: cannot reach {self.base_url or 'the endpoint'}: {exc}") from None
        except (openai.OpenAIError, ValueError) as exc:  # a body that is not JSON, or not a completion
            raise LLMError(f"{self.model}: unusable response: {_short(str(exc))}") from None
        try:
            choices = getattr(response, "choices", None) or []
            content = choices[0].message.content if choices and choices[0].message else None
            usage = _usage(response, self.prices)
        except (AttributeError, TypeError, ValueError) as exc:  # a body shaped unlike a completion
            raise LLMError(f"{self.model}: unusable response: {_short(str(exc))}") from None
        if not isinstance(content, str):
            raise LLMError(f"{self.model}: the response has no message content")
        return Reply(content, usage)

    def _connect(self) -> Any:
        if self._client is None:
            from openai import OpenAI

            key = os.environ.get(self.api_key_env)
            if not key and self.base_url is None:
                raise LLMError(f"operator.api_key_env: the variable {self.api_key_env} is not set")
            self._client = OpenAI(
                base_url=self.base_url,
                api_key=key or "not-needed",
                timeout=self.timeout_s,
                max_retries=self.max_retries,
            )
        return self._client

    def _record(
        self,
        request: dict[str, Any],
        key: str,
        state_key: str | None,
        purpose: str,
        reply: Reply | None,
        error: str | None,
    ) -> None:
        if self.record_path is None:
            return
        line = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "purpose": purpose,
            "key": key,
            "state_key": state_key,
            "request": {**request, "messages": [_bounded_message(m) for m in request["messages"]]},
            "response": None if reply is None else {**_bounded(reply.content), "usage": asdict(reply.usage)},
            "replayed": bool(reply and reply.replayed),
            "error": error,
        }
        with self.record_path.open("a") as fh:
            fh.write(json.dumps(line) + "\n")


class _RenameLimit(Exception):
    """The endpoint wants the token limit as max_completion_tokens."""


class _Recording:
    """Recorded replies by key, each handed out once, in recorded order."""

    def __init__(self, path: Path, replay_key: str) -> None:
        if not path.exists():
            raise LLMError(f"operator.replay: recording {path} not found")
        self.replies: dict[str, list[dict[str, Any]]] = defaultdict(list)
        text = path.read_text()
        lines = text.splitlines()
        if lines and not text.endswith("\n"):
            lines.pop()  # a last line cut short by a kill: never completed, never used
        for number, raw in enumerate(lines, 1):
            try:
                line = json.loads(raw)
            except ValueError:
                raise LLMError(f"operator.replay: {path} line {number} is not a JSON record") from None
            if line.get("response") is None or line["response"].get("truncated"):
                continue  # no reply, or one too long to have been kept
            key = line["key"] if replay_key == "request" else line.get("state_key") or line["key"]
            self.replies[key].append(line["response"])

    def take(self, key: str) -> dict[str, Any] | None:
        queue = self.replies.get(key)
        return queue.pop(0) if queue else None


def _usage(response: Any, prices: Prices) -> Usage:
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    details = getattr(usage, "prompt_tokens_details", None)
    cached = int(getattr(details, "cached_tokens", 0) or 0)
    return Usage(prompt, completion, cached, round(prices.cost(prompt, completion, cached), 8), calls=1)


def _bounded(content: str) -> dict[str, Any]:
    """{"content": text}, or for a text over RECORD_LIMIT its head, size and hash."""
    if len(content) <= RECORD_LIMIT:
        return {"content": content}
    digest = hashlib.sha256(content.encode(errors="surrogatepass")).hexdigest()
    return {"content": content[:RECORD_HEAD], "truncated": True, "chars": len(content), "sha256": digest}


def _bounded_message(message: dict[str, str]) -> dict[str, Any]:
    content = message.get("content")
    return {**message, **_bounded(content)} if isinstance(content, str) else dict(message)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."
