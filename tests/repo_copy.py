"""Copying a test repository whose SQLite registry may still be open elsewhere."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

#: SQLite's side files of a database ``x``: ``x-wal``, ``x-shm``, ``x-journal``.
_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")


def _is_sqlite_file(name: str) -> bool:
    return name.endswith(".sqlite3") or any(name.endswith(".sqlite3" + s) for s in _SIDE_SUFFIXES)


def copy_repo(src: Path | str, dest: Path | str) -> Path:
    """Copy the repository at ``src`` to ``dest``: files with ``copytree``, every SQLite database
    through SQLite's online backup.

    A plain ``copytree`` races with registry connections that other tests leave to the garbage
    collector: when the last one closes, SQLite checkpoints the write-ahead log and deletes
    ``registry.sqlite3-wal`` / ``-shm``, possibly while ``copytree`` is copying them (ENOENT,
    seen in a fresh-clone run); and the main file copied without its log could miss committed
    transactions. The backup is a consistent snapshot either way.
    """
    src, dest = Path(src), Path(dest)
    databases = sorted(p for p in src.rglob("*.sqlite3") if p.is_file())
    shutil.copytree(src, dest, ignore=lambda _dir, names: [n for n in names if _is_sqlite_file(n)])
    for db in databases:
        target = dest / db.relative_to(src)
        with (
            contextlib.closing(sqlite3.connect(db)) as source,
            contextlib.closing(sqlite3.connect(target)) as copy,
        ):
            source.backup(copy)
    return dest
