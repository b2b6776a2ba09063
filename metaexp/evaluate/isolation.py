"""Isolation of the code under evaluation by Linux namespaces: bubblewrap, the sandbox Flatpak uses.

Inside, a harness (and the target code it imports) sees its candidate's tree, writable, at the
tree's own path; every file of the frozen base bound read-only into it (a read-only bind mount:
root cannot write through it either); the system and the Python it runs with, read-only; a
private /tmp and a throwaway $HOME. It does not see the user's checkout, its .git, .metaexp/ (the
ledger, the logs), the Optuna storage or the user's home. It runs in PID, IPC, UTS and mount
namespaces with bubblewrap as their parent, so when the supervisor kills bubblewrap at the
timeout everything inside dies, a setsid child included; without `harness.network: true` it has
no network, loopback included. A GPU evaluation gets the NVIDIA devices.

`harness.sandbox`: auto (the default) isolates where bubblewrap works and otherwise runs as
before, saying so once per run; required refuses to run without it; off runs as before. Where only
util-linux `unshare` is found, auto gets processes and network isolated but not the file system.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metaexp.errors import MetaexpError, SpecError

TOOLS_VARIABLE = "METAEXP_SANDBOX_TOOLS"  # which tools to look for ("bwrap:unshare"; "" hides both)
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/sys")
GPU_DEVICES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
HOME = "/home/harness"  # $HOME inside: an empty tmpfs


@dataclass(frozen=True)
class Isolation:
    tool: str  # bwrap | unshare | "" (none)
    why: str  # the line a run prints about it

    @property
    def full(self) -> bool:
        return self.tool == "bwrap"


def isolation_for(mode: str, network: bool) -> Isolation:
    """What `harness.sandbox: mode` gets on this machine; SpecError when it is required and missing."""
    if mode == "off":
        return Isolation("", "sandbox: off (harness.sandbox: off): the harness runs as you, with your files")
    tool = available()
    net = "the network" if network else "no network"
    if tool == "bwrap":
        return Isolation(
            tool, f"sandbox: bubblewrap (its own tree, the base read-only, {net}, own processes)"
        )
    if mode == "required":
        raise SpecError(
            "harness.sandbox: required, but bubblewrap does not work here "
            "(apt-get install bubblewrap; or set harness.sandbox: auto or off)"
        )
    if tool == "unshare":
        return Isolation(
            tool, f"sandbox: partial (unshare: own processes, {net}; no bwrap, files not hidden)"
        )
    return Isolation("", "sandbox: none (neither bwrap nor unshare works here): the harness runs as you")


def available() -> str:
    """The best isolation tool that works on this machine: bwrap, unshare or ""."""
    tools = os.environ.get(TOOLS_VARIABLE, "bwrap:unshare").split(":")
    return _probe(tuple(t for t in tools if t))


@functools.cache
def _probe(tools: tuple[str, ...]) -> str:
    checks = {
        "bwrap": ["--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
        "unshare": ["--pid", "--fork", "--kill-child", "--net", "true"],
    }
    for tool in tools:
        path = shutil.which(tool)
        if path and subprocess.run([path, *checks[tool]], capture_output=True, timeout=30).returncode == 0:
            return tool
    return ""


def wrap(
    iso: Isolation,
    argv: list[str],
    box: Path,
    base_files: dict[str, Path],
    network: bool,
    gpus: bool,
    base_root: Path | None = None,
) -> list[str]:
    """`argv` run inside the isolation, in the sandbox tree `box`; `base_files`: path in the tree
    -> the frozen file to bind read-only there; or `base_root`, the frozen base bound read-only as a
    whole (a tree whose base files are symlinks into it, as under harness.preload)."""
    if iso.tool == "unshare":
        return [
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--ipc",
            "--uts",
            *([] if network else ["--net"]),
            *argv,
        ]
    if iso.tool != "bwrap":
        return argv
    args = [
        "bwrap",
        "--unshare-all",
        *(["--share-net"] if network else []),
        "--die-with-parent",
        "--new-session",
    ]
    # The private /tmp and HOME first: a Python (a virtual environment) or a tree that lives under
    # /tmp is bound on top of them, not hidden by them.
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", HOME]
    for path in SYSTEM:
        args += ["--ro-bind-try", path, path]
    for path in _python_paths():
        args += ["--ro-bind", path, path]
    if gpus:
        args += _gpu_devices()
    args += ["--bind", str(box), str(box)]
    for rel, frozen in sorted(base_files.items()):
        args += ["--ro-bind", str(frozen), str(box / rel)]
    if base_root is not None:
        args += ["--ro-bind", str(base_root), str(base_root)]
    args += ["--remount-ro", "/"]  # nothing else writable: not even the folders made for the mounts
    return [*args, "--chdir", str(box), "--", *argv]


def wrap_server(
    iso: Isolation, argv: list[str], trees: Path, base_root: Path, network: bool, gpus: bool
) -> list[str]:
    """The warm harness server (forkserver.py) inside the isolation, as PID 1 of its namespace (the
    forks' orphans come back to it; the namespace dies with it): every sandbox tree under `trees`
    writable, the frozen base read-only, the rest as for a plain harness."""
    if iso.tool != "bwrap":
        return wrap(iso, argv, trees, {}, network, gpus)
    box = wrap(iso, argv, trees, {}, network, gpus, base_root=base_root)
    cut = box.index("--chdir")
    return [box[0], "--as-pid-1", *box[1:cut], "--chdir", "/", *box[cut + 2 :]]


@functools.cache
def _python_paths() -> tuple[str, ...]:
    """The interpreters and the package a harness may run with: this Python's prefixes (a virtual
    environment and the Python it was made from), and metaexp's own package (harnesses import it)."""
    import metaexp

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(metaexp.__file__).resolve().parent)}
    paths.add(str(Path(sys.executable).resolve().parent.parent))
    under_system = tuple(p for p in SYSTEM if p != "/sys")
    return tuple(sorted(p for p in paths if Path(p).exists() and not p.startswith(under_system)))


def gpus() -> list[str]:
    """This machine's NVIDIA GPU devices (nvidia0, nvidia1, ...)."""
    return sorted(n for n in os.listdir("/dev") if n.startswith("nvidia") and n[6:].isdigit())


def check_local_gpus(request: Mapping[str, Any]) -> None:
    """A GPU request evaluated on this machine (no Ray): refuse it here when there is no GPU."""
    wanted = request.get("num_gpus") or 0
    if wanted and len(gpus()) < wanted:
        raise MetaexpError(
            f"ray.eval_resources: num_gpus={wanted:g}, but this machine has {len(gpus())} GPU(s) "
            "(no /dev/nvidia* devices) and this run evaluates here; remove num_gpus or run on a GPU machine"
        )


def _gpu_devices() -> list[str]:
    args: list[str] = []
    for name in [*gpus(), *GPU_DEVICES]:
        args += ["--dev-bind-try", f"/dev/{name}", f"/dev/{name}"]
    return args
