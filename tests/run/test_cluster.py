"""The cluster path: a real local two-node Ray cluster, evaluations pinned to the second node."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project

pytest.importorskip("ray")

# Ray 2.60 clusters use token auth: every node and driver needs the mode and the same token (a fresh
# machine has no ~/.ray/auth_token, and `ray start --head` does not create one).
TOKEN = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
ENV = {**os.environ, **TOKEN}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _nodes(address: str) -> list[dict]:
    script = (
        "import json, ray\n"
        f"ray.init(address={address!r}, log_to_driver=False, configure_logging=False)\n"
        "print(json.dumps([{'id': n['NodeID'], 'alive': n['Alive'], 'resources': n['Resources']} "
        "for n in ray.nodes()]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=60)
    return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else []


class Cluster:
    """A local two-node cluster: the head (1 CPU) and a worker node (2 CPUs and resource node2),
    each started by PID with `ray start --block` in a session of its own and stopped by it."""

    def __init__(self, temp: Path) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.common = ["--block", "--disable-usage-stats", f"--temp-dir={temp}"]
        self.head = _start(
            ["--head", f"--port={self.port}", "--num-cpus=1", "--include-dashboard=false"], self
        )
        self.worker: subprocess.Popen[bytes] | None = None
        _wait_for(lambda: len(_nodes(self.address)) >= 1, "the head node")
        self.second = self.start_worker()

    def start_worker(self) -> str:
        """Start the worker node; its node id once it is alive."""
        known = {n["id"] for n in _nodes(self.address)}
        self.worker = _start([f"--address={self.address}", "--num-cpus=2", '--resources={"node2": 2}'], self)
        _wait_for(lambda: any(n["alive"] and n["id"] not in known for n in _nodes(self.address)), "a worker")
        return next(n["id"] for n in _nodes(self.address) if n["alive"] and n["id"] not in known)

    def kill_worker(self) -> None:
        """What a lost machine does: every process of the worker node dies at once."""
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()

    def stop(self) -> None:
        for proc in (self.worker, self.head):
            if proc is not None:
                _stop(proc)


def _start(args: list[str], cluster: Cluster) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ray", "start", *args, *cluster.common],
        env=ENV,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = None
    try:
        made = Cluster(tmp_path_factory.mktemp("ray"))
        yield made
    finally:
        if made is not None:
            made.stop()


def _wait_for(check: object, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(1)
    raise AssertionError(f"{what} did not come up within {timeout:g}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.timeout(300)
def test_evaluations_land_on_the_node_that_has_the_resource(project: Project, cluster: Cluster) -> None:
    address, second = cluster.address, cluster.second
    project.spec(
        strategy={"islands": 2, "population": 2},
        ray={
            "address": address,
            "max_concurrent_evals": 2,
            "eval_resources": {"num_cpus": 0.5, "resources": {"node2": 0.5}},
        },
        budget={"max_experiments": 6},
    )
    run = project.cli("run", "metaexp.yaml", env=TOKEN)
    assert "max_experiments=6 reached" in run.stderr
    records = project.assert_consistent()
    evaluated = [r for r in records if r.status.harness_ran]
    assert len(evaluated) == 6
    assert {r.extra["node"] for r in evaluated} == {second}  # pinned through the custom resource
    assert Path(project.root / ".metaexp/landscape/logs/2.log").exists()  # logs came back to the head


@pytest.mark.timeout(120)
def test_a_request_no_node_can_meet_is_an_error(project: Project, cluster: Cluster) -> None:
    address = cluster.address
    project.spec(
        strategy={"islands": 2},
        ray={"address": address, "eval_resources": {"num_gpus": 1}},
        budget={"max_experiments": 4},
    )
    run = project.cli("run", "metaexp.yaml", env=TOKEN, check=False)
    assert run.returncode == 1
    assert "ray.eval_resources: no node can give {'GPU': 1}" in run.stderr


@pytest.mark.timeout(300)
def test_a_lost_worker_node_costs_no_experiment_and_a_returning_one_is_used(
    project: Project, cluster: Cluster
) -> None:
    """The last test of the module: it kills the worker node (and starts it again)."""
    project.write("slow.py", "import time\ntime.sleep(1.0)\nexec(open('evaluate.py').read())\n")
    project.spec(
        strategy={"islands": 2, "population": 2},
        harness={"command": "python slow.py", "immutable": ["evaluate.py", "slow.py"]},
        ray={"address": cluster.address, "max_concurrent_evals": 3, "eval_resources": {"num_cpus": 0.5}},
        budget={"max_experiments": 36},
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "metaexp", "run", "metaexp.yaml"],
        cwd=project.root,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )

    def on(node: str) -> int:
        return sum(1 for r in project.records() if r.extra.get("node") == node)

    _wait_for(lambda: on(cluster.second) >= 2, "two evaluations on the worker node")
    cluster.kill_worker()
    ran = len(project.records())
    _wait_for(lambda: len(project.records()) >= ran + 3, "three more records after the loss")
    back = cluster.start_worker()
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    assert "max_experiments=36 reached" in err
    records = project.assert_consistent()
    evaluated = [r for r in records if r.status.harness_ran]
    assert len(evaluated) == 36 and not any(r.status.failed for r in evaluated)  # retried, never lost
    assert on(back) >= 1  # the returning node got work again
