"""A RULE-BASED STAND-IN for an LLM, served as an OpenAI-compatible endpoint: not a model.

No model was reachable when the hybrid example was made, so its recording (llm_hybrid.jsonl)
comes from this script. The stand-in reads the target file out of the llm operator's prompt and
answers with one SEARCH/REPLACE edit, chosen by a hash of the prompt among the ideas below that
apply to the current file and that the prompt's history does not show as already tried:

* structural ideas written by hand, each a new term of priority() with new constants at
  plausible, untuned values and `# tune:` markers (best fit, room for a typical item, the fill
  ratio, a smooth small-gap penalty, a preferred leftover, dropping the squared term);
* when the prompt's optimiser section says a marked constant sits at a bound of its range, it
  widens that marker first (the one thing it reads from the numeric search's state);
* when no idea is left, a numeric guess: one constant doubled, halved or negated.

    python stand_in.py --serve [--port 8766]   answer on 127.0.0.1 until Ctrl-C
    python stand_in.py --record                re-record llm_hybrid.jsonl (hybrid.yaml, live, scratch repo)

bench/hybrid.py uses `StandIn` with its own ideas for a curve-fitting landscape.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MODEL = "rule-based-stand-in"
Edit = list[tuple[str, str]]  # SEARCH/REPLACE pairs


@dataclass(frozen=True)
class Idea:
    hypothesis: str
    edit: Callable[[str], Edit | None]  # the blocks for this file, or None where it does not apply


def add_term(constants: str, term: str, anchor: str = "    return score\n") -> Callable[[str], Edit | None]:
    """New constants after the last module-level constant line, a new line before `anchor`."""

    def edit(text: str) -> Edit | None:
        first = constants.split("=")[0].strip()
        lines = [line for line in text.splitlines(keepends=True) if re.match(r"[A-Z][A-Z0-9_]* = ", line)]
        if re.search(rf"^{first} = ", text, re.M) or not lines or anchor not in text:
            return None
        last = lines[-1]
        return [(last, last + constants), (anchor, term + anchor)]

    return edit


def replace_line(name: str, new: str) -> Callable[[str], Edit | None]:
    def edit(text: str) -> Edit | None:
        match = re.search(rf"^{name} = .*\n", text, re.M)
        return None if match is None or match.group(0) == new else [(match.group(0), new)]

    return edit


def drop(old: str, new: str) -> Callable[[str], Edit | None]:
    return lambda text: [(old, new)] if old in text else None


BINPACK_IDEAS = (
    Idea(
        "best fit: prefer the fullest bin that still fits the item",
        replace_line("W_RESIDUAL", "W_RESIDUAL = -1.0  # weight of the space left (negative: best fit)\n"),
    ),
    Idea(
        "reward leaving room for a typical item, so no gap is wasted",
        add_term(
            "W_ROOM = 0.3  # tune: -2..2\nROOM_MIN = 20  # tune: 1..60\n",
            "    score = score + W_ROOM * (leftover >= ROOM_MIN)\n",
        ),
    ),
    Idea(
        "favour the bin the item fills the largest share of",
        add_term(
            "W_FILL = 0.5  # tune: -3..3\n", "    score = score + W_FILL * item / remaining_capacities\n"
        ),
    ),
    Idea(
        "smooth penalty for small leftovers instead of a hard cut-off",
        add_term(
            "W_SMALL = -0.5  # tune: -3..3\nSMALL_SCALE = 5.0  # tune: 0.5..50 log\n",
            "    score = score + W_SMALL * np.exp(-leftover / SMALL_SCALE) * (leftover > 0)\n",
        ),
    ),
    Idea(
        "prefer leaving a leftover near a preferred size",
        add_term(
            "W_TARGET = 0.5  # tune: -3..3\nTARGET_LEFT = 60.0  # tune: 20..130\n"
            "TARGET_WIDTH = 15.0  # tune: 2..60 log\n",
            "    score = score + W_TARGET * np.exp(-(((leftover - TARGET_LEFT) / TARGET_WIDTH) ** 2))\n",
        ),
    ),
    Idea(
        "simplify: drop the squared leftover term",
        drop("    score = W_RESIDUAL * r + W_RESIDUAL_SQ * r * r\n", "    score = W_RESIDUAL * r\n"),
    ),
)

_AT_BOUND = re.compile(r"([A-Z][A-Z0-9_]*) = (\S+), its (lower|upper) bound \((\S+?)\.\.(\S+?)\)")


class StandIn:
    def __init__(self, path: str, ideas: tuple[Idea, ...], salt: str = "") -> None:
        self.path, self.ideas = path, ideas
        self.salt = salt  # another salt, other choices: what a model's sampling temperature varies

    def reply(self, prompt: str) -> str:
        if "# Target files" not in prompt:
            return "No notes: this stand-in keeps none."
        text = self._file(prompt)
        tried = prompt.split("# Recent experiments", 1)[-1] if "# Recent experiments" in prompt else ""
        digest = int(hashlib.sha256((self.salt + prompt).encode()).hexdigest(), 16)
        widen = self._widen(prompt, text)
        if widen is not None and widen[0] not in tried:
            return self._format(*widen)
        fresh = [(i.hypothesis, e) for i in self.ideas if i.hypothesis not in tried and (e := i.edit(text))]
        if fresh:
            return self._format(*fresh[digest % len(fresh)])
        return self._format(*self._guess(text, digest))

    def _file(self, prompt: str) -> str:
        start = prompt.index(f"`{self.path}`:\n```\n") + len(self.path) + 7
        return prompt[start : prompt.index("\n```", start)] + "\n"

    def _widen(self, prompt: str, text: str) -> tuple[str, Edit] | None:
        for name, _value, side, low, high in _AT_BOUND.findall(prompt):
            match = re.search(rf"^({name} = \S+)\s*# tune: \S+( log)?\n", text, re.M)
            if match is None:
                continue
            lo, hi = float(low), float(high)
            width = hi - lo
            lo, hi = (lo - width, hi) if side == "lower" else (lo, hi + width)
            if match.group(2):  # a log range widens by a factor
                lo, hi = (lo / 10, float(high)) if side == "lower" else (float(low), float(high) * 10)
            new = f"{match.group(1)}  # tune: {lo:g}..{hi:g}{match.group(2) or ''}\n"
            return f"widen the range of {name}, which sits at its {side} bound", [(match.group(0), new)]
        return None

    def _guess(self, text: str, digest: int) -> tuple[str, Edit]:
        lines = re.findall(r"^([A-Z][A-Z0-9_]*) = (-?[0-9.]+(?:e-?[0-9]+)?)(.*)\n", text, re.M)
        name, value, rest = lines[digest % len(lines)]
        factor = (2.0, 0.5, -1.0)[(digest >> 8) % 3]
        number = float(value) * factor
        literal = str(round(number)) if re.fullmatch(r"-?[0-9]+", value) else f"{number:.4g}"
        old = f"{name} = {value}{rest}\n"
        return f"try {name} = {literal}", [(old, f"{name} = {literal}{rest}\n")]

    def _format(self, hypothesis: str, edit: Edit) -> str:
        blocks = "".join(
            f"{self.path}\n<<<<<<< SEARCH\n{old.rstrip()}\n=======\n{new.rstrip()}\n>>>>>>> REPLACE\n"
            for old, new in edit
        )
        return f"Hypothesis: {hypothesis}\n\n{blocks}"


@contextmanager
def serve(stand_in: StandIn, port: int = 0) -> Iterator[str]:
    """An OpenAI-compatible chat-completions endpoint on 127.0.0.1; yields its base_url."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            content = stand_in.reply(body["messages"][-1]["content"])
            data = json.dumps(
                {
                    "id": "stand-in",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", MODEL),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def record(spec: str = "hybrid.yaml") -> None:
    """Run `spec` against the stand-in, live, in a scratch copy; keep its exchanges as the recording."""
    import shutil
    import subprocess
    import sys
    import tempfile

    import yaml

    here = Path(__file__).resolve().parent
    data = yaml.safe_load((here / spec).read_text())
    llm = data["operator"]["llm"]
    with tempfile.TemporaryDirectory() as tmp, serve(StandIn("priority.py", BINPACK_IDEAS)) as url:
        repo = Path(tmp)
        for name in ("evaluate.py", "priority.py", "program.md"):
            shutil.copy(here / name, repo / name)
        llm.update(base_url=url, replay=None)
        (repo / spec).write_text(yaml.safe_dump(data, sort_keys=False))
        git = ["git", "-c", "user.name=stand-in", "-c", "user.email=stand-in@localhost"]
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "-qm", "start"], cwd=repo, check=True)
        subprocess.run([sys.executable, "-m", "metaexp", "run", spec], cwd=repo, check=True)
        shutil.copy(repo / ".metaexp" / data["tag"] / "llm.jsonl", here / llm_recording(data))
    print(f"recorded {here / llm_recording(data)}")


def llm_recording(data: dict) -> str:
    return str(data["operator"]["llm"].get("replay") or "llm_hybrid.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--serve", action="store_true", help="answer on 127.0.0.1:PORT until Ctrl-C")
    group.add_argument("--record", action="store_true", help="re-record hybrid.yaml's llm_hybrid.jsonl")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    if args.record:
        record()
        return
    with serve(StandIn("priority.py", BINPACK_IDEAS), args.port) as url:
        print(f"stand-in answering on {url} (Ctrl-C stops)")
        threading.Event().wait()


if __name__ == "__main__":
    main()
