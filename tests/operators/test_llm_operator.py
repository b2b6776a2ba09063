"""The LLM operator through the whole loop, with the real openai client over HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Project
from fake_openai import FakeOpenAI
from helpers import comparable

from metaexp.record.records import Status

PRICES = {"input_per_mtok": 1.0, "output_per_mtok": 10.0}


def diff(old: str, new: str, path: str = "params.py", hypothesis: str = "try a value") -> str:
    return f"Hypothesis: {hypothesis}\n{path}\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def llm_spec(server: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "llm",
        "model": "fake-model",
        "base_url": server.base_url,
        "timeout_s": 2,
        "max_retries": 1,
        "prices": PRICES,
        "notes_every": None,
        **extra,
    }


def test_llm_loop_handles_every_kind_of_reply(project: Project, server: FakeOpenAI) -> None:
    server.reply(
        diff(
            "X = 3.0  # first coordinate (optimum 1.5)",
            "X = 1.5  # first coordinate (optimum 1.5)",
            hypothesis="move X to the middle",
        ),
        prompt_tokens=1000,
        completion_tokens=100,
    )
    server.reply(diff("NOT IN THE FILE", "X = 0"))  # does not apply ...
    server.reply("still garbage")  # ... nor does the retry: invalid
    server.reply(diff("print", "print", path="evaluate.py"))  # the harness: rejected, never run
    server.reply(diff("X = 1", "X = 2", path="../outside.py"))  # escapes the repo: rejected
    server.fail(429, retry_after=0.05)  # rate limited, then the client's own retry succeeds
    server.reply(
        diff(
            "WIDTH = 7  # an integer setting (optimum 12)",
            "WIDTH = 12  # an integer setting (optimum 12)",
            hypothesis="widen",
        )
    )
    server.fail(500)
    server.fail(500)  # 500 twice: the client gives up after one retry → invalid
    server.raw(b"{not json")  # garbage body
    server.raw(b"", status=200)
    server.slow(5.0)  # past timeout_s=2 (and its one retry)
    server.slow(5.0)
    server.reply(
        diff(
            "Y = -2.0  # second coordinate (optimum -0.5)",
            "Y = 9.0  # second coordinate (optimum -0.5)",
            hypothesis="worse Y",
        )
    )
    result = project.run(operator=llm_spec(server), budget={"max_experiments": 4, "max_invalid_streak": 10})
    assert result.stop_reason == "max_experiments=4 reached", result.stop_reason
    records = project.assert_consistent()
    statuses = [r.status for r in records]
    assert statuses == [
        Status.KEEP,
        Status.KEEP,
        Status.INVALID,
        Status.REJECTED,
        Status.REJECTED,
        Status.KEEP,
        Status.INVALID,
        Status.INVALID,
        Status.INVALID,
        Status.INVALID,
        Status.DISCARD,
    ], statuses
    assert records[1].description == "move X to the middle"
    assert records[1].usage["prompt_tokens"] == 1000 and records[1].usage["cost_usd"] == pytest.approx(0.002)
    assert records[2].usage["calls"] == 2 and "nor did the retry" in records[2].reason
    assert "evaluate.py" in records[3].reason and records[3].commit is None
    assert "escapes the repository" in records[4].reason
    assert records[5].description == "widen" and records[5].value == pytest.approx(
        1.5**2
    )  # X and WIDTH fixed
    assert "HTTP 500" in records[6].reason
    assert "timeout" in records[9].reason or "within 2s" in records[9].reason
    assert records[10].status is Status.DISCARD and records[10].value > records[5].value
    rows = (project.root / ".metaexp/landscape/results.tsv").read_text().splitlines()
    assert len(rows) == 12  # the loop went on through all of them
    recording = [
        json.loads(line) for line in (project.root / ".metaexp/landscape/llm.jsonl").read_text().splitlines()
    ]
    assert sum(1 for r in recording if r["response"]) == 7 and any(r["error"] for r in recording)


def test_prompt_carries_program_history_style_and_crash_tail(project: Project, server: FakeOpenAI) -> None:
    project.write("program.md", "Focus on WIDTH first; X is known to be fine.\n")
    project.write(
        "crashy.py",
        "import os, sys\nsrc = open('params.py').read()\n"
        "if 'WIDTH = 99' in src: sys.exit('boom: WIDTH too large')\nexec(open('evaluate.py').read())\n",
    )
    server.reply(
        diff("WIDTH = 7  # an integer setting (optimum 12)", "WIDTH = 99  # an integer setting (optimum 12)")
    )
    server.reply(
        diff("WIDTH = 7  # an integer setting (optimum 12)", "WIDTH = 8  # an integer setting (optimum 12)")
    )
    project.run(
        operator=llm_spec(server, program="program.md", style="bold"),
        harness={"command": "python crashy.py", "immutable": ["evaluate.py", "crashy.py"]},
        budget={"max_experiments": 3},
    )
    records = project.assert_consistent()
    assert [r.status for r in records] == [Status.KEEP, Status.CRASH, Status.KEEP]
    prompt = server.requests[1]["messages"][-1]["content"]
    assert "Focus on WIDTH first" in prompt  # the program
    assert "WIDTH = 7" in prompt  # the target file
    assert "| 2 | crash |" in prompt  # the history, crashes included
    assert "boom: WIDTH too large" in prompt  # the crash's log tail
    assert "Try a substantially different idea" in prompt  # the bold style's instruction
    assert "<<<<<<< SEARCH" in prompt and "Hypothesis:" in prompt  # the exact format
    assert records[1].style == "bold"
    assert "sk-" not in json.dumps(server.requests[0])


def test_notes_are_rewritten_and_read_back(project: Project, server: FakeOpenAI) -> None:
    def responder(body: dict[str, Any]) -> str:
        text = body["messages"][-1]["content"]
        if "Rewrite the notes" in text:
            return "- WIDTH helps\n- X unexplored\n"
        value = int(re.search(r"WIDTH = (\d+)", text).group(1))
        return diff(
            f"WIDTH = {value}  # an integer setting (optimum 12)",
            f"WIDTH = {value + 1}  # an integer setting (optimum 12)",
            hypothesis=f"WIDTH {value + 1}",
        )

    server.responder(responder)
    project.run(operator=llm_spec(server, notes_every=2), budget={"max_experiments": 5})
    notes = project.root / ".metaexp/landscape/notes.md"
    assert notes.read_text() == "- WIDTH helps\n- X unexplored\n"
    last_prompt = server.requests[-1]["messages"][-1]["content"]
    assert "# Your notes so far\n- WIDTH helps" in last_prompt
    kinds = [
        ("notes" if "Rewrite the notes" in r["messages"][-1]["content"] else "propose")
        for r in server.requests
    ]
    assert kinds.count("notes") == 2
    records = project.assert_consistent()
    assert sum(r.usage.get("calls", 0) for r in records) == len(server.requests)


def test_cost_budget_stops_before_an_expensive_call(project: Project, server: FakeOpenAI) -> None:
    def responder(body: dict[str, Any]) -> str:
        value = int(re.search(r"WIDTH = (\d+)", body["messages"][-1]["content"]).group(1))
        return diff(
            f"WIDTH = {value}  # an integer setting (optimum 12)",
            f"WIDTH = {value + 1}  # an integer setting (optimum 12)",
        )

    server.responder(responder)  # each call: 100 prompt + 20 completion tokens = $0.0003
    result = project.run(operator=llm_spec(server), budget={"max_experiments": 50, "max_cost_usd": 0.001})
    assert result.stop_reason.startswith("max_cost_usd=0.001 reached")
    records = project.assert_consistent()
    spent = sum(r.usage.get("cost_usd", 0) for r in records)
    assert spent <= 0.001 and len(server.requests) == 3


def test_replay_reproduces_the_ledger_rows(make_project: Any, server: FakeOpenAI) -> None:
    def responder(body: dict[str, Any]) -> str:  # a retry (a repeat) gets the same answer again
        prompt = next(m["content"] for m in body["messages"] if "WIDTH = " in m["content"])
        value = int(re.search(r"WIDTH = (\d+)", prompt).group(1))
        step = 3 if value < 12 else -1
        return diff(
            f"WIDTH = {value}  # an integer setting (optimum 12)",
            f"WIDTH = {value + step}  # an integer setting (optimum 12)",
            hypothesis=f"WIDTH {value + step}",
        )

    server.responder(responder)
    live = make_project("live")
    live.run(operator=llm_spec(server), budget={"max_experiments": 6})
    recording = live.root / ".metaexp/landscape/llm.jsonl"
    served = len(server.requests)
    for key in ("request", "state"):
        again = make_project(f"replay-{key}")
        (again.root / "llm.jsonl").write_bytes(recording.read_bytes())
        again.run(
            operator=llm_spec(server, replay="llm.jsonl", replay_key=key), budget={"max_experiments": 6}
        )
        assert len(server.requests) == served  # no network
        strip = ("commit", "parent", "log_tail")
        rows = [comparable(r, strip) for r in again.assert_consistent()]
        assert rows == [comparable(r, strip) for r in live.records()]


def test_replay_miss_is_a_clear_invalid_row(project: Project, server: FakeOpenAI) -> None:
    (project.root / "empty.jsonl").write_text("")
    result = project.run(
        operator=llm_spec(server, replay="empty.jsonl"),
        budget={"max_experiments": 3, "max_invalid_streak": 2},
    )
    records = project.records()
    assert result.aborted and records[1].status is Status.INVALID
    assert "replay: no recorded reply" in records[1].reason
    assert server.requests == []


def test_rewrite_and_multi_file_edits(project: Project, server: FakeOpenAI) -> None:
    project.write("extra.py", "BONUS = 0\n")
    params = (project.root / "params.py").read_text()
    server.reply(
        "Hypothesis: rewrite params\n```python params.py\n" + params.replace("X = 3.0", "X = 2.0") + "```\n"
    )
    server.reply(
        "Hypothesis: two files\n"
        + diff("Y = -2.0  # second coordinate (optimum -0.5)", "Y = -1.0  # second coordinate (optimum -0.5)")
        + "\nextra.py\n<<<<<<< SEARCH\nBONUS = 0\n=======\nBONUS = 1\n>>>>>>> REPLACE\n"
    )
    project.run(
        operator=llm_spec(server, edit_format="rewrite"),
        target=["params.py", "extra.py"],
        budget={"max_experiments": 3},
    )
    records = project.assert_consistent()
    assert [r.status for r in records] == [Status.KEEP, Status.KEEP, Status.KEEP]
    assert records[1].description == "rewrite params"
    from conftest import git

    changed = git(project.root, "diff", "--name-only", records[2].parent, records[2].commit).split()
    assert changed == ["extra.py", "params.py"]
    assert "```" in server.requests[0]["messages"][-1]["content"]  # rewrite instructions: fenced whole files


def test_evolve_blocks_limit_what_is_shown_and_changed(project: Project, server: FakeOpenAI) -> None:
    project.write(
        "params.py", "HIDDEN = 1\n# EVOLVE-BLOCK-START\nX = 3.0\n# EVOLVE-BLOCK-END\nY = -2.0\nWIDTH = 7\n"
    )
    server.reply(diff("HIDDEN = 1", "HIDDEN = 2"))
    server.reply(diff("X = 3.0", "X = 1.5"))
    project.run(operator=llm_spec(server), budget={"max_experiments": 2})
    records = project.assert_consistent()
    assert [r.status for r in records] == [Status.KEEP, Status.REJECTED, Status.KEEP]
    assert "EVOLVE-BLOCK" in records[1].reason
    prompt = server.requests[0]["messages"][-1]["content"]
    assert "X = 3.0" in prompt and "HIDDEN" not in prompt


def test_warm_start_seeds_notes_from_an_earlier_run(project: Project, server: FakeOpenAI) -> None:
    earlier = project.root / ".metaexp" / "old-run"
    earlier.mkdir(parents=True)
    (earlier / "notes.md").write_text("- WIDTH near 12 was best last night\n")
    server.reply(
        diff("X = 3.0  # first coordinate (optimum 1.5)", "X = 2.0  # first coordinate (optimum 1.5)")
    )
    project.run(operator=llm_spec(server, warm_start="old-run"), budget={"max_experiments": 2})
    assert "WIDTH near 12 was best last night" in server.requests[0]["messages"][-1]["content"]
    assert (
        project.root / ".metaexp/landscape/notes.md"
    ).read_text() == "- WIDTH near 12 was best last night\n"


X_LINE = "X = 3.0  # first coordinate (optimum 1.5)"


def test_an_edit_that_does_not_parse_is_retried_with_the_parsers_message(
    project: Project, server: FakeOpenAI
) -> None:
    kept = "X = 1.5  # first coordinate (optimum 1.5)"
    server.reply(diff(X_LINE, "X = (1.5  # first coordinate (optimum 1.5)"))  # a syntax error
    server.reply(diff(X_LINE, kept, hypothesis="fixed"))
    server.reply(diff(kept, "X = [2.0  # first coordinate (optimum 1.5)"))  # broken, and ...
    server.reply(diff(kept, "X = 2.0 +  # first coordinate (optimum 1.5)"))  # ... broken again
    server.reply(diff(kept, "X = 1.6  # first coordinate (optimum 1.5)"))
    result = project.run(operator=llm_spec(server), budget={"max_experiments": 3, "max_invalid_streak": 3})
    records = project.assert_consistent()
    statuses = [r.status for r in records]
    assert statuses == [Status.KEEP, Status.KEEP, Status.INVALID, Status.DISCARD], records
    retry = server.requests[1]["messages"][-1]["content"]
    assert "params.py does not parse as Python: '(' was never closed (line" in retry, retry
    assert records[1].description == "fixed" and records[1].usage["calls"] == 2
    broken = records[2]
    assert "does not parse as Python" in broken.reason and "nor did the retry" in broken.reason
    assert broken.commit is None and broken.harness_s == 0  # never committed, never run
    assert result.tally.counts.get("invalid") == 1 and result.tally.ran == 3  # it cost no experiment


def test_a_repeated_change_is_retried_once_and_never_run_again(project: Project, server: FakeOpenAI) -> None:
    kept = "X = 1.5  # first coordinate (optimum 1.5)"
    server.reply(diff(X_LINE, kept))  # better: kept
    server.reply(diff(kept, X_LINE))  # back to the baseline's files: a repeat of #1 ...
    server.reply(diff(kept, X_LINE))  # ... and again when told so: recorded as the duplicate, not run
    width = "WIDTH = {}  # an integer setting (optimum 12)"
    server.reply(diff(width.format(7), width.format(12)))
    project.run(operator=llm_spec(server), budget={"max_experiments": 3, "max_invalid_streak": 3})
    records = project.assert_consistent()
    assert [r.status for r in records] == [Status.KEEP, Status.KEEP, Status.INVALID, Status.KEEP], records
    retry = server.requests[2]["messages"][-1]["content"]
    assert "it is the same change as experiment #1 (keep, loss=" in retry, retry
    assert records[2].reason.startswith("duplicate of #1") and records[2].usage["calls"] == 2
    logs = project.root / ".metaexp/landscape/logs"
    assert not (logs / "3.log").exists() and (logs / "4.log").exists()  # the repeat never ran


def test_an_islands_prompt_shows_the_bests_found_on_other_islands(
    project: Project, server: FakeOpenAI
) -> None:
    """Two islands, each with its own model (so a request says which island asked it): island 0's
    steps WIDTH towards 12, island 1's Y towards -0.5, so both find new bests of their own. Each
    prompt lists the other island's bests under the shared section, never its own island's."""
    import io

    from metaexp.run import run
    from metaexp.spec import load_spec

    lines = {
        "width": ("WIDTH", "{}  # an integer setting (optimum 12)", 1),
        "y": ("Y", "{}  # second coordinate (optimum -0.5)", 0.5),
    }

    def responder(body: dict[str, Any]) -> str:  # one step of the model's own setting towards its optimum
        prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
        name, rest, step = lines[body["model"]]
        value = re.search(rf"^{name} = (\S+)", prompt, re.M).group(1)  # type: ignore[union-attr]
        moved = int(value) + step if name == "WIDTH" else float(value) + step
        old, new = f"{name} = {rest.format(value)}", f"{name} = {rest.format(moved)}"
        return diff(old, new, hypothesis=f"{name} {moved}")

    server.responder(responder)
    strategy = {"islands": [{"model": "width"}, {"model": "y"}], "population": 1, "migration": {"every": 100}}
    op = {**llm_spec(server), "model": None, "models": [{"model": "width"}, {"model": "y"}]}
    spec = project.spec(operator=op, strategy=strategy, budget={"max_experiments": 9})
    run(load_spec(spec), out=io.StringIO(), scheduler="serial")
    records = project.assert_consistent()
    island_of = {r.n: r.island for r in records}
    assert {r.island for r in records[1:] if r.status is Status.KEEP} == {0, 1}  # both find bests
    own = {"width": 0, "y": 1}
    listed_by = {0: set(), 1: set()}
    for body in server.requests:
        prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
        shown = re.findall(r"^- #(\d+) \(new best on island (\d)\): loss=", prompt, re.M)
        assert all(island_of[int(n)] == int(k) for n, k in shown)  # each named by its own island
        listed_by[own[body["model"]]] |= {int(k) for _, k in shown}
    # each island's prompts show the other island's bests, and never a best of its own
    assert listed_by == {0: {1}, 1: {0}}, listed_by


def test_several_models_by_weight_by_bandit_and_per_island(
    make_project: Callable[[str], Project], server: FakeOpenAI
) -> None:
    import io

    from metaexp.run import run
    from metaexp.spec import load_spec

    line = "WIDTH = {}  # an integer setting (optimum 12)"

    def responder(body: dict[str, Any]) -> str:  # "good" steps WIDTH towards 12, "bad" away from it
        prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
        value = int(re.search(r"^WIDTH = (\d+)", prompt, re.M).group(1))  # type: ignore[union-attr]
        toward = 1 if value < 12 else -1
        step = toward if body["model"] == "good" else -toward * 2
        return diff(line.format(value), line.format(value + step), hypothesis=f"{body['model']} step")

    server.responder(responder)
    models = [
        {"model": "good", "weight": 3},
        {"model": "bad", "weight": 1, "prices": {"input_per_mtok": 5.0}},
    ]
    op = {**llm_spec(server), "model": None, "models": models}
    project = make_project("weighted")
    project.run(operator=op, budget={"max_experiments": 41, "max_invalid_streak": 40})
    chosen = [r.extra["model"] for r in project.records()[1:]]
    assert 0.6 <= chosen.count("good") / len(chosen) <= 0.9, chosen  # weights 3 : 1
    report = project.cli("report", "metaexp.yaml").stdout
    assert "models: proposals, kept, summed gain, cost" in report and "good" in report, report

    bandit = make_project("bandit")
    bandit.run(operator={**op, "choice": "bandit"}, budget={"max_experiments": 25, "max_invalid_streak": 40})
    picks = [r.extra["model"] for r in bandit.records()[1:]]
    assert picks[:2] == ["good", "bad"]  # each tried once, then the bandit prefers what improves
    assert picks.count("good") >= 2 * picks.count("bad"), picks

    islands = make_project("islands")
    strategy = {"islands": [{"model": "bad"}, {"model": "good"}], "population": 1}
    spec = islands.spec(operator=op, strategy=strategy, budget={"max_experiments": 7})
    run(load_spec(spec), out=io.StringIO(), scheduler="serial")
    assert {(r.island, r.extra.get("model")) for r in islands.records()[1:]} == {(0, "bad"), (1, "good")}
