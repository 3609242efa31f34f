"""Count the HTTP requests an s3fs filesystem sends, through botocore's ``before-send`` event."""

from __future__ import annotations

import collections
import threading
from typing import Any

__all__ = ["RequestCounter"]


class RequestCounter:
    """Counts requests per S3 operation (``GetObject``, ``HeadObject``, ``PutObject``, ...).

    Attach it to one or more ``s3fs.S3FileSystem`` objects; every request botocore is about to
    send (retries included) is counted, so the numbers are what the server sees.
    """

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def attach(self, fs: Any) -> RequestCounter:
        """Start counting the requests of ``fs`` (connects it if needed; attaching the same
        client twice, e.g. s3fs's cached instance, still counts each request once)."""
        fs.s3.meta.events.register(
            "before-send.s3", self._count, unique_id=f"rb-request-counter-{id(self)}"
        )
        return self

    def _count(self, event_name: str = "", **kwargs: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.counts[operation] += 1

    def reset(self) -> None:
        """Forget the counts so far."""
        with self._lock:
            self.counts.clear()

    @property
    def total(self) -> int:
        """All requests counted."""
        return sum(self.counts.values())

    def snapshot(self) -> dict[str, int]:
        """The counts as a plain dict (for assertion messages)."""
        with self._lock:
            return dict(self.counts)
