"""The tests' repository copy (tests/repo_copy.py) keeps what a live SQLite registry committed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from repo_copy import copy_repo


def test_copy_of_a_live_wal_database_has_every_committed_row(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "data" / "a.txt").write_text("payload")
    live = sqlite3.connect(src / "registry.sqlite3")
    live.execute("PRAGMA journal_mode=WAL")
    live.execute("PRAGMA wal_autocheckpoint=0")  # committed rows stay in the -wal file
    live.execute("CREATE TABLE t (x INTEGER)")
    live.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    live.commit()
    assert (src / "registry.sqlite3-wal").stat().st_size > 0
    dest = copy_repo(src, tmp_path / "dest")
    live.close()  # checkpoints and deletes the -wal file: the copy must not depend on it
    assert (dest / "data" / "a.txt").read_text() == "payload"
    assert not (dest / "registry.sqlite3-wal").exists()
    with sqlite3.connect(dest / "registry.sqlite3") as copy:
        assert copy.execute("SELECT COUNT(*), SUM(x) FROM t").fetchone() == (100, 4950)
