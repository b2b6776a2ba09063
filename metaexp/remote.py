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
    from metaexp.harness import Outcome
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
    spec: Spec, base_key: str, base_tar: bytes, files: dict[str, bytes], label: int, island: int
) -> tuple[Outcome, str, str]:
    """Runs in a Ray worker: unpack the base once per node, run the harness in a sandbox."""
    import ray

    from metaexp.harness import evaluate
    from metaexp.sandbox import BaseTree

    base = _BASES.get(base_key)
    if base is None:
        root = Path(tempfile.gettempdir()) / "metaexp-bases" / base_key / "base"
        base = _BASES[base_key] = BaseTree(root, base_tar, base_key)
    fd, log = tempfile.mkstemp(prefix="metaexp-log-", suffix=".log")
    os.close(fd)
    try:
        outcome = evaluate(spec, base, label, files, Path(log), extra_env={"METAEXP_ISLAND": str(island)})
        with open(log, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - LOG_RETURN_BYTES))
            text = fh.read().decode(errors="replace")
    finally:
        os.unlink(log)
    return outcome, text, ray.get_runtime_context().get_node_id()


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


def island_actor(name: str) -> Any:
    """The Island class as a Ray actor pinned to this (the driver's) node; `name` finds it
    (`ray.get_actor`), and a restarted island takes over the name of a dead one."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from metaexp.island import Island

    here = ray.get_runtime_context().get_node_id()
    return ray.remote(num_cpus=0, max_restarts=0)(Island).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
        name=name,
        get_if_exists=False,
    )
