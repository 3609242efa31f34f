"""Datastore contract: the same tests for every storage backend (file://, memory://, later s3://)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from conftest import RepoLocation

from repo_butler.datastore import FsspecDatastore, checksum_bytes
from repo_butler.errors import StorageError
from repo_butler.storage import open_datastore


@pytest.fixture
def store(repo_location: RepoLocation) -> FsspecDatastore:
    return open_datastore(repo_location.url, repo_location.storage_options)


def test_root_is_a_url(store: FsspecDatastore, repo_location: RepoLocation) -> None:
    assert "://" in store.root
    assert store.uri("a/b.json") == store.root + "/a/b.json"


def test_put_get_round_trip_creates_directories(store: FsspecDatastore) -> None:
    payload = bytes(range(256)) * 10
    store.put_bytes("deep/er/file.bin", payload)
    assert store.get_bytes("deep/er/file.bin") == payload
    assert store.exists("deep/er/file.bin")
    assert store.size("deep/er/file.bin") == len(payload)


def test_overwrite_replaces_whole_content(store: FsspecDatastore) -> None:
    store.put_bytes("x.bin", b"a" * 1000)
    store.put_bytes("x.bin", b"b" * 10)
    assert store.get_bytes("x.bin") == b"b" * 10


def test_missing_file_is_file_not_found(store: FsspecDatastore) -> None:
    assert not store.exists("nope.bin")
    with pytest.raises(FileNotFoundError):
        store.get_bytes("nope.bin")
    with pytest.raises(FileNotFoundError):
        store.remove("nope.bin")


def test_remove(store: FsspecDatastore) -> None:
    store.put_bytes("r.bin", b"1")
    store.remove("r.bin")
    assert not store.exists("r.bin")


def test_walk_lists_relative_paths_sorted(store: FsspecDatastore) -> None:
    for name in ("b/2.txt", "a/1.txt", "a/sub/3.txt"):
        store.put_bytes(name, name.encode())
    assert list(store.walk()) == ["a/1.txt", "a/sub/3.txt", "b/2.txt"]
    assert list(store.walk("a")) == ["a/1.txt", "a/sub/3.txt"]
    assert list(store.walk("missing")) == []


def test_checksums_match_the_published_test_vectors() -> None:
    """BLAKE3 (the default) and SHA-256 (S3 and earlier releases) of "abc" and of b""."""
    from repo_butler.checksums import checksum_matches

    blake3_abc = "blake3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
    sha256_abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert checksum_bytes(b"abc") == blake3_abc
    assert checksum_bytes(b"abc", "sha256") == sha256_abc
    assert checksum_bytes(b"") == (
        "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )
    assert checksum_matches(b"abc", sha256_abc) and checksum_matches(b"abc", blake3_abc)
    assert checksum_matches(b"abd", sha256_abc) is False
    assert checksum_matches(b"abc", "md17:00") is None  # a newer release's algorithm


def test_exclusive_put_never_replaces_an_existing_file(store: FsspecDatastore) -> None:
    store.put_bytes_started("new.bin", b"first", exclusive=True)()
    assert store.get_bytes("new.bin") == b"first"
    wait = store.put_bytes_started("new.bin", b"second", exclusive=True)
    with pytest.raises(FileExistsError, match=r"new\.bin"):
        wait()
    assert store.get_bytes("new.bin") == b"first"
    store.put_bytes_started("new.bin", b"third")()  # not exclusive: replaced
    assert store.get_bytes("new.bin") == b"third"


def test_readers_never_see_partial_writes(store: FsspecDatastore) -> None:
    """Concurrent reader sees either the old or the new complete content, nothing else."""
    old, new = b"o" * 2_000_000, b"n" * 3_000_000
    store.put_bytes("big.bin", old)
    seen: set[int] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(len(store.get_bytes("big.bin")))

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(10):
        store.put_bytes("big.bin", new)
        store.put_bytes("big.bin", old)
    stop.set()
    thread.join()
    assert seen <= {len(old), len(new)}
    assert not [p for p in store.walk() if "tmp" in p]


def test_transfer_copy_and_move(store: FsspecDatastore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    store.transfer_in(str(src), "in/copy.bin", mode="copy", storage_options={})
    assert src.exists()
    assert store.get_bytes("in/copy.bin") == b"payload"
    store.transfer_in(str(src), "in/move.bin", mode="move", storage_options={})
    assert not src.exists()
    assert store.get_bytes("in/move.bin") == b"payload"


def test_symlink_only_for_local(store: FsspecDatastore, tmp_path: Path) -> None:
    src = tmp_path / "s.bin"
    src.write_bytes(b"link me")
    if store.is_local:
        store.transfer_in(str(src), "l/s.bin", mode="symlink", storage_options={})
        local = store.local_path("l/s.bin")
        assert local is not None and os.path.islink(local)
        assert store.get_bytes("l/s.bin") == b"link me"
    else:
        with pytest.raises(StorageError, match="symlink"):
            store.transfer_in(str(src), "l/s.bin", mode="symlink", storage_options={})


def test_plain_local_path_is_accepted(tmp_path: Path) -> None:
    store = FsspecDatastore(tmp_path / "plain")
    store.put_bytes("f.txt", b"x")
    assert (tmp_path / "plain" / "f.txt").read_bytes() == b"x"
    assert store.root == (tmp_path / "plain").as_uri()


def test_directory_removed_between_writes(store: FsspecDatastore) -> None:
    store.put_bytes("d/one.bin", b"1")
    store.remove("d/one.bin")
    if store.fs.exists(store.full_path("d")):  # object stores have no real directories
        store.fs.rm(store.full_path("d"), recursive=True)
    store.put_bytes("d/two.bin", b"2")
    assert store.get_bytes("d/two.bin") == b"2"


def test_store_survives_pickling(store: FsspecDatastore) -> None:
    """Worker processes receive datastores by pickle; the copy reads the same bytes."""
    import pickle

    store.put_bytes("p/q.bin", b"pickled")
    copy = pickle.loads(pickle.dumps(store))
    assert type(copy) is type(store)
    assert copy.root == store.root
    assert copy.get_bytes("p/q.bin") == b"pickled"


def test_get_buffer_holds_the_content_it_was_read_with(store: FsspecDatastore) -> None:
    """get_buffer gives the whole file (a memory map for large local files) and keeps showing
    it after the file is replaced: writes publish by rename, never rewrite in place."""
    big = os.urandom(3 << 20)
    store.put_bytes("big.bin", big)
    store.put_bytes("small.bin", b"tiny")
    buf = store.get_buffer("big.bin")
    assert len(buf) == len(big) and buf[:1000] == big[:1000] and buf[-7:] == big[-7:]
    assert checksum_bytes(buf) == checksum_bytes(big)
    if store.is_local:
        assert not isinstance(buf, bytes)  # mapped, not copied
    assert store.get_buffer("small.bin") == b"tiny"
    store.put_bytes("big.bin", b"x" * 10)
    assert checksum_bytes(buf) == checksum_bytes(big)
    assert store.get_buffer("big.bin") == b"x" * 10
    with pytest.raises(FileNotFoundError):
        store.get_buffer("absent.bin")
