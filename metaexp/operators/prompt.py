"""What the LLM operator tells the model: program, notes, files, history, style, format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metaexp.operators.edits import edit_format_instructions, evolve_regions
from metaexp.operators.styles import Style
from metaexp.record.records import ExperimentRecord

SYSTEM = (
    "You are an autonomous research agent in an experiment loop. Each turn you propose ONE change "
    "to the target files; an immutable harness then measures it, and the change is kept only if the "
    "metric improves. Change only the target files. Prefer ideas the history shows have not been "
    "tried. Reply with the hypothesis line and the edit in the exact format asked for, nothing else."
)


@dataclass(frozen=True)
class Brief:
    """Everything one proposal prompt is made of."""

    metric: str
    direction: str
    program: str
    notes: str
    files: Mapping[str, bytes]
    history: Sequence[ExperimentRecord]
    crash_tail: str
    style: Style
    edit_format: str
    incumbent: float | None
    optimiser: OptimiserState | None = None  # the hybrid operator's numeric search, if any
    shared: Sequence[ExperimentRecord] = ()  # populations: other islands' bests and migrants, best first


@dataclass(frozen=True)
class TuningGain:
    n: int
    status: str
    untuned: float | None
    tuned: float | None
    description: str


@dataclass(frozen=True)
class OptimiserState:
    """What the numeric search learned about the current structure, for the hybrid's LLM."""

    sampler: str
    budget: int  # tuning evaluations per structural edit
    trials: int  # evaluations of the current structure so far
    best: Mapping[str, Any]  # the best constants so far
    best_value: float | None
    importances: Mapping[str, float]  # empty: too few trials (`min_trials`)
    min_trials: int
    at_bound: Mapping[str, str] = field(default_factory=dict)  # name -> "= 2.0, its upper bound"
    edits: Sequence[TuningGain] = ()


def proposal_messages(brief: Brief) -> list[dict[str, str]]:
    better = "lower" if brief.direction == "minimize" else "higher"
    parts = [
        f"# Goal\nImprove `{brief.metric}` ({better} is better). Current value: {_num(brief.incumbent)}."
    ]
    if brief.program.strip():
        parts.append(f"# Research program (from the human)\n{brief.program.strip()}")
    if brief.notes.strip():
        parts.append(f"# Your notes so far\n{brief.notes.strip()}")
    parts.append("# Target files\n" + "\n\n".join(_file_block(p, t) for p, t in brief.files.items()))
    if brief.history:
        parts.append("# Recent experiments (oldest first)\n" + history_table(brief.history, brief.metric))
    if brief.shared:
        parts.append(
            "# Found elsewhere in the population (best first; not in your files unless migrated)\n"
            + shared_table(brief.shared, brief.metric)
        )
    if brief.crash_tail:
        parts.append(
            f"# The last try from this state crashed; the end of its log\n```\n{brief.crash_tail}\n```"
        )
    if brief.optimiser is not None:
        parts.append(optimiser_section(brief.optimiser, brief.metric))
    parts.append(f"# This turn's style: {brief.style.name}\n{brief.style.instruction.strip()}")
    parts.append(
        "# Reply format\nStart with one line `Hypothesis: <what you change and why, under 15 words>`.\n"
        + edit_format_instructions(brief.edit_format, list(brief.files))
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def shared_table(records: Sequence[ExperimentRecord], metric: str) -> str:
    """One line per record another island found (or that migrated here): where, how, its value."""
    lines = []
    for r in records:
        how = "migrated here" if r.status == "migrate" else f"new best on island {r.island}"
        lines.append(f"- #{r.n} ({how}): {metric}={_num(r.value)}: {r.description}")
    return "\n".join(lines)


def retry_messages(first: list[dict[str, str]], reply: str, error: str) -> list[dict[str, str]]:
    """The same request, the reply that did not apply, and why: one more chance."""
    return [
        *first,
        {"role": "assistant", "content": reply},
        {
            "role": "user",
            "content": f"That edit could not be used: {error}\n"
            "Reply again, in the exact format, with an edit that applies and leaves every file valid.",
        },
    ]


def notes_messages(
    program: str, notes: str, history: Sequence[ExperimentRecord], metric: str, direction: str
) -> list[dict[str, str]]:
    better = "lower" if direction == "minimize" else "higher"
    text = (
        f"You are reviewing an experiment loop that optimises `{metric}` ({better} is better).\n\n"
        + (f"# Research program\n{program.strip()}\n\n" if program.strip() else "")
        + (f"# Current notes\n{notes.strip()}\n\n" if notes.strip() else "")
        + f"# All results so far\n{history_table(history, metric)}\n\n"
        "Rewrite the notes: what worked, what failed (and why it probably failed), which ideas are "
        "exhausted, and what to try next. Be concrete and brief (under 300 words). Reply with the new "
        "notes in Markdown only."
    )
    return [{"role": "user", "content": text}]


def history_table(records: Sequence[ExperimentRecord], metric: str) -> str:
    rows = [f"| # | status | {metric} | style | description |", "|---|---|---|---|---|"]
    for rec in records:
        text = rec.description if not rec.reason else f"{rec.description} ({rec.reason})"
        text = " ".join(text.split()).replace("|", "/")[:160]
        rows.append(f"| {rec.n} | {rec.status} | {_num(rec.value)} | {rec.style or '-'} | {text} |")
    return "\n".join(rows)


def optimiser_section(state: OptimiserState, metric: str) -> str:
    lines = [
        "# What the numeric search learned (Optuna)",
        f"After your edit, its numeric constants are tuned by {state.sampler} for up to {state.budget} "
        "evaluations, starting from the values you write; the best tuned values are what is kept. The "
        "constants are the module-level UPPER_CASE numbers and any module-level `NAME = number` you mark "
        "with a trailing `# tune: LOW..HIGH` (or `# tune: LOW..HIGH log`), e.g. "
        "`W_GAP = 0.5  # tune: -2..2`. Spend your edit on structure: the numbers will be tuned.",
    ]
    if state.best:
        values = ", ".join(f"{k} = {_value(v)}" for k, v in state.best.items())
        lines.append(
            f"Best constants so far ({state.trials} evaluations of the current structure, "
            f"{metric} {_num(state.best_value)}): {values}"
        )
    if state.importances:
        ranked = sorted(state.importances.items(), key=lambda kv: -kv[1])
        text = ", ".join(f"{k} {v:.2f}" for k, v in ranked)
        lines.append(f"Parameter importances (PED-ANOVA over {state.trials} trials): {text}")
    else:
        lines.append(f"Parameter importances: too few trials yet ({state.trials} of {state.min_trials}).")
    if state.at_bound:
        text = "; ".join(f"{k} {where}" for k, where in state.at_bound.items())
        lines.append(f"At a bound of their range: {text}. Widen it with a `# tune:` marker, or change form.")
    if state.edits:
        lines.append("Tuning gains of your last structural edits:")
        lines.append(f"| # | status | {metric} as written | tuned | description |\n|---|---|---|---|---|")
        for e in state.edits:
            text = " ".join(e.description.split()).replace("|", "/")[:100]
            lines.append(f"| {e.n} | {e.status} | {_num(e.untuned)} | {_num(e.tuned)} | {text} |")
    return "\n".join(lines)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value) if isinstance(value, str) else str(value)


def _file_block(path: str, content: bytes) -> str:
    text = content.decode(errors="replace")
    regions = evolve_regions(text)
    if not regions:
        return f"`{path}`:\n```\n{text}\n```"
    shown = "\n...\n".join(text[start:end].strip("\n") for start, end in regions)
    return (
        f"`{path}` (only the code between its EVOLVE-BLOCK-START/END markers may change; "
        f"those regions are shown):\n```\n{shown}\n```"
    )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"
