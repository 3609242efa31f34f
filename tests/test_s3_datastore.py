"""S3 datastore against the real SeaweedFS server: round trips, atomicity, failures, secrets."""

from __future__ import annotations

import contextlib
import hashlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from servers.fixtures import S3Root
from servers.requests import RequestCounter

from repo_butler.errors import StorageError
from repo_butler.s3 import S3Datastore
from repo_butler.storage import open_datastore

pytestmark = pytest.mark.s3


@pytest.fixture
def store(s3_root: S3Root) -> S3Datastore:
    made = open_datastore(s3_root.url, s3_root.storage_options)
    assert isinstance(made, S3Datastore)  # the factory picks the S3 implementation
    return made


def test_request_bounds_per_operation(store: S3Datastore) -> None:
    counter = RequestCounter().attach(store.fs).attach(store.transfer_fs)  # uploads >= 8 MiB
    store.put_bytes("a/x.json", b"{}" * 100)
    assert counter.snapshot() == {"PutObject": 1}
    counter.reset()
    assert store.get_bytes("a/x.json") == b"{}" * 100
    assert counter.snapshot() == {"GetObject": 1}
    counter.reset()
    assert store.exists("a/x.json")
    assert not store.exists("a/missing.json")
    assert counter.snapshot() == {"HeadObject": 2}
    counter.reset()
    store.put_bytes("b/eight.bin", bytes(8 * 2**20))
    assert counter.snapshot() == {"PutObject": 1}


def test_started_put_returns_the_sha256_of_what_was_stored(store: S3Datastore) -> None:
    """The checksum comes from botocore's payload signature on this plain-HTTP endpoint (no
    second hash of the bytes) and from our own hash for multipart uploads; both must equal an
    independent SHA-256 of the bytes read back."""
    store.multipart_chunksize = 5 * 2**20  # multipart from 10 MiB
    counter = RequestCounter().attach(store.fs).attach(store.transfer_fs)
    rng = random.Random(5)
    for name, size in (("one.bin", 3 * 2**20), ("two.bin", 1000), ("multi.bin", 11 * 2**20)):
        data = rng.randbytes(size)
        checksum = store.put_bytes_started(name, data, exclusive=True)().checksum
        stored = store.get_bytes(name)
        assert stored == data
        assert checksum == "sha256:" + hashlib.sha256(stored).hexdigest(), name
        assert store._client_hashes_payload is (name != "multi.bin")  # where it came from
    assert counter.counts["CreateMultipartUpload"] == 1, counter.snapshot()
    with pytest.raises(FileExistsError, match="multi"):  # If-None-Match on the completion
        store.put_bytes_started("multi.bin", bytes(11 * 2**20), exclusive=True)()
    assert hashlib.sha256(store.get_bytes("multi.bin")).hexdigest() == checksum[7:]
    assert store.objects.list_multipart_uploads(store.prefix) == []


def test_concurrent_started_puts_get_their_own_checksums(store: S3Datastore) -> None:
    """The payload hash botocore computed reaches only the upload that sent that body."""
    payloads = {f"c/{i}.bin": random.Random(i).randbytes(300_000 + i) for i in range(8)}
    got: dict[str, str] = {}

    def put(name: str) -> None:
        got[name] = store.put_bytes_started(name, payloads[name])().checksum

    threads = [threading.Thread(target=put, args=(name,)) for name in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == {name: "sha256:" + hashlib.sha256(d).hexdigest() for name, d in payloads.items()}
    assert store._client_hashes_payload


def test_walk_pages_through_listings(store: S3Datastore) -> None:
    n = 230
    store.fs.pipe({f"{store.path}/many/{i:05d}.txt": b"x" for i in range(n)})
    store.put_bytes("other/not-listed.txt", b"y")
    store.list_page_size = 100  # the default is S3's maximum, 1000 keys a page
    counter = RequestCounter().attach(store.fs)
    found = list(store.walk("many"))
    assert found == [f"many/{i:05d}.txt" for i in range(n)]
    assert counter.snapshot() == {"ListObjectsV2": 3}
    counter.reset()
    assert len(list(store.walk())) == n + 1
    assert counter.snapshot() == {"ListObjectsV2": 3}


def test_failed_multipart_put_is_aborted_and_invisible(store: S3Datastore, s3_root: S3Root) -> None:
    store.multipart_chunksize = 5 * 2**20  # multipart from 10 MiB on
    store.put_bytes("big.bin", b"old" * 10)

    def fail_part_2(params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("PartNumber") == 2:
            raise ConnectionResetError("simulated network failure on part 2")

    # a 12 MiB upload goes through the transfer client (longer read timeout)
    store.transfer_fs.s3.meta.events.register("before-parameter-build.s3.UploadPart", fail_part_2)
    with pytest.raises((StorageError, ConnectionResetError)):
        store.put_bytes("big.bin", bytes(12 * 2**20))
    bucket, prefix = s3_root.path.split("/", 1)
    assert store.objects.list_multipart_uploads(prefix) == []
    assert store.get_bytes("big.bin") == b"old" * 10  # the old object is untouched
    client = s3_root.server.client()
    assert client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", []) == []


def test_orphaned_multipart_uploads_are_cleaned_up(store: S3Datastore) -> None:
    """A writer that died mid-upload leaves parts; ``abort_incomplete_uploads`` removes them."""
    key = store._key("crashed.bin")
    upload = store.objects._call("create_multipart_upload", Key=key)
    store.objects._call(
        "upload_part", Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"p" * 2**20
    )
    assert len(store.objects.list_multipart_uploads(store.prefix)) == 1
    assert store.abort_incomplete_uploads(min_age=3600) == 0  # may be a live writer's
    assert len(store.objects.list_multipart_uploads(store.prefix)) == 1
    assert store.abort_incomplete_uploads() == 1
    assert store.objects.list_multipart_uploads(store.prefix) == []
    assert not store.exists("crashed.bin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def syn_dropping_port() -> Iterator[int]:
    """A port whose accept queue is full: new connections get no answer (like a dead host)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        client = socket.socket()
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(("127.0.0.1", port))
        fillers.append(client)
    yield port
    for client in fillers:
        client.close()
    server.close()


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[Any] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept())
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn, _ in held:
        conn.close()
    server.close()


SECRET = "sEcReT-never-shown-42"


@pytest.mark.parametrize("kind", ["refused", "no-answer"])
def test_dead_endpoint_fails_fast_with_a_clear_error(
    kind: str, request: pytest.FixtureRequest
) -> None:
    port = _free_port() if kind == "refused" else request.getfixturevalue("syn_dropping_port")
    endpoint = f"http://127.0.0.1:{port}"
    options = {"key": "someone", "secret": SECRET, "endpoint_url": endpoint}
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        open_datastore("s3://bucket/repo", options).get_bytes("butler.yaml")
    elapsed = time.monotonic() - start
    assert elapsed < 7.5, f"took {elapsed:.1f} s (target: about 5 s)"
    message = str(info.value)
    assert endpoint in message and "s3://bucket/repo/butler.yaml" in message
    assert SECRET not in message and "Traceback" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_read_timeout_is_configurable(hung_port: int) -> None:
    options = {
        "key": "someone",
        "secret": SECRET,
        "endpoint_url": f"http://127.0.0.1:{hung_port}",
        "config_kwargs": {"read_timeout": 0.5},
    }
    start = time.monotonic()
    with pytest.raises(StorageError, match="did not answer in time"):
        open_datastore("s3://bucket/repo", options).exists("x")
    assert time.monotonic() - start < 4.0


def test_wrong_credentials_error_names_endpoint_without_secret(s3_root: S3Root) -> None:
    options = dict(s3_root.storage_options, secret=SECRET)
    store = open_datastore(s3_root.url, options)
    with pytest.raises(StorageError) as info:
        store.put_bytes("x.json", b"{}")
    assert s3_root.server.endpoint_url in str(info.value)
    assert SECRET not in str(info.value)
