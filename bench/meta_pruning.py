"""Outer meta studies with and without pruning: inner experiments spent, and the strategy each finds.

    python bench/meta_pruning.py [--trials 16] [--budget 12] [--seeds 0,1,2]
    python bench/meta_pruning.py --pruners none,successive_halving,median   # add the median pruner
    # defaults: 6 studies of 16 trials on the NK landscape

Each study is `metaexp meta` (the Python API) on harnesses/landscapes/rastrigin
(a local minimum near every integer point, 0.0 at the origin) in a fresh
temporary git repository: 16 outer trials over the strategy space below, each
an inner run of `--budget` experiments, under one outer seed (the TPE
sampler's seed and the inner runs' start seed). The same outer seeds run with
every pruner, so the unpruned study is the reference.

A single inner run's best is noisy, so the strategy a study picks is then
re-evaluated on `--reeval` fresh inner seeds (the same seeds for every study):
"within noise" means its mean there is within the spread of the unpruned
studies' picks. Figures per study: outer trials by state, inner experiments
spent, the best trial's outer value, and the re-evaluated mean ± sd.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
LANDSCAPES = ROOT / "harnesses" / "landscapes"
SPACE = {
    "strategy.explore_rate": {"type": "float", "low": 0.0, "high": 0.3},
    "strategy.explore_every": {"type": "categorical", "choices": [None, 3, 5, 10]},
    "operator.style": {"type": "categorical", "choices": ["conservative", "bold", "radical", "global"]},
}
PRUNERS = {
    "none": {"kind": "none"},
    "median": {"kind": "median"},  # metaexp's default pruner: startup_trials 3, warmup_steps 3
    # metaexp's default: the first rung at a quarter of the inner budget (min_resource auto)
    "successive_halving": {"kind": "successive_halving", "reduction_factor": 3},
    # the setting measured before the default: rungs at 2, 6 and 18 of 20 experiments
    "successive_halving_2": {"kind": "successive_halving", "min_resource": 2, "reduction_factor": 3},
    "hyperband": {"kind": "hyperband", "reduction_factor": 3},
}


def git(cwd: Path, *args: str) -> None:
    env = {
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@b",
    }
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **env})


def make_repo(root: Path, landscape: str, budget: int, nk_seed: int | None = None) -> None:
    root.mkdir(parents=True)
    for name in ("evaluate.py", f"{landscape}.py"):
        shutil.copy(LANDSCAPES / name, root / name)
    if nk_seed is not None:  # a held-out NK landscape: other tables, the same N and K
        harness = root / "evaluate.py"
        text = harness.read_text()
        if "NK_SEED = 1\n" not in text:
            raise SystemExit(f"--nk-seed: {LANDSCAPES / 'evaluate.py'} no longer sets NK_SEED = 1")
        harness.write_text(text.replace("NK_SEED = 1\n", f"NK_SEED = {nk_seed}\n"))
    shutil.copy(ROOT / "search_spaces" / f"{landscape}.yaml", root / "space.yaml")
    (root / "strategy.yaml").write_text(yaml.safe_dump(SPACE))
    spec = yaml.safe_load((LANDSCAPES / f"{landscape}.yaml").read_text())
    spec["operator"]["space"] = "space.yaml"
    spec["budget"] = {"max_experiments": budget}  # no target: every unpruned inner run spends its budget
    (root / "metaexp.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")


def study(root: Path, pruner: str, seed: int, trials: int) -> dict:
    from metaexp.meta.outer import plan_meta, run_meta
    from metaexp.meta.spec import MetaSpec
    from metaexp.record.storage import open_study
    from metaexp.spec import load_spec

    path = root / "metaexp.yaml"
    tag = f"{pruner}-s{seed}"
    meta = {"tag": tag, "space": "strategy.yaml", "trials": trials, "pruner": PRUNERS[pruner], "seed": seed}
    spec = load_spec(path).model_copy(update={"seed": seed, "meta": MetaSpec.model_validate(meta)})
    t0 = time.monotonic()
    run_meta(plan_meta(spec, path), out=io.StringIO())
    outer = open_study(None, root, tag, "minimize")  # loads the study: its stored direction holds
    trials_ = outer.get_trials()
    best = outer.best_trial
    states = {s: sum(t.state.name == s for t in trials_) for s in ("COMPLETE", "PRUNED", "FAIL")}
    named = outer.user_attrs.get("reevaluation") or {}  # the study's own pick, after its fresh seeds
    return {
        "pruner": pruner,
        "seed": seed,
        "spent": sum(int(t.user_attrs.get("experiments", 0)) for t in trials_),
        "states": states,
        "best_value": best.value,
        "best_params": named.get("best_params", best.params),
        "picked_trial": named.get("best_trial", best.number),
        "seconds": time.monotonic() - t0,
    }


def reevaluate(root: Path, params: dict, label: str, seeds: list[int]) -> list[float]:
    """The strategy's best after the budget on fresh inner seeds."""
    from metaexp.meta.space import sampled_spec
    from metaexp.meta.trial import best_so_far
    from metaexp.record.records import read_records
    from metaexp.run import run
    from metaexp.spec import load_spec

    base = load_spec(root / "metaexp.yaml")
    finals = []
    for s in seeds:
        tag = f"re-{label}-{s}"
        spec = sampled_spec(base, params, tag, s, root / "strategy.yaml")
        run(spec, out=io.StringIO())
        finals.append(best_so_far(read_records(root / ".metaexp" / tag / "experiments.jsonl"))[-1])
    return finals


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--landscape", default="nk", choices=["nk", "rastrigin", "deceptive"])
    parser.add_argument("--budget", type=int, default=20, help="inner experiments per inner run")
    parser.add_argument("--seeds", default="0,1,2", help="outer seeds")
    parser.add_argument("--pruners", default="none,successive_halving,successive_halving_2")
    parser.add_argument(
        "--nk-seed", type=int, default=None, help="nk: a held-out landscape (NK_SEED; the shipped one is 1)"
    )
    parser.add_argument("--reeval", type=int, default=4, help="fresh inner seeds per picked strategy")
    parser.add_argument("--smoke", action="store_true", help="2 trials x 4 experiments, 1 seed: that it runs")
    args = parser.parse_args()
    if args.nk_seed is not None and args.landscape != "nk":
        parser.error(f"--nk-seed: only with --landscape nk (got {args.landscape})")
    unknown = [p for p in args.pruners.split(",") if p not in PRUNERS]
    if unknown:
        parser.error(f"--pruners: unknown {', '.join(unknown)} (one of {', '.join(PRUNERS)})")
    if args.smoke:
        args.trials, args.budget, args.seeds, args.reeval = 2, 4, "0", 1
    seeds = [int(s) for s in args.seeds.split(",")]
    fresh = [1000 + k for k in range(args.reeval)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="meta-pruning-") as tmp:
        root = Path(tmp) / "repo"
        make_repo(root, args.landscape, args.budget, args.nk_seed)
        for pruner in args.pruners.split(","):
            for seed in seeds:
                row = study(root, pruner, seed, args.trials)
                row["reeval"] = reevaluate(root, row["best_params"], f"{pruner}-s{seed}", fresh)
                rows.append(row)
                print(_line(row), flush=True)
    print()
    held_out = f" (NK_SEED {args.nk_seed})" if args.nk_seed is not None else ""
    sizes = f"{args.trials} trials x {args.budget} experiments, seeds {seeds}, fresh {fresh}"
    print(f"{args.landscape}{held_out}: {sizes}")
    head = f"{'pruner':<20}{'spent (mean)':>14}{'vs none':>9}{'outer best (mean)':>19}{'re-eval mean':>14}"
    print(head + f"{'pick no worse than none':>26}")
    by = {p: [r for r in rows if r["pruner"] == p] for p in args.pruners.split(",")}
    ref = statistics.fmean(r["spent"] for r in by.get("none", rows))
    sign = _sign(args.landscape)
    unpruned = {r["seed"]: statistics.fmean(r["reeval"]) for r in by.get("none", [])}
    for pruner, group in by.items():
        spent = statistics.fmean(r["spent"] for r in group)
        outer = statistics.fmean(r["best_value"] for r in group)
        re_mean = statistics.fmean(v for r in group for v in r["reeval"])
        held = [
            sign * statistics.fmean(r["reeval"]) >= sign * unpruned[r["seed"]]
            for r in group
            if r["seed"] in unpruned
        ]
        print(
            f"{pruner:<20}{spent:>14.1f}{1 - spent / ref:>8.0%} {outer:>18.4f}{re_mean:>14.4f}"
            f"{f'{sum(held)}/{len(held)} seeds':>26}"
        )
    print(
        "spent: inner experiments of the outer trials (the named pick's fresh-seed re-evaluation, the same "
        "for every pruner, not counted); pick: the strategy the study names after its own re-evaluation; "
        "re-eval: that pick on this bench's fresh seeds. Targets: >= 50% saved, the pruned pick no worse "
        "than the unpruned one on >= 2 of 3 outer seeds."
    )
    return 0


def _sign(landscape: str) -> float:
    """+1 when the landscape's metric is maximised, -1 when minimised."""
    metrics = yaml.safe_load((LANDSCAPES / f"{landscape}.yaml").read_text())["metrics"]
    direction = next(iter(metrics.values())).get("direction", "minimize")
    return 1.0 if direction == "maximize" else -1.0


def _line(row: dict) -> str:
    re = row["reeval"]
    spread = statistics.stdev(re) if len(re) > 1 else 0.0
    params = ", ".join(
        f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
        for k, v in row["best_params"].items()
    )
    return (
        f"{row['pruner']:<19} seed {row['seed']}: {row['states']} spent {row['spent']:>4} "
        f"best {row['best_value']:.4f} pick #{row['picked_trial']} "
        f"re-eval {statistics.fmean(re):.4f} ± {spread:.4f} "
        f"[{params}] {row['seconds']:.0f}s"
    )


if __name__ == "__main__":
    sys.exit(main())
