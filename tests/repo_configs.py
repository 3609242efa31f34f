"""Repository configurations the butler tests share: one JSON dataset type, ``meta``.

Read-only: a test that needs another setting builds a new mapping (``{**META_VISIT_CCD, ...}``).
"""

from __future__ import annotations

from typing import Any

META_VISIT_CCD: dict[str, Any] = {
    "dataset_types": {
        "meta": {
            "dimensions": ["visit", "ccd"],
            "formatter": "json",
            "template": "meta/{visit:07d}/m-{ccd:03d}.json",
        }
    }
}
"""``meta`` with dimensions visit and ccd."""

META_FILTER_VISIT_CCD: dict[str, Any] = {
    "dataset_types": {
        "meta": {
            "dimensions": ["filter", "visit", "ccd"],
            "formatter": "json",
            "template": "meta/{filter}/{visit:07d}/m-{ccd:03d}.json",
        }
    }
}
"""``meta`` with dimensions filter, visit and ccd."""

__all__ = ["META_FILTER_VISIT_CCD", "META_VISIT_CCD"]
