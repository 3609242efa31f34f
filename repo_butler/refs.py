"""The :class:`DatasetRef` value returned by the Butler for stored datasets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from repo_butler.dimensions import DataId

__all__ = ["DatasetRef", "data_id_key"]


def data_id_key(data_id: DataId) -> str:
    """Canonical JSON text of a data ID (sorted keys, compact) used as a registry key."""
    return data_id.key


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """A stored dataset: what it is, where it lives and how to check it.

    Attributes
    ----------
    dataset_type : str
        Dataset type name.
    data_id : DataId
        Its data ID (exactly the dataset type's dimensions).
    run : str
        Run the dataset belongs to: ``""`` for the repository root, else the rerun name.
    path : str
        Path relative to the storage root (``rerun/<run>/...`` for reruns), or an absolute URL for
        files ingested with ``transfer="direct"``.
    uri : str
        Full URL of the file.
    size : int
        Size in bytes.
    checksum : str
        ``"sha256:<hex>"`` of the stored bytes.
    created : str
        ISO 8601 UTC time the dataset was registered.
    repository : str or None
        Root URL of the parent repository holding the dataset (:mod:`repo_butler.chain`);
        ``None`` for a dataset of the repository that was asked.
    """

    dataset_type: str
    data_id: DataId
    run: str
    path: str
    uri: str
    size: int
    checksum: str
    created: str
    repository: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The stable machine-readable form used by ``rb ... --format json``."""
        return {
            "dataset_type": self.dataset_type,
            "data_id": self.data_id.to_dict(),
            "run": self.run,
            "uri": self.uri,
            "size": self.size,
            "checksum": self.checksum,
            **({"repository": self.repository} if self.repository is not None else {}),
        }
