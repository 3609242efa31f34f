"""Runs and reruns (LSST Gen2 style).

The repository root is the run ``""``. A rerun ``NAME`` stores its outputs under
``rerun/NAME/`` and reads search ``NAME``, then its parents (recursively), then the root.
``"IN:OUT"`` creates ``OUT`` with parent ``IN``. Parents are recorded in the registry and in a
marker ``rerun/NAME/_run.json`` so that ``reindex`` can restore them from storage alone.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from repo_butler.errors import ConfigError

if TYPE_CHECKING:
    from repo_butler.datastore import Datastore
    from repo_butler.registry import Registry

__all__ = [
    "RERUN_DIR",
    "RUN_MARKER",
    "RUN_MARKER_VERSION",
    "check_run_name",
    "decode_run_marker",
    "display_run",
    "encode_run_marker",
    "open_output_run",
    "parse_rerun",
    "run_prefix",
    "search_order",
]

logger = logging.getLogger(__name__)

RERUN_DIR = "rerun"
RUN_MARKER = "_run.json"
#: ``format_version`` written in run markers (markers written before it had none: version 0).
RUN_MARKER_VERSION = 1
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def run_prefix(run: str) -> str:
    """Storage path prefix of a run (``""`` for the root, ``rerun/NAME/`` otherwise)."""
    return f"{RERUN_DIR}/{run}/" if run else ""


def encode_run_marker(run: str, parents: Sequence[str]) -> bytes:
    """The bytes of the marker ``rerun/RUN/_run.json`` (format :data:`RUN_MARKER_VERSION`)."""
    doc = {"format_version": RUN_MARKER_VERSION, "run": run, "parents": list(parents)}
    return json.dumps(doc).encode()


def decode_run_marker(data: bytes, *, source: str) -> tuple[str, tuple[str, ...]]:
    """The run and parents held by a marker (any version up to :data:`RUN_MARKER_VERSION`).

    Raises
    ------
    FormatVersionError
        If the marker is newer than this release reads.
    ConfigError
        If it is not a marker.
    """
    from repo_butler.formats import check_version

    try:
        doc = json.loads(data)
        run, parents = doc["run"], tuple(doc.get("parents", []))
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{source} is not a run marker ({err}); remove it or fix it") from None
    check_version(doc.get("format_version"), RUN_MARKER_VERSION, what="run marker", source=source)
    return str(run), parents


def check_run_name(name: str) -> str:
    """Return ``name`` if it is a valid rerun name (one path segment, no ``..``).

    Raises
    ------
    ConfigError
        Otherwise.
    """
    if not _RUN_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"invalid rerun name {name!r}: use letters, digits and '_.+-' (no '/' or '..')"
        )
    return name


def display_run(run: str) -> str:
    """Human name of a run for messages (``(root)`` for ``""``)."""
    return repr(run) if run else "(root)"


def _known_list(known: Mapping[str, Sequence[str]]) -> str:
    return ", ".join(sorted(r for r in known if r)) or "(none)"


def parse_rerun(
    spec: str | None, known: Mapping[str, tuple[str, ...]], *, writeable: bool
) -> tuple[str, tuple[str, ...], bool]:
    """Interpret a ``rerun`` argument against the runs the registry knows.

    Parameters
    ----------
    spec : str or None
        ``None``/``""`` (root), ``"OUT"`` or ``"IN:OUT"``.
    known : Mapping
        Known runs and their direct parents.
    writeable : bool
        Whether a new output rerun may be created.

    Returns
    -------
    run : str
        The output run.
    parents : tuple of str
        Its direct parents.
    is_new : bool
        Whether the caller must record the run.

    Raises
    ------
    ConfigError
        For invalid names, unknown inputs, re-parenting an existing rerun, or an unknown rerun
        when not writeable.
    """
    if not spec:
        return "", (), False
    if ":" in spec:
        source, out = (part.strip() for part in spec.split(":", 1))
        inputs: tuple[str, ...] = (check_run_name(source),) if source else ()
    else:
        out, inputs = spec.strip(), ()
    check_run_name(out)
    for parent in inputs:
        if parent not in known:
            raise ConfigError(
                f"input rerun {parent!r} does not exist; known reruns: {_known_list(known)}"
            )
    if out in known:
        if inputs and known[out] != inputs:
            raise ConfigError(
                f"rerun {out!r} already exists with parents {list(known[out])}; it cannot be "
                f"re-parented to {list(inputs)} (use a new rerun name)"
            )
        return out, known[out], False
    if not writeable:
        raise ConfigError(
            f"rerun {out!r} does not exist (opened read-only); known reruns: {_known_list(known)}"
        )
    return out, inputs, True


def search_order(
    run: str, parents: Sequence[str], known: Mapping[str, Sequence[str]]
) -> tuple[str, ...]:
    """Runs searched by reads: ``run``, its parents depth-first, and the root last."""
    order: list[str] = []

    def add(name: str) -> None:
        if name in order:
            return
        order.append(name)
        for parent in known.get(name, ()):
            add(parent)

    add(run)
    for parent in parents:
        add(parent)
    if "" in order:
        order.remove("")
    order.append("")
    return tuple(order)


@dataclass(frozen=True)
class PendingRun:
    """A new output rerun, recorded only when something is first written into it."""

    run: str
    parents: tuple[str, ...]
    registry: Registry
    store: Datastore

    @property
    def spec(self) -> str:
        """The ``rerun`` argument that opens it with its parents (``IN:OUT``) before it exists."""
        return ":".join((*self.parents, self.run))

    def create(self) -> None:
        """Record the rerun in the registry and its marker file (no-op if already recorded)."""
        if self.registry.runs().get(self.run) == self.parents:
            return
        self.registry.define_run(self.run, self.parents)
        marker = f"{run_prefix(self.run)}{RUN_MARKER}"
        self.store.put_bytes(marker, encode_run_marker(self.run, self.parents))
        logger.info("created rerun %r (parents %s)", self.run, list(self.parents))


def open_output_run(
    spec: str | None, registry: Registry, store: Datastore, *, writeable: bool
) -> tuple[str, tuple[str, ...], PendingRun | None]:
    """The output run and search order for a ``rerun`` argument (see :func:`parse_rerun`).

    Nothing is written here: a new rerun is recorded (in the registry and in its marker file
    ``rerun/NAME/_run.json``, so ``reindex`` can restore its parents) by the returned
    :class:`PendingRun`, which the writer creates before its first write; a mistake found before
    that leaves no empty rerun behind.

    Returns
    -------
    run : str
        The output run.
    search : tuple of str
        Runs searched by reads (:func:`search_order`).
    pending : PendingRun or None
        The new rerun to record before the first write; ``None`` when the run exists.
    """
    run, parents, is_new = parse_rerun(spec, registry.runs(), writeable=writeable)
    pending = PendingRun(run, tuple(parents), registry, store) if is_new else None
    return run, search_order(run, parents, registry.runs()), pending
