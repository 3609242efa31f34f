"""Executors for MakeWarp units: in-process serial, a local Dask cluster, or an existing one.

All scheduling is Dask's (``client.submit`` + ``as_completed``); this module only starts or
connects to the cluster, ships the unit function and collects results in completion order.

* :class:`UnitExecutor` is what the driver sees: ``run`` (shared), ``ack``, ``drain``.
* :class:`SerialExecutor` runs units one after the other in the calling process.
* :class:`DaskExecutor` with ``jobs=N`` starts ``distributed.LocalCluster`` with N worker
  processes of one thread each; with ``address="tcp://HOST:PORT"`` it connects to a running
  scheduler. Compiled kernels are limited to one thread per worker (``REPO_BUTLER_THREADS=1``,
  ``OPENBLAS_NUM_THREADS=1`` and friends in the worker environment, and a worker plugin for
  clusters started elsewhere, both in :mod:`warping.task.dask_plugin`) so N workers on N
  cores do not oversubscribe them.

Cancellation (Ctrl-C): :meth:`DaskExecutor.drain` sets a Dask ``Event`` that running units check
before each CCD and before writing, cancels queued units and waits for the running ones, whose
results (written or cancelled) the driver still registers. Local worker processes are started
with SIGINT ignored, so a terminal's Ctrl-C reaches only the driver.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from warping.calexp_footprint import sky_footprints
from warping.task.config import MakeWarpConfig
from warping.task.execution import error_summary, execute_unit
from warping.task.make_warp import MakeWarpTask
from warping.task.work_units import UnitResult, WarpUnit

if TYPE_CHECKING:
    from repo_butler import DatasetRef, WorkerIO, WrittenDataset
    from warping.skymap.geometry import SkyPolygon

logger = logging.getLogger(__name__)

__all__ = ["DaskExecutor", "InterruptGate", "SerialExecutor", "UnitExecutor"]

FootprintItems = list[tuple["DatasetRef", "DatasetRef | None"]]


class InterruptGate:
    """SIGINT handling for the driver: Ctrl-C raises ``KeyboardInterrupt`` only outside
    :meth:`hold` blocks, so a result is never lost between arriving and being registered."""

    def __init__(self) -> None:
        self.depth = 0
        self.deferred = False
        self._previous: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.depth:
            self.deferred = True
        else:
            raise KeyboardInterrupt

    def __enter__(self) -> InterruptGate:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    @contextlib.contextmanager
    def hold(self, *, reraise: bool = True) -> Iterator[None]:
        """Defer Ctrl-C during the block; re-raise it at the end (if ``reraise``)."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if self.depth == 0 and self.deferred and reraise:
            self.deferred = False
            raise KeyboardInterrupt


class UnitExecutor(ABC):
    """Runs MakeWarp units and yields their results in completion order.

    Subclasses say how a unit is started (:meth:`_submit`) and how finished units come back
    (:meth:`_completed`); :meth:`run` is the same for all. After Ctrl-C the driver calls
    :meth:`drain` for the results still due, and :meth:`ack` once each result is registered.
    """

    submit_seconds: float = 0.0

    @property
    def dashboard_link(self) -> str | None:
        """URL of the executor's dashboard (None when there is none)."""
        return None

    @property
    def n_threads(self) -> int:
        """How many units can run at once."""
        return 1

    def __enter__(self) -> UnitExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(
        self,
        units: Sequence[WarpUnit],
        io: WorkerIO,
        config: MakeWarpConfig,
        on_submit: Callable[[WarpUnit], None] | None = None,
    ) -> Iterator[UnitResult]:
        """Submit every unit and yield results as they finish (failures included)."""
        if not units:
            return
        t0 = time.perf_counter()
        submitted = []
        for unit in units:
            submitted.append(self._submit(unit, io, config))
            if on_submit is not None:
                on_submit(unit)
        self.submit_seconds += time.perf_counter() - t0
        yield from self._completed(submitted)

    def map_footprints(self, io: WorkerIO, items: FootprintItems) -> list[SkyPolygon | str]:
        """Read calexp footprints (in this process unless the executor spreads them)."""
        return sky_footprints(io, items)

    @abstractmethod
    def _submit(self, unit: WarpUnit, io: WorkerIO, config: MakeWarpConfig) -> Any:
        """Start ``unit`` (or queue it); return what :meth:`_completed` waits on."""

    @abstractmethod
    def _completed(self, submitted: list[Any]) -> Iterator[UnitResult]:
        """Results of the submitted units, as they finish."""

    @abstractmethod
    def ack(self, result: UnitResult) -> None:
        """The driver has registered ``result``."""

    @abstractmethod
    def drain(self) -> Iterator[UnitResult]:
        """After Ctrl-C: stop queued units and yield the results still due."""


class SerialExecutor(UnitExecutor):
    """Run units one by one in this process (the default for ``--jobs 1``)."""

    def __init__(self) -> None:
        self._current: tuple[WarpUnit, list[WrittenDataset], UnitResult | None] | None = None
        self._task: MakeWarpTask | None = None  # shared by the run's units (PSF-match buffers)

    def _submit(
        self, unit: WarpUnit, io: WorkerIO, config: MakeWarpConfig
    ) -> tuple[WarpUnit, WorkerIO, MakeWarpConfig]:
        return unit, io, config  # run when its turn comes

    def _completed(
        self, submitted: Iterable[tuple[WarpUnit, WorkerIO, MakeWarpConfig]]
    ) -> Iterator[UnitResult]:
        for unit, io, config in submitted:
            journal: list[WrittenDataset] = []
            self._current = (unit, journal, None)
            if self._task is None or self._task.config is not config:
                self._task = MakeWarpTask(config)
            result = execute_unit(unit, io, config, journal=journal, task=self._task)
            self._current = (unit, journal, result)
            yield result
            if result.interrupted:  # Ctrl-C held while the unit wrote its files
                raise KeyboardInterrupt

    def ack(self, result: UnitResult) -> None:
        """The driver has registered ``result``."""
        if self._current is not None and self._current[0].key == result.key:
            self._current = None

    def drain(self) -> Iterator[UnitResult]:
        """After Ctrl-C: the interrupted unit's result, or what it had written so far."""
        if self._current is None:
            return
        unit, journal, result = self._current
        if result is None:
            outputs = {
                o.warp_type: w.uri for o in unit.outputs for w in journal if w.planned == o.put
            }
            result = UnitResult.for_unit(unit, "cancelled", written=list(journal), outputs=outputs)
        yield result


def _run_in_worker(
    unit: WarpUnit, io: WorkerIO, config: MakeWarpConfig, event_name: str
) -> UnitResult:
    """Dask task: run one unit, checking the run's cancel event (one scheduler round trip), with
    the worker's task (:class:`~warping.task.dask_plugin.WorkerTasks`) when it has one."""
    from distributed import Event, get_worker

    from warping.task.dask_plugin import WorkerTasks

    event = Event(event_name)
    plugin = get_worker().plugins.get(WorkerTasks.name)
    task = plugin.task_for(config) if isinstance(plugin, WorkerTasks) else None

    def cancelled() -> bool:
        try:
            return bool(event.is_set())
        except Exception:  # scheduler unreachable: keep going, the driver decides
            return False

    return execute_unit(unit, io, config, cancelled=cancelled, task=task)


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Spawned worker processes inherit SIG_IGN for SIGINT (Python keeps an ignored SIGINT)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class DaskExecutor(UnitExecutor):
    """Run units on a Dask cluster: a new local one (``jobs``) or an existing one (``address``).

    Parameters
    ----------
    jobs
        Worker processes of a new ``LocalCluster`` (one thread each); ignored with ``address``.
    address
        ``tcp://HOST:PORT`` of a running ``dask scheduler``.
    dashboard
        Serve the Dask dashboard of a local cluster on a free port (``dashboard_link``).
    """

    def __init__(self, jobs: int = 2, address: str | None = None, *, dashboard: bool = True):
        self.jobs = jobs
        self.address = address
        self.dashboard = dashboard
        self.client: Any = None
        self.cluster: Any = None
        self._pending: dict[Any, WarpUnit] = {}  # futures whose result is not yet handled
        self._futures: dict[str, Any] = {}  # unit key -> future
        self._event_name = f"rb-cancel-{uuid.uuid4().hex}"
        self._event: Any = None
        self._scattered: dict[int, Any] = {}
        self.submit_seconds = 0.0

    def __enter__(self) -> DaskExecutor:
        from distributed import Client, Event, LocalCluster

        from warping.task.dask_plugin import WORKER_ENV, SingleThreadKernels, WorkerTasks

        if self.address:
            self.client = Client(self.address, timeout="20s")
        else:
            with _children_ignore_sigint():
                self.cluster = LocalCluster(
                    n_workers=self.jobs,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0" if self.dashboard else None,
                    env=dict(WORKER_ENV),
                    silence_logs=logging.WARNING,
                    host="127.0.0.1",
                )
                self.client = Client(self.cluster)
        self.client.register_plugin(SingleThreadKernels())
        self.client.register_plugin(WorkerTasks())
        self._event = Event(self._event_name, client=self.client)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()

    @property
    def dashboard_link(self) -> str | None:
        """URL of the Dask dashboard (None when not served)."""
        if self.client is None or (self.cluster is not None and not self.dashboard):
            return None
        try:
            return str(self.client.dashboard_link)
        except Exception:
            return None

    @property
    def n_threads(self) -> int:
        """Task threads over all workers (how many units can run at once)."""
        info = self.client.scheduler_info() if self.client is not None else {}
        return max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))

    def _submit(self, unit: WarpUnit, io: WorkerIO, config: MakeWarpConfig) -> Any:
        fut = self.client.submit(
            _run_in_worker,
            unit,
            self._shipped(io),
            self._shipped(config),
            self._event_name,
            key=f"{unit.key}-{uuid.uuid4().hex[:8]}",
            pure=False,
        )
        self._pending[fut] = unit
        self._futures[unit.key] = fut
        return fut

    def _completed(self, submitted: list[Any]) -> Iterator[UnitResult]:
        from distributed import as_completed

        for fut in as_completed(submitted):
            yield self._result(fut)

    def _shipped(self, obj: Any) -> Any:
        """A future of ``obj`` on every worker: the storage options and config travel once."""
        if id(obj) not in self._scattered:
            (fut,) = self.client.scatter([obj], broadcast=True, hash=False)
            self._scattered[id(obj)] = (obj, fut)
        return self._scattered[id(obj)][1]

    def map_footprints(self, io: WorkerIO, items: FootprintItems) -> list[SkyPolygon | str]:
        """Read calexp footprints on the workers, in chunks, each calexp once."""
        if not items:
            return []
        io_f = self._shipped(io)
        n = min(len(items), 4 * self.n_threads)
        size = -(-len(items) // n)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        futures = [
            self.client.submit(
                sky_footprints, io_f, c, pure=False, key=f"footprints-{i}-{uuid.uuid4().hex[:8]}"
            )
            for i, c in enumerate(chunks)
        ]
        out: list[SkyPolygon | str] = []
        for part in self.client.gather(futures):
            out.extend(part)
        return out

    def ack(self, result: UnitResult) -> None:
        """The driver has registered ``result``: forget its future."""
        fut = self._futures.pop(result.key, None)
        if fut is not None:
            self._pending.pop(fut, None)

    def _result(self, fut: Any) -> UnitResult:
        unit = self._pending[fut]
        try:
            res: UnitResult = fut.result()
        except Exception as err:  # the worker died (KilledWorker) or the task was lost
            res = UnitResult.for_unit(unit, "failed")
            res.error, res.traceback = error_summary(err)
        return res

    def drain(self, timeout: float = 600.0) -> Iterator[UnitResult]:
        """Cancel: set the event, drop queued units, yield what running units return."""
        from distributed import wait

        if not self._pending:
            return
        with contextlib.suppress(Exception):
            self._event.set()
        processing = set()
        with contextlib.suppress(Exception):
            for keys in self.client.processing().values():
                processing.update(keys)
        queued = [f for f in self._pending if f.key not in processing and not f.done()]
        with contextlib.suppress(Exception):
            self.client.cancel(queued)
        for fut in queued:
            yield UnitResult.for_unit(self._pending[fut], "cancelled")
        deadline = time.monotonic() + timeout
        running = [f for f in self._pending if f not in set(queued)]
        with contextlib.suppress(Exception):
            wait(running, timeout=max(0.0, deadline - time.monotonic()))
        for fut in running:
            if fut.done():  # finished (possibly before Ctrl-C) but not yet handled
                yield self._result(fut)
            else:
                unit = self._pending[fut]
                yield UnitResult.for_unit(unit, "cancelled", error="still running at exit")
