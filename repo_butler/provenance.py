"""Provenance records: which task, configuration, inputs and software produced a dataset.

A :class:`Provenance` passed to :meth:`Butler.put <repo_butler.Butler.put>` is stored in the
registry and as a sidecar ``<file>.provenance.json`` next to the dataset, validated against
``schemas/provenance.schema.json``. Secrets never reach either: configuration values under keys
that look like credentials (``secret``, ``password``, ``token``, ``key``, ``credential``, ...) are
replaced by ``"***REDACTED***"`` and ``user:password@`` in URLs is stripped, recursively.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from repo_butler.errors import ConfigError

if TYPE_CHECKING:
    from repo_butler.refs import DatasetRef

__all__ = [
    "PENDING_CHECKSUM",
    "REDACTED",
    "SIDECAR_SUFFIX",
    "Provenance",
    "ProvenanceInput",
    "check_provenance_version",
    "decode_provenance",
    "provenance_document",
    "provenance_json",
    "redact_values",
    "scrub_secrets",
    "software_versions",
]

logger = logging.getLogger(__name__)

REDACTED = "***REDACTED***"
SIDECAR_SUFFIX = ".provenance.json"
#: ``schema_version`` written in provenance records; readers refuse newer ones.
SCHEMA_VERSION = 1
PENDING_CHECKSUM = "sha256:" + "0" * 64
"""Placeholder checksum: provenance is validated before the bytes are written and hashed."""

_SECRET_KEY = re.compile(
    r"(secret|passw(or)?d|passphrase|token|credential|auth|api[_-]?key|access[_-]?key|"
    r"private[_-]?key|session[_-]?key|(^|[_\-.])key$)",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]+@")
# Values that are credentials whatever their key is called (AWS access key IDs, bearer tokens,
# PEM private keys).
_SECRET_VALUE = re.compile(
    r"\b(AKIA|ASIA)[0-9A-Z]{16}\b|^Bearer\s+\S+|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)


def scrub_secrets(value: Any) -> Any:
    """Return a JSON-compatible copy of ``value`` with secrets redacted (recursively).

    Mapping values whose key looks like a credential, and strings that look like one (AWS access
    key IDs, ``Bearer`` tokens, PEM private keys), are replaced by :data:`REDACTED`; strings
    have ``scheme://user:pass@`` userinfo removed; tuples/sets become lists; other non-JSON values
    become their ``str``.
    """
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            text = str(key)
            out[text] = REDACTED if _SECRET_KEY.search(text) else scrub_secrets(item)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub_secrets(item) for item in value]
    if isinstance(value, str):
        if _SECRET_VALUE.search(value):
            return REDACTED
        return _URL_USERINFO.sub(r"\g<scheme>", value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub_secrets(str(value))


def redact_values(value: Any, secrets: Sequence[str]) -> Any:
    """Copy of JSON-compatible ``value`` with every occurrence of each known secret string
    (e.g. the storage options' secret key) replaced by :data:`REDACTED`, wherever it appears."""
    if isinstance(value, Mapping):
        return {key: redact_values(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_values(item, secrets) for item in value]
    if isinstance(value, str):
        for secret in secrets:
            if len(secret) >= 4 and secret in value:
                value = value.replace(secret, REDACTED)
    return value


def decode_provenance(text: str, *, source: str) -> dict[str, Any]:
    """Decode a stored provenance record (JSON object) of ``source``.

    Raises
    ------
    ConfigError
        If it is not a JSON object (a registry filled from a broken sidecar by an old release):
        says to fix or remove the sidecar and rebuild the registry.
    """
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError(f"a JSON {type(doc).__name__}, not an object")
    except ValueError as err:
        raise ConfigError(
            f"the provenance record of {source} is malformed ({err}); fix or remove its "
            f"{SIDECAR_SUFFIX} sidecar and rebuild the registry with `rb reindex REPO`"
        ) from None
    return doc


def check_provenance_version(doc: Mapping[str, Any], *, source: str) -> int:
    """The ``schema_version`` of a provenance document, if this release reads it.

    Raises
    ------
    FormatVersionError
        If the document is newer than :data:`SCHEMA_VERSION` (naming ``source``).
    """
    from repo_butler.formats import check_version

    version = doc.get("schema_version")
    return check_version(version, SCHEMA_VERSION, what="provenance", source=source, oldest=1)


def software_versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` plus ``python``; missing ones are ``"not installed"``.

    Parameters
    ----------
    *packages : str
        Distribution names, e.g. ``"repo-butler", "numpy"``.
    """
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in packages or ("repo-butler",):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def now_iso() -> str:
    """Current UTC time in ISO 8601."""
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class ProvenanceInput:
    """One input of a task: dataset type, data ID, run and checksum of the bytes read, and the
    parent repository it was read from (``None``: the repository written to)."""

    dataset_type: str
    data_id: Mapping[str, int | str]
    run: str
    checksum: str
    repository: str | None = None

    @classmethod
    def from_ref(cls, ref: DatasetRef) -> ProvenanceInput:
        """Describe a stored dataset used as input."""
        return cls(ref.dataset_type, ref.data_id.to_dict(), ref.run, ref.checksum, ref.repository)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (``repository`` only for an input from a parent repository)."""
        out = {
            "dataset_type": self.dataset_type,
            "data_id": dict(self.data_id),
            "run": self.run,
            "checksum": self.checksum,
        }
        if self.repository is not None:
            out["repository"] = self.repository
        return out


@dataclass(frozen=True, slots=True)
class Provenance:
    """How a dataset was made.

    Parameters
    ----------
    task : str
        Task name (``"makeWarp"``).
    config : Mapping
        The task's full configuration; secrets are redacted on construction.
    inputs : tuple of ProvenanceInput
        Datasets read.
    software : Mapping[str, str]
        Package versions (see :func:`software_versions`).
    start, end : str
        ISO 8601 UTC times.
    host : str
        Host name.
    """

    task: str
    config: Mapping[str, Any]
    inputs: tuple[ProvenanceInput, ...] = ()
    software: Mapping[str, str] = field(default_factory=dict)
    start: str = ""
    end: str = ""
    host: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", scrub_secrets(self.config))
        object.__setattr__(self, "inputs", tuple(self.inputs))

    @classmethod
    def build(
        cls,
        task: str,
        config: Mapping[str, Any],
        inputs: Iterable[ProvenanceInput | DatasetRef] = (),
        *,
        start: str | None = None,
        end: str | None = None,
        packages: Iterable[str] = ("repo-butler",),
    ) -> Provenance:
        """Convenience constructor filling software versions, host and times.

        ``inputs`` may mix :class:`ProvenanceInput` and :class:`~repo_butler.DatasetRef`.
        """
        resolved = tuple(
            i if isinstance(i, ProvenanceInput) else ProvenanceInput.from_ref(i) for i in inputs
        )
        import platform

        stamp = now_iso()
        return cls(
            task=task,
            config=config,
            inputs=resolved,
            software=software_versions(*packages),
            start=start or stamp,
            end=end or stamp,
            host=platform.node(),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form matching ``provenance.schema.json`` (without ``output``)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "task": self.task,
            "config": scrub_secrets(self.config),
            "inputs": [i.to_dict() for i in self.inputs],
            "software": {str(k): str(v) for k, v in self.software.items()},
            "start": self.start,
            "end": self.end,
            "host": self.host,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Rebuild from :meth:`to_dict` output (extra ``output`` ignored).

        Raises
        ------
        FormatVersionError
            If ``schema_version`` is newer than this release reads.
        """
        if "schema_version" in data:  # stored records have one; hand-made mappings may not
            check_provenance_version(data, source="provenance record")
        try:
            return cls(
                task=data["task"],
                config=data["config"],
                inputs=tuple(
                    ProvenanceInput(
                        i["dataset_type"],
                        i["data_id"],
                        i["run"],
                        i["checksum"],
                        i.get("repository"),
                    )
                    for i in data["inputs"]
                ),
                software=dict(data["software"]),
                start=data["start"],
                end=data["end"],
                host=data["host"],
            )
        except (KeyError, TypeError) as err:
            raise ConfigError(f"provenance record is missing or has a bad field: {err}") from err


def provenance_document(
    provenance: Provenance,
    *,
    dataset_type: str,
    data_id: Mapping[str, Any],
    run: str,
    checksum: str = PENDING_CHECKSUM,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance document stored with a dataset (as :meth:`Butler.put` writes it).

    Empty ``start``/``end``/``host``/``software`` are completed, the ``output`` section names the
    dataset, the values of secrets in ``storage_options`` are removed wherever they appear, and
    the result is validated against ``provenance.schema.json`` (so a bad document is refused
    before anything is written). Finish it with :func:`provenance_json` once the checksum of
    the written bytes is known.

    Raises
    ------
    ConfigError
        If the document does not match the schema.
    """
    import platform

    from repo_butler.redaction import secret_values
    from repo_butler.schemas import validate

    doc = provenance.to_dict()
    # Complete what the caller left empty so every record says when, where and with what.
    stamp = now_iso()
    doc["start"] = doc["start"] or stamp
    doc["end"] = doc["end"] or stamp
    doc["host"] = doc["host"] or platform.node()
    doc["software"] = doc["software"] or software_versions()
    doc["output"] = {
        "dataset_type": dataset_type,
        "data_id": dict(data_id),
        "run": run,
        "checksum": checksum,
    }
    # Key-based scrubbing happened in Provenance; also remove the values we know are
    # secret (the storage options' credentials) wherever the caller put them.
    doc = redact_values(doc, secret_values(storage_options))
    source = f"provenance of {dataset_type} {data_id}"
    validate(doc, "provenance.schema.json", source=source, error=ConfigError)
    return doc


def provenance_json(doc: dict[str, Any], checksum: str) -> str:
    """The sidecar/registry JSON of a :func:`provenance_document` with the final checksum."""
    doc["output"]["checksum"] = checksum
    return json.dumps(doc, sort_keys=True, indent=1)
