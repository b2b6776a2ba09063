"""The Python API behind `import metaexp`: run, study and meta, the functions the CLI's commands call.

`metaexp.run`, `metaexp.study` and `metaexp.meta` are also the names of subpackages, and Python
binds a package's attribute to its subpackage once that is imported, so a plain function of the
same name would be replaced by the module on first use. Each of the three packages is therefore
callable instead (`callable_package`): calling it calls the function of its name here. Nothing heavy
is imported at module level: this module is imported by those packages and by `import metaexp`.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from metaexp.meta.outer import MetaResult
    from metaexp.run import Scheduler
    from metaexp.run.budget import OnRecord, RunResult
    from metaexp.spec import Spec
    from metaexp.spec.loading import SpecSource
    from metaexp.study import StudyResult

__all__ = ["callable_package", "meta", "run", "study"]


def run(
    spec: Spec | SpecSource,
    *,
    on_record: OnRecord | None = None,
    out: TextIO | None = None,
    root: str | os.PathLike[str] | None = None,
    scheduler: Scheduler | None = None,
) -> RunResult:
    """Run (or resume) a spec's experiments until its budget, Ctrl-C or `on_record` stops them.

    `spec` is a loaded Spec, or anything `load_spec` reads (a YAML path, or a dict with `root`).
    `on_record(record, tally)` is called after every record; a string it returns stops the run
    with that reason (the record's line is in experiments.jsonl then; its TSV row, Optuna trial
    and refs may still be being written, and all are when run returns). `out` receives the
    progress lines (default: stderr). Running the same spec
    again resumes from its ledger. The result names the best and where the ledger lies.
    """
    from metaexp.run import run as run_spec

    return run_spec(_spec(spec, root), out=out or sys.stderr, on_record=on_record, scheduler=scheduler)


def study(
    spec: SpecSource,
    strategies: Sequence[str] | None = None,
    seeds: int = 20,
    budget: int | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    out: TextIO | None = None,
    verbose: bool = False,
) -> StudyResult:
    """Every strategy on `seeds` seeds under one budget, as `metaexp study` runs them; rerun resumes.

    `spec` is a YAML path or a dict (with `root`) whose `budget.target` is the known optimum;
    `strategies` are preset names or strategy YAMLs (default: hill_climb, explore_exploit, islands,
    pbt); `budget` is evaluations per run (default budget.max_experiments). The outputs
    (study.json, study.txt, study.png) go to `out_dir` (default .metaexp/<tag>-study/).
    """
    from metaexp.study import DEFAULT_STRATEGIES, run_study

    chosen = DEFAULT_STRATEGIES if strategies is None else strategies
    stream = out or sys.stderr
    return run_study(spec, chosen, seeds, budget, out_dir, stream, verbose=verbose, root=root)


def meta(
    spec: Spec | SpecSource,
    *,
    space: str | None = None,
    trials: int | None = None,
    parallel: int | None = None,
    repeats: int | None = None,
    resume: bool = False,
    out: TextIO | None = None,
    root: str | os.PathLike[str] | None = None,
) -> MetaResult:
    """An outer Optuna study over strategies, each trial full inner runs, as `metaexp meta` runs it.

    The spec's `meta:` block holds the study's settings; the keyword arguments override it (None:
    as the block says). `space` is a strategy space YAML relative to the project, or a shipped one.
    `resume` continues a killed or finished outer study.
    """
    from metaexp.meta.outer import plan_meta, run_meta

    loaded = _spec(spec, root)
    source = str(spec) if isinstance(spec, str | os.PathLike) else "spec"
    plan = plan_meta(loaded, Path(source), space=space, trials=trials, parallel=parallel, repeats=repeats)
    return run_meta(plan, resume=resume, out=out or sys.stderr)


def _spec(spec: Spec | SpecSource, root: str | os.PathLike[str] | None) -> Spec:
    from metaexp.spec import Spec, load_spec

    if isinstance(spec, Spec):
        return spec
    return load_spec(spec, root=root)


class _CallablePackage(types.ModuleType):
    """A subpackage whose call is this module's function of the same name (metaexp.run(spec))."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        function = globals()[self.__name__.rpartition(".")[2]]
        return function(*args, **kwargs)


def callable_package(name: str) -> None:
    """Make the package `name` (metaexp.run, metaexp.study, metaexp.meta) callable as its API function."""
    sys.modules[name].__class__ = _CallablePackage
