"""metaexp init --example NAME DIR: a fresh git repo with target, harness and spec."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import yaml

from metaexp.errors import MetaexpError
from metaexp.resources import data_dir


def examples() -> list[str]:
    root = data_dir("harnesses")
    return sorted(p.name.replace("_", "-") for p in root.iterdir() if (p / "metaexp.yaml").is_file())


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create a new project from an example")
    p.add_argument("--example", required=True, help="one of: " + ", ".join(examples()))
    p.add_argument("dir", help="a new (or empty) directory")


def run(args: argparse.Namespace) -> int:
    source = data_dir("harnesses") / args.example.replace("-", "_")
    if not (source / "metaexp.yaml").is_file():
        raise MetaexpError(f"--example: unknown example {args.example!r} (one of: {', '.join(examples())})")
    dest = Path(args.dir)
    if dest.exists() and any(dest.iterdir()) and not _fresh_repository(dest):
        raise MetaexpError(f"{dest} exists and is not empty; pick a new directory")
    shutil.copytree(
        source, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".metaexp")
    )
    for space in _spaces(dest):  # make the project self-contained: its search spaces travel with it
        target = dest / space
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_dir("search_spaces") / Path(space).name, target)
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(
        dest,
        "-c",
        "user.name=metaexp",
        "-c",
        "user.email=metaexp@localhost",
        "commit",
        "-q",
        "-m",
        f"{args.example}: example from metaexp init",
    )
    print(
        f"created {dest} from example {args.example}; next:\n"
        f"  cd {dest}\n  metaexp validate metaexp.yaml\n  metaexp run metaexp.yaml"
    )
    return 0


def _spaces(dest: Path) -> set[str]:
    """The operator.space of every spec in the example (the landscapes example has several)."""
    spaces = set()
    for path in dest.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and "harness" in data and isinstance(data.get("operator"), dict):
            space = data["operator"].get("space")
            if space and not (dest / space).exists():
                spaces.add(str(space))
    return spaces


def _fresh_repository(dest: Path) -> bool:
    """`dest` holds only a git repository without a commit (what `git init DIR` leaves): empty."""
    if [p.name for p in dest.iterdir()] != [".git"]:
        return False
    head = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=dest, capture_output=True)
    return head.returncode != 0


def _git(cwd: Path, *args: str) -> None:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MetaexpError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
