"""metaexp validate SPEC: every check a run makes before it starts, read-only."""

from __future__ import annotations

import argparse
import os
import random
import sys

from metaexp.evaluate.cgroups import describe
from metaexp.evaluate.isolation import isolation_for
from metaexp.run.plan import Plan, make_plan, uncommitted_note
from metaexp.spec import HarnessSpec, Spec, load_spec


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a spec (and the files it names) without running")
    p.add_argument("spec", help="the spec YAML, e.g. metaexp.yaml")


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    plan = make_plan(spec)
    names = _operated_on(spec, plan)
    print(
        f"{args.spec}: ok\n"
        f"  tag {spec.tag}: branch autoexp/{spec.tag}, start {spec.start} = {plan.start[:7]}\n"
        f"  target: {', '.join(plan.target_files)}; immutable: {', '.join(plan.immutable) or '-'}\n"
        f"  harness: {' '.join(spec.harness.argv)} (budget {spec.harness.time_budget_s:g}s, "
        f"timeout {spec.harness.timeout_s:g}s)\n"
        f"  objective: {spec.direction} {spec.objective.primary}; "
        f"operator {spec.operator.kind} over {names}\n"
        f"  strategy {spec.strategy.name}: explore_rate {spec.strategy.explore_rate:g}, "
        f"explore_every {spec.strategy.explore_every or 'off'}"
    )
    if note := uncommitted_note(plan):
        print(f"  {note}")
    for line in _operator_notes(spec, plan):
        print(f"  {line}")
    print(f"  {isolation_for(spec.harness.sandbox, spec.harness.network).why}")
    if limits := describe(spec.harness.memory_mb, spec.harness.cpus):
        print(f"  {limits}")
    _print_checks(spec.harness)
    if spec.noise.method != "none":
        confirm = ", winners re-run on fresh seeds" if spec.noise.reevaluate_elites else ""
        print(f"  noise: {spec.noise.method} on paired seeds{confirm}")
    if spec.pipeline:
        _print_stages(spec, plan)
    return 0


def _operated_on(spec: Spec, plan: Plan) -> str:
    """What the operator changes, and with what; warns (stderr) when an llm's key is missing."""
    names = ", ".join(plan.space) if plan.space else "numeric UPPER_CASE constants"
    if spec.operator.kind == "llm":
        op = spec.operator
        source = f"replay {op.replay} (key: {op.replay_key})" if op.replay else (op.base_url or "OpenAI")
        names = f"{', '.join(plan.target_files)} with {op.model} via {source}"
        if not op.replay and not os.environ.get(op.api_key_env) and op.base_url is None:
            print(f"warning: {op.api_key_env} is not set; the first proposal will fail", file=sys.stderr)
    return names


def _operator_notes(spec: Spec, plan: Plan) -> list[str]:
    """What the style does to a sampler, and whether a hybrid's tuning can learn in its budget."""
    op, notes = spec.operator, []
    if op.kind == "params":
        style = plan.styles.pick(random.Random(0)) if not isinstance(op.style, dict) else None
        if style is not None and not style.whole:
            notes.append(
                f"style {style.name} narrows the {op.sampler} sampler: {style.count or 'every'} value(s), "
                f"each at most {style.scale:g} of its range toward its suggestion (a coordinate search); "
                "style global takes the suggestion whole"
            )
        elif style is not None:
            notes.append(f"style {style.name}: every proposal is the {op.sampler} sampler's own suggestion")
        if op.sampler == "surrogate" and plan.space is not None:
            from metaexp.operators.surrogate import describe

            notes.append(describe(plan.space))
        if op.sampler == "cmaes":
            notes.append(
                "sampler cmaes: Optuna's CMA-ES; lq-cmaes is the same search with a model that screens "
                "its candidates (fewer evaluations on a smooth metric: bench/README.md, search_quality)"
            )
        categoricals = [n for n, p in (plan.space or {}).items() if p.type == "categorical"]
        if op.sampler in ("cmaes", "lq-cmaes") and categoricals:
            notes.append(
                f"sampler {op.sampler}: CMA-ES models the numbers; {', '.join(categoricals)} "
                "(categorical) each sampled by TPE on its own, from every trial"
            )
        if op.sampler == "lq-cmaes" and plan.space is not None:
            from metaexp.operators.samplers import cma_popsize

            numeric = sum(p.type != "categorical" for p in plan.space.values())
            popsize = cma_popsize(numeric, op.sampler)
            notes.append(
                f"sampler lq-cmaes: CMA-ES (a population of {popsize}, twice its default) whose members a "
                "linear-quadratic model of the metric ranks first; only the best-ranked are evaluated "
                "while the model ranks them right (all of them when it does not)"
            )
    if op.kind == "hybrid":
        notes.extend(_tuning_notes(op.tune.sampler, op.tune.budget))
        if op.sampler in ("cmaes", "lq-cmaes"):
            whole = [s.name for s in plan.styles.styles if s.whole]
            narrow = [s.name for s in plan.styles.styles if s.name not in whole]
            taught = f"; a step of style {', '.join(narrow)} is a draw that teaches it nothing" * bool(narrow)
            if whole:
                notes.append(
                    f"sampler {op.sampler}: a numeric step of style {', '.join(whole)} writes the suggestion "
                    "whole and is the sampler's own trial, so its generations carry across the steps of a "
                    "structure (a new structure starts a new search around its constants)" + taught
                )
            else:
                notes.append(
                    f"sampler {op.sampler}: style {', '.join(narrow)} narrows each numeric step, so none is "
                    "the sampler's own trial: each is a draw of its first generation around the incumbent's "
                    "constants (style global writes the suggestion whole, and its generations carry across "
                    "steps); tpe and gp learn from every evaluation"
                )
    if spec.strategy.initial == "random" and spec.strategy.is_population:
        if hasattr(plan.operator([], plan.target_files), "initial"):
            fresh = spec.strategy.population - 1
            notes.append(f"initial random: each island starts from {fresh} fresh points of the space")
        else:
            notes.append(
                f"warning: strategy.initial random: operator.kind {op.kind} cannot draw a fresh point "
                "(perturb and params can); the population starts from the baseline"
            )
    return notes


def _tuning_notes(sampler: str, budget: int) -> list[str]:
    """Whether tuning can learn within its budget (operators/tuning.py sizes CMA-ES to it)."""
    if budget < 1:
        return ["tuning: off (tune.budget 0)"]
    if sampler == "cmaes":
        popsize = max(4, (budget - 1) // 2)
        if budget < 2 + popsize:
            return [f"warning: tune.budget {budget} ends within CMA-ES's first generation: tuning is random"]
        return [f"tuning: cmaes, {budget} runs: the written values, then generations of up to {popsize}"]
    if sampler in ("tpe", "gp") and budget <= 10:
        return [f"warning: tune.budget {budget}: {sampler} samples at random for its first 10 trials"]
    return [f"tuning: {sampler}, {budget} runs"]


def _print_checks(h: HarnessSpec) -> None:
    """The harness's precheck, cascade stages and held-out validation."""
    print("  candidates whose .py/.yaml/.json/.toml targets do not parse: invalid, never run")
    if h.precheck is not None:
        print(f"  precheck of each candidate: {' '.join(h.precheck.argv)} (failing it: invalid, not run)")
    for stage in h.cascade:
        gate = " ".join(
            f"{stage.metric} {op} {bound:g}"
            for op, bound in ((">=", stage.min), ("<=", stage.max))
            if bound is not None
        )
        passes = f"exit 0, {gate}" if gate else "exit 0"
        print(f"  cascade stage {stage.name}: {' '.join(stage.argv)} (passes on {passes})")
    if h.validation is not None:
        names = ", ".join(h.validation.metric_specs)
        print(f"  validation on each new best: {' '.join(h.validation.argv)} -> {names}")


def _print_stages(spec: Spec, plan: Plan) -> None:
    """Each pipeline stage's plan is made too, so that its files and operator resolve."""
    from metaexp.run.pipeline import stages

    for i, stage_spec in enumerate(stages(spec)):
        frozen = f"; frozen: {', '.join(sorted(stage_spec.frozen))}" if stage_spec.frozen else ""
        make_plan(stage_spec, start=plan.start)  # its files and operator resolve
        print(
            f"  pipeline stage {i + 1} {stage_spec.tag}: target {', '.join(stage_spec.target)}, "
            f"objective {stage_spec.direction} {stage_spec.objective.primary}{frozen}"
        )
