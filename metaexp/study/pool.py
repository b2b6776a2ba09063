"""A study's runs side by side: up to W at once, each in a worker process of its own.

The workers are a `concurrent.futures.ProcessPoolExecutor` with the spawn start method (a fresh
interpreter: no state of the driver's, no forked Ray or git pipes). Each run is an ordinary run
with its own tag, lock, ledger, branch and worktree, so two runs never write the same file or ref;
they share the repository's object store (objects are written whole and renamed into place), its
ref database (`git update-ref` locks each ref) and the Optuna journal (locked per write).

Ray: population runs need it, and W workers must not start W local clusters. The driver starts
(or joins, `ray.address`) one cluster while the workers start, and a worker joins that cluster by
its address (with the driver's token-authentication settings) before its first population run, so
every population of the study shares the one cluster's CPUs; single-lineage runs run their
harnesses in their worker, outside Ray.

Signals: a worker is in a process group of its own and dies with the driver (PDEATHSIG), so a
killed study leaves no run behind holding its lock. Ctrl-C reaches the driver, which stops
starting runs and passes each Ctrl-C on to the workers: the first lets their runs finish the
experiments in flight (as a single run does), the second stops them at once. A worker that dies
takes the runs in flight with it (the pool is broken): they are reported as failed, the study goes
on with a fresh pool, and the next study resumes them from their ledgers.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from metaexp.crashpoints import crashpoint
from metaexp.errors import MetaexpError
from metaexp.run import scheduler_for
from metaexp.run.hosts import keep_between_runs
from metaexp.study.execution import Outcome, Prefixed, execute

if TYPE_CHECKING:
    from metaexp.spec import Spec
    from metaexp.study.planning import PlannedRun

__all__ = ["interleaved", "run_parallel", "worker_run"]

PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")  # what joining by address needs

Started = Callable[[int, "PlannedRun"], None]
Finished = Callable[[int, "PlannedRun", Outcome], None]


def run_parallel(
    todo: Sequence[tuple[int, PlannedRun]], workers: int, started: Started, finished: Finished, verbose: bool
) -> bool:
    """Run `todo` ((index, run) pairs), at most `workers` at once; `started` and `finished` are told
    of each. True: Ctrl-C stopped the study. A refused run (a bad spec or state) stops starting
    runs and is raised once those in flight are back."""
    driver = _Driver(interleaved(todo), workers, started, finished, verbose)
    populations = [run for _, run in todo if scheduler_for(run.spec) == "parallel"]  # on Ray
    threading.Thread(target=_import_for_outputs, daemon=True).start()  # while the runs run
    while driver.more():  # a fresh pool after a worker died
        size = min(workers, len(driver.queue))
        with _pool(size) as pool:
            for _ in range(size):  # the workers start and import (while Ray starts, the first time)
                pool.submit(_import_for_runs)
            if populations and driver.ray is None:
                driver.ray = _ray_cluster(populations[0].spec)
            driver.drive(pool)
    if driver.fatal is not None:
        raise driver.fatal
    return driver.interrupted


def interleaved(todo: Sequence[tuple[int, PlannedRun]]) -> list[tuple[int, PlannedRun]]:
    """The runs in the order to start them: one of each strategy in turn, populations first in
    each turn. Runs of one strategy cost alike, and a population's cost the most (its lineages'
    actors, Ray's work): W of them at once would overload the CPUs while W single lineages leave
    them idle. Mixed, the load stays even, and the last runs to start are the short ones."""
    by_strategy: dict[str, deque[tuple[int, PlannedRun]]] = {}
    for item in todo:
        by_strategy.setdefault(item[1].strategy, deque()).append(item)
    queues = sorted(by_strategy.values(), key=lambda q: not q[0][1].spec.strategy.is_population)
    order = []
    while queues:
        order.extend(q.popleft() for q in queues)
        queues = [q for q in queues if q]
    return order


class _Driver:
    def __init__(
        self,
        todo: Sequence[tuple[int, PlannedRun]],
        workers: int,
        started: Started,
        finished: Finished,
        verbose: bool,
    ) -> None:
        self.queue = deque(todo)
        self.workers, self.started, self.finished = workers, started, finished
        self.ray: tuple[str, dict[str, str]] | None = None  # the study's Ray: address, auth settings
        self.verbose = verbose
        self.interrupted, self.fatal, self.broken, self.done = False, None, False, 0

    def more(self) -> bool:
        """Whether to start more runs (not after Ctrl-C or a refused run)."""
        return bool(self.queue) and not self.interrupted and self.fatal is None

    def drive(self, pool: ProcessPoolExecutor) -> None:
        """Keep `workers` runs in flight until the queue is done, the study stops or the pool breaks."""
        self.broken = False
        flying: dict[Future[Outcome], tuple[int, PlannedRun]] = {}
        while flying or (self.more() and not self.broken):
            while self.more() and not self.broken and len(flying) < self.workers:
                i, run = self.queue[0]
                try:
                    future = pool.submit(worker_run, run.spec, self.ray, self.verbose)
                except BrokenProcessPool:  # a worker died since the last wait: a fresh pool runs it
                    self.broken = True
                    break
                self.queue.popleft()
                flying[future] = (i, run)
                self.started(i, run)
            try:
                ready, _ = wait(flying, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                self.interrupted = True
                _pass_on_sigint()
                continue
            for future in ready:
                i, run = flying.pop(future)
                self._finish(i, run, future)

    def _finish(self, i: int, run: PlannedRun, future: Future[Outcome]) -> None:
        try:
            outcome = future.result()
        except BrokenProcessPool:
            self.broken = True
            outcome = Outcome(0.0, error="its worker process died (killed, or out of memory)")
        except Exception as exc:  # the outcome could not travel back (a bug): the run resumes next time
            outcome = Outcome(0.0, error=f"{type(exc).__name__}: {exc}")
        self.fatal = self.fatal or outcome.fatal
        self.interrupted = self.interrupted or outcome.interrupted
        self.finished(i, run, outcome)
        self.done += 1
        crashpoint(f"study-finished:{self.done}")  # tests: the driver killed in the middle of a study


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(os.getpid(),),
    )


def _import_for_outputs() -> None:
    """What the study's summary and plot import, ~2 s: in a thread while the workers run."""
    with contextlib.suppress(Exception):  # only a head start: the outputs import what they need
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot
        import scipy.stats  # noqa: F401


def _pass_on_sigint() -> None:
    """Ctrl-C reached the driver only (the workers have their own process group): pass it on."""
    print(
        "Ctrl-C: the runs in flight stop after their experiments in flight (Ctrl-C again: at once)",
        file=sys.stderr,
        flush=True,
    )
    for child in multiprocessing.active_children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGINT)  # type: ignore[arg-type]


def _ray_cluster(spec: Spec) -> tuple[str, dict[str, str]]:
    """Start or join the study's one Ray cluster (every run has the study spec's ray: block): its
    address and the token-authentication settings a driver needs to join it (Ray 2.60 puts
    RAY_AUTH_MODE in the environment of the process that starts a local cluster)."""
    import ray

    from metaexp.run.cluster import connect

    connect(spec.ray)
    auth = {k: v for k in AUTH_VARIABLES if (v := os.environ.get(k)) is not None}
    return ray.get_runtime_context().gcs_address, auth


# --- in a worker


def _init_worker(parent: int) -> None:
    """Die with the driver, leave Ctrl-C to it (it passes it on), ignore it between runs, and keep
    lineage hosts from one population run for the next (metaexp/run/hosts.py)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the driver died before the line above
        os._exit(1)
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_between_runs()  # this worker's population runs share their lineages' processes


def _import_for_runs() -> None:
    """A worker's first task, while the driver starts Ray: what a run imports. Not Ray itself: it
    reads its token-authentication settings on import, and they exist once the cluster is up."""
    import optuna.artifacts  # noqa: F401

    import metaexp.run.serial
    import metaexp.run.session  # noqa: F401


def worker_run(spec: Spec, cluster: tuple[str, dict[str, str]] | None, verbose: bool) -> Outcome:
    """One run in a worker: join the study's Ray cluster first if it runs on Ray."""
    if cluster is not None and scheduler_for(spec) == "parallel":
        try:
            _join(*cluster)
        except MetaexpError as exc:
            return Outcome(0.0, fatal=exc)
    live = Prefixed(f"{spec.tag}: ") if verbose else None
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the run handles Ctrl-C from here
    try:
        return execute(spec, live)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _join(address: str, auth: dict[str, str]) -> None:
    for name, value in auth.items():  # before Ray is imported: it reads them then
        os.environ.setdefault(name, value)
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as exc:
        last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise MetaexpError(f"the study's Ray cluster at {address} could not be joined: {last}") from None
