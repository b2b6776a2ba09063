"""Ray glue: connecting, the evaluation task, and the island actor.

Evaluations are Ray tasks with the spec's resources, so a GPU harness lands
on a GPU node. The base tree travels once through the object store and is
unpacked once per node; a task gets the candidate's target files and returns
the outcome, the log and where it ran. Island actors live on the driver's
node, which also makes every LLM call (DESIGN.md: keys stay on the head).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaexp.errors import MetaexpError

if TYPE_CHECKING:
    from metaexp.evaluate.harness import Outcome
    from metaexp.spec import RaySpec, Spec

LOG_RETURN_BYTES = 1 << 20  # the last MiB of a harness log comes back to the head
_BASES: dict[str, Any] = {}  # per worker process: unpacked base trees by key


def connect(ray_spec: RaySpec) -> None:
    """Start or join Ray, and refuse a resource request no node can satisfy."""
    import ray

    if not ray.is_initialized():
        if ray_spec.address is None:
            ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=ray_spec.address, log_to_driver=False, configure_logging=False)
    check_resources(ray_spec.eval_resources, ray.cluster_resources())


def check_resources(request: dict[str, Any], cluster: dict[str, float]) -> None:
    wants = {
        "CPU": request.get("num_cpus", 1),
        "GPU": request.get("num_gpus", 0),
        **(request.get("resources") or {}),
    }
    missing = {k: v for k, v in wants.items() if v and cluster.get(k, 0) < v}
    if missing:
        have = ", ".join(f"{k}={v:g}" for k, v in sorted(cluster.items()) if not k.startswith("node:"))
        raise MetaexpError(
            f"ray.eval_resources: no node can give {missing} (the cluster has {have}); "
            "lower the request or add a node that has it"
        )


def evaluate_job(
    spec: Spec,
    base_key: str,
    base_tar: bytes,
    files: dict[str, bytes],
    label: int,
    island: int,
    noise: dict[str, Any] | None = None,
    tuning: dict[str, Any] | None = None,
) -> tuple[Outcome, str, str, dict[str, Any] | None]:
    """Runs in a Ray worker: unpack the base once per node, run the harness in a sandbox
    (the cascade first). With `noise` (a noisy harness), the whole paired test against the
    parent runs here: see `measure`. Returns the outcome, the log, the node, the test."""
    import ray

    from metaexp.evaluate.harness import evaluate

    base = _base(base_key, base_tar)
    fd, log = tempfile.mkstemp(prefix="metaexp-log-", suffix=".log")
    os.close(fd)
    env = {"METAEXP_ISLAND": str(island)}
    measured: dict[str, Any] | None = None
    try:
        if tuning is not None:
            outcome, measured = tune_job(spec, base, label, Path(log), env, tuning)
        elif noise is None:
            outcome = evaluate(spec, base, label, files, Path(log), extra_env=env, cascade=True)
        else:
            outcome, measured = measure(spec, base, label, files, Path(log), env, noise)
        with open(log, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - LOG_RETURN_BYTES))
            text = fh.read().decode(errors="replace")
    finally:
        for path in [Path(log), *Path(log).parent.glob(Path(log).stem + ".*.log")]:  # runs, stages
            path.unlink(missing_ok=True)
    return outcome, text, ray.get_runtime_context().get_node_id(), measured


def measure(
    spec: Spec,
    base: Any,
    label: int,
    files: dict[str, bytes],
    log: Path,
    env: dict[str, str],
    noise: dict[str, Any],
) -> tuple[Outcome, dict[str, Any]]:
    """The paired test of a child against its parent on a worker (metaexp.evaluate.repeats).

    noise: parent (commit), parent_files, cached ({seed: value} the driver knows for the
    parent), block and confirm_block (seed blocks). The parent's new runs come back in
    `incumbent_runs`, so the driver's cache grows and no seed costs the parent twice
    (unless two children of one parent are measured at the same time)."""
    from metaexp.decide.objectives import Objective
    from metaexp.evaluate.repeats import Repeater

    repeater = Repeater(spec, Objective.of(spec))
    for seed, value in noise["cached"].items():
        repeater.cache.put(noise["parent"], int(seed), float(value))

    run = _runner(spec, base, label, log, env)
    m = repeater.measure(
        run, files, noise["parent"], noise["parent_files"], noise["block"], noise["confirm_block"]
    )
    test = {
        "better": m.better,
        "reason": m.reason,
        "runs": m.runs,
        "incumbent_runs": m.incumbent_runs,
        "stats": m.stats,
        "cascade": m.cascade,
    }
    return m.outcome, test


def _runner(spec: Spec, base: Any, label: int, log: Path, env: dict[str, str]) -> Any:
    """One harness run of a task's candidate per (tree, seed, name): the first (cascade first)
    logs to `log`, run `name` to `<log>.<name>.log` (evaluate_job deletes them all)."""
    from metaexp.evaluate.harness import evaluate

    def run(tree: Any, seed: int, name: str) -> Outcome:
        first = name in ("", "0")
        path = log if first else log.with_name(f"{log.stem}.{name}.log")
        return evaluate(spec, base, label, tree, path, extra_env=env, seed=seed, cascade=first)

    return run


def tune_job(
    spec: Spec,
    base: Any,
    label: int,
    log: Path,
    env: dict[str, str],
    tuning: dict[str, Any],
) -> tuple[Outcome, dict[str, Any]]:
    """A hybrid candidate's constants tuned on a worker (metaexp.operators.tuning.tune): every tuning run
    here, the best one's files, params and runs back to the driver, which commits those."""
    from metaexp.decide.objectives import Objective
    from metaexp.operators.tuning import tune

    run = _runner(spec, base, label, log, env)
    cand = tuning["candidate"]
    tuned, outcome = tune(cand, tuning["parent_files"], run, Objective.of(spec), spec.seed, tuning["budget"])
    return outcome, {
        "tuned": {
            "files": tuned.files,
            "params": tuned.params,
            "extra": tuned.extra,
            "description": tuned.description,
        }
    }


def validate_job(
    spec: Spec, base_key: str, base_tar: bytes, files: dict[str, bytes], n: int
) -> dict[str, object]:
    """Runs in a Ray worker: the held-out validation harness on one tree (harness.validate)."""
    from metaexp.evaluate.harness import validate

    fd, log = tempfile.mkstemp(prefix="metaexp-validation-", suffix=".log")
    os.close(fd)
    try:
        return validate(spec, _base(base_key, base_tar), n, files, Path(log))
    finally:
        os.unlink(log)


def _base(base_key: str, base_tar: bytes) -> Any:
    """This worker's unpacked base tree (once per node and key)."""
    from metaexp.evaluate.sandbox import BaseTree

    base = _BASES.get(base_key)
    if base is None:
        root = Path(tempfile.gettempdir()) / "metaexp-bases" / base_key / "base"
        base = _BASES[base_key] = BaseTree(root, base_tar, base_key)
    return base


def _warm() -> str:
    import time

    import ray

    time.sleep(0.5)  # long enough that every slot needs a worker of its own
    return ray.get_runtime_context().get_worker_id()


def warm_workers(resources: dict[str, Any], slots: int) -> None:
    """Start one worker per evaluation slot before the run, so the first evaluations
    do not wait for Python workers to boot one after another."""
    import ray

    task = ray.remote(max_retries=0, **resources)(_warm)
    ray.get([task.remote() for _ in range(slots)])


def remote_evaluate(resources: dict[str, Any]) -> Any:
    """The evaluation as a Ray remote function with the spec's resources (never retried:
    a worker that dies mid-run is a crash row, not a second run)."""
    import ray

    return ray.remote(max_retries=0, **resources)(evaluate_job)


def remote_validate(resources: dict[str, Any]) -> Any:
    """The held-out validation as a Ray remote function with the evaluation's resources."""
    import ray

    return ray.remote(max_retries=0, **resources)(validate_job)


def island_actor(name: str) -> Any:
    """The Island class as a Ray actor pinned to this (the driver's) node; `name` finds it
    (`ray.get_actor`), and a restarted island takes over the name of a dead one."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from metaexp.run.island import Island

    here = ray.get_runtime_context().get_node_id()
    return ray.remote(num_cpus=0, max_restarts=0)(Island).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
        name=name,
        get_if_exists=False,
    )
