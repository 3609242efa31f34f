"""The event rows of a bucket registry kept as a Delta Lake table, and the table's storage options.

Every registry change is one *event* row: ``insert`` (a dataset row, with its provenance),
``remove``, ``run`` (a run and its parents) or ``clear`` (every row before it is gone). Rows carry
the Delta version of the commit that added them (``version``, known before the commit because a
writer commits exactly at the version after the one it read, or not at all) and their order in
that commit (``seq``). Replaying the events in ``(version, seq)`` order gives the registry; a
reader that has replayed up to version ``V`` needs only the rows with ``version > V``, whatever
compaction did to the files holding them.

The table layout is format version :data:`EVENT_FORMAT` (recorded in the table's description,
JSON), so a later release can refuse or migrate a table it does not know.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from repo_butler.dimensions import DataId, DimensionUniverse
from repo_butler.refs import data_id_key
from repo_butler.registry.base import DatasetRecord

__all__ = [
    "EVENT_FORMAT",
    "FORMAT_KEY",
    "Event",
    "create_registry_table",
    "delta_storage_options",
    "event_batches",
    "event_from_row",
    "events_schema",
    "events_to_arrow",
]

#: Version of the event table layout (recorded in the table description).
EVENT_FORMAT = 1
#: Key of the format version in the table description (JSON).
FORMAT_KEY = "repo_butler_registry_format"

_STRING_COLUMNS = (
    "op",
    "dataset_type",
    "run",
    "data_id",
    "path",
    "checksum",
    "created",
    "provenance_path",
    "provenance",
    "parents",
)


@dataclass(frozen=True)
class Event:
    """One registry change (see the module docstring)."""

    op: str
    """``insert``, ``remove``, ``run`` or ``clear``."""
    record: DatasetRecord | None = None
    """The dataset row (``insert``; for ``remove`` only its type, data ID and run matter)."""
    provenance: str | None = None
    """Provenance JSON stored with an inserted row."""
    replace: bool = False
    """Whether an ``insert`` replaces a row with the same type, data ID and run."""
    run: str = ""
    """The run an ``run`` event defines."""
    parents: tuple[str, ...] = ()
    """The parents of that run."""


def events_schema() -> Any:
    """The Arrow schema of the event table (``version`` first: its statistics select files)."""
    import pyarrow as pa

    fields = [pa.field("version", pa.int64(), nullable=False), pa.field("seq", pa.int32())]
    for name in _STRING_COLUMNS:
        fields.append(pa.field(name, pa.string()))
        if name == "path":
            fields.append(pa.field("size", pa.int64()))
    fields.append(pa.field("replace", pa.bool_()))
    return pa.schema(fields)


def events_to_arrow(events: Iterable[Event], version: int) -> Any:
    """The rows of ``events`` committed at ``version``, as an Arrow table."""
    import pyarrow as pa

    cols: dict[str, list[Any]] = {name: [] for name in events_schema().names}
    for seq, ev in enumerate(events):
        rec = ev.record
        row: dict[str, Any] = {
            "version": version,
            "seq": seq,
            "op": ev.op,
            "dataset_type": rec.dataset_type if rec else None,
            "run": rec.run if rec else (ev.run if ev.op == "run" else None),
            "data_id": data_id_key(rec.data_id) if rec else None,
            "path": rec.path if rec and ev.op == "insert" else None,
            "size": rec.size if rec and ev.op == "insert" else None,
            "checksum": rec.checksum if rec and ev.op == "insert" else None,
            "created": rec.created if rec and ev.op == "insert" else None,
            "provenance_path": rec.provenance if rec and ev.op == "insert" else None,
            "provenance": ev.provenance,
            "parents": json.dumps(list(ev.parents)) if ev.op == "run" else None,
            "replace": ev.replace,
        }
        for name, value in row.items():
            cols[name].append(value)
    return pa.table(cols, schema=events_schema())


def event_batches(table: Any, after: int) -> Iterator[Any]:
    """The rows of ``table`` with ``version > after`` in commit order, as Arrow record batches
    of at most 20,000 rows (so replaying never holds the whole table as Python objects)."""
    import numpy as np
    import pyarrow.compute as pc

    if table.num_rows and pc.min(table["version"]).as_py() <= after:
        table = table.filter(pc.greater(table["version"], after))
    order = table["version"].to_numpy() * (1 << 31) + table["seq"].to_numpy()
    if not bool(np.all(order[1:] >= order[:-1])):  # files are in order, and usually each other
        table = table.take(np.argsort(order, kind="stable"))
    yield from table.to_batches(max_chunksize=20_000)


def event_from_row(row: dict[str, Any], universe: DimensionUniverse) -> Event:
    """One event row as an :class:`Event`."""
    op = row["op"]
    if op == "run":
        return Event("run", run=row["run"], parents=tuple(json.loads(row["parents"])))
    if op == "clear":
        return Event("clear")
    if op not in ("insert", "remove"):
        raise ValueError(f"unknown registry event {op!r} in version {row['version']}")
    raw = json.loads(row["data_id"])
    data_id = DataId._trusted({k: raw[k] for k in universe.order(raw)}, row["data_id"])
    record = DatasetRecord(
        row["dataset_type"],
        data_id,
        row["run"],
        row["path"] or "",
        int(row["size"] or 0),
        row["checksum"] or "",
        row["created"] or "",
        row["provenance_path"],
    )
    return Event(op, record, provenance=row["provenance"], replace=bool(row["replace"]))


def create_registry_table(url: str, options: Mapping[str, str]) -> None:
    """Create the empty event table at ``url``, its description naming the format.

    Raises whatever ``deltalake`` raises, also when a table already exists there (of two first
    writers one creates it, the other opens it).
    """
    from deltalake import DeltaTable

    DeltaTable.create(
        url,
        schema=events_schema(),
        mode="error",
        storage_options=dict(options),
        name="repo_butler_registry",
        description=json.dumps({FORMAT_KEY: EVENT_FORMAT}),
    )


def delta_storage_options(fs: Any) -> dict[str, str]:
    """Options for ``deltalake`` (Rust ``object_store``) equivalent to an s3fs filesystem.

    The credentials are the ones s3fs resolved (keys, profile, environment or instance role),
    handed over as values, so every way of configuring s3fs works for the registry too.
    Requests that cannot reach the endpoint fail in seconds, as s3fs's do.
    """
    from fsspec.asyn import sync

    client = sync(fs.loop, fs.set_session)
    endpoint = str(client.meta.endpoint_url)
    opts: dict[str, str] = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": str(client.meta.region_name or "us-east-1"),
        "conditional_put": "etag",
        "connect_timeout": "5s",
        "timeout": "60s",
        "max_retries": "3",
        "retry_timeout": "20s",
    }
    if endpoint.startswith("http://"):
        opts["AWS_ALLOW_HTTP"] = "true"
    if getattr(fs, "anon", False):
        opts["AWS_SKIP_SIGNATURE"] = "true"
    else:
        creds = client._get_credentials()
        if inspect.isawaitable(creds):
            creds = sync(fs.loop, _awaited, creds)
        if creds is None:
            opts["AWS_SKIP_SIGNATURE"] = "true"
        else:
            frozen = creds.get_frozen_credentials()
            if inspect.isawaitable(frozen):
                frozen = sync(fs.loop, _awaited, frozen)
            opts["AWS_ACCESS_KEY_ID"] = frozen.access_key
            opts["AWS_SECRET_ACCESS_KEY"] = frozen.secret_key
            if frozen.token:
                opts["AWS_SESSION_TOKEN"] = frozen.token
    return opts


async def _awaited(value: Any) -> Any:
    return await value
