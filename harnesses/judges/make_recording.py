"""RULE-BASED STAND-INS for the two LLMs of this example, served as an OpenAI-compatible endpoint.

No real model was reachable when this example was made, so every recorded answer
(judges.jsonl, validation.json, llm.jsonl) comes from this script, not from a model.

The judge (model name in rubric.yaml: rule-based-stand-in) answers PASS or FAIL
with fixed rules, one per criterion id of rubric.yaml, deliberately crude so it
disagrees with the reference labels now and then, as a real judge would:

    short          at most 12 whitespace-separated tokens (an em dash counts as a word)
    number         a digit, or a number word ("one" ... "billion", "dozen")
    no_clickbait   none of a fixed list of phrases, and no "!"
    names_subject  a proper-noun guess: an acronym (NASA), an inner capital (iPhone), or a
                   capitalised word that does not start a sentence (revised once, see README.md)

A criterion it has no rule for gets the answer "UNSURE" (the judge counts it as FAIL).

The proposer (model name in metaexp.yaml: rule-based-proposer) answers the llm
operator's prompt. It reads the target file from the prompt and knows a fixed
list of one-line rewrites (MOVES below), a few per story, each doing one thing
a copy editor would: drop a teaser, add a number from program.md's facts, name
the subject, cut words. Some gain nothing with the judge, or lose something.
From the rewrites that apply to the current headlines and that the prompt's
history table does not show as already tried without a gain, it picks one (two,
of different stories, for a style other than conservative) by a hash of the
prompt, so successive prompts get different proposals and the same prompt
always the same one. It reviews the history into notes when asked (notes_every).

    python make_recording.py           re-record everything: judges.jsonl (labels and headlines),
                                       validation.json (`metaexp judges validate`), then a run of
                                       metaexp.yaml against both stand-ins: llm.jsonl and the
                                       judges' answers to the proposed headlines
    python make_recording.py --run     re-record only the run: llm.jsonl, and the judges' answers to
                                       new headlines appended to judges.jsonl (the rest kept as is)
    python make_recording.py --serve   answer on the rubric's base_url (both stand-ins) until Ctrl-C
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import yaml

from metaexp.cli import main as metaexp_main
from metaexp.judges import client_for, load_labels, load_rubric, verdicts

MODEL = "rule-based-stand-in"  # the judge: rubric.yaml's model
PROPOSER = "rule-based-proposer"  # the llm operator: metaexp.yaml's operator.model
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

# ------------------------------------------------------------------ the judge's rules


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


# ------------------------------------------------------------------ the proposer's rewrites

# Drafts of each story's headline (the line of headlines.txt), written by hand from
# program.md's facts; "orig" is the shipped line. Every number in them is in program.md
# (check_drafts). A move rewrites one headline from one draft to another.
DRAFTS: dict[int, dict[str, str]] = {
    1: {
        "orig": "You won't believe what this startup just did to the price of its electric SUV",
        "plain": "This startup just cut the price of its electric SUV",
        "named": "Voltra cuts the price of its electric SUV",
        "cut": "This startup just cut the price of its electric SUV by 15%",
        "full": "Electric-car startup Voltra cuts the price of its V1 electric SUV by 15%, to $39,000, "
        "on Monday",
        "best": "Voltra cuts V1 electric SUV price by 15%, to $39,000",
    },
    2: {
        "orig": "Scientists say the ocean is warming faster than anyone expected",
        "named": "North Atlantic warming faster than expected, scientists say",
        "study": "University of Bergen study: North Atlantic warming twice as fast as thought",
        "full": "University of Bergen study in Nature finds North Atlantic surface warmed 0.3 °C per decade "
        "since 1990",
        "best": "North Atlantic surface warmed 0.3 °C per decade since 1990, study finds",
    },
    3: {
        "orig": "Local team wins big",
        "named": "Harbor City FC wins regional cup final",
        "score": "Local team wins cup final 4-0",
        "long": "Harbor City FC beat Eastfield 4-0 on Saturday to win the regional cup final",
        "best": "Harbor City FC beat Eastfield 4-0 to win regional cup final",
    },
    4: {
        "orig": "Here's why everyone in Berlin is suddenly selling their bikes",
        "plain": "Berlin residents are selling their bikes after a new parking fee",
        "full": "Bike listings in Berlin rose 40% in March after €5-a-month parking fee took effect",
        "best": "Second-hand bike listings in Berlin up 40% after €5 monthly parking fee",
    },
    5: {
        "orig": "Council approves budget",
        "named": "Springfield council approves budget",
        "amount": "Council approves €120 million budget for 2027",
        "both": "Springfield council approves €120 million budget for 2027",
        "best": "€120 million Springfield budget for 2027 includes 30 electric buses",
    },
}


class Move(NamedTuple):  # a NamedTuple: the tests load this file without registering it
    story: int
    before: str  # a draft name
    after: str
    hypothesis: str  # unique: the history table shows which moves were tried


MOVES = (
    Move(1, "orig", "plain", "drop the 'You won't believe' teaser from the Voltra headline"),
    Move(1, "orig", "full", "rewrite the Voltra headline with every fact of the story"),
    Move(1, "plain", "named", "name Voltra instead of 'this startup'"),
    Move(1, "plain", "cut", "add the 15% price cut to the Voltra headline"),
    Move(1, "named", "best", "add the V1's 15% cut and its $39,000 price"),
    Move(1, "cut", "best", "name Voltra, the V1 and the new $39,000 price"),
    Move(1, "cut", "full", "add Voltra, the V1, the $39,000 price and the day"),
    Move(1, "full", "best", "cut the Voltra headline to 12 words or fewer"),
    Move(2, "orig", "named", "name the North Atlantic instead of 'the ocean'"),
    Move(2, "orig", "study", "name the University of Bergen study and its finding"),
    Move(2, "orig", "full", "state the Bergen study's finding: 0.3 °C per decade since 1990"),
    Move(2, "named", "best", "add the 0.3 °C per decade since 1990 to the ocean headline"),
    Move(2, "named", "full", "give the Bergen study's full finding in the ocean headline"),
    Move(2, "study", "best", "replace 'twice as fast' with the measured 0.3 °C per decade"),
    Move(2, "full", "best", "cut the ocean headline to 12 words or fewer"),
    Move(3, "orig", "named", "name Harbor City FC and the regional cup final"),
    Move(3, "orig", "score", "add the 4-0 score to the football headline"),
    Move(3, "named", "best", "add the 4-0 win over Eastfield"),
    Move(3, "named", "long", "add the day, the opponent and the score to the cup headline"),
    Move(3, "score", "best", "name Harbor City FC and Eastfield in the cup headline"),
    Move(3, "score", "long", "name both teams and the day in the cup headline"),
    Move(3, "long", "best", "cut the cup headline to 12 words or fewer"),
    Move(4, "orig", "plain", "drop the 'Here's why' teaser from the Berlin headline"),
    Move(4, "orig", "full", "replace the Berlin teaser with the 40% rise and the €5 fee"),
    Move(4, "plain", "best", "add the 40% rise in listings and the €5 fee"),
    Move(4, "plain", "full", "add the 40% rise in March and the €5-a-month fee"),
    Move(4, "full", "best", "cut the Berlin headline to 12 words or fewer"),
    Move(5, "orig", "named", "name Springfield's council in the budget headline"),
    Move(5, "orig", "amount", "add the €120 million and the year 2027 to the budget headline"),
    Move(5, "named", "both", "add the €120 million and 2027 to Springfield's budget headline"),
    Move(5, "amount", "both", "name Springfield in the €120 million budget headline"),
    Move(5, "amount", "best", "lead with the €120 million and the 30 new electric buses"),
)


def check_drafts(program: str) -> list[str]:
    """Numbers in the drafts that program.md's facts do not contain (none: nothing is invented)."""
    tokens = (t.strip(",.:;") for drafts in DRAFTS.values() for d in drafts.values() for t in d.split())
    return sorted({t for t in tokens if re.search(r"\d", t) and t not in program})


def propose(prompt: str) -> str:
    """The reply to the llm operator's proposal prompt (edit_format rewrite): one or two rewrites."""
    found = re.search(r"^`([^`\n]+)`:\n```\n(.*?)\n```$", prompt, re.DOTALL | re.MULTILINE)
    if found is None:
        return "Hypothesis: none (the prompt shows no target file)\n"
    path, text = found.groups()
    lines = text.split("\n")
    headlines = [i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    options = [
        (i, move)
        for story, i in enumerate(headlines, 1)
        for move in MOVES
        if move.story == story and DRAFTS[story][move.before] == lines[i].strip()
    ]
    tried = {h for status, text in history(prompt) if status not in ("keep", "explore") for h in text}
    fresh = [(i, m) for i, m in options if m.hypothesis not in tried] or options
    if not fresh:
        return "Hypothesis: every rewrite I know was made\n"  # changes nothing: an invalid row
    digest = hashlib.sha256(prompt.encode()).digest()
    chosen = [fresh[int.from_bytes(digest[:4], "big") % len(fresh)]]
    style = re.search(r"^# This turn's style: (\S+)", prompt, re.MULTILINE)
    if style and style.group(1) != "conservative":  # bold and the rest: two headlines at once
        others = [(i, m) for i, m in fresh if i != chosen[0][0]]
        if others:
            chosen.append(others[digest[5] % len(others)])
    for i, move in chosen:
        lines[i] = DRAFTS[move.story][move.after]
    hypothesis = "; ".join(m.hypothesis for _, m in chosen)
    new = "\n".join(lines)  # the file's own last newline is kept, none is added
    if not new.endswith("\n"):
        new += "\n"  # the closing fence needs a line of its own
    return f"Hypothesis: {hypothesis}\n\n{path}\n```\n{new}```\n"


def history(prompt: str) -> list[tuple[str, list[str]]]:
    """(status, hypotheses) of each row of the prompt's history table (metaexp's history_table)."""
    rows = re.findall(r"^\| \d+ \| (\w+) \| [^|]* \| [^|]* \| (.*) \|$", prompt, re.MULTILINE)
    return [(status, text.split("; ")) for status, text in rows]


def notes(prompt: str) -> str:
    """The reply to the operator's notes prompt: the history sorted into what worked and what did not."""
    rows = history(prompt)
    kept = [h for status, text in rows if status in ("keep", "explore") for h in text if h != "baseline"]
    lost = [h for status, text in rows if status not in ("keep", "explore") for h in text]
    lines = ["# Notes (rule-based stand-in)", "", "What worked:"]
    lines += [f"- {h}" for h in kept] or ["- nothing yet"]
    lines += ["", "No gain with the judges (do not repeat):"]
    lines += [f"- {h}" for h in lost] or ["- nothing yet"]
    lines += ["", "Next: the headlines no kept rewrite has touched; one story per try."]
    return "\n".join(lines)


def reply_to(messages: list[dict[str, str]], questions: dict[str, str]) -> str:
    """Which stand-in answers: a judge question, an operator proposal (or its retry), or notes."""
    first = next((m["content"] for m in messages if m["role"] == "user"), "")
    if first.startswith("Criterion: "):
        return answer(messages[-1]["content"], questions)
    if first.startswith("You are reviewing an experiment loop"):
        return notes(first)
    if "# Target files\n" in first:
        return propose(first)
    return "UNSURE"


# ------------------------------------------------------------------ the endpoint


def serve(port: int, questions: dict[str, str]) -> ThreadingHTTPServer:
    """Both stand-ins on 127.0.0.1:port (0: a free port), as POST .../chat/completions."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            content = reply_to(body["messages"], questions)
            reply = json.dumps(
                {
                    "id": "stand-in",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", MODEL),
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


def record_judges(questions: dict[str, str]) -> int:
    """judges.jsonl from scratch (the labelled headlines and headlines.txt), then validation.json."""
    rubric = load_rubric("rubric.yaml")
    items = [row.item for row in load_labels("labels.yaml", rubric)] + headlines()
    server = started(questions)
    out = Path("judges.jsonl")
    out.write_text("")
    client = client_for(rubric, record=out, base_url=f"http://127.0.0.1:{server.server_port}/v1")
    for item in dict.fromkeys(items):  # each (criterion, item) once
        verdicts(rubric, item, client)
    server.shutdown()
    print(f"recorded {len(out.read_text().splitlines())} answers of the stand-in judge in {out.name}")
    return validate("validation.json")


def validate(out: str) -> int:
    argv = ["judges", "validate", "rubric.yaml", "labels.yaml", "--replay", "judges.jsonl", "--out", out]
    return metaexp_main(argv)


def record_run(questions: dict[str, str]) -> int:
    """Run metaexp.yaml (its budget) in a copy against both stand-ins, live; keep what they said.

    llm.jsonl is the run's operator recording; the judges' answers to headlines that
    judges.jsonl lacks are appended to it. Only the endpoints change in the copy (the
    operator's base_url, no replay; the rubric's base_url, which the validation's fingerprint
    does not cover), so the run's prompts are the ones a replay of the shipped spec makes.
    """
    server = started(questions)
    url = f"http://127.0.0.1:{server.server_port}/v1"
    with tempfile.TemporaryDirectory(prefix="judges-recording-") as tmp:
        repo, answers = Path(tmp) / "run", Path(tmp) / "judges-new.jsonl"
        shutil.copytree(".", repo, ignore=shutil.ignore_patterns("__pycache__", ".metaexp", "llm.jsonl"))
        spec = yaml.safe_load((repo / "metaexp.yaml").read_text())
        spec["operator"].pop("replay", None)
        spec["operator"]["base_url"] = url
        spec["harness"]["env"]["JUDGES_RECORD"] = str(answers)
        # the harness appends the live answers to `answers`, outside its tree
        spec["harness"]["sandbox"] = "off"
        (repo / "metaexp.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        rubric = repo / "rubric.yaml"
        rubric.write_text(re.sub(r"(?m)^base_url: .*$", f"base_url: {url}", rubric.read_text()))
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the judges example, to record"]):
            git = ["git", "-c", "user.name=recording", "-c", "user.email=recording@localhost", *args]
            subprocess.run(git, cwd=repo, check=True)
        env = {**os.environ, "OPENAI_API_KEY": "stand-ins-need-no-key"}
        proc = subprocess.run([sys.executable, "-m", "metaexp", "run", "metaexp.yaml"], cwd=repo, env=env)
        server.shutdown()
        if proc.returncode != 0:
            print(f"the recording run exited {proc.returncode}; nothing was kept", file=sys.stderr)
            return 1
        out = repo / ".metaexp" / spec["tag"]
        shutil.copy(out / "llm.jsonl", "llm.jsonl")
        added = merge_answers(answers, Path("judges.jsonl"))
        rows = [json.loads(line) for line in (out / "experiments.jsonl").read_text().splitlines()]
    print(f"recorded {len(rows)} experiments' operator exchanges in llm.jsonl; {added} new judge answers")
    for row in rows:
        value = "-" if row["value"] is None else f"{row['value']:.6f}"
        print(f"  {row['n']:>2} {row['status']:<8} {value:>8}  {row['description']} {row['reason']}")
    return 0


def merge_answers(new: Path, into: Path) -> int:
    """Append the live answers in `new` whose (model, criterion, headline) `into` lacks."""
    known = {json.loads(line)["state_key"] for line in into.read_text().splitlines()}
    added = []
    for raw in new.read_text().splitlines() if new.exists() else []:
        line = json.loads(raw)
        if line["replayed"] or line["response"] is None or line["state_key"] in known:
            continue
        known.add(line["state_key"])
        added.append(raw)
    with into.open("a") as fh:
        fh.writelines(raw + "\n" for raw in added)
    return len(added)


def started(questions: dict[str, str]) -> ThreadingHTTPServer:
    server = serve(0, questions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def headlines() -> list[str]:
    lines = Path("headlines.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--serve", action="store_true", help="answer on the rubric's base_url (both stand-ins) until Ctrl-C"
    )
    parser.add_argument(
        "--run", action="store_true", help="re-record only the run (llm.jsonl, new judge answers)"
    )
    args = parser.parse_args()
    os.chdir(Path(__file__).resolve().parent)  # the report names rubric.yaml and labels.yaml relatively
    rubric = load_rubric("rubric.yaml")
    questions = {c.question: c.id for c in rubric.criteria}
    if args.serve:
        port = urlparse(rubric.base_url or "").port or 8765
        print(f"rule-based stand-ins (judge and proposer) on http://127.0.0.1:{port}/v1 (Ctrl-C stops)")
        try:
            serve(port, questions).serve_forever()
        except KeyboardInterrupt:
            return 0
        return 0
    invented = check_drafts(Path("program.md").read_text())
    if invented:
        print(f"the proposer's drafts use numbers program.md lacks: {', '.join(invented)}", file=sys.stderr)
        return 1
    before = Path("validation.json").read_text() if Path("validation.json").exists() else None
    if (not args.run and record_judges(questions) != 0) or record_run(questions) != 0:
        return 1
    with tempfile.TemporaryDirectory() as tmp:  # the appended answers leave the validation as it was
        again = str(Path(tmp) / "validation.json")
        if validate(again) != 0 or Path(again).read_text() != Path("validation.json").read_text():
            print("validation.json changed after the run's answers were added", file=sys.stderr)
            return 1
    if before is not None and before != Path("validation.json").read_text():
        print("note: validation.json differs from the one before this recording", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
