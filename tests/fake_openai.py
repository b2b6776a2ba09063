"""A scripted OpenAI-compatible chat-completions server for tests, on 127.0.0.1 only.

Tests queue what the next requests get, one item per request, in order:

    with FakeOpenAI() as server:
        server.fail(429, retry_after=0.1)
        server.reply("hello", prompt_tokens=10)
        client = OpenAI(base_url=server.base_url, api_key="k")
        ...
        assert len(server.requests) == 2

When the queue is empty, a `responder(fn)` answers with `fn(request_body)`; without one the server
answers HTTP 500 with an error body saying that nothing was scripted. Replies and errors have the
shapes the real API uses. Standard library only (http.server + threading); quiet; `stop()` returns
promptly even while a `slow` reply is waiting.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Responder = Callable[[dict[str, Any]], str | None]

ERROR_TYPES = {  # status -> (type, code), as the real API names them
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class _Scripted:
    """One queued answer: an HTTP status, a body, extra headers, and a delay before sending (seconds)."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    content: str | None = None  # a completion's text: the body is built when it is sent
    usage: dict[str, Any] = field(default_factory=dict)


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.base_url = ""
        self._queue: deque[_Scripted] = deque()
        self._responder: Responder | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeOpenAI:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._server = server
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes slow replies
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- scripting

    def reply(
        self, content: str, *, prompt_tokens: int = 100, completion_tokens: int = 20, cached_tokens: int = 0
    ) -> None:
        """Queue a normal completion with this content and usage."""
        self._push(_completion_item(content, prompt_tokens, completion_tokens, cached_tokens))

    def fail(self, status: int, *, body: str | None = None, retry_after: float | None = None) -> None:
        """Queue an HTTP error; `body` replaces the default OpenAI error JSON verbatim."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        if body is None:
            data = _error_body(status, f"fake error: HTTP {status} as scripted")
            self._push(_Scripted(status, data, headers=headers))
        else:
            content_type = "application/json" if _is_json(body) else "text/plain"
            self._push(_Scripted(status, body.encode(), content_type, headers))

    def slow(self, seconds: float, content: str = "late") -> None:
        """Queue a completion sent only after `seconds` (to outlast a client's timeout)."""
        self._push(_completion_item(content, 100, 20, 0, delay_s=seconds))

    def raw(self, body: bytes, status: int = 200, content_type: str = "application/json") -> None:
        """Queue an arbitrary body: empty, garbage, JSON that is not a completion."""
        self._push(_Scripted(status, body, content_type))

    def responder(self, fn: Responder) -> None:
        """Answer with fn(request_body) once the queue is empty; fn returning None answers HTTP 500."""
        with self._lock:
            self._responder = fn

    def _push(self, item: _Scripted) -> None:
        with self._lock:
            self._queue.append(item)

    # ---------------------------------------------------------------- serving

    def _answer(self, body: dict[str, Any]) -> _Scripted:
        """The scripted answer to one chat-completions request (records the request first)."""
        with self._lock:
            self.requests.append(body)
            item = self._queue.popleft() if self._queue else None
            responder = self._responder
        if item is None and responder is not None:
            content = responder(body)
            if content is None:
                return _Scripted(500, _error_body(500, "fake: the responder returned None", "server_error"))
            item = _completion_item(content, 100, 20, 0)
        if item is None:
            message = "fake: no reply scripted for this request (queue empty, no responder)"
            return _Scripted(500, _error_body(500, message, "server_error"))
        if item.content is None:
            return item
        completion = _completion(
            f"chatcmpl-fake-{next(self._ids)}", str(body.get("model", "fake-model")), item.content, item.usage
        )
        return _Scripted(item.status, completion, delay_s=item.delay_s)


# -------------------------------------------------------------------- bodies


def _completion_item(
    content: str, prompt: int, completion: int, cached: int, delay_s: float = 0.0
) -> _Scripted:
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    return _Scripted(200, b"", delay_s=delay_s, content=content, usage=usage)


def _completion(completion_id: str, model: str, content: str, usage: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }
    ).encode()


def _error_body(status: int, message: str, error_type: str | None = None) -> bytes:
    fallback = ("server_error" if status >= 500 else "invalid_request_error", None)
    default_type, code = ERROR_TYPES.get(status, fallback)
    error = {"message": message, "type": error_type or default_type, "param": None, "code": code}
    return json.dumps({"error": error}).encode()


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# -------------------------------------------------------------------- HTTP


def _handler_for(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length)
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(_Scripted(404, _error_body(404, f"fake: no route POST {self.path}")))
                return
            try:
                body = json.loads(data) if data else {}
            except ValueError:
                body = {"_raw": data.decode(errors="replace")}
            if not isinstance(body, dict):
                body = {"_raw": body}
            body["_headers"] = {name.lower(): value for name, value in self.headers.items()}
            item = fake._answer(body)
            if item.delay_s and fake._stopping.wait(item.delay_s):
                self.close_connection = True  # stopped while waiting: answer nothing
                return
            self._send(item)

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/models":
                self._send(_Scripted(404, _error_body(404, f"fake: no route GET {self.path}")))
                return
            model = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake-openai"}
            self._send(_Scripted(200, json.dumps({"object": "list", "data": [model]}).encode()))

        def _send(self, item: _Scripted) -> None:
            try:
                self.send_response(item.status)
                self.send_header("Content-Type", item.content_type)
                self.send_header("Content-Length", str(len(item.body)))
                for name, value in item.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(item.body)
            except OSError:  # the client gave up (its timeout) and closed the connection
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    return Handler
