"""Running independent tasks that each write their own part file: in this process, in a local process
pool, or on a Dask cluster (``dask.distributed``), one helper for every campaign (map builds,
convergence-map campaigns).

Tasks are deterministic functions of their arguments (their seeds are in them), so where they run
does not change what they write; the caller assembles the parts in a fixed order afterwards, so the
result is byte-identical for any ``workers`` or cluster. On Dask a failed task is retried
(``retries``) before the run stops; the first error that remains stops it and cancels the rest
(finished parts stay for a rerun to resume from). Schedulers: ``tcp://host:port`` (a running
``dask scheduler``) or ``local:N`` (a ``LocalCluster`` of N one-thread worker processes on this machine).
"""
from __future__ import annotations

import multiprocessing as mp
import signal
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

from rich.progress import Progress

from .errors import ConfigError, InputError

__all__ = ["run_tasks", "check_scheduler", "writable_folder", "CONNECT_TIMEOUT_S"]

CONNECT_TIMEOUT_S = 10


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which reports it once (finished parts are kept)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def check_scheduler(scheduler: str | None) -> str | None:
    """Validate a --scheduler value: None, 'local:N' (N >= 1) or 'tcp://host:port'."""
    if scheduler is None:
        return None
    if scheduler.startswith("local:"):
        try:
            n = int(scheduler.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"--scheduler {scheduler!r}: expected local:N with N >= 1 workers")
        return scheduler
    if not scheduler.startswith(("tcp://", "tls://", "ws://", "wss://", "inproc://")):
        raise ConfigError(f"--scheduler {scheduler!r}: expected tcp://host:port or local:N")
    return scheduler


def writable_folder(path: str | Path, flag: str = "--parts") -> Path:
    """``path`` created if needed and checked writable (a probe file), else one clear error."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".skymorph-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"{flag} {path}: not a writable folder ({exc.strerror or exc})") from None
    return path


def _client(scheduler: str):
    from dask.distributed import Client, LocalCluster

    if scheduler.startswith("local:"):
        cluster = LocalCluster(n_workers=int(scheduler.split(":", 1)[1]), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT_S), None
    except (OSError, TimeoutError) as exc:
        raise InputError(f"--scheduler {scheduler}: no Dask scheduler answered within {CONNECT_TIMEOUT_S} s "
                         f"({type(exc).__name__})") from None


def _on_dask(fn, tasks, scheduler, advance, retries) -> None:
    from dask.distributed import as_completed

    client, cluster = _client(scheduler)
    try:
        futures = {client.submit(fn, *args, retries=retries, pure=False): key for key, args in tasks.items()}
        try:
            for fut in as_completed(futures):
                if fut.status == "error":
                    fut.result()  # raises the task's exception
                advance(futures[fut])
        except BaseException:
            client.cancel(list(futures))
            raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_tasks(fn: Callable, tasks: dict, workers: int = 1, scheduler: str | None = None, progress: bool = True,
              description: str = "tasks", weight: Callable = lambda key: 1, total: int | None = None,
              completed: int = 0, retries: int = 2, initializer: Callable = _ignore_sigint) -> None:
    """Call ``fn(*args)`` for every ``key: args`` of ``tasks`` (here, in ``workers`` spawned processes,
    or on the Dask ``scheduler``), with a progress bar advancing ``weight(key)`` per finished task."""
    with Progress(disable=not progress, transient=False) as bar:
        task = bar.add_task(description, total=total if total is not None else sum(map(weight, tasks)),
                            completed=completed)

        def advance(key) -> None:
            bar.advance(task, weight(key))

        if scheduler is not None:
            _on_dask(fn, tasks, check_scheduler(scheduler), advance, retries)
        elif workers == 1 or len(tasks) <= 1:
            for key, args in tasks.items():
                fn(*args)
                advance(key)
        else:
            with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=mp.get_context("spawn"),
                                     initializer=initializer) as pool:
                futures = {pool.submit(fn, *args): key for key, args in tasks.items()}
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for fut in done:
                        if fut.exception() is not None:
                            for p in pending:
                                p.cancel()
                            raise fut.exception()
                        advance(futures[fut])
