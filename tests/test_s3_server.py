"""The SeaweedFS fixture is a real, private S3 server with the behaviour the butler relies on.

Checked against the server itself (no mocks): bucket creation, byte-exact put/get, refusal of
wrong credentials, loopback-only binding, the conditional writes used for registry locking
(``If-None-Match: *``, ``If-Match``), multipart-upload abort leaving no parts, request counts
seen through botocore's event hooks, and a kill/restart keeping the data.
"""

from __future__ import annotations

import collections
import hashlib
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from servers.fixtures import S3Root
from servers.seaweed import SeaweedServer

pytestmark = pytest.mark.s3


def test_bucket_created_and_bytes_round_trip(seaweed: SeaweedServer, s3_root: S3Root) -> None:
    client = seaweed.client()
    names = [b["Name"] for b in client.list_buckets()["Buckets"]]
    assert seaweed.bucket in names
    fs = seaweed.filesystem()
    payload = os.urandom(300_001)
    fs.pipe_file(f"{s3_root.path}/a/b.bin", payload)
    back = fs.cat_file(f"{s3_root.path}/a/b.bin")
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(payload).hexdigest()
    # the same object through a second, independent client (another "machine")
    raw = client.get_object(Bucket=seaweed.bucket, Key=f"{s3_root.path.split('/', 1)[1]}/a/b.bin")
    assert raw["Body"].read() == payload
    assert raw["ContentLength"] == len(payload)


@pytest.mark.parametrize("who", ["wrong-secret", "unknown-key", "anonymous"])
def test_wrong_credentials_are_refused(seaweed: SeaweedServer, s3_root: S3Root, who: str) -> None:
    import s3fs

    seaweed.filesystem().pipe_file(f"{s3_root.path}/secret.txt", b"classified")
    opts = seaweed.storage_options()
    if who == "wrong-secret":
        opts["secret"] = "not-" + seaweed.secret_key
    elif who == "unknown-key":
        opts["key"] = "nobody"
    else:
        opts = {"anon": True, "client_kwargs": opts["client_kwargs"]}
    intruder = s3fs.S3FileSystem(skip_instance_cache=True, **opts)
    with pytest.raises(PermissionError):
        intruder.cat_file(f"{s3_root.path}/secret.txt")
    with pytest.raises(PermissionError):
        intruder.pipe_file(f"{s3_root.path}/planted.txt", b"x")
    assert not seaweed.filesystem().exists(f"{s3_root.path}/planted.txt")


def test_botocore_reports_signature_mismatch(seaweed: SeaweedServer) -> None:
    client = seaweed.client(secret_key="definitely-wrong")
    with pytest.raises(ClientError) as info:
        client.list_objects_v2(Bucket=seaweed.bucket, MaxKeys=1)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_server_listens_on_loopback_only_with_telemetry_off(seaweed: SeaweedServer) -> None:
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process(seaweed.pid)
    assert "-master.telemetry=false" in proc.cmdline()
    listening = [c.laddr for c in proc.net_connections(kind="inet") if c.status == "LISTEN"]
    assert listening, "weed has no listening sockets"
    assert {addr.ip for addr in listening} == {"127.0.0.1"}
    ports = {addr.port for addr in listening}
    assert seaweed.ports["s3"] in ports
    assert seaweed.ports["s3"] + 10000 in ports  # gRPC at HTTP + 10000


def _put(fs: Any, path: str, body: bytes, **kwargs: Any) -> dict[str, Any]:
    from s3fs.core import sync

    bucket, key = path.split("/", 1)
    out: dict[str, Any] = sync(
        fs.loop, fs._call_s3, "put_object", Bucket=bucket, Key=key, Body=body, **kwargs
    )
    return out


def test_if_none_match_creates_exactly_once_under_contention(
    seaweed: SeaweedServer, s3_root: S3Root
) -> None:
    """The lock primitive: of eight concurrent create-if-absent PUTs exactly one wins."""
    lock = f"{s3_root.path}/lock"
    winners: list[int] = []
    losers: list[int] = []

    fs = seaweed.filesystem()  # one client; the eight requests run concurrently on its loop

    def racer(i: int) -> None:
        try:
            _put(fs, lock, str(i).encode(), IfNoneMatch="*")
            winners.append(i)
        except OSError:  # s3fs maps 412 PreconditionFailed to OSError(EINVAL)
            losers.append(i)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(losers) == 7
    assert fs.cat_file(lock) == str(winners[0]).encode()


def test_if_match_rejects_a_stale_etag(seaweed: SeaweedServer, s3_root: S3Root) -> None:
    fs = seaweed.filesystem()
    path = f"{s3_root.path}/registry.sqlite3"
    first = _put(fs, path, b"generation-1")
    second = _put(fs, path, b"generation-2", IfMatch=first["ETag"])
    assert second["ETag"] != first["ETag"]
    with pytest.raises(OSError, match="pre-conditions"):
        _put(fs, path, b"lost update", IfMatch=first["ETag"])
    assert fs.cat_file(path) == b"generation-2"


def test_failed_multipart_upload_is_aborted_without_orphans(
    seaweed: SeaweedServer, s3_root: S3Root
) -> None:
    """s3fs aborts a multipart upload that fails half-way: no object, no pending parts."""
    fs = seaweed.filesystem()
    bucket, prefix = s3_root.path.split("/", 1)
    parts_sent = collections.Counter()

    def fail_third_part(params: dict[str, Any], **kwargs: Any) -> None:
        parts_sent["n"] += 1
        if params.get("PartNumber") == 3:
            raise ConnectionAbortedError("simulated network failure on part 3")

    fs.s3.meta.events.register("before-parameter-build.s3.UploadPart", fail_third_part)
    data = os.urandom(5 * 2**20) * 3  # three 5 MiB parts
    with pytest.raises(ConnectionAbortedError):
        fs.pipe_file(f"{s3_root.path}/big.bin", data, chunksize=5 * 2**20)
    assert parts_sent["n"] >= 3
    uploads = seaweed.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    assert uploads.get("Uploads", []) == []
    fs.invalidate_cache()
    assert not fs.exists(f"{s3_root.path}/big.bin")


def test_request_counts_through_botocore_hooks(seaweed: SeaweedServer, s3_root: S3Root) -> None:
    fs = seaweed.filesystem()
    seen: collections.Counter[str] = collections.Counter()

    def count(request: Any, **kwargs: Any) -> None:
        seen[request.method] += 1

    fs.s3.meta.events.register("before-send.s3", count)
    path = f"{s3_root.path}/small.json"
    fs.pipe_file(path, b"{}")
    assert seen == {"PUT": 1}
    seen.clear()
    assert fs.cat_file(path) == b"{}"
    assert seen["GET"] == 1 and sum(seen.values()) <= 2
    seen.clear()
    fs.pipe_file(f"{s3_root.path}/eight.bin", os.urandom(8 * 2**20))
    assert seen == {"PUT": 1}  # below s3fs's multipart threshold: one complete PUT


@pytest.mark.slow
def test_kill_and_restart_keeps_data_and_endpoint(
    seaweed_factory: Callable[..., SeaweedServer],
) -> None:
    server = seaweed_factory(bucket="crash")
    fs = server.filesystem()
    fs.pipe_file("crash/kept.bin", b"k" * 1000)
    pid = server.pid
    endpoint = server.endpoint_url
    server.kill()
    assert not server.running
    dead = server.filesystem(config_kwargs={"connect_timeout": 1, "retries": {"max_attempts": 1}})
    with pytest.raises(EndpointConnectionError, match=endpoint):
        dead.cat_file("crash/kept.bin")
    server.start()
    assert server.pid != pid and server.endpoint_url == endpoint and server.starts == 2
    assert server.filesystem().cat_file("crash/kept.bin") == b"k" * 1000


def test_read_only_identity_reads_but_cannot_write(seaweed: SeaweedServer, s3_root: S3Root) -> None:
    import s3fs

    seaweed.filesystem().pipe_file(f"{s3_root.path}/r.txt", b"readable")
    reader = s3fs.S3FileSystem(skip_instance_cache=True, **seaweed.storage_options(read_only=True))
    assert reader.cat_file(f"{s3_root.path}/r.txt") == b"readable"
    assert reader.find(s3_root.path) == [f"{s3_root.path}/r.txt"]
    with pytest.raises(PermissionError):
        reader.pipe_file(f"{s3_root.path}/w.txt", b"x")
    with pytest.raises(PermissionError):
        reader.rm_file(f"{s3_root.path}/r.txt")
    assert seaweed.filesystem().cat_file(f"{s3_root.path}/r.txt") == b"readable"
