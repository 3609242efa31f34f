"""How many threads the compiled loops may use in this process, and running work on an optional
pool."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

__all__ = ["submit", "thread_limit"]

T = TypeVar("T")


def thread_limit() -> int:
    """Usable cores (CPU affinity), capped by ``REPO_BUTLER_THREADS`` when it is set.

    Dask workers run one task per single-threaded process and set ``REPO_BUTLER_THREADS=1``
    (:data:`warping.task.dask_plugin.WORKER_ENV`), so the warper, the PSF matching and the
    warped-PSF resampler then stay on one thread. ``NUMBA_NUM_THREADS`` is honoured the same way
    for worker setups written for earlier versions.
    """
    try:
        limit = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        limit = os.cpu_count() or 1
    for var in ("REPO_BUTLER_THREADS", "NUMBA_NUM_THREADS"):
        env = os.environ.get(var)
        if env and env.isdigit() and int(env) > 0:
            limit = min(limit, int(env))
    return max(1, limit)


def submit(pool: Executor | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """``pool.submit(fn, ...)``, or, with no pool, run ``fn`` now on the calling thread and return
    a finished future (an exception propagates at once)."""
    if pool is not None:
        return pool.submit(fn, *args, **kwargs)
    done: Future[T] = Future()
    done.set_result(fn(*args, **kwargs))
    return done
