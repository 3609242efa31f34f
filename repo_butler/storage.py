"""Open the datastore for a URL: the one place that maps a URL scheme to a datastore class.

``s3://`` (and ``s3a://``) roots get :class:`~repo_butler.s3.S3Datastore` (bounded round trips,
fail-fast timeouts, conditional writes, errors without secrets); every other fsspec URL or local
path gets :class:`~repo_butler.datastore.FsspecDatastore`.
"""

from __future__ import annotations

import os
from typing import Any

from repo_butler.datastore import FsspecDatastore

__all__ = ["is_s3_url", "open_datastore"]


def is_s3_url(url: str | os.PathLike[str]) -> bool:
    """Whether ``url`` names an S3 location (``s3://`` or ``s3a://``)."""
    return os.fspath(url).startswith(("s3://", "s3a://"))


def open_datastore(
    url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> FsspecDatastore:
    """The datastore for ``url`` with fsspec ``storage_options`` (credentials, endpoint).

    Raises
    ------
    StorageError
        If the URL's filesystem cannot be opened (unknown protocol, missing package); the
        message never shows secret option values.
    """
    if is_s3_url(url):
        from repo_butler.s3 import S3Datastore

        return S3Datastore(url, storage_options)
    return FsspecDatastore(url, storage_options)
