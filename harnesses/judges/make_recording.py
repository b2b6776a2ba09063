"""A RULE-BASED STAND-IN for an LLM judge, served as an OpenAI-compatible endpoint.

No real model was reachable when this example was made, so judges.jsonl and
validation.json come from this script, not from a model. It answers PASS or
FAIL with fixed rules, one per criterion id of rubric.yaml, deliberately crude
so it disagrees with the reference labels now and then, as a real judge would:

    short          at most 12 whitespace-separated tokens (an em dash counts as a word)
    number         a digit, or a number word ("one" ... "billion", "dozen")
    no_clickbait   none of a fixed list of phrases, and no "!"
    names_subject  a proper-noun guess: an acronym (NASA), an inner capital (iPhone), or a
                   capitalised word that does not start a sentence (revised once, see README.md)

A criterion it has no rule for gets the answer "UNSURE" (the judge counts it as FAIL).

    python make_recording.py           re-record judges.jsonl (labels and headlines), then
                                       write validation.json with `metaexp judges validate`
    python make_recording.py --serve   answer on the rubric's base_url until Ctrl-C
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

from metaexp.cli import main as metaexp_main
from metaexp.judges import client_for, load_labels, load_rubric, verdicts

MODEL = "rule-based-stand-in"
CLICKBAIT = (
    "you won't believe",
    "shocking",
    "one weird trick",
    "this one trick",
    "what happens next",
    "here's why",
    "blow your mind",
    "doctors hate",
    "shock you",
    "surprise you",
    "you need to know",
)
NUMBER_WORD = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty"
    r"|hundreds?|thousands?|millions?|billions?|dozens?)\b",
    re.IGNORECASE,
)

# ------------------------------------------------------------------ the rules


def short(text: str) -> bool:
    return len(text.split()) <= 12


def number(text: str) -> bool:
    return bool(re.search(r"\d", text) or NUMBER_WORD.search(text))


def no_clickbait(text: str) -> bool:
    return "!" not in text and not any(phrase in text.lower() for phrase in CLICKBAIT)


def names_subject(text: str) -> bool:
    """A name: an acronym (NASA), an inner capital (iPhone), or a capital not starting a sentence."""
    words = text.split()
    return any(_is_name(before, word) for before, word in zip([".", *words], words, strict=False))


def _is_name(before: str, word: str) -> bool:
    letters = re.sub(r"[^A-Za-z]", "", word)
    acronym = len(letters) >= 2 and letters.isupper()
    inner_capital = any(ch.isupper() for ch in letters[1:])
    return acronym or inner_capital or (word[:1].isupper() and before[-1] not in ".?!:")


RULES: dict[str, Callable[[str], bool]] = {
    "short": short,
    "number": number,
    "no_clickbait": no_clickbait,
    "names_subject": names_subject,
}


def answer(prompt: str, questions: dict[str, str]) -> str:
    """The reply to one judge prompt (metaexp.judges.messages): PASS, FAIL or UNSURE."""
    match = re.search(r"Criterion: (.*?)\n\nText:\n(.*)\n\nReply PASS or FAIL\.$", prompt, re.DOTALL)
    if match is None:
        return "UNSURE"
    rule = RULES.get(questions.get(match.group(1), ""))
    if rule is None:
        return "UNSURE"
    return "PASS" if rule(match.group(2)) else "FAIL"


# ------------------------------------------------------------------ the endpoint


def serve(port: int, questions: dict[str, str]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            content = answer(body["messages"][-1]["content"], questions)
            reply = json.dumps(
                {
                    "id": "stand-in",
                    "object": "chat.completion",
                    "created": 0,
                    "model": MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": content},
                        }
                    ],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},  # costs nothing
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


# ------------------------------------------------------------------ recording


def record() -> int:
    rubric = load_rubric("rubric.yaml")
    questions = {c.question: c.id for c in rubric.criteria}
    items = [row.item for row in load_labels("labels.yaml", rubric)] + headlines()
    server = serve(0, questions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = Path("judges.jsonl")
    out.write_text("")
    client = client_for(rubric, record=out, base_url=f"http://127.0.0.1:{server.server_port}/v1")
    for item in dict.fromkeys(items):  # each (criterion, item) once
        verdicts(rubric, item, client)
    server.shutdown()
    print(f"recorded {len(out.read_text().splitlines())} answers of the stand-in in {out.name}")
    return metaexp_main(
        [
            "judges",
            "validate",
            "rubric.yaml",
            "labels.yaml",
            "--replay",
            "judges.jsonl",
            "--out",
            "validation.json",
        ]
    )


def headlines() -> list[str]:
    lines = Path("headlines.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", action="store_true", help="answer on the rubric's base_url until Ctrl-C")
    args = parser.parse_args()
    os.chdir(Path(__file__).resolve().parent)  # the report names rubric.yaml and labels.yaml relatively
    if not args.serve:
        return record()
    rubric = load_rubric("rubric.yaml")
    port = urlparse(rubric.base_url or "").port or 8765
    print(f"rule-based stand-in judge on http://127.0.0.1:{port}/v1 (Ctrl-C stops)")
    try:
        serve(port, {c.question: c.id for c in rubric.criteria}).serve_forever()
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
