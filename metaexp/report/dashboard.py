"""optuna-dashboard on a run's Optuna storage: every run's study side by side, with its spec as a note,
and each try's artifacts (diff, log tail, changed files) from the spec's artifact store."""

from __future__ import annotations

import errno
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from metaexp.errors import MetaexpError
from metaexp.record.artifacts import make_store, store_label
from metaexp.record.storage import make_storage, masked
from metaexp.spec.artifacts import ArtifactsSpec

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

STOP_WAIT_S = 5.0  # after Ctrl-C: how long a request in flight may take to be answered


@dataclass(frozen=True)
class Target:
    """What to show: a storage (URL or journal path, None for the default journal) and its repository."""

    storage: str | None
    root: Path
    tag: str | None  # the spec's run, pointed to first; None when only a storage was given
    artifacts: ArtifactsSpec = field(default_factory=ArtifactsSpec)  # the default: .metaexp/artifacts


def resolve(
    spec_arg: str | None, storage_arg: str | None, cwd: Path, artifact_dir: str | None = None
) -> Target:
    """The spec's storage, `--storage` instead of it, or ./metaexp.yaml when neither was given; the
    spec's artifact store, or `--artifact-dir` instead of it."""
    from metaexp.spec import load_spec

    spec_path = Path(spec_arg) if spec_arg else cwd / "metaexp.yaml"
    given = ArtifactsSpec(path=str(cwd / artifact_dir)) if artifact_dir is not None else None
    if spec_arg is None and not spec_path.exists():
        if storage_arg is None:
            raise MetaexpError(
                f"no spec given and no metaexp.yaml in {cwd}: "
                "run `metaexp dashboard PATH/TO/SPEC.yaml`, or `metaexp dashboard --storage URL_OR_JOURNAL`"
            )
        return Target(storage_arg, cwd, None, given or ArtifactsSpec())
    spec = load_spec(spec_path)
    storage = storage_arg if storage_arg is not None else spec.storage
    return Target(storage, spec.root, spec.tag, given or spec.artifacts)


def open_storage(target: Target) -> Any:
    """An Optuna storage object; a journal file that does not exist yet is an error, not a new file."""
    url = target.storage
    if url and url.startswith("grpc://"):
        return make_storage(url, target.root)
    if url and "://" in url:
        return open_rdb(url)
    path = Path(url) if url else Path(".metaexp") / "optuna.journal"
    path = path if path.is_absolute() else target.root / path
    if not path.is_file():
        hint = "start a run first (metaexp run SPEC)" if target.tag else "give an existing journal file"
        raise MetaexpError(f"no Optuna journal at {path}: {hint}")
    return make_storage(url, target.root)


def open_rdb(url: str) -> Any:
    """An RDB storage as optuna-dashboard opens one (no schema changes), reached once to fail early."""
    from optuna.storages import RDBStorage

    try:
        storage = RDBStorage(url, skip_compatibility_check=True, skip_table_creation=True)
        storage.get_all_studies()
    except ModuleNotFoundError as exc:  # the database driver, e.g. psycopg2
        raise MetaexpError(
            f"{masked(url)}: {exc.name} is not installed (PostgreSQL: pip install 'metaexp[postgres]')"
        ) from None
    except Exception as exc:  # sqlalchemy's errors: unreachable server, bad credentials, no tables
        cause = exc.__cause__ or exc  # Optuna wraps the driver's error in a generic one
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise MetaexpError(f"cannot open the Optuna storage {masked(url)}: {first}") from None
    return storage


def shown(url: str | None, root: Path) -> str:
    """The storage as printed: a URL's password masked; the default journal's path."""
    if url and "://" in url:
        return masked(url)
    return str(root / (url or ".metaexp/optuna.journal"))


def make_server(storage: Any, host: str, port: int, artifact_store: Any = None) -> WSGIServer:
    """A single-threaded WSGI server (optuna-dashboard's own default) that logs no request lines;
    with `artifact_store`, optuna-dashboard serves the trials' artifacts from it."""
    from wsgiref.simple_server import WSGIRequestHandler
    from wsgiref.simple_server import make_server as wsgi_server

    try:
        import optuna_dashboard
    except ImportError:
        raise MetaexpError(
            "optuna-dashboard is not installed: pip install 'optuna-dashboard>=0.21'"
        ) from None

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    try:
        app = optuna_dashboard.wsgi(storage, artifact_store=artifact_store)
        return wsgi_server(host, port, app, handler_class=Quiet)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise MetaexpError(f"port {port} on {host} is in use: choose another with --port") from None
        raise MetaexpError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def study_links(storage: Any, base: str, tag: str | None) -> list[str]:
    """One line per study (trials, link); the spec's own run first; a compare link for several."""
    studies = sorted(storage.get_all_studies(), key=lambda s: (s.study_name != tag, s.study_name))
    lines = []
    for s in studies:
        n = storage.get_n_trials(s._study_id)
        lines.append(f"  {s.study_name}: {n} trials  {base}/studies/{s._study_id}")
    if len(studies) > 1:
        ids = ",".join(str(s._study_id) for s in studies)
        lines.append(f"  compare: {base}/compare-studies?ids={ids}")
    if tag is not None and not any(s.study_name == tag for s in studies):
        lines.insert(0, f"  {tag}: no study yet (metaexp run SPEC records one)")
    return lines


def serve(target: Target, host: str, port: int, out: TextIO = sys.stdout) -> int:
    """Serve until Ctrl-C (or SIGTERM); 0 then."""
    storage = open_storage(target)
    server = make_server(storage, host, port, make_store(target.artifacts, target.root, create=False))
    shown_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    base = f"http://{shown_host}:{server.server_port}/dashboard"
    print(f"optuna-dashboard on {shown(target.storage, target.root)}", file=out)
    print(f"artifacts from {store_label(target.artifacts, target.root)}", file=out)
    for line in study_links(storage, base, target.tag):
        print(line, file=out)
    print(f"listening at {base}  (Ctrl-C stops)", file=out, flush=True)
    run_until_interrupted(server, out)
    print("dashboard stopped", file=out, flush=True)
    return 0


def run_until_interrupted(server: WSGIServer, out: TextIO = sys.stdout) -> None:
    """Serve until Ctrl-C or SIGTERM, then answer the request in flight (for up to STOP_WAIT_S) and
    close. Requests are served on a thread of their own, and the signals are taken synchronously
    (blocked, then sigtimedwait) rather than as a KeyboardInterrupt: wsgiref swallows one that lands
    inside a request, and one that interrupts Thread.join can leave the thread looking finished
    while its request is still running (the old code then closed the server under it)."""
    import signal
    import threading

    stops = {signal.SIGINT, signal.SIGTERM}
    stopped = threading.Event()

    def serve() -> None:
        try:
            server.serve_forever()
        finally:
            stopped.set()

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # the serving thread inherits it
    try:
        threading.Thread(target=serve, name="dashboard", daemon=True).start()
        while not stopped.is_set():
            if signal.sigtimedwait(stops, 0.5) is not None:
                what = f"stopping: answering the request in flight (up to {STOP_WAIT_S:g} s)"
                print(what, file=out, flush=True)
                threading.Thread(target=server.shutdown, daemon=True).start()  # the request ends first
                stopped.wait(STOP_WAIT_S)
                break
        while signal.sigtimedwait(stops, 0) is not None:  # a second Ctrl-C meanwhile: taken too
            pass
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        server.server_close()


__all__ = [
    "Target",
    "make_server",
    "open_rdb",
    "open_storage",
    "resolve",
    "run_until_interrupted",
    "serve",
    "shown",
    "study_links",
]
