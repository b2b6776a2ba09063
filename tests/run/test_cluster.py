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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(address, node id of the second node); both nodes started by PID and stopped by PID."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = tmp_path_factory.mktemp("ray")
    common = ["--block", "--disable-usage-stats", f"--temp-dir={temp}"]
    head = subprocess.Popen(
        ["ray", "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false", *common],
        env=ENV,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs = [head]
    try:
        _wait_for(lambda: len(_nodes(address)) >= 1, "the head node")
        worker = subprocess.Popen(
            ["ray", "start", f"--address={address}", "--num-cpus=2", '--resources={"node2": 2}', *common],
            env=ENV,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(worker)
        _wait_for(lambda: sum(n["alive"] for n in _nodes(address)) >= 2, "the second node")
        second = next(n["id"] for n in _nodes(address) if "node2" in n["resources"])
        yield address, second
    finally:
        for proc in reversed(procs):
            _stop(proc)


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
def test_evaluations_land_on_the_node_that_has_the_resource(
    project: Project, cluster: tuple[str, str]
) -> None:
    address, second = cluster
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
def test_a_request_no_node_can_meet_is_an_error(project: Project, cluster: tuple[str, str]) -> None:
    address, _ = cluster
    project.spec(
        strategy={"islands": 2},
        ray={"address": address, "eval_resources": {"num_gpus": 1}},
        budget={"max_experiments": 4},
    )
    run = project.cli("run", "metaexp.yaml", env=TOKEN, check=False)
    assert run.returncode == 1
    assert "ray.eval_resources: no node can give {'GPU': 1}" in run.stderr
