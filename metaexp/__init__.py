"""metaexp: a declarative meta-optimiser for autoresearch-style experiment loops.

The Python API (the CLI's commands call the same functions)::

    import metaexp

    spec = metaexp.load_spec({"tag": "demo", ...}, root="path/to/project")  # or a YAML path
    result = metaexp.run(spec)            # runs, or resumes, until the budget stops it
    result.best_commit, result.best_metrics, result.counts, result.experiments_jsonl
    for record in result.records(): ...  # ExperimentRecord, one per try

`metaexp.study(...)` and `metaexp.meta(...)` run what `metaexp study` and `metaexp meta` run. Every
name is imported on first use, so `import metaexp` stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a tenth of `import metaexp`)
if TYPE_CHECKING:
    from typing import Any

    from metaexp.api import meta, run, study
    from metaexp.errors import MetaexpError, SpecError
    from metaexp.meta.outer import MetaResult
    from metaexp.record.records import ExperimentRecord, Status
    from metaexp.run.budget import RunResult, Tally
    from metaexp.spec import Spec
    from metaexp.spec.loading import load_spec
    from metaexp.study import StudyResult

__version__ = "0.1.0"

# name -> (module, attribute); no attribute: the module itself (run, study and meta are packages
# that are callable as the functions of metaexp/api.py, see there why)
_LAZY: dict[str, tuple[str, str | None]] = {
    "MetaexpError": ("metaexp.errors", "MetaexpError"),
    "SpecError": ("metaexp.errors", "SpecError"),
    "load_spec": ("metaexp.spec.loading", "load_spec"),
    "run": ("metaexp.run", None),
    "study": ("metaexp.study", None),
    "meta": ("metaexp.meta", None),
    "Spec": ("metaexp.spec.run", "Spec"),
    "RunResult": ("metaexp.run.budget", "RunResult"),
    "Tally": ("metaexp.run.budget", "Tally"),
    "StudyResult": ("metaexp.study.running", "StudyResult"),
    "MetaResult": ("metaexp.meta.outer", "MetaResult"),
    "ExperimentRecord": ("metaexp.record.records", "ExperimentRecord"),
    "Status": ("metaexp.record.records", "Status"),
}

__all__ = [
    "ExperimentRecord",
    "MetaResult",
    "MetaexpError",
    "RunResult",
    "Spec",
    "SpecError",
    "Status",
    "StudyResult",
    "Tally",
    "__version__",
    "load_spec",
    "meta",
    "run",
    "study",
]


def __getattr__(name: str) -> Any:
    """The API's names, imported when first asked for (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'metaexp' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
