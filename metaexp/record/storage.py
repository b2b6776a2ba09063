"""The run's Optuna storage: which backend a spec's `storage:` names, opening a run's study, and what
the study says about the run (metric names, the spec as a note for optuna-dashboard)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaexp.errors import SpecError

if TYPE_CHECKING:
    import optuna

    from metaexp.spec import Spec

__all__ = ["describe_study", "grpc_proxy", "make_storage", "masked", "open_study"]

# Journal storages by file, kept for the process: opening one replays the whole file, which grows
# with every run of a study (O(runs^2) replays for a study or a meta study). An open one reads
# only what was appended since (other processes' writes included). The file's first line (unique:
# it names its writer's uuid) and a size that never shrank tell it is still the file replayed.
_JOURNALS: dict[str, tuple[bytes, int, Any]] = {}


def open_study(storage: str | None, root: Path, tag: str, direction: str | list[str]) -> optuna.Study:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = [direction] if isinstance(direction, str) else direction
    try:
        return optuna.create_study(
            storage=make_storage(storage, root), study_name=tag, directions=directions, load_if_exists=True
        )
    except (ImportError, OSError) as exc:  # a missing database driver, an unwritable journal
        raise SpecError(f"storage {masked(storage or '.metaexp/optuna.journal')}: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("sqlalchemy", "grpc"):
            raise
        raise SpecError(f"storage {masked(storage or '')}: cannot open it: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    """A database error's own message, without SQLAlchemy's wrapping and background link."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_study(study: optuna.Study, metric_names: list[str], spec: Spec | None) -> None:
    """Metric names, and the spec as declared (presets resolved, defaults left out: what tells runs
    apart) as the study's user attr `spec` and, when optuna-dashboard is installed, as its note.
    Written only when missing or changed: a resumed run adds nothing to the storage, and a note
    edited in the dashboard stays until the spec changes."""
    if study.metric_names != metric_names:
        import warnings

        from optuna.exceptions import ExperimentalWarning

        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in practice
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names(metric_names)
    if spec is None:
        return
    data = json.loads(spec.model_dump_json(exclude_unset=True))
    if data.get("storage"):
        data["storage"] = masked(data["storage"])  # the study is shown to whoever reads the storage
    changed = study.user_attrs.get("spec") != data
    if changed:
        study.set_user_attr("spec", data)
    try:
        from optuna_dashboard import get_note, save_note
    except ImportError:  # the ledger works without the dashboard
        return
    if changed or not get_note(study):
        import yaml

        spec_yaml = yaml.safe_dump(data, sort_keys=False)
        save_note(study, f"## metaexp run `{spec.tag}`\n\n```yaml\n{spec_yaml}```\n")


def make_storage(url: str | None, root: Path) -> Any:
    """None: the repository's journal file. A path: a journal file. grpc://HOST:PORT: Optuna's gRPC
    storage proxy (docs/storage.md). Else any Optuna RDB URL."""
    if url and url.startswith("grpc://"):
        return grpc_proxy(url)
    if url and "://" in url:
        return url
    path = Path(url) if url else Path(".metaexp") / "optuna.journal"
    path = path if path.is_absolute() else root / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return _journal(path)


def _journal(path: Path) -> Any:
    """The process's storage of the journal file at `path` (see _JOURNALS)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    key = str(path.resolve())
    known = _JOURNALS.get(key)
    if known is not None and _identity(path) == known[0]:
        size = path.stat().st_size
        if size >= known[1]:
            _JOURNALS[key] = (known[0], size, known[2])
            return known[2]
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))  # creates the file
    identity = _identity(path)
    if identity:  # an empty journal is not kept: a file begun elsewhere could not be told apart
        _JOURNALS[key] = (identity, path.stat().st_size, storage)
    return storage


def _identity(path: Path) -> bytes:
    """A journal's first line (its first study's creation, with its writer's uuid); b"" while it
    has none."""
    try:
        with path.open("rb") as f:
            head = f.readline(65536)
    except FileNotFoundError:
        return b""
    return head if head.endswith(b"\n") else b""


def grpc_proxy(url: str) -> Any:
    """A client of `optuna.storages.run_grpc_proxy_server` at grpc://HOST:PORT (needs grpcio)."""
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import GrpcStorageProxy

    host, _, port = url.removeprefix("grpc://").rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise SpecError(f"storage: {url!r}: a gRPC storage proxy is given as grpc://HOST:PORT")
    try:
        import grpc  # noqa: F401  (optuna imports it lazily, and fails late without it)
    except ImportError:
        raise SpecError(f"storage: {url!r} needs grpcio: pip install 'metaexp[grpc]'") from None
    with warnings.catch_warnings():  # experimental since Optuna 4.2
        warnings.simplefilter("ignore", ExperimentalWarning)
        return GrpcStorageProxy(host=host.strip("[]"), port=int(port))


def masked(url: str) -> str:
    """A storage URL with its password replaced by ***, for printing and for the study's note."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)
