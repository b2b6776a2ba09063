"""A sandbox tree is reused by the next evaluation only when it is exactly as it was built: what one
candidate's harness leaves in its tree (a file, a folder, an extended attribute, a mode, a hard link,
a replaced link to the base) never reaches the next candidate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import Project

from metaexp.evaluate.sandbox import BaseTree, base_tar

# Each attack leaves one thing in the tree; its probe, run first by the next candidate's harness,
# says whether that thing is still there.
ATTACKS = {
    "file": ("open('left.txt', 'w').write('secret')", "os.path.exists('left.txt')"),
    "folder": ("os.mkdir('junk')", "os.path.isdir('junk')"),
    "xattr": ("os.setxattr('params.py', 'user.note', b'secret')", "bool(os.listxattr('params.py'))"),
    "mode": ("os.chmod('params.py', 0o640)", "os.stat('params.py').st_mode & 0o777 == 0o640"),
    "hard link": (
        "os.link('params.py', os.path.join(os.environ['OUT'], str(time.time_ns())))",
        "os.stat('params.py').st_nlink > 1",
    ),
    "folder time": ("os.utime('.', ns=(0, 12345))", "os.stat('.').st_mtime_ns == 12345"),
    "folder access time": (  # the modification time kept as it was: only the change time moves
        "os.utime('.', ns=(time.time_ns() + 10**12, os.stat('.').st_mtime_ns))",
        "os.stat('.').st_atime_ns > time.time_ns()",
    ),
    "file time": ("os.utime('params.py', ns=(12345, 12345))", "os.stat('params.py').st_atime_ns == 12345"),
    "replaced link": (
        "os.remove('space.yaml'); open('space.yaml', 'w').write('forged')",
        "not os.path.islink('space.yaml')",
    ),
}

HARNESS = """import os, time
seen = {probe}
{attack}
print("loss:", int(seen))
"""


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_what_a_harness_leaves_in_its_tree_never_reaches_the_next_candidate(
    project: Project, tmp_path: Path, attack: str
) -> None:
    if attack == "xattr":
        try:
            os.setxattr(project.root / "params.py", "user.probe", b"1")
            os.removexattr(project.root / "params.py", "user.probe")
        except OSError:
            pytest.skip("this filesystem has no user extended attributes")
    out = tmp_path / "out"
    out.mkdir()
    act, probe = ATTACKS[attack]
    project.write("leaver.py", HARNESS.format(probe=probe, attack=act))
    project.run(
        # sandbox off: the weakest case, where the base files are links in the tree the harness may
        # replace and its hard links may point out of the tree
        harness={
            "command": "python leaver.py",
            "immutable": ["leaver.py"],
            "sandbox": "off",
            "env": {"OUT": str(out)},
        },
        budget={"max_experiments": 3},
    )
    records = project.records()
    assert len(records) == 3
    assert all(r.status.name != "CRASH" for r in records), [r.log_tail for r in records]
    assert [r.metrics["loss"] for r in records] == [0, 0, 0]


def _base(tmp_path: Path) -> BaseTree:
    tar = base_tar({"evaluate.py": ("100644", b"print(1)\n"), "data/x.txt": ("100644", b"x\n")})
    return BaseTree(tmp_path / "base", tar, "key")


def test_a_released_tree_comes_back_rewritten_in_place_and_a_touched_one_is_rebuilt(tmp_path: Path) -> None:
    base = _base(tmp_path)
    box = base.sandbox({"params.py": b"X = 1\n"})
    inode = (box / "params.py").stat().st_ino
    base.release(box)
    again = base.sandbox({"params.py": b"X = 22\n"})
    assert again == box and (again / "params.py").stat().st_ino == inode  # nothing freed, nothing made
    assert (again / "params.py").read_bytes() == b"X = 22\n"
    assert os.readlink(again / "evaluate.py") == str(base.root / "evaluate.py")
    (again / "data" / "left.txt").write_text("secret")  # in a subfolder
    base.release(again)
    fresh = base.sandbox({"params.py": b"X = 3\n"})
    assert fresh != box and not box.exists()  # the touched tree was discarded
    assert sorted(p.name for p in fresh.rglob("*")) == ["data", "evaluate.py", "params.py", "x.txt"]
    base.release(fresh)
    other = base.sandbox({"params.py": b"X = 4\n", "more.py": b"Y = 1\n"})  # other target files
    assert other != fresh and not fresh.exists() and (other / "more.py").read_bytes() == b"Y = 1\n"


def test_a_named_tree_is_never_kept(tmp_path: Path) -> None:
    base = _base(tmp_path)
    box = base.sandbox({"params.py": b"X = 1\n"}, name="replay")
    base.release(box)
    assert not box.exists()


def test_trees_of_a_process_that_is_gone_are_discarded_when_a_base_opens(tmp_path: Path) -> None:
    base = _base(tmp_path)
    box = base.sandbox({"params.py": b"X = 1\n"})
    base.release(box)
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    orphan = box.parent / f"{dead}-{'0' * 32}"
    box.rename(orphan)  # as if that process had built it and been killed
    again = _base(tmp_path)
    assert not orphan.exists()
    assert again.sandbox({"params.py": b"X = 2\n"}).parent == box.parent
