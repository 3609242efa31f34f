"""Single-request S3 operations with conditions (``If-Match`` / ``If-None-Match``) on one bucket.

Used by :class:`~repo_butler.s3.S3Datastore` (exclusive and conditional writes) and by the bucket
registry (:mod:`repo_butler.registry.s3`), over an s3fs filesystem's client and event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["ConditionFailed", "S3Objects"]


class ConditionFailed(Exception):
    """A conditional request (``If-Match`` / ``If-None-Match``) did not hold (HTTP 412)."""


class S3Objects:
    """Single-request S3 operations (with conditions) on one bucket, over an s3fs filesystem.

    Parameters
    ----------
    fs : s3fs.S3FileSystem
        The connected filesystem (its event loop and client are reused).
    bucket : str
        Bucket name.
    """

    def __init__(self, fs: Any, bucket: str) -> None:
        self.fs = fs
        self.bucket = bucket

    def _call(self, method: str, **kwargs: Any) -> Any:
        from s3fs.core import sync

        return sync(self.fs.loop, self.fs._call_s3, method, Bucket=self.bucket, **kwargs)

    @staticmethod
    def _precondition(err: BaseException) -> bool:
        return "pre-condition" in str(err) or "PreconditionFailed" in str(err)

    def head(self, key: str) -> dict[str, Any] | None:
        """Metadata of ``key`` (``ETag``, ``ContentLength``, ``LastModified``, ``Date``) or None."""
        try:
            out = self._call("head_object", Key=key)
        except FileNotFoundError:
            return None
        out["Date"] = out.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        return dict(out)

    def get(self, key: str, *, if_none_match: str | None = None) -> tuple[bytes | None, str | None]:
        """``(body, etag)``; ``(None, None)`` if absent; ``(None, etag)`` if unchanged (304)."""
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {"Key": key}
        if if_none_match:
            kwargs["IfNoneMatch"] = if_none_match
        try:
            resp = self._call("get_object", **kwargs)
        except FileNotFoundError:
            return None, None
        except (ClientError, OSError) as err:
            if "304" in str(err) or "Not Modified" in str(err):
                return None, if_none_match
            raise
        from s3fs.core import sync

        async def read() -> bytes:
            try:
                data: bytes = await resp["Body"].read()
                return data
            finally:
                resp["Body"].close()

        return sync(self.fs.loop, read), str(resp["ETag"])

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> str:
        """Write ``data`` in one PUT; return the new ETag.

        Raises
        ------
        ConditionFailed
            If ``if_match``/``if_none_match`` did not hold (412).
        """
        kwargs: dict[str, Any] = {"Key": key, "Body": data}
        if if_match:
            kwargs["IfMatch"] = if_match
        if if_none_match:
            kwargs["IfNoneMatch"] = if_none_match
        try:
            out = self._call("put_object", **kwargs)
        except OSError as err:
            if self._precondition(err):
                raise ConditionFailed(str(err)) from None
            raise
        self.fs.invalidate_cache(f"{self.bucket}/{key}")
        return str(out["ETag"])

    def list_keys(self, prefix: str, *, page_size: int = 1000) -> Iterator[str]:
        """Keys of all objects under ``prefix``, one ``ListObjectsV2`` request per page."""
        kwargs: dict[str, Any] = {"Prefix": prefix, "MaxKeys": page_size}
        while True:
            page = self._call("list_objects_v2", **kwargs)
            for item in page.get("Contents", []) or []:
                key = str(item["Key"])
                if not key.endswith("/"):  # directory markers some servers keep
                    yield key
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kwargs["ContinuationToken"] = token

    def list_multipart_uploads(self, prefix: str) -> list[dict[str, Any]]:
        """Pending multipart uploads whose key starts with ``prefix`` (all pages)."""
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"Prefix": prefix}
        while True:
            page = self._call("list_multipart_uploads", **kwargs)
            out.extend(page.get("Uploads", []) or [])
            if not page.get("IsTruncated"):
                return out
            kwargs["KeyMarker"] = page.get("NextKeyMarker")
            kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker")

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """Abort one multipart upload (its parts are discarded)."""
        self._call("abort_multipart_upload", Key=key, UploadId=upload_id)

    def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete ``key`` (only if its ETag is ``if_match``); False if the condition failed."""
        kwargs: dict[str, Any] = {"Key": key}
        if if_match:
            kwargs["IfMatch"] = if_match
        try:
            self._call("delete_object", **kwargs)
        except FileNotFoundError:
            return True
        except OSError as err:
            if self._precondition(err):
                return False
            raise
        self.fs.invalidate_cache(f"{self.bucket}/{key}")
        return True
