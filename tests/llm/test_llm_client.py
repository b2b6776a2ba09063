"""LLMClient against a scripted local endpoint: replies, retries, failures, recording, replay."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI

from metaexp.llm import LLMClient, LLMError
from metaexp.llm.client import Prices

KEY_ENV = "METAEXP_TEST_LLM_KEY"
SECRET = "sk-test-secret-4f1c9e"
FAST_RETRY_S = 0.1  # Retry-After the fake sends, so the openai client's backoff stays short
ASK = [{"role": "user", "content": "propose a change"}]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


def make_client(server: FakeOpenAI, **overrides: Any) -> LLMClient:
    options: dict[str, Any] = {
        "model": "fake-model",
        "base_url": server.base_url,
        "api_key_env": KEY_ENV,
        "timeout_s": 1.0,
        "max_retries": 0,
    }
    return LLMClient(**{**options, **overrides})


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------ replies and usage


def test_reply_carries_content_usage_and_cost(server: FakeOpenAI) -> None:
    server.reply("use lr=3e-4", prompt_tokens=1000, completion_tokens=200, cached_tokens=400)
    prices = Prices(input_per_mtok=2.0, output_per_mtok=8.0, cached_input_per_mtok=0.5)
    reply = make_client(server, prices=prices, temperature=0.3).complete(ASK)

    assert reply.content == "use lr=3e-4"
    assert not reply.replayed
    usage = reply.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (1000, 200, 400)
    assert usage.cost_usd == pytest.approx((600 * 2.0 + 400 * 0.5 + 200 * 8.0) / 1e6)
    [sent] = server.requests
    assert (sent["model"], sent["messages"], sent["temperature"]) == ("fake-model", ASK, 0.3)


def test_cached_input_costs_as_input_without_its_own_price(server: FakeOpenAI) -> None:
    server.reply("ok", prompt_tokens=1000, completion_tokens=0, cached_tokens=400)
    reply = make_client(server, prices=Prices(input_per_mtok=2.0)).complete(ASK)
    assert reply.usage.cost_usd == pytest.approx(1000 * 2.0 / 1e6)


# ------------------------------------------------------------------ retries


def test_rate_limit_then_success_is_one_reply(server: FakeOpenAI) -> None:
    server.fail(429, retry_after=FAST_RETRY_S)
    server.reply("after the wait")
    reply = make_client(server, max_retries=2).complete(ASK)
    assert reply.content == "after the wait"
    assert len(server.requests) == 2


def test_server_errors_are_retried_up_to_max_retries(server: FakeOpenAI) -> None:
    server.fail(500, retry_after=FAST_RETRY_S)
    server.fail(500, retry_after=FAST_RETRY_S)
    server.reply("third time")
    assert make_client(server, max_retries=2).complete(ASK).content == "third time"
    assert len(server.requests) == 3


def test_persistent_server_error_is_an_llm_error(server: FakeOpenAI) -> None:
    server.fail(500, retry_after=FAST_RETRY_S)
    server.fail(500, retry_after=FAST_RETRY_S)
    with pytest.raises(LLMError, match="HTTP 500"):
        make_client(server, max_retries=1).complete(ASK)
    assert len(server.requests) == 2


def test_unauthorized_is_not_retried(server: FakeOpenAI) -> None:
    server.fail(401)
    with pytest.raises(LLMError, match="HTTP 401"):
        make_client(server, max_retries=2).complete(ASK)
    assert len(server.requests) == 1


def test_timeout_is_an_llm_error_naming_it(server: FakeOpenAI) -> None:
    server.slow(5.0)
    with pytest.raises(LLMError, match=r"no reply within 0\.5s"):
        make_client(server, timeout_s=0.5).complete(ASK)
    assert len(server.requests) == 1


def test_timeout_is_retried(server: FakeOpenAI) -> None:
    server.slow(5.0)
    server.reply("in time")
    assert make_client(server, timeout_s=0.5, max_retries=1).complete(ASK).content == "in time"
    assert len(server.requests) == 2


# ------------------------------------------------------------------ unusable bodies

JSON_WITHOUT_A_COMPLETION = {
    "no choices": b'{"id": "chatcmpl-x", "object": "chat.completion"}',
    "empty choices": b'{"choices": []}',
    "choice without message": b'{"choices": [{"index": 0, "finish_reason": "stop"}]}',
    "null content": b'{"choices": [{"message": {"role": "assistant", "content": null}}]}',
    "a list": b"[1, 2]",
    "null": b"null",
}


@pytest.mark.parametrize("body", JSON_WITHOUT_A_COMPLETION.values(), ids=JSON_WITHOUT_A_COMPLETION.keys())
def test_json_that_is_not_a_completion_is_an_llm_error(server: FakeOpenAI, body: bytes) -> None:
    server.raw(body)
    with pytest.raises(LLMError, match="no message content"):
        make_client(server).complete(ASK)


def test_html_body_is_an_llm_error(server: FakeOpenAI) -> None:
    server.raw(b"<html>502 Bad Gateway</html>", content_type="text/html")
    with pytest.raises(LLMError):
        make_client(server).complete(ASK)


@pytest.mark.parametrize("body", [b"", b"garbage{"], ids=["empty", "garbage"])
def test_body_that_is_not_json_is_an_llm_error(server: FakeOpenAI, body: bytes) -> None:
    server.raw(body)  # declared application/json, so openai parses it and fails with a ValueError
    with pytest.raises(LLMError, match="unusable response"):
        make_client(server).complete(ASK)


def test_choice_that_is_not_an_object_is_an_llm_error(server: FakeOpenAI) -> None:
    server.raw(b'{"choices": ["ok"]}')
    with pytest.raises(LLMError):
        make_client(server).complete(ASK)


def test_non_numeric_usage_is_an_llm_error_or_ignored(server: FakeOpenAI) -> None:
    body = {
        "choices": [{"message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": "n/a"},
    }
    server.raw(json.dumps(body).encode())
    with contextlib.suppress(LLMError):
        make_client(server).complete(ASK)


# ------------------------------------------------------------------ the API key


def test_missing_key_without_base_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    client = LLMClient(model="fake-model", base_url=None, api_key_env=KEY_ENV, max_retries=0)
    with pytest.raises(LLMError, match=KEY_ENV):
        client.complete(ASK)


def test_missing_key_with_a_local_base_url_still_asks(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    server.reply("no key needed")
    assert make_client(server).complete(ASK).content == "no key needed"


def test_key_is_sent_but_never_recorded(server: FakeOpenAI, tmp_path: Path) -> None:
    record = tmp_path / "llm.jsonl"
    server.reply("ok")
    server.fail(401)
    client = make_client(server, record_path=record)
    client.complete(ASK)
    with pytest.raises(LLMError):
        client.complete(ASK)
    assert [sent["_headers"]["authorization"] for sent in server.requests] == [f"Bearer {SECRET}"] * 2
    assert SECRET not in record.read_text()


# ------------------------------------------------------------------ recording


def test_record_has_one_line_per_call(server: FakeOpenAI, tmp_path: Path) -> None:
    record = tmp_path / "llm.jsonl"
    server.reply("first", prompt_tokens=30, completion_tokens=7, cached_tokens=5)
    server.fail(400)
    client = make_client(server, record_path=record, prices=Prices(input_per_mtok=1.0))
    client.complete(ASK, state_key="s1", purpose="propose")
    with pytest.raises(LLMError):
        client.complete(ASK, purpose="propose")

    ok, failed = read_lines(record)
    assert ok["request"] == {"model": "fake-model", "messages": ASK, "temperature": 0.7, "max_tokens": 4096}
    assert (ok["purpose"], ok["state_key"], ok["error"], ok["replayed"]) == ("propose", "s1", None, False)
    assert ok["response"]["content"] == "first"
    usage = ok["response"]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cached_tokens"]) == (30, 7, 5)
    assert usage["cost_usd"] == pytest.approx(30 / 1e6)
    assert failed["response"] is None
    assert "HTTP 400" in failed["error"]
    assert failed["request"] == ok["request"]


def test_a_huge_reply_or_prompt_is_recorded_as_its_head_size_and_hash(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    import hashlib

    from metaexp.llm.client import RECORD_HEAD, RECORD_LIMIT

    record = tmp_path / "llm.jsonl"
    huge = "y" * (4 * RECORD_LIMIT)
    server.reply(huge)
    server.reply("small")
    client = make_client(server, record_path=record)
    big_prompt = [{"role": "user", "content": "p" * (2 * RECORD_LIMIT)}]
    assert client.complete(big_prompt, state_key="s").content == huge  # the caller gets it whole
    client.complete(ASK, state_key="s")
    assert record.stat().st_size < 3 * RECORD_HEAD + 4096  # two lines, neither holds a huge text
    first, second = read_lines(record)
    assert first["response"]["truncated"] is True and first["response"]["chars"] == len(huge)
    assert first["response"]["content"] == huge[:RECORD_HEAD]
    assert first["response"]["sha256"] == hashlib.sha256(huge.encode()).hexdigest()
    assert first["request"]["messages"][0]["chars"] == 2 * RECORD_LIMIT
    assert second["response"] == {"content": "small", "usage": second["response"]["usage"]}
    # a replay by state skips the reply it no longer has, and answers with the next one
    replay = make_client(server, replay_path=record, replay_key="state")
    assert replay.complete(OTHER, state_key="s").content == "small"


# ------------------------------------------------------------------ replay


def record_session(
    server: FakeOpenAI, path: Path, calls: list[tuple[list[dict[str, str]], str, str]]
) -> None:
    """Ask live once per (messages, state_key, content), recording to `path`."""
    client = make_client(server, record_path=path)
    for messages, state_key, content in calls:
        server.reply(content, prompt_tokens=50, completion_tokens=5)
        client.complete(messages, state_key=state_key)
    server.requests.clear()


OTHER = [{"role": "user", "content": "something else"}]


def test_replay_by_request_answers_in_order_offline(server: FakeOpenAI, tmp_path: Path) -> None:
    recording = tmp_path / "llm.jsonl"
    record_session(server, recording, [(ASK, "a", "one"), (OTHER, "b", "other"), (ASK, "c", "two")])
    replayed = tmp_path / "replayed.jsonl"
    client = make_client(server, replay_path=recording, replay_key="request", record_path=replayed)

    first, second = client.complete(ASK), client.complete(ASK)
    assert (first.content, second.content) == ("one", "two")
    assert first.replayed and second.replayed
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (50, 5)
    assert client.complete(OTHER).content == "other"
    assert server.requests == []
    assert [line["replayed"] for line in read_lines(replayed)] == [True, True, True]

    with pytest.raises(LLMError, match="replay"):
        client.complete(ASK)  # its two recorded replies are used up
    assert server.requests == []


def test_replay_needs_no_key_and_no_endpoint(
    server: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording = tmp_path / "llm.jsonl"
    record_session(server, recording, [(ASK, "a", "one")])
    monkeypatch.delenv(KEY_ENV)
    client = LLMClient(model="fake-model", base_url=None, api_key_env=KEY_ENV, replay_path=recording)
    assert client.complete(ASK).content == "one"


def test_replay_of_an_unknown_request_is_an_llm_error(server: FakeOpenAI, tmp_path: Path) -> None:
    recording = tmp_path / "llm.jsonl"
    record_session(server, recording, [(ASK, "a", "one")])
    client = make_client(server, replay_path=recording)
    with pytest.raises(LLMError, match="replay"):
        client.complete(OTHER)
    with pytest.raises(LLMError, match="replay"):
        make_client(server, replay_path=recording, temperature=0.1).complete(ASK)  # temperature is in the key
    assert server.requests == []


def test_replay_miss_live_asks_the_endpoint(server: FakeOpenAI, tmp_path: Path) -> None:
    recording = tmp_path / "llm.jsonl"
    record_session(server, recording, [(ASK, "a", "one")])
    client = make_client(server, replay_path=recording, replay_miss="live")
    server.reply("fresh")
    assert client.complete(ASK).content == "one"
    reply = client.complete(OTHER)
    assert (reply.content, reply.replayed) == ("fresh", False)
    assert len(server.requests) == 1


def test_replay_by_state_ignores_the_messages(server: FakeOpenAI, tmp_path: Path) -> None:
    recording = tmp_path / "llm.jsonl"
    record_session(server, recording, [(ASK, "state-1", "for state 1"), (ASK, "state-2", "for state 2")])
    client = make_client(server, replay_path=recording, replay_key="state")

    assert client.complete(OTHER, state_key="state-2").content == "for state 2"
    assert (
        client.complete([{"role": "user", "content": "reworded"}], state_key="state-1").content
        == "for state 1"
    )
    with pytest.raises(LLMError, match="replay"):
        client.complete(ASK, state_key="state-3")
    assert server.requests == []


def test_replay_skips_recorded_failures(server: FakeOpenAI, tmp_path: Path) -> None:
    recording = tmp_path / "llm.jsonl"
    server.fail(500)
    server.reply("ok")
    live = make_client(server, record_path=recording)
    with pytest.raises(LLMError):
        live.complete(ASK)
    live.complete(ASK)
    assert make_client(server, replay_path=recording).complete(ASK).content == "ok"


def test_missing_recording_is_an_llm_error(server: FakeOpenAI, tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="not found"):
        make_client(server, replay_path=tmp_path / "absent.jsonl")


def test_truncated_recording_keeps_its_complete_lines(server: FakeOpenAI, tmp_path: Path) -> None:
    recording = tmp_path / "llm.jsonl"
    record_session(server, recording, [(ASK, "a", "one")])
    with recording.open("a") as fh:
        fh.write('{"key": "abc", "respo')  # a run killed mid-write
    assert make_client(server, replay_path=recording).complete(ASK).content == "one"
    recording.write_text('{"broken\n' + recording.read_text())
    with pytest.raises(LLMError, match=r"llm\.jsonl line 1 is not a JSON record"):
        make_client(server, replay_path=recording)


# ------------------------------------------------------------------ the fake itself


def test_fake_answers_500_when_nothing_is_scripted_and_uses_a_responder(server: FakeOpenAI) -> None:
    with pytest.raises(LLMError, match="no reply scripted"):
        make_client(server).complete(ASK)
    server.responder(lambda body: f"echo {body['messages'][-1]['content']}")
    assert make_client(server).complete(ASK).content == "echo propose a change"
    server.responder(lambda body: None)
    with pytest.raises(LLMError, match="HTTP 500"):
        make_client(server).complete(ASK)


def test_fake_stops_promptly_during_a_slow_reply() -> None:
    fake = FakeOpenAI().start()
    fake.slow(30.0)
    client = make_client(fake, timeout_s=10.0)
    failures: list[BaseException] = []

    def ask() -> None:
        try:
            client.complete(ASK)
        except BaseException as exc:
            failures.append(exc)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    while not fake.requests:
        time.sleep(0.01)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 2.0
    asker.join(timeout=5)
    assert [type(exc) for exc in failures] == [LLMError]  # the connection closed without an answer
