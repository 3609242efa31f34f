"""Reading a daf_butler export file (the YAML ``butler export`` writes) into plain values.

The file is loaded with a safe YAML loader: nothing in it is ever executed or imported. The tags
daf_butler writes are understood as data: ``!uuid`` (a dataset ID), ``!butler_time/...`` (kept
as its text) and any other application tag (``!<lsst.sphgeom.ConvexPolygon>`` regions …), which
becomes an :class:`Opaque` value that is carried but never interpreted.

Both layouts daf_butler has written are read: version 0 (``type: run`` entries, one scalar
``dataset_id`` and ``data_id`` per record) and version 1 (``type: collection`` entries with a
``collection_type``; per file record, lists of ``dataset_id`` and ``data_id``, plus the
``formatter`` class name).
"""

from __future__ import annotations

import logging
import posixpath
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from repo_butler.errors import ConfigError, StorageError

__all__ = [
    "EXPORT_DESCRIPTION",
    "Gen3Collection",
    "Gen3Dataset",
    "Gen3DatasetType",
    "Gen3Export",
    "Gen3ExportError",
    "Opaque",
    "parse_export",
    "read_export",
]

logger = logging.getLogger(__name__)

EXPORT_DESCRIPTION = "Butler Data Repository Export"
#: Major versions of the export layout this module reads.
_READ_MAJORS = (0, 1)


class Gen3ExportError(ConfigError):
    """An export file that cannot be read (not YAML, not an export, malformed entries)."""


@dataclass(frozen=True)
class Opaque:
    """A value under an application tag (a region, a packed object): kept, never interpreted."""

    tag: str
    value: Any


#: libyaml's safe loader when PyYAML was built with it (about 10x faster), else the Python one
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _ExportLoader(_SafeBase):  # type: ignore[valid-type,misc]
    """Safe loading plus daf_butler's tags (as data)."""


def _uuid(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    text = loader.construct_scalar(node)  # type: ignore[arg-type]
    try:
        return str(uuid.UUID(str(text)))
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, f"!uuid {text!r} is not a UUID", node.start_mark
        ) from None


def _tagged_text(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


def _opaque(loader: yaml.SafeLoader, node: yaml.Node) -> Opaque:
    if isinstance(node, yaml.MappingNode):
        return Opaque(node.tag, loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Opaque(node.tag, loader.construct_sequence(node, deep=True))
    return Opaque(node.tag, loader.construct_scalar(node))  # type: ignore[arg-type]


_ExportLoader.add_constructor("!uuid", _uuid)
_ExportLoader.add_multi_constructor("!butler_time", _tagged_text)
_ExportLoader.add_constructor(None, _opaque)


@dataclass(frozen=True)
class Gen3Collection:
    """A collection of the export: ``RUN``, ``TAGGED``, ``CHAINED`` or ``CALIBRATION``.

    ``children`` is a chain's members in search order; ``dataset_ids`` the datasets a tagged or
    calibration collection holds (its ``associations`` entries).
    """

    name: str
    type: str
    children: tuple[str, ...] = ()
    dataset_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Gen3DatasetType:
    """A dataset type of the export: its Gen3 dimensions and storage class."""

    name: str
    dimensions: tuple[str, ...]
    storage_class: str
    is_calibration: bool = False


@dataclass(frozen=True)
class Gen3Dataset:
    """One dataset of the export.

    ``data_id`` holds the keys the export gives (Gen3 writes the required dimensions only:
    ``instrument, detector, visit`` for a calexp; the rest follow from dimension records).
    ``path`` is as written in the export (relative to the exported datastore's root, or a URL).
    ``formatter`` is the fully qualified class name, ``None`` when the export names none.
    """

    dataset_type: str
    run: str
    dataset_id: str
    data_id: Mapping[str, Any]
    path: str
    formatter: str | None


@dataclass(frozen=True)
class Gen3Export:
    """An export file's content.

    Parameters
    ----------
    source : str
        Where it was read from (for messages; its directory resolves relative paths).
    version : str
        The export's ``version``.
    records : Mapping
        Dimension element (``visit``, ``detector`` …) to its records, as written.
    collections : Mapping
        Collection name to :class:`Gen3Collection`, in export order (runs that datasets name
        without an entry of their own are added as ``RUN``).
    dataset_types : Mapping
        Name to :class:`Gen3DatasetType`.
    datasets : tuple of Gen3Dataset
        In export order.
    """

    source: str
    version: str
    records: Mapping[str, tuple[Mapping[str, Any], ...]]
    collections: Mapping[str, Gen3Collection]
    dataset_types: Mapping[str, Gen3DatasetType]
    datasets: tuple[Gen3Dataset, ...] = field(repr=False)

    @property
    def directory(self) -> str:
        """The directory holding the export file (URL or path): relative paths start here."""
        return posixpath.dirname(self.source) or "."


def read_export(url: str, storage_options: Mapping[str, Any] | None = None) -> Gen3Export:
    """Read the export file at ``url`` (a local path or any fsspec URL).

    Raises
    ------
    StorageError
        If it cannot be read.
    Gen3ExportError
        If it is not a daf_butler export this module reads.
    """
    import fsspec.core

    try:
        fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        data = fs.cat_file(path)
    except (OSError, ValueError) as err:
        raise StorageError(f"cannot read the export file {url}: {err}") from None
    source = url if "://" in url else posixpath.abspath(url)
    return parse_export(data, source=source)


def parse_export(data: bytes | str, *, source: str) -> Gen3Export:
    """Parse an export's text (see :func:`read_export`).

    Raises
    ------
    Gen3ExportError
        Naming ``source`` and what is wrong.
    """
    try:
        doc = yaml.load(data, Loader=_ExportLoader)
    except yaml.YAMLError as err:
        raise Gen3ExportError(f"{source} is not valid YAML: {err}".replace("\n", " ")) from None
    if not isinstance(doc, Mapping) or doc.get("description") != EXPORT_DESCRIPTION:
        raise Gen3ExportError(
            f"{source} is not a daf_butler export (no 'description: {EXPORT_DESCRIPTION}'); "
            "make one with `butler export` (or Butler.export) in the LSST stack"
        )
    version = str(doc.get("version", ""))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = -1
    if major not in _READ_MAJORS:
        raise Gen3ExportError(
            f"{source}: export version {version!r} is not one this release reads "
            f"(major versions {', '.join(map(str, _READ_MAJORS))})"
        )
    entries = doc.get("data")
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise Gen3ExportError(f"{source}: 'data' must be a list of entries")
    parser = _Parser(source)
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise Gen3ExportError(f"{source}: data[{index}] is not a mapping")
        parser.entry(index, entry)
    return parser.result(version)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.records: dict[str, list[Mapping[str, Any]]] = {}
        self.collections: dict[str, Gen3Collection] = {}
        self.dataset_types: dict[str, Gen3DatasetType] = {}
        self.datasets: list[Gen3Dataset] = []

    def fail(self, index: int, message: str) -> Gen3ExportError:
        return Gen3ExportError(f"{self.source}: data[{index}]: {message}")

    def need(self, index: int, entry: Mapping[str, Any], key: str) -> Any:
        if key not in entry:
            raise self.fail(index, f"a {entry.get('type')!r} entry without {key!r}")
        return entry[key]

    def entry(self, index: int, entry: Mapping[str, Any]) -> None:
        kind = entry.get("type")
        if kind == "dimension":
            element = str(self.need(index, entry, "element"))
            records = entry.get("records") or []
            self.records.setdefault(element, []).extend(r for r in records if isinstance(r, dict))
        elif kind == "run":  # version 0
            name = str(self.need(index, entry, "name"))
            self.collections.setdefault(name, Gen3Collection(name, "RUN"))
        elif kind == "collection":
            name = str(self.need(index, entry, "name"))
            ctype = str(entry.get("collection_type", "RUN")).upper()
            children = tuple(str(c) for c in entry.get("children") or ())
            old = self.collections.get(name)
            self.collections[name] = Gen3Collection(
                name, ctype, children, old.dataset_ids if old else ()
            )
        elif kind == "associations":
            name = str(self.need(index, entry, "collection"))
            ctype = str(entry.get("collection_type", "TAGGED")).upper()
            ids = entry.get("dataset_ids") or [
                i for row in entry.get("records") or [] for i in _as_list(row.get("dataset_ids"))
            ]
            old = self.collections.get(name, Gen3Collection(name, ctype))
            self.collections[name] = Gen3Collection(
                name, old.type, old.children, (*old.dataset_ids, *(str(i) for i in ids))
            )
        elif kind == "dataset_type":
            name = str(self.need(index, entry, "name"))
            dims = tuple(str(d) for d in entry.get("dimensions") or ())
            self.dataset_types[name] = Gen3DatasetType(
                name, dims, str(entry.get("storage_class", "")), bool(entry.get("is_calibration"))
            )
        elif kind == "dataset":
            self.dataset(index, entry)
        else:
            logger.info("%s: data[%d]: entry of type %r ignored", self.source, index, kind)

    def dataset(self, index: int, entry: Mapping[str, Any]) -> None:
        dtype = str(self.need(index, entry, "dataset_type"))
        run = str(self.need(index, entry, "run"))
        self.collections.setdefault(run, Gen3Collection(run, "RUN"))
        for n, record in enumerate(entry.get("records") or []):
            where = f"dataset {dtype} record {n}"
            if not isinstance(record, Mapping) or "path" not in record:
                raise self.fail(index, f"{where} has no 'path'")
            ids = _as_list(record.get("dataset_id"))
            data_ids = _as_list(record.get("data_id"))
            if not ids or len(ids) != len(data_ids):
                raise self.fail(
                    index, f"{where}: {len(ids)} dataset_id(s) but {len(data_ids)} data_id(s)"
                )
            formatter = record.get("formatter")
            for dataset_id, data_id in zip(ids, data_ids, strict=True):
                if not isinstance(data_id, Mapping):
                    raise self.fail(index, f"{where}: data_id {data_id!r} is not a mapping")
                self.datasets.append(
                    Gen3Dataset(
                        dtype,
                        run,
                        str(dataset_id),
                        dict(data_id),
                        str(record["path"]),
                        None if formatter is None else str(formatter),
                    )
                )

    def result(self, version: str) -> Gen3Export:
        return Gen3Export(
            self.source,
            version,
            {k: tuple(v) for k, v in self.records.items()},
            dict(self.collections),
            dict(self.dataset_types),
            tuple(self.datasets),
        )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
