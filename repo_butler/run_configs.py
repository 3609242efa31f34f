"""Per-run task configuration records (LSST Gen2's ``<task>_config`` datasets).

A task that writes into a run may record the configuration it wrote it with, once per task
label: the file ``[rerun/NAME/]_config/<task>.json`` (``format_version`` 1, validated against
``schemas/run-config.schema.json``). The butler stores and returns records; what counts as "the
same configuration" is the task's business (e.g. :mod:`warping.task.run_config`).

Records are bookkeeping files like the run marker: not datasets, not in the registry, kept by
``reindex`` and not reported by ``verify``. The first record of a task in a run is written
exclusively (of two writers, one wins and the other gets :class:`RunConfigExistsError`); a
replacement (:meth:`RunConfigs.put` with ``replace=True``) is an atomic overwrite that keeps the
replaced configuration under ``replaces``. Both work on every backend (local, memory, S3).
"""

from __future__ import annotations

import json
import logging
import platform
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from repo_butler.errors import ConfigError, RepoButlerError
from repo_butler.provenance import now_iso, scrub_secrets, software_versions
from repo_butler.runs import RERUN_DIR, display_run, run_prefix

if TYPE_CHECKING:
    from repo_butler.datastore import Datastore

__all__ = [
    "RUN_CONFIG_DIR",
    "RUN_CONFIG_VERSION",
    "RunConfigExistsError",
    "RunConfigRecord",
    "RunConfigs",
    "decode_run_config",
    "is_run_config_path",
    "run_config_path",
]

logger = logging.getLogger(__name__)

RUN_CONFIG_DIR = "_config"
#: ``format_version`` written in run configuration records; readers refuse newer ones.
RUN_CONFIG_VERSION = 1
SCHEMA = "run-config.schema.json"
_TASK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_PATH = re.compile(rf"(?:{RERUN_DIR}/[^/]+/)?{RUN_CONFIG_DIR}/[A-Za-z0-9][A-Za-z0-9_.+-]*\.json")


class RunConfigExistsError(RepoButlerError, FileExistsError):
    """A first configuration record was asked for, but the run already has one for the task."""


def run_config_path(run: str, task: str) -> str:
    """Storage path of the record of ``task`` in ``run`` (``[rerun/RUN/]_config/TASK.json``).

    Raises
    ------
    ConfigError
        If ``task`` is not a plain label (letters, digits, ``_.+-``).
    """
    if not _TASK.fullmatch(task) or ".." in task:
        raise ConfigError(f"invalid task label {task!r}: use letters, digits and '_.+-'")
    return f"{run_prefix(run)}{RUN_CONFIG_DIR}/{task}.json"


def is_run_config_path(path: str) -> bool:
    """Whether a storage path is a run configuration record (a bookkeeping file)."""
    return _PATH.fullmatch(path) is not None


@dataclass(frozen=True)
class RunConfigRecord:
    """The configuration ``task`` wrote ``run`` with.

    Attributes
    ----------
    task : str
        Task label (``"makeWarp"``).
    run : str
        The run (``""`` for the repository root).
    config : Mapping
        The configuration as the task gave it (JSON-compatible, secrets redacted).
    software : Mapping[str, str]
        Package versions of the writer.
    written : str
        ISO 8601 UTC time of the write.
    host : str
        Host of the writer.
    replaces : Mapping or None
        ``{"config": ..., "written": ...}`` of the record this one replaced, if any.
    """

    task: str
    run: str
    config: Mapping[str, Any]
    software: Mapping[str, str] = field(default_factory=dict)
    written: str = ""
    host: str = ""
    replaces: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form matching ``run-config.schema.json``."""
        return {
            "format_version": RUN_CONFIG_VERSION,
            "task": self.task,
            "run": self.run,
            "config": scrub_secrets(self.config),
            "software": {str(k): str(v) for k, v in self.software.items()},
            "written": self.written,
            "host": self.host,
            "replaces": None if self.replaces is None else dict(self.replaces),
        }


def decode_run_config(data: bytes, *, source: str) -> RunConfigRecord:
    """Read a record (any version up to :data:`RUN_CONFIG_VERSION`).

    Raises
    ------
    FormatVersionError
        If it is newer than this release reads.
    ConfigError
        If it is not a record (names ``source``; says to fix or remove it).
    """
    from repo_butler.formats import check_version
    from repo_butler.schemas import validate

    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError(f"a JSON {type(doc).__name__}, not an object")
    except ValueError as err:
        raise ConfigError(
            f"{source} is not a run configuration record ({err}); fix or remove it"
        ) from None
    what = "run configuration record"
    check_version(doc.get("format_version"), RUN_CONFIG_VERSION, what=what, source=source)
    validate(doc, SCHEMA, source=source, error=ConfigError)
    return RunConfigRecord(
        task=doc["task"],
        run=doc["run"],
        config=doc["config"],
        software=doc["software"],
        written=doc["written"],
        host=doc["host"],
        replaces=doc.get("replaces"),
    )


class RunConfigs:
    """The configuration records of one Butler's output run (``Butler.run_configs``).

    Parameters
    ----------
    store : Datastore
        Where the run's files live.
    run : str
        The output run.
    ensure_run : callable
        Records a new output rerun before the first write into it.
    writeable : bool
        Whether :meth:`put` may write.
    """

    def __init__(
        self, store: Datastore, run: str, ensure_run: Callable[[], None], writeable: bool
    ) -> None:
        self._store, self._run, self._ensure_run = store, run, ensure_run
        self._writeable = writeable

    def get(self, task: str) -> RunConfigRecord | None:
        """The record of ``task`` in the output run, or ``None`` if it has none.

        Raises
        ------
        ConfigError, FormatVersionError
            If the record is malformed or newer than this release reads.
        """
        path = run_config_path(self._run, task)
        try:
            data = self._store.get_bytes(path)
        except FileNotFoundError:
            return None
        record = decode_run_config(data, source=self._store.uri(path))
        if record.task != task or record.run != self._run:
            raise ConfigError(
                f"{self._store.uri(path)} records task {record.task!r} of run "
                f"{display_run(record.run)}, not {task!r} of {display_run(self._run)}; "
                "fix or remove it"
            )
        return record

    def put(
        self, task: str, config: Mapping[str, Any], *, replace: bool = False
    ) -> RunConfigRecord:
        """Record ``config`` as the configuration ``task`` writes the output run with.

        Parameters
        ----------
        task : str
            Task label (the file name).
        config : Mapping
            JSON-compatible configuration; secrets are redacted.
        replace : bool
            Replace an existing record (the old configuration is kept under ``replaces``).
            Without it the write is exclusive.

        Returns
        -------
        RunConfigRecord
            What was written.

        Raises
        ------
        RunConfigExistsError
            If the run has a record for ``task`` and ``replace`` is false (also when another
            writer recorded one first).
        ConfigError
            If the Butler is read-only or the record does not match the schema.
        """
        from repo_butler.schemas import validate

        if not self._writeable:
            raise ConfigError(f"run {display_run(self._run)} was opened read-only")
        path = run_config_path(self._run, task)
        old = self.get(task) if replace else None
        record = RunConfigRecord(
            task=task,
            run=self._run,
            config=scrub_secrets(dict(config)),
            software=software_versions(),
            written=now_iso(),
            host=platform.node(),
            replaces=None if old is None else {"config": old.config, "written": old.written},
        )
        doc = record.to_dict()
        validate(doc, SCHEMA, source=f"configuration record of {task}", error=ConfigError)
        data = json.dumps(doc, sort_keys=True, indent=1).encode()
        self._ensure_run()
        if replace:
            self._store.put_bytes(path, data)
            logger.info("replaced the %s configuration record of run %s", task,
                        display_run(self._run))  # fmt: skip
            return record
        try:
            self._store.put_bytes_started(path, data, exclusive=True)()
        except FileExistsError:
            raise RunConfigExistsError(
                f"run {display_run(self._run)} already records a {task} configuration "
                f"({self._store.uri(path)})"
            ) from None
        logger.info("recorded the %s configuration of run %s", task, display_run(self._run))
        return record
