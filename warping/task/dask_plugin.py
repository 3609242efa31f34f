"""Dask worker plugin limiting compiled kernels to one thread per worker process."""

from __future__ import annotations

import logging
import os
from typing import Any

from distributed import WorkerPlugin

from warping.task.dask_exec import WORKER_ENV

logger = logging.getLogger(__name__)

__all__ = ["SingleThreadKernels"]


class SingleThreadKernels(WorkerPlugin):
    """Dask worker plugin: one thread for numba/BLAS/OpenMP in workers started elsewhere.

    Environment variables only help before numba is imported, so the plugin also warns when a
    worker already imported numba with more threads (start such workers with
    ``NUMBA_NUM_THREADS=1``).
    """

    name = "repo-butler-single-thread-kernels"
    idempotent = True

    def setup(self, worker: Any) -> None:
        """Set the thread limits in the worker process."""
        import sys

        for key, value in WORKER_ENV.items():
            os.environ.setdefault(key, value)
        if "numba" in sys.modules:
            import numba

            threads = int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))
            if threads > 1:
                logger.warning(
                    "Worker %s imported numba with %s threads; start workers with "
                    "NUMBA_NUM_THREADS=1 so kernels do not oversubscribe the cores",
                    worker.address,
                    threads,
                )

    def teardown(self, worker: Any) -> None:
        """Nothing to undo."""
