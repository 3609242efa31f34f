"""Former home of :func:`~repo_butler.storage.open_datastore` (S3 code: :mod:`repo_butler.s3`).

Kept only for ``warping/task/deferred.py``, which issue 14 removes in favour of
:mod:`repo_butler.writes`; delete this module together with it.
"""

from __future__ import annotations

from repo_butler.storage import open_datastore

__all__ = ["open_datastore"]
