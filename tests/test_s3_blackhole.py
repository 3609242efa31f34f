"""An S3 endpoint that accepts TCP connections and never answers: metadata requests fail with
a clear error in about 7-9 s (2 attempts × 3 s read timeout + backoff); large uploads keep a
longer timeout.

The "server" is a real listening socket on 127.0.0.1 whose connections are accepted and left
silent.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from repo_butler import Butler
from repo_butler.errors import StorageError
from repo_butler.s3 import LARGE_TRANSFER, TRANSFER_READ_TIMEOUT, S3Datastore


@pytest.fixture
def black_hole() -> Iterator[str]:
    """URL of a TCP endpoint that accepts connections and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)  # kept open, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def _options(endpoint: str, **extra: object) -> dict[str, object]:
    return {"endpoint_url": endpoint, "key": "k", "secret": "s3cr3t-value", **extra}


def test_metadata_requests_fail_within_ten_seconds(black_hole: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(StorageError, match="did not answer in time") as info:
        Butler("s3://bucket/repo", storage_options=_options(black_hole))
    elapsed = time.perf_counter() - t0
    assert 3.0 < elapsed < 10.0, elapsed
    message = str(info.value)
    assert black_hole in message and "read_timeout" in message
    assert "s3cr3t-value" not in message
    assert "\n" not in message


def test_read_timeout_is_tunable(black_hole: str) -> None:
    store = S3Datastore(
        "s3://bucket/repo", _options(black_hole, config_kwargs={"read_timeout": 1.0})
    )
    t0 = time.perf_counter()
    with pytest.raises(StorageError, match="did not answer in time"):
        store.exists("butler.yaml")
    assert time.perf_counter() - t0 < 3.5


def test_large_uploads_use_the_longer_transfer_timeout(black_hole: str) -> None:
    store = S3Datastore("s3://bucket/repo", _options(black_hole))
    assert store._fs_for(LARGE_TRANSFER - 1) is store.fs
    assert store.fs.s3.meta.config.read_timeout == 3.0
    big = store._fs_for(LARGE_TRANSFER)
    assert big is not store.fs
    assert big.s3.meta.config.read_timeout == TRANSFER_READ_TIMEOUT
    tuned = S3Datastore("s3://bucket/repo", _options(black_hole, transfer_read_timeout=300))
    assert tuned._fs_for(LARGE_TRANSFER).s3.meta.config.read_timeout == 300.0
    assert tuned.fs.s3.meta.config.read_timeout == 3.0
