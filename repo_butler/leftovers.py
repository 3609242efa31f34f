"""What crashed writers leave behind, and its safe removal.

A writer killed mid-write leaves a temporary file (``.rb-tmp-<hex>``, up to a whole dataset)
beside the final path of a local repository, or an incomplete multipart upload in a bucket; a
process that writes to an object-store repository and exits through ``os._exit`` (Dask and
multiprocessing workers) leaves its registry cache copy (``rb-registry-<pid>-*``) in the
temporary directory. None of them is ever visible as a dataset.

:func:`find_leftovers` lists the first two for ``rb verify``; :func:`cleanup` removes those older
than a bound (a live writer's temporary file or upload is younger: it exists only while the
write runs) and the registry caches of processes that no longer exist.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from repo_butler.datastore import Datastore, IncompleteUpload

__all__ = [
    "DEFAULT_MIN_AGE",
    "REGISTRY_CACHE_PREFIX",
    "CleanupReport",
    "Leftover",
    "cleanup",
    "find_leftovers",
    "registry_cache_dir",
    "stale_registry_caches",
]

logger = logging.getLogger(__name__)

DEFAULT_MIN_AGE = 3600.0
"""Seconds a temporary file or upload must be old before :func:`cleanup` removes it."""

REGISTRY_CACHE_PREFIX = "rb-registry-"


@dataclass(frozen=True)
class Leftover:
    """A temporary file or incomplete upload found in a repository."""

    kind: str
    """``"temp_file"`` or ``"incomplete_upload"``."""
    path: str
    """Relative path (of the object being uploaded, for uploads)."""
    age: float
    """Seconds since it was last written (or the upload initiated)."""
    upload: IncompleteUpload | None = None

    def describe(self, min_age: float = DEFAULT_MIN_AGE) -> str:
        """One line for ``rb verify``."""
        what = (
            "temporary file of an interrupted write"
            if self.kind == "temp_file"
            else "incomplete multipart upload"
        )
        if self.age >= min_age:
            return f"{what}, {self.age:.0f} s old; `rb cleanup` removes it"
        return (
            f"{what}, {self.age:.0f} s old: a writer may still be running; `rb cleanup` "
            f"removes it once it is {min_age:.0f} s old"
        )


@dataclass
class CleanupReport:
    """What :func:`cleanup` removed (or, with ``dry_run``, would remove) and kept."""

    removed: list[Leftover] = field(default_factory=list)
    kept: list[Leftover] = field(default_factory=list)
    """Younger than the bound: possibly a live writer's."""
    registry_caches: list[str] = field(default_factory=list)
    """Registry cache directories of exited processes (local temporary directory)."""
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""

        def item(x: Leftover) -> dict[str, Any]:
            return {"kind": x.kind, "path": x.path, "age_s": round(x.age, 1)}

        return {
            "dry_run": self.dry_run,
            "removed": [item(x) for x in self.removed],
            "kept": [item(x) for x in self.kept],
            "registry_caches": self.registry_caches,
        }


def find_leftovers(store: Datastore) -> list[Leftover]:
    """Temporary files and incomplete uploads under ``store``'s root, with their ages."""
    found = [Leftover("temp_file", path, age) for path, age in store.temp_files()]
    found += [
        Leftover("incomplete_upload", up.path, up.age, up) for up in store.incomplete_uploads()
    ]
    return found


def cleanup(
    store: Datastore, *, min_age: float = DEFAULT_MIN_AGE, dry_run: bool = False
) -> CleanupReport:
    """Remove temporary files and incomplete uploads at least ``min_age`` seconds old, and the
    registry cache directories of processes that have exited.

    Anything younger is kept (listed in :attr:`CleanupReport.kept`): it may belong to a writer
    that is still running.
    """
    report = CleanupReport(dry_run=dry_run)
    for item in find_leftovers(store):
        if item.age < min_age:
            report.kept.append(item)
            continue
        if not dry_run:
            if item.upload is not None:
                store.abort_upload(item.upload)
            else:
                _remove_temp(store, item.path)
        report.removed.append(item)
    for path in stale_registry_caches():
        if not dry_run:
            shutil.rmtree(path, ignore_errors=True)
        report.registry_caches.append(path)
    if report.removed and not dry_run:
        logger.info("removed %d leftovers under %s", len(report.removed), store.root)
    return report


def _remove_temp(store: Datastore, path: str) -> None:
    local = store.local_path(path)
    if local is None:  # pragma: no cover - only local stores have temporary files
        store.remove(path)
        return
    with contextlib.suppress(FileNotFoundError):  # finished or removed meanwhile
        os.unlink(local)


# --- registry cache copies --------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def stale_registry_caches(
    directory: str | None = None, *, legacy_min_age: float = 86400.0
) -> list[str]:
    """Registry cache directories (``rb-registry-<pid>-*``) of processes that no longer run.

    Directories named without a process id (older versions) count as stale once nothing in
    them changed for ``legacy_min_age`` seconds. Process ids are those of this machine's (or
    container's) process namespace: processes sharing the temporary directory must share it.
    """
    base = directory or tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return []
    stale = []
    now = time.time()
    for name in sorted(names):
        if not name.startswith(REGISTRY_CACHE_PREFIX):
            continue
        full = os.path.join(base, name)
        if not os.path.isdir(full) or os.path.islink(full):
            continue
        pid_text = name[len(REGISTRY_CACHE_PREFIX) :].split("-", 1)[0]
        if pid_text.isascii() and pid_text.isdigit() and "-" in name[len(REGISTRY_CACHE_PREFIX) :]:
            if int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
                stale.append(full)
            continue
        try:
            newest = max(
                [os.stat(full).st_mtime]
                + [os.stat(os.path.join(full, n)).st_mtime for n in os.listdir(full)]
            )
        except OSError:
            continue
        if now - newest >= legacy_min_age:
            stale.append(full)
    return stale


def registry_cache_dir() -> tempfile.TemporaryDirectory[str]:
    """A new registry cache directory named after this process; caches of exited processes
    (left by ``os._exit``, which skips clean-up) are removed first."""
    for path in stale_registry_caches():
        shutil.rmtree(path, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{REGISTRY_CACHE_PREFIX}{os.getpid()}-")
