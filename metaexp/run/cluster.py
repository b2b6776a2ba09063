"""Ray glue: connecting, the evaluation task around the one runner, and the lineage actor.

Evaluations are Ray tasks with the spec's resources, so a GPU harness lands on a GPU node. The
base tree travels once through the object store and is unpacked once per node; a task gets the job
(the candidate and how to evaluate it) and returns the Evaluation with the node it ran on.
Lineage actors live on the driver's node, which also makes every LLM call (keys stay on the head):
metaexp/run/hosts.py starts them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaexp.errors import MetaexpError

if TYPE_CHECKING:
    from metaexp.evaluate.runner import Evaluation, Job
    from metaexp.evaluate.sandbox import BaseTree
    from metaexp.spec import RaySpec, Spec

_BASES: dict[str, BaseTree] = {}  # per worker process: unpacked base trees by key
_WARMED: dict[tuple[str, str, str], int] = {}  # per driver process: workers warmed, by cluster, job, request
RETRIES = 2  # an evaluation whose worker (or node) dies runs again up to this often, then is a crash


def connect(ray_spec: RaySpec) -> None:
    """Start or join Ray, and refuse a resource request no node can satisfy."""
    import ray

    if not ray.is_initialized():
        address = ray_spec.address or "local"
        options = {"include_dashboard": False} if ray_spec.address is None else {}
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False, **options)
        except Exception as exc:  # Ray's own errors name no key: say which one
            last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise MetaexpError(
                f"ray.address {ray_spec.address!r}: Ray did not start or connect: {last}"
            ) from None
    check_resources(ray_spec.eval_resources, ray.cluster_resources())


def _wants(request: dict[str, Any]) -> dict[str, float]:
    """An eval_resources request as Ray's resource names."""
    return {
        "CPU": request.get("num_cpus", 1),
        "GPU": request.get("num_gpus", 0),
        **(request.get("resources") or {}),
    }


def check_resources(request: dict[str, Any], cluster: dict[str, float]) -> None:
    wants = _wants(request)
    missing = {k: v for k, v in wants.items() if v and cluster.get(k, 0) < v}
    if missing:
        have = ", ".join(f"{k}={v:g}" for k, v in sorted(cluster.items()) if not k.startswith("node:"))
        raise MetaexpError(
            f"ray.eval_resources: no node can give {missing} (the cluster has {have}); "
            "lower the request or add a node that has it"
        )


# --- the tasks, in a worker


def evaluate_task(spec: Spec, base_key: str, base_tar: bytes, job: Job) -> Evaluation:
    """Runs in a Ray worker: the one runner on this node's copy of the base."""
    import ray

    from metaexp.evaluate.runner import run_job

    evaluation = run_job(spec, _base(base_key, base_tar), job)
    return replace(evaluation, node=ray.get_runtime_context().get_node_id())


def validate_task(
    spec: Spec, base_key: str, base_tar: bytes, tree: Mapping[str, bytes], label: int
) -> tuple[dict[str, object], str]:
    """Runs in a Ray worker: the held-out validation harness on one tree."""
    from metaexp.evaluate.runner import run_validation

    return run_validation(spec, _base(base_key, base_tar), tree, label)


def _base(base_key: str, base_tar: bytes) -> BaseTree:
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


# --- the remote functions and actors, on the driver


def warm_workers(resources: dict[str, Any], slots: int, meanwhile: Callable[[], None] = lambda: None) -> None:
    """Start one worker per evaluation slot the cluster can run at once before the run, so the first
    evaluations do not wait for Python workers to boot one after another; once per process, job
    and request (a study's later runs find them up). `meanwhile` runs while they boot (after they
    were asked for, so they start first: the baseline needs one)."""
    import ray

    context = ray.get_runtime_context()
    key = (context.gcs_address, context.get_job_id(), repr(sorted(resources.items())))
    slots = min(slots, at_once(resources, ray.cluster_resources()))
    if _WARMED.get(key, 0) >= slots:
        meanwhile()
        return
    task = ray.remote(max_retries=0, **resources)(_warm)
    refs = [task.remote() for _ in range(slots)]
    meanwhile()
    ray.get(refs)
    _WARMED[key] = slots


def at_once(request: dict[str, Any], cluster: dict[str, float]) -> int:
    """How many tasks with these resources the whole cluster can run at the same time (at least 1)."""
    fits = [int(cluster.get(k, 0) // v) for k, v in _wants(request).items() if v]
    return max(1, min(fits, default=1))


def remote_tasks(resources: dict[str, Any]) -> tuple[Any, Any]:
    """The evaluation and the validation as Ray remote functions with the spec's resources. Ray
    runs one again elsewhere when its worker or node dies (RETRIES times: an evaluation is a fresh
    sandbox, so a second run is the same experiment); an exception inside it is never retried."""
    import ray

    return (
        ray.remote(max_retries=RETRIES, retry_exceptions=False, **resources)(evaluate_task),
        ray.remote(max_retries=RETRIES, retry_exceptions=False, **resources)(validate_task),
    )
