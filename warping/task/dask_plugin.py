"""One thread per Dask worker process for compiled kernels: the environment and a worker plugin."""

from __future__ import annotations

import logging
import os
from typing import Any

from distributed import WorkerPlugin

logger = logging.getLogger(__name__)

__all__ = ["WORKER_ENV", "SingleThreadKernels"]

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
