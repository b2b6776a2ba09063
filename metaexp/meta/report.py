"""`metaexp report` for a meta study: outer trials, parameter importances, best strategy, curves."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from metaexp.meta.outer import meta_tag
from metaexp.meta.trial import best_so_far
from metaexp.record.records import read_records
from metaexp.record.workspace import Workspace
from metaexp.spec import Spec


def meta_dir(spec: Spec) -> Path | None:
    """The meta study's output folder, if `metaexp meta` ran for this spec."""
    out = Workspace(spec.root, meta_tag(spec)).out
    return out if (out / "meta.json").exists() else None


def meta_report(spec: Spec, output: str | Path | None = None) -> str:
    """The report's text; writes the comparison plot of the inner runs' best-so-far curves."""
    import optuna

    from metaexp.record.storage import make_storage

    out = Workspace(spec.root, meta_tag(spec)).out
    config = json.loads((out / "meta.json").read_text())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=meta_tag(spec), storage=make_storage(spec.storage, out.parent.parent)
    )
    trials = study.get_trials(deepcopy=False)
    objectives: list[str] = config["objectives"]
    spent = sum(int(t.user_attrs.get("experiments", 0)) for t in trials)
    lines = [f"meta study {meta_tag(spec)}: {len(trials)} outer trials, {spent} inner experiments", ""]
    lines += _table(trials, objectives)
    lines += ["", *_importances(study, objectives)]
    lines += ["", *_best(study, objectives)]
    curves = _curves(spec, trials)
    if curves:
        path = _plot(curves, spec, Path(output) if output else out / "meta.png", config["budget"])
        lines += ["", f"wrote {path}"]
    return "\n".join(lines)


def _table(trials: list[Any], objectives: list[str]) -> list[str]:
    params = sorted({k for t in trials for k in t.params})
    head = ["trial", "state", *objectives, "experiments", *params]
    rows = [head]
    for t in trials:
        values = t.values if t.values and t.state.name == "COMPLETE" else [None] * len(objectives)
        cells = [_cell(v) for v in values]
        rows.append(
            [
                str(t.number),
                t.state.name,
                *cells,
                str(t.user_attrs.get("experiments", "")),
                *[_cell(t.params.get(p)) for p in params],
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    text = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    errors = [
        f"  trial {t.number}: {t.user_attrs['error'].splitlines()[0]}"
        for t in trials
        if "error" in t.user_attrs
    ]
    return text + (["failed:", *errors] if errors else [])


def _importances(study: Any, objectives: list[str]) -> list[str]:
    import optuna

    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(done) < 3 or not any(len({_key(t.params.get(p)) for t in done}) > 1 for p in done[0].params):
        return [f"parameter importances: need 3 or more complete trials that differ (have {len(done)})"]
    lines = []
    for i, name in enumerate(objectives):
        sign = -1.0 if study.directions[i].name == "MAXIMIZE" else 1.0  # the evaluator ranks low targets
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = optuna.importance.get_param_importances(
                    study, target=lambda t, i=i, s=sign: s * t.values[i]
                )
        except (RuntimeError, ValueError) as exc:
            return [f"parameter importances: not computable ({exc})"]
        shown = ", ".join(f"{k} {v:.2f}" for k, v in found.items())
        lines.append(f"parameter importances for {name}: {shown}")
    return lines


def _best(study: Any, objectives: list[str]) -> list[str]:
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not done:
        return ["best strategy: none (no complete outer trial)"]
    if len(objectives) == 1:
        best = study.best_trial
        return [
            f"best strategy: trial {best.number} ({objectives[0]} {best.value:.6g}, inner run(s) "
            f"{', '.join(best.user_attrs.get('tags', []))})",
            *[f"  {k}: {v!r}" for k, v in best.params.items()],
        ]
    lines = [f"Pareto front ({', '.join(objectives)}):"]
    for t in study.best_trials:
        lines.append(f"  trial {t.number}: {[round(v, 6) for v in t.values]} {t.params}")
    return lines


def _curves(spec: Spec, trials: list[Any]) -> list[tuple[int, str, list[float]]]:
    root = Workspace(spec.root, spec.tag).root
    curves = []
    for t in trials:
        for tag in t.user_attrs.get("tags", []):
            curve = best_so_far(read_records(root / ".metaexp" / tag / "experiments.jsonl"))
            if curve:
                curves.append((t.number, t.state.name, curve))
    return curves


def _plot(curves: list[tuple[int, str, list[float]]], spec: Spec, path: Path, budget: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finals = [c[-1] for _, state, c in curves if state == "COMPLETE"]
    best = (max if spec.direction == "maximize" else min)(finals) if finals else None
    fig, ax = plt.subplots(figsize=(8, 5))
    for number, state, curve in curves:
        steps = range(1, len(curve) + 1)
        if state == "COMPLETE" and curve[-1] == best:
            ax.plot(steps, curve, color="C3", lw=2.2, label=f"best: trial {number}", zorder=3)
        else:
            style = "--" if state == "PRUNED" else "-"
            ax.plot(steps, curve, style, color="grey" if state == "PRUNED" else "C0", lw=0.8, alpha=0.6)
    ax.plot([], [], "-", color="C0", lw=0.8, label="complete")
    ax.plot([], [], "--", color="grey", lw=0.8, label="pruned")
    ax.set_xlim(1, max(budget, 2))
    ax.set_xlabel("inner experiment")
    ax.set_ylabel(f"best-so-far {spec.objective.primary}")
    ax.set_title(f"metaexp meta {meta_tag(spec)}: {len(curves)} inner runs")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _key(value: Any) -> str:
    return json.dumps(value, default=str)
