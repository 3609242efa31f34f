"""Dask worker plugins: one thread per worker for compiled kernels, and the worker's task."""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any

from distributed import WorkerPlugin

if TYPE_CHECKING:
    from warping.task.config import MakeWarpConfig
    from warping.task.make_warp import MakeWarpTask

logger = logging.getLogger(__name__)

__all__ = ["WORKER_ENV", "SingleThreadKernels", "WorkerTasks"]

#: Thread limits for compiled kernels in worker processes (one task thread per worker).
WORKER_ENV = {
    "REPO_BUTLER_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


class SingleThreadKernels(WorkerPlugin):
    """Dask worker plugin: one thread for the warping core, BLAS and OpenMP in workers started
    elsewhere (``REPO_BUTLER_THREADS=1`` etc.; BLAS reads its variable when it is first loaded,
    so start such workers with ``OPENBLAS_NUM_THREADS=1`` too)."""

    name = "repo-butler-single-thread-kernels"
    idempotent = True

    def setup(self, worker: Any) -> None:
        """Set the thread limits in the worker process."""
        for key, value in WORKER_ENV.items():
            os.environ.setdefault(key, value)

    def teardown(self, worker: Any) -> None:
        """Nothing to undo."""


class WorkerTasks(WorkerPlugin):
    """Dask worker plugin holding the worker's :class:`~warping.task.make_warp.MakeWarpTask`, so
    the units a worker runs share one task and with it the PSF-matching convolution buffers
    (allocating them costs tens of milliseconds of page faults per unit otherwise).

    One task is kept, for the latest configuration; :meth:`teardown` drops it.
    """

    name = "repo-butler-worker-tasks"
    idempotent = True

    def __init__(self) -> None:
        self._key: str | None = None
        self._task: MakeWarpTask | None = None

    def task_for(self, config: MakeWarpConfig) -> MakeWarpTask:
        """The worker's task for ``config`` (made on first use)."""
        from warping.task.config import config_to_dict
        from warping.task.make_warp import MakeWarpTask

        key = json.dumps(config_to_dict(config), sort_keys=True, default=str)
        if self._task is None or key != self._key:
            self._key, self._task = key, MakeWarpTask(config)
        return self._task

    def teardown(self, worker: Any) -> None:
        """Drop the task and its buffers."""
        self._key = self._task = None
