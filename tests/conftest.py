"""Shared pytest fixtures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _no_user_registry_cache() -> Iterator[None]:
    """Tests never read or leave Delta registry copies in the user's cache (the test that
    checks the cache points it at its own directory)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPO_BUTLER_REGISTRY_CACHE", "off")
        yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests using it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real-data files not found at {SHARED_DATA}")
    return SHARED_DATA


# --- storage backends for the repo_butler contract suites (datastore + Butler) ---------------
# Each backend yields a fresh, empty root URL plus its storage_options. "s3" is a fresh prefix in
# the bucket of the session's real SeaweedFS server (tests/servers/), skipped if `weed` is absent.
BUTLER_BACKENDS = ["file", "memory", "s3"]


@dataclass(frozen=True)
class RepoLocation:
    """Where a test repository lives: URL, fsspec options and backend name."""

    url: str
    storage_options: dict[str, Any]
    kind: str


@pytest.fixture(params=BUTLER_BACKENDS)
def repo_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RepoLocation]:
    """A fresh, empty repository location on each storage backend."""
    kind = request.param
    if kind == "file":
        yield RepoLocation((tmp_path / "repo").as_uri(), {}, kind)
    elif kind == "memory":
        from fsspec.implementations.memory import MemoryFileSystem

        root = f"/rb-test-{uuid.uuid4().hex}"
        yield RepoLocation(f"memory://{root}/repo", {}, kind)
        fs = MemoryFileSystem()
        if fs.exists(root):
            fs.rm(root, recursive=True)
    elif kind == "s3":
        request.applymarker(pytest.mark.s3)
        root = request.getfixturevalue("s3_root")
        yield RepoLocation(root.url, root.storage_options, kind)
    else:  # pragma: no cover - added by later backends
        raise ValueError(f"unknown backend {kind!r}")


def independent_checksum(data: bytes, recorded: str) -> str:
    """``data``'s checksum in the algorithm ``recorded`` names, computed here straight from
    hashlib / blake3 (not through repo_butler), to check what the butler recorded."""
    import hashlib

    import blake3

    algorithm = recorded.partition(":")[0]
    digest = {"sha256": lambda: hashlib.sha256(data), "blake3": lambda: blake3.blake3(data)}
    assert algorithm in digest, f"unexpected checksum algorithm in {recorded!r}"
    return f"{algorithm}:{digest[algorithm]().hexdigest()}"


from servers.fixtures import *  # noqa: E402, F403  (SeaweedFS / PostgreSQL server fixtures)
