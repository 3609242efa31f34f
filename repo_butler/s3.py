"""S3 plumbing shared by the datastore and the object-store registry.

Connection settings reach s3fs as ``storage_options`` (``--storage-option KEY=VALUE`` on the CLI,
``storage_options={...}`` in Python); anything not given there comes from botocore's usual sources
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``,
``AWS_PROFILE`` or ``profile=NAME``, ``~/.aws/config``). :func:`s3_options` adds timeouts and
retries that fail fast on a dead endpoint (about 5 s) instead of botocore's 60 s read timeout and
s3fs's extra retry layer; every one of them can be overridden through ``config_kwargs``.

Errors from botocore are turned into :class:`~repo_butler.errors.StorageError` naming the endpoint
and the object, with every secret value from the options removed from the message.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import os
import posixpath
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from repo_butler.checksums import checksum_bytes
from repo_butler.datastore import (
    TEMP_MARKER,
    FsspecDatastore,
    IncompleteUpload,
    Stored,
    TransferMode,
)
from repo_butler.errors import StorageError
from repo_butler.redaction import redact_text
from repo_butler.s3_objects import ConditionFailed, S3Objects

__all__ = [
    "DEFAULT_CONFIG_KWARGS",
    "ConditionFailed",
    "S3Datastore",
    "S3Objects",
    "s3_errors",
    "s3_options",
]

logger = logging.getLogger(__name__)

DEFAULT_CONFIG_KWARGS: dict[str, Any] = {
    "connect_timeout": 1.5,
    "read_timeout": 3.0,
    "retries": {"total_max_attempts": 2, "mode": "standard"},
}
"""botocore ``Config`` defaults: a refused or unreachable endpoint fails in about 1–5 s, one that
accepts connections and never answers in about 7–9 s (2 attempts × ``read_timeout`` and a
backoff)."""

TRANSFER_READ_TIMEOUT = 60.0
"""``read_timeout`` of uploads of at least :data:`LARGE_TRANSFER` bytes (the server may take a
while to answer after the last byte of a large body): ``transfer_read_timeout`` option."""

LARGE_TRANSFER = 8 * 2**20
"""Uploads from this size use the transfer client (:data:`TRANSFER_READ_TIMEOUT`)."""

S3FS_RETRIES = 1
"""s3fs's own retry loop (on top of botocore's) is switched off by default: ``s3fs_retries``."""


def _merge_defaults(user: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(defaults))
    for key, value in user.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge_defaults(value, out[key])
        else:
            out[key] = copy.deepcopy(value)
    return out


def transfer_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """s3fs options of the client for large uploads: ``options`` (from :func:`s3_options`)
    with ``read_timeout`` raised to the ``transfer_read_timeout`` option (default
    :data:`TRANSFER_READ_TIMEOUT`; never below the metadata ``read_timeout``)."""
    opts = dict(options)
    timeout = float(opts.pop("transfer_read_timeout", TRANSFER_READ_TIMEOUT))
    config = dict(opts.get("config_kwargs") or {})
    config["read_timeout"] = max(timeout, float(config.get("read_timeout", 0.0)))
    opts["config_kwargs"] = config
    return opts


def s3_options(options: Mapping[str, Any] | None) -> tuple[dict[str, Any], int]:
    """Return s3fs constructor options with fail-fast defaults, and the s3fs retry count.

    ``config_kwargs`` given by the user win key by key over :data:`DEFAULT_CONFIG_KWARGS`;
    ``s3fs_retries`` (our key, default :data:`S3FS_RETRIES`) is removed and returned separately
    because s3fs only takes it as an attribute.
    """
    opts = dict(options or {})
    retries = int(opts.pop("s3fs_retries", S3FS_RETRIES))
    opts.pop("transfer_read_timeout", None)
    opts["config_kwargs"] = _merge_defaults(opts.get("config_kwargs") or {}, DEFAULT_CONFIG_KWARGS)
    return opts, max(retries, 1)


def _endpoint(fs: Any) -> str:
    try:
        return str(fs.s3.meta.endpoint_url)
    except Exception:  # the client could not even be created
        kwargs = getattr(fs, "client_kwargs", {}) or {}
        return str(
            kwargs.get("endpoint_url")
            or getattr(fs, "endpoint_url", None)
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or "the default AWS endpoint"
        )


@contextmanager
def s3_errors(fs: Any, action: str, url: str, secrets: list[str]) -> Iterator[None]:
    """Turn botocore/aiohttp failures inside the block into a clear :class:`StorageError`.

    ``FileNotFoundError`` passes through unchanged (the datastore contract); other errors name
    the endpoint, the object URL and what to check, with secrets removed.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    try:
        yield
    except FileNotFoundError:
        raise
    except (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError) as err:
        endpoint = _endpoint(fs)
        msg = (
            f"cannot reach the S3 endpoint {endpoint} while {action} {url}: {err}; check the "
            "endpoint (--storage-option endpoint_url=... or AWS_ENDPOINT_URL) and that the "
            "server is up"
        )
        raise StorageError(redact_text(msg, secrets)) from None
    except ReadTimeoutError as err:
        endpoint = _endpoint(fs)
        msg = (
            f"the S3 endpoint {endpoint} did not answer in time while {action} {url}: {err}; "
            "raise config_kwargs.read_timeout in the storage options if the server is slow"
        )
        raise StorageError(redact_text(msg, secrets)) from None
    except NoCredentialsError:
        raise StorageError(
            f"no S3 credentials for {url}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a "
            "profile (--storage-option profile=NAME) or --storage-option key=... secret=..."
        ) from None
    except PermissionError as err:
        msg = (
            f"access denied by {_endpoint(fs)} while {action} {url}: {err}; check the S3 "
            "credentials and the bucket policy"
        )
        raise StorageError(redact_text(msg, secrets)) from None
    except BotoCoreError as err:
        msg = f"S3 error while {action} {url} at {_endpoint(fs)}: {err}"
        raise StorageError(redact_text(msg, secrets)) from None
    except StorageError:
        raise
    except OSError as err:
        msg = f"S3 error while {action} {url} at {_endpoint(fs)}: {err}"
        raise StorageError(redact_text(msg, secrets)) from None


_PAYLOAD_SHA256: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "rb_payload_sha256", default=None
)
_PAYLOAD_HOOK_ID = "rb-payload-sha256"
_HEX = frozenset("0123456789abcdef")


def _record_payload_sha256(request: Any = None, **kwargs: Any) -> None:
    """botocore ``before-send`` hook: keep the signed body's SHA-256 for the waiting upload.

    Only uploads started by :meth:`S3Datastore.put_bytes_started` listen (through a context
    variable of their task); ``UNSIGNED-PAYLOAD`` and streaming markers are ignored.
    """
    seen = _PAYLOAD_SHA256.get()
    if seen is None or request is None:
        return
    value = request.headers.get("X-Amz-Content-SHA256")
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str) and len(value) == 64 and set(value) <= _HEX:
        seen.append(value)


_UPLOAD_ETAGS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "rb_upload_etags", default=None
)
_ETAG_HOOK_ID = "rb-upload-etag"


def _record_upload_etag(parsed: Any = None, **kwargs: Any) -> None:
    """botocore ``after-call`` hook (PutObject, CompleteMultipartUpload): keep the ETag the
    server gave the object this upload published, for :class:`~repo_butler.datastore.Stored`.
    A HEAD afterwards could already see another writer's object."""
    seen = _UPLOAD_ETAGS.get()
    if seen is None or not isinstance(parsed, dict):
        return
    etag = parsed.get("ETag")
    if isinstance(etag, str) and etag:
        seen.append(etag)


class S3Datastore(FsspecDatastore):
    """A :class:`~repo_butler.datastore.FsspecDatastore` on S3 with bounded round trips.

    ``put_bytes`` is one PUT of the complete object (s3fs switches to a multipart upload only
    above 100 MiB and aborts it if a part fails), so a dataset is visible only when complete.
    ``get_bytes`` is one GET, ``exists`` one HEAD, ``walk`` pages through ``ListObjectsV2``
    (1000 keys a page). Failures become :class:`StorageError` naming the endpoint, without
    secrets.

    Parameters
    ----------
    root : str
        ``s3://bucket/prefix``.
    storage_options : dict, optional
        s3fs options; see :func:`s3_options` for the defaults added.
    """

    conditional_writes = True

    checksum_algorithm: ClassVar[str] = "sha256"
    """SHA-256: botocore computes it anyway to sign each single-request upload, so recording it
    costs nothing more (:mod:`repo_butler.checksums`)."""

    def __init__(self, root: str | os.PathLike[str], storage_options: dict[str, Any] | None = None):
        options, retries = s3_options(storage_options)
        super().__init__(root, options)  # errors are redacted there
        self.fs.retries = retries
        self._transfer_options = transfer_options({**options, **_transfer_key(storage_options)})
        self._transfer_fs: Any = None
        self.bucket, _, self.prefix = self.path.partition("/")
        self.objects = S3Objects(self.fs, self.bucket)

    @property
    def transfer_fs(self) -> Any:
        """The s3fs filesystem of large uploads (longer ``read_timeout``; own botocore client,
        so request hooks must be registered on it too)."""
        return self._fs_for(LARGE_TRANSFER)

    def _fs_for(self, size: int) -> Any:
        """The s3fs filesystem for an upload of ``size`` bytes: the metadata client (short
        ``read_timeout``) below :data:`LARGE_TRANSFER`, the transfer client from there."""
        if size < LARGE_TRANSFER:
            return self.fs
        if self._transfer_fs is None:
            import s3fs

            fs = s3fs.S3FileSystem(**self._transfer_options)
            fs.retries = self.fs.retries
            self._transfer_fs = fs
        return self._transfer_fs

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _errors(self, action: str, path: str) -> Any:
        return s3_errors(self.fs, action, self.uri(path), self.secrets)

    multipart_chunksize: int = 50 * 2**20
    """Part size of multipart uploads, used for objects of at least twice this size."""

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` as one complete object (multipart above ``2 * multipart_chunksize``,
        aborted if any part fails)."""
        fs = self._fs_for(len(data))
        with s3_errors(fs, "writing", self.uri(path), self.secrets):
            fs.pipe_file(self.full_path(path), data, chunksize=self.multipart_chunksize)

    def put_bytes_started(
        self, path: str, data: bytes, *, exclusive: bool = False, checksum: str | None = None
    ) -> Callable[[], Stored]:
        """Start the upload on s3fs's event loop; the returned function waits for it and
        returns the checksum of ``data`` (:func:`~repo_butler.checksums.checksum_bytes`, or the
        SHA-256 that botocore computed to sign the upload).

        ``exclusive=True`` sends ``If-None-Match: *`` (on the PUT, or on the completion of a
        multipart upload, which is then aborted): an existing object is left untouched and the
        returned function raises ``FileExistsError``, with no extra request.

        The checksum is the SHA-256 botocore computed over the body to sign the PUT when it
        signs payloads (plain-HTTP endpoints, ``payload_signing_enabled``), so 8 MiB are not
        hashed twice; otherwise (HTTPS, multipart) it is computed here while the upload runs.
        """
        import asyncio

        fs = self._fs_for(len(data))
        self._watch_payload_hashes(fs)
        seen: list[str] = []
        etags: list[str] = []

        async def upload() -> None:
            _PAYLOAD_SHA256.set(seen)  # local to this task: only our PUT lands in ``seen``
            _UPLOAD_ETAGS.set(etags)
            await fs._pipe_file(
                self.full_path(path),
                data,
                chunksize=self.multipart_chunksize,
                mode="create" if exclusive else "overwrite",
            )

        future = asyncio.run_coroutine_threadsafe(upload(), fs.loop)
        single_put = len(data) < 2 * self.multipart_chunksize

        def wait() -> Stored:
            own = checksum
            if own is None and not (single_put and self._client_hashes_payload):
                own = checksum_bytes(data, self.checksum_algorithm)
            try:
                with s3_errors(fs, "writing", self.uri(path), self.secrets):
                    try:
                        future.result()
                    except OSError as err:
                        if exclusive and S3Objects._precondition(err):
                            raise ConditionFailed(self.uri(path)) from None
                        raise
            except ConditionFailed:
                raise FileExistsError(self.uri(path)) from None
            token = etags[-1] if etags else self._token_after_write(path)
            if seen:
                self._client_hashes_payload = True
                return Stored(own or "sha256:" + seen[-1], token)
            self._client_hashes_payload = False
            return Stored(
                own if own is not None else checksum_bytes(data, self.checksum_algorithm), token
            )

        return wait

    _client_hashes_payload: bool = False
    """Whether botocore's signature hashed the body of the last single-PUT upload."""

    def _watch_payload_hashes(self, fs: Any) -> None:
        """Register (once per botocore client) the hook that records PUT payload hashes."""
        events = fs.s3.meta.events
        events.register(
            "before-send.s3.PutObject", _record_payload_sha256, unique_id=_PAYLOAD_HOOK_ID
        )
        for op in ("PutObject", "CompleteMultipartUpload"):
            events.register(
                f"after-call.s3.{op}", _record_upload_etag, unique_id=f"{_ETAG_HOOK_ID}-{op}"
            )

    def _token_after_write(self, path: str) -> str:
        """The object's ETag read back (only if the server's response carried none)."""
        state = self.stray_state(path)
        return path if state is None else state[0]

    def stray_state(self, path: str) -> tuple[str, float] | None:
        """ETag and age (server clock: ``Date`` minus ``LastModified``) of the object, one HEAD."""
        from email.utils import parsedate_to_datetime

        with self._errors("checking", path):
            head = self.objects.head(self._key(path))
        if head is None:
            return None
        age = float("inf")
        modified, date = head.get("LastModified"), head.get("Date")
        if modified is not None and date:
            age = (parsedate_to_datetime(date) - modified).total_seconds()
        return str(head["ETag"]), age

    def put_bytes_replacing(self, path: str, data: bytes, token: str) -> Stored:
        """Replace the object only if its ETag is still ``token``: one ``If-Match`` PUT, so of
        several writers that found the same stray object exactly one replaces it."""
        with self._errors("writing", path):
            try:
                etag = self.objects.put(self._key(path), data, if_match=token)
            except ConditionFailed:
                raise FileExistsError(self.uri(path)) from None
            except FileNotFoundError:  # deleted meanwhile: If-Match on nothing fails
                raise FileExistsError(self.uri(path)) from None
        return Stored(checksum_bytes(data, self.checksum_algorithm), etag)

    def get_bytes_started(self, path: str) -> Callable[[], bytes]:
        """Start the GET on s3fs's event loop; the returned function waits for the bytes."""
        import asyncio

        coro = self.fs._cat_file(self.full_path(path), max_concurrency=1)
        future = asyncio.run_coroutine_threadsafe(coro, self.fs.loop)

        def wait() -> bytes:
            with self._errors("reading", path):
                data: bytes = future.result()
            return data

        return wait

    def abort_incomplete_uploads(self, min_age: float = 0.0) -> int:
        """Abort multipart uploads under the root at least ``min_age`` seconds old (left by
        crashed writers; a younger one may be a live writer's); return how many."""
        old = [up for up in self.incomplete_uploads() if up.age >= min_age]
        for upload in old:
            self.abort_upload(upload)
        if old:
            logger.warning("aborted %d incomplete uploads under %s", len(old), self.root)
        return len(old)

    def incomplete_uploads(self) -> list[IncompleteUpload]:
        """Multipart uploads under the root that were neither completed nor aborted."""
        import datetime

        with self._errors("listing uploads under", ""):
            uploads = self.objects.list_multipart_uploads(self.prefix)
        now = datetime.datetime.now(datetime.UTC)
        start = len(self.prefix) + 1 if self.prefix else 0
        out = []
        for upload in uploads:
            initiated = upload.get("Initiated")
            age = (now - initiated).total_seconds() if initiated else float("inf")
            out.append(IncompleteUpload(str(upload["Key"])[start:], str(upload["UploadId"]), age))
        return sorted(out, key=lambda u: u.path)

    def abort_upload(self, upload: IncompleteUpload) -> None:
        """Abort one multipart upload (its parts are discarded)."""
        with self._errors("aborting the upload of", upload.path):
            self.objects.abort_multipart_upload(self._key(upload.path), upload.upload_id)

    def get_bytes(self, path: str) -> bytes:
        """Read the whole object in one GET (``FileNotFoundError`` if absent)."""
        with self._errors("reading", path):
            data: bytes = self.fs.cat_file(self.full_path(path), max_concurrency=1)
        return data

    def exists(self, path: str) -> bool:
        """One HEAD request."""
        with self._errors("checking", path):
            return self.objects.head(self._key(path)) is not None

    def size(self, path: str) -> int:
        """Object size from one HEAD request."""
        with self._errors("checking", path):
            head = self.objects.head(self._key(path))
        if head is None:
            raise FileNotFoundError(self.uri(path))
        return int(head["ContentLength"])

    def remove(self, path: str) -> None:
        """Delete the object (``FileNotFoundError`` if absent)."""
        with self._errors("deleting", path):
            if self.objects.head(self._key(path)) is None:
                raise FileNotFoundError(self.uri(path))
            self.objects.delete(self._key(path))

    list_page_size: int = 1000
    """Keys per ``ListObjectsV2`` request in :meth:`walk` (the S3 maximum is 1000)."""

    def walk(self, prefix: str = "") -> Iterator[str]:
        """Relative paths of all objects under ``prefix``, paging through the listing."""
        base = self._key(prefix.strip("/")) if prefix else self.prefix
        start = len(self.prefix) + 1 if self.prefix else 0
        with self._errors("listing", prefix):
            keys = list(
                self.objects.list_keys(base + "/" if base else "", page_size=self.list_page_size)
            )
        for key in sorted(keys):
            rel = key[start:]
            if rel and TEMP_MARKER not in posixpath.basename(rel):
                yield rel

    def transfer_in(
        self, source: str, path: str, *, mode: TransferMode, storage_options: dict[str, Any]
    ) -> None:
        """Upload ``source`` (a local file goes straight from disk, one PUT up to 100 MiB)."""
        import fsspec.core
        from fsspec.implementations.local import LocalFileSystem

        if mode == "symlink":
            super().transfer_in(source, path, mode=mode, storage_options=storage_options)
            return
        src_fs, src_path = fsspec.core.url_to_fs(source, **storage_options)
        if not isinstance(src_fs, LocalFileSystem):
            super().transfer_in(source, path, mode=mode, storage_options=storage_options)
            return
        fs = self._fs_for(os.path.getsize(src_path))
        with s3_errors(fs, "uploading", self.uri(path), self.secrets):
            fs.put_file(src_path, self.full_path(path))
        if mode == "move":
            os.unlink(src_path)


def _transfer_key(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``transfer_read_timeout`` option alone (removed from the s3fs options)."""
    if options and "transfer_read_timeout" in options:
        return {"transfer_read_timeout": options["transfer_read_timeout"]}
    return {}
