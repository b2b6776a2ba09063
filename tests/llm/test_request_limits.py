"""operator.max_tokens and temperature reach every chat-completions request, over real HTTP to the
scripted server; the replay key stays what recordings were made with."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Project
from fake_openai import FakeOpenAI

from metaexp.errors import SpecError
from metaexp.llm import LLMClient
from metaexp.llm.client import request_key
from metaexp.spec import load_spec

ASK = [{"role": "user", "content": "propose a change"}]
REFUSAL = json.dumps(  # what OpenAI's reasoning models answer to max_tokens
    {
        "error": {
            "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "type": "invalid_request_error",
            "param": "max_tokens",
            "code": "unsupported_parameter",
        }
    }
)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def client(server: FakeOpenAI, **overrides: Any) -> LLMClient:
    options: dict[str, Any] = {"model": "fake-model", "base_url": server.base_url, "max_retries": 0}
    return LLMClient(**{**options, **overrides})


def sent(server: FakeOpenAI) -> list[dict[str, Any]]:
    return [{k: v for k, v in body.items() if k != "_headers"} for body in server.requests]


def test_every_request_carries_max_tokens_and_temperature(server: FakeOpenAI) -> None:
    server.responder(lambda body: "ok")
    client(server).complete(ASK)
    client(server, max_tokens=256, temperature=0.2).complete(ASK)
    client(server, max_tokens=None).complete(ASK)
    assert sent(server) == [
        {"model": "fake-model", "messages": ASK, "temperature": 0.7, "max_tokens": 4096},
        {"model": "fake-model", "messages": ASK, "temperature": 0.2, "max_tokens": 256},
        {"model": "fake-model", "messages": ASK, "temperature": 0.7},  # None: the endpoint's own limit
    ]


def test_the_replay_key_is_over_model_messages_and_temperature_only(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    recording = tmp_path / "llm.jsonl"
    server.reply("recorded")
    client(server, record_path=recording, max_tokens=100).complete(ASK)
    [line] = [json.loads(raw) for raw in recording.read_text().splitlines()]
    assert line["request"]["max_tokens"] == 100  # the recording says what was sent ...
    assert line["key"] == request_key(
        {"model": "fake-model", "messages": ASK, "temperature": 0.7}
    )  # ... not keyed
    replayed = client(server, replay_path=recording, max_tokens=9).complete(
        ASK
    )  # another limit still matches
    assert (replayed.content, replayed.replayed, len(server.requests)) == ("recorded", True, 1)


def test_an_endpoint_that_wants_max_completion_tokens_gets_the_limit_under_that_name(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    recording = tmp_path / "llm.jsonl"
    server.fail(400, body=REFUSAL)
    server.reply("first")
    server.reply("second")
    ask = client(server, max_tokens=300, record_path=recording)
    assert [ask.complete(ASK).content, ask.complete(ASK).content] == ["first", "second"]
    limits = [{k: v for k, v in body.items() if k.startswith("max_")} for body in sent(server)]
    assert limits == [{"max_tokens": 300}, {"max_completion_tokens": 300}, {"max_completion_tokens": 300}]
    lines = [json.loads(raw) for raw in recording.read_text().splitlines()]
    assert [line["request"].get("max_completion_tokens") for line in lines] == [300, 300]


def test_another_bad_request_is_not_resent(server: FakeOpenAI) -> None:
    from metaexp.llm import LLMError

    server.fail(400, body='{"error": {"message": "messages: too long", "type": "invalid_request_error"}}')
    with pytest.raises(LLMError, match=r"HTTP 400 from the endpoint: .*too long"):
        client(server).complete(ASK)
    assert len(server.requests) == 1


def test_the_spec_takes_max_tokens_or_null_and_refuses_zero(project: Project) -> None:
    operator = {"kind": "llm", "model": "fake-model", "base_url": "http://127.0.0.1:9/v1"}
    assert load_spec(project.spec(operator=operator)).operator.max_tokens == 4096
    assert load_spec(project.spec(operator={**operator, "max_tokens": None})).operator.max_tokens is None
    with pytest.raises(SpecError, match=r"operator\.max_tokens: Input should be greater than 0"):
        load_spec(project.spec(operator={**operator, "max_tokens": 0}))


def run_llm(project: Project, server: FakeOpenAI, **operator: Any) -> list[dict[str, Any]]:
    """A run of the LLM operator whose replies never apply: every request it sent."""
    server.responder(lambda body: "no edit here")
    spec = {
        "kind": "llm",
        "model": "fake-model",
        "base_url": server.base_url,
        "notes_every": None,
        **operator,
    }
    result = project.run(operator=spec, budget={"max_proposals": 3})
    assert result.stop_reason == "max_proposals=3 reached", result.stop_reason
    assert server.requests
    return sent(server)


def test_the_llm_operator_sends_the_default_limit_and_the_spec_temperature(
    project: Project, server: FakeOpenAI
) -> None:
    requests = run_llm(project, server, temperature=0.2)
    assert {(body["max_tokens"], body["temperature"]) for body in requests} == {(4096, 0.2)}


def test_the_llm_operator_sends_the_spec_max_tokens(project: Project, server: FakeOpenAI) -> None:
    requests = run_llm(project, server, max_tokens=512, temperature=0.0)
    assert {(body.get("max_tokens"), body["temperature"]) for body in requests} == {(512, 0.0)}
