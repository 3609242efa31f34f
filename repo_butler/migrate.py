"""``rb migrate``: upgrade, in place, the files of a repository written by older releases.

Every on-disk format has a :class:`FormatMigration`: it finds the files of its format, reads
their version (:mod:`repo_butler.formats`) and upgrades the older ones one version step at a
time. repo_butler registers the butler's own formats (``butler.yaml``, the registry schema, run
markers, provenance sidecars); packages add theirs with :func:`register_migration`, or through
an entry point in group ``repo_butler.migrations`` naming a callable that registers them.

:func:`migrate` scans every format before changing anything, so a file of a *newer* version
anywhere (written by a newer repo-butler) stops it with nothing changed. Each upgraded file is
written whole and swapped in atomically by the datastore (a crash leaves the old or the new
file). For a registered dataset the registry row (size, checksum) and its provenance record
(``output.checksum``, registry copy and sidecar) are updated *before* the file is swapped: a
crash in between leaves an old file that the next run upgrades again to the same bytes. Running
it again on an upgraded repository changes nothing and says the repository is up to date.
"""

from __future__ import annotations

import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from repo_butler.checksums import checksum_bytes
from repo_butler.config import CONFIG_FILENAME, CONFIG_VERSION
from repo_butler.datastore import Datastore
from repo_butler.errors import RepoButlerError, RepositoryNotFoundError
from repo_butler.formats import FormatVersionError, check_version
from repo_butler.provenance import SCHEMA_VERSION as PROVENANCE_VERSION
from repo_butler.provenance import SIDECAR_SUFFIX
from repo_butler.run_configs import RUN_CONFIG_VERSION, is_run_config_path
from repo_butler.runs import RERUN_DIR, RUN_MARKER, RUN_MARKER_VERSION, encode_run_marker

if TYPE_CHECKING:
    from repo_butler.butler import Butler
    from repo_butler.registry.base import DatasetRecord

__all__ = [
    "MIGRATION_ENTRY_POINT",
    "FileFormat",
    "FormatMigration",
    "MigrationContext",
    "MigrationReport",
    "Step",
    "Upgrade",
    "migrate",
    "migrations",
    "register_migration",
]

logger = logging.getLogger(__name__)

MIGRATION_ENTRY_POINT = "repo_butler.migrations"

#: One upgrade step: the bytes of version ``v`` (and the file's name) to the bytes of ``v + 1``.
Step = Callable[[bytes, str], bytes]


@dataclass(frozen=True)
class Upgrade:
    """One file whose format is older than this release writes."""

    format: str
    path: str
    found: int
    target: int

    def describe(self) -> str:
        """``path: format vN -> vM``."""
        return f"{self.path}: {self.format} v{self.found} -> v{self.target}"


class MigrationContext:
    """What a :class:`FormatMigration` sees of the repository being migrated.

    Parameters
    ----------
    root : str or os.PathLike
        Repository root (local path or URL).
    storage_options : dict, optional
        fsspec options (credentials); never written anywhere.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        storage_options: dict[str, Any] | None = None,
        *,
        writeable: bool = True,
    ) -> None:
        from repo_butler.storage import open_datastore

        self.root = str(root)
        self.storage_options = dict(storage_options or {})
        self.writeable = writeable
        self.repo: Datastore = open_datastore(self.root, self.storage_options)
        self._butler: Butler | None = None
        self._files: list[str] | None = None
        self._records: dict[str, DatasetRecord] | None = None

    @property
    def butler(self) -> Butler:
        """A Butler on the root run, writeable unless this is a dry run (opened on first use)."""
        if self._butler is None:
            from repo_butler.butler import Butler

            self._butler = Butler(
                self.root, storage_options=self.storage_options, writeable=self.writeable
            )
        return self._butler

    @property
    def store(self) -> Datastore:
        """Where the datasets and run markers are stored."""
        return self.butler.datastore

    def files(self, prefix: str = "") -> list[str]:
        """Relative paths of the stored files under ``prefix`` (listed once)."""
        if self._files is None:
            self._files = sorted(self.store.walk())
        return [p for p in self._files if p.startswith(prefix)]

    def records(self) -> dict[str, DatasetRecord]:
        """Registry rows of the datasets stored in the repository, by relative path."""
        if self._records is None:
            self._records = {
                r.path: r for r in self.butler.registry.all_records() if "://" not in r.path
            }
        return self._records

    def paths_with_formatter(self, *names: str) -> list[str]:
        """Relative paths of the registered datasets whose dataset type uses a formatter."""
        types = self.butler.dataset_types
        return sorted(
            path
            for path, rec in self.records().items()
            if rec.dataset_type in types and types[rec.dataset_type].formatter in names
        )

    def write(self, path: str, data: bytes) -> None:
        """Replace ``path`` with ``data``, keeping its registry row and provenance consistent."""
        record = self.records().get(path)
        if record is not None:
            self._update_record(record, data)
        self.store.put_bytes(path, data)

    def _update_record(self, record: DatasetRecord, data: bytes) -> None:
        registry = self.butler.registry
        checksum = checksum_bytes(data, self.store.checksum_algorithm)
        text = registry.get_provenance(record.dataset_type, record.data_id, record.run)
        if text is not None:
            doc = json.loads(text)
            doc.setdefault("output", {})["checksum"] = checksum
            text = json.dumps(doc, sort_keys=True, indent=1)
        new = record._replace(size=len(data), checksum=checksum)
        registry.insert(new, provenance=text, replace=True)
        if text is not None and record.provenance:
            self.store.put_bytes(record.provenance, text.encode())
        assert self._records is not None
        self._records[record.path] = new

    def close(self) -> None:
        """Close the Butler if one was opened."""
        if self._butler is not None:
            self._butler.close()
            self._butler = None


class FormatMigration(ABC):
    """Finds the files of one format and upgrades the older ones."""

    #: Name of the format in messages (``"run marker"``).
    format: ClassVar[str]
    #: The version this release writes.
    current: ClassVar[int]

    @abstractmethod
    def scan(self, ctx: MigrationContext) -> Iterator[Upgrade]:
        """Yield an :class:`Upgrade` per file older than :attr:`current`.

        Raises
        ------
        FormatVersionError
            For a file newer than :attr:`current`.
        """

    @abstractmethod
    def apply(self, ctx: MigrationContext, upgrade: Upgrade) -> None:
        """Upgrade one file found by :meth:`scan` (atomically)."""


class FileFormat(FormatMigration):
    """A format of whole files upgraded by byte-to-byte steps (``steps[v]``: v to v + 1)."""

    steps: ClassVar[Mapping[int, Step]] = {}

    @abstractmethod
    def candidates(self, ctx: MigrationContext) -> Iterable[str]:
        """Relative paths (in :attr:`MigrationContext.store`) that may hold this format."""

    @abstractmethod
    def version(self, data: bytes, source: str) -> int | None:
        """The version of a candidate's bytes, or ``None`` if it is not of this format."""

    def read(self, ctx: MigrationContext, path: str) -> bytes:
        """The bytes of a candidate."""
        return ctx.store.get_bytes(path)

    def version_of(self, data: bytes, source: str) -> int | None:
        """:meth:`version`, with a file that cannot be parsed reported as a
        :class:`FormatVersionError` naming it (never a bare parser error)."""
        try:
            return self.version(data, source)
        except RepoButlerError:
            raise
        except Exception as err:  # json, yaml, astropy and int() each raise their own types
            raise FormatVersionError(
                f"{source}: cannot read its {self.format} version ({type(err).__name__}: {err}); "
                "repair or remove the file, then run rb migrate again"
            ) from None

    def scan(self, ctx: MigrationContext) -> Iterator[Upgrade]:
        """Read every candidate's version; refuse newer ones."""
        for path in self.candidates(ctx):
            source = ctx.store.uri(path)
            found = self.version_of(self.read(ctx, path), source)
            if found is None:
                continue
            check_version(found, self.current, what=self.format, source=source)
            if found < self.current:
                missing = [v for v in range(found, self.current) if v not in self.steps]
                if missing:
                    raise FormatVersionError(
                        f"{source}: {self.format} format version {found} cannot be upgraded "
                        f"by this repo-butler (no step from version {missing[0]})"
                    )
                yield Upgrade(self.format, path, found, self.current)

    def apply(self, ctx: MigrationContext, upgrade: Upgrade) -> None:
        """Run the steps from the version found to :attr:`current` and swap the file in."""
        source = ctx.store.uri(upgrade.path)
        data = self.read(ctx, upgrade.path)
        found = self.version_of(data, source)
        if found is None or found >= self.current:
            return  # upgraded meanwhile (e.g. by a previous, interrupted run): nothing to do
        for v in range(found, self.current):
            data = self.steps[v](data, source)
        ctx.write(upgrade.path, data)


# -- the butler's own formats -----------------------------------------------------------------
def _config_step_1(data: bytes, source: str) -> bytes:
    """``butler.yaml`` version 1 -> 2: set ``version: 2`` and give each dimension that an installed
    preset declares with the same name and type that preset's aliases and implied keys (a name
    already used by the repository is left out). Everything else is kept as it was."""
    import yaml

    from repo_butler.presets import installed_aliases

    doc = yaml.safe_load(data)
    dims = doc.get("dimensions") or {}
    taken = set(dims)
    for spec in dims.values():
        taken.update(spec.get("aliases", ()), spec.get("implies", ()))
    for alias, (dim, kind, section) in installed_aliases().items():
        spec = dims.get(dim)
        if spec is not None and spec.get("type") == kind and alias not in taken:
            spec.setdefault(section, []).append(alias)
            taken.add(alias)
    doc["version"] = 2
    return yaml.safe_dump(doc, sort_keys=False).encode()


def _config_step_2(data: bytes, source: str) -> bytes:
    """``butler.yaml`` version 2 -> 3: set ``version: 3`` (version 3 adds the optional
    ``parents``; nothing else changes)."""
    import yaml

    doc = yaml.safe_load(data)
    doc["version"] = 3
    return yaml.safe_dump(doc, sort_keys=False).encode()


class ConfigFormat(FileFormat):
    """``butler.yaml`` (``version``). Read from the repository root, before the Butler opens."""

    format = "butler.yaml"
    current = CONFIG_VERSION
    steps: ClassVar[Mapping[int, Step]] = {1: _config_step_1, 2: _config_step_2}

    def candidates(self, ctx: MigrationContext) -> Iterable[str]:
        return [CONFIG_FILENAME]

    def read(self, ctx: MigrationContext, path: str) -> bytes:
        return ctx.repo.get_bytes(path)

    def scan(self, ctx: MigrationContext) -> Iterator[Upgrade]:
        if not ctx.repo.exists(CONFIG_FILENAME):
            raise RepositoryNotFoundError(
                f"no repository at {ctx.repo.root} ({CONFIG_FILENAME} not found)"
            )
        for path in self.candidates(ctx):
            source = ctx.repo.uri(path)
            version = self.version_of(self.read(ctx, path), source)
            if version is None:
                continue  # not a mapping or not YAML: the Butler reports it with its location
            found = check_version(version, self.current, what=self.format, source=source)
            if found < self.current:
                yield Upgrade(self.format, path, found, self.current)

    def apply(self, ctx: MigrationContext, upgrade: Upgrade) -> None:
        """Upgrade ``butler.yaml`` in place at the repository root (not in the dataset store)."""
        source = ctx.repo.uri(upgrade.path)
        data = self.read(ctx, upgrade.path)
        found = self.version_of(data, source)
        if found is None or found >= self.current:
            return
        original = data
        for v in range(found, self.current):
            data = self.steps[v](data, source)
        # the steps rewrite the YAML (comments and layout are not kept): the file as it was stays
        # beside it, once per old version
        backup = f"{upgrade.path}.v{found}"
        if not ctx.repo.exists(backup):
            ctx.repo.put_bytes(backup, original)
        ctx.repo.put_bytes(upgrade.path, data)
        logger.warning(
            "%s rewritten as version %d (comments and layout are not kept); the version %d file "
            "is kept as %s",
            source,
            self.current,
            found,
            ctx.repo.uri(backup),
        )

    def version(self, data: bytes, source: str) -> int | None:
        import yaml

        try:
            doc = yaml.safe_load(data)
        except yaml.YAMLError:
            return None  # the Butler reports the YAML error with its location
        return doc.get("version") if isinstance(doc, dict) else None


class RegistrySchema(FormatMigration):
    """The registry database (``meta.schema_version``); checked when the registry opens."""

    format = "registry schema"
    current = 1

    def scan(self, ctx: MigrationContext) -> Iterator[Upgrade]:
        registry = ctx.butler.registry  # opening refuses a newer schema
        found = getattr(registry, "schema_version", self.current)
        check_version(found, self.current, what=self.format, source=ctx.butler.root)
        return iter(())

    def apply(self, ctx: MigrationContext, upgrade: Upgrade) -> None:
        raise FormatVersionError(f"no registry schema upgrade from version {upgrade.found}")


def _marker_step_0(data: bytes, source: str) -> bytes:
    doc = json.loads(data)
    return encode_run_marker(doc["run"], doc.get("parents", []))


class RunMarkerFormat(FileFormat):
    """``rerun/NAME/_run.json`` (``format_version``; unversioned before version 1)."""

    format = "run marker"
    current = RUN_MARKER_VERSION
    steps: ClassVar[Mapping[int, Step]] = {0: _marker_step_0}

    def candidates(self, ctx: MigrationContext) -> Iterable[str]:
        return [
            p
            for p in ctx.files(f"{RERUN_DIR}/")
            if p.endswith(f"/{RUN_MARKER}") and p.count("/") == 2
        ]

    def version(self, data: bytes, source: str) -> int | None:
        doc = json.loads(data)
        return int(doc.get("format_version", 0)) if isinstance(doc, dict) else None


class ProvenanceFormat(FileFormat):
    """Provenance sidecars ``<file>.provenance.json`` (``schema_version``)."""

    format = "provenance"
    current = PROVENANCE_VERSION

    def candidates(self, ctx: MigrationContext) -> Iterable[str]:
        return [p for p in ctx.files() if p.endswith(SIDECAR_SUFFIX)]

    def version(self, data: bytes, source: str) -> int | None:
        doc = json.loads(data)
        return doc.get("schema_version", 0) if isinstance(doc, dict) else None


class RunConfigFormat(FileFormat):
    """Run configuration records ``[rerun/NAME/]_config/<task>.json`` (``format_version``)."""

    format = "run configuration record"
    current = RUN_CONFIG_VERSION

    def candidates(self, ctx: MigrationContext) -> Iterable[str]:
        return [p for p in ctx.files() if is_run_config_path(p)]

    def version(self, data: bytes, source: str) -> int | None:
        doc = json.loads(data)
        return doc.get("format_version", 0) if isinstance(doc, dict) else None


_MIGRATIONS: dict[str, FormatMigration] = {}
_LOADED: list[bool] = []


def register_migration(migration: FormatMigration) -> None:
    """Add (or replace) the migration of ``migration.format``."""
    _MIGRATIONS[migration.format] = migration


for _builtin in (
    ConfigFormat(),
    RegistrySchema(),
    RunMarkerFormat(),
    ProvenanceFormat(),
    RunConfigFormat(),
):
    register_migration(_builtin)


def migrations() -> list[FormatMigration]:
    """Every registered migration, the butler's own first (entry points loaded once)."""
    if not _LOADED:
        from importlib.metadata import entry_points

        for ep in entry_points(group=MIGRATION_ENTRY_POINT):
            ep.load()()
        _LOADED.append(True)
    return list(_MIGRATIONS.values())


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`migrate` found (and, unless a dry run, did)."""

    root: str
    upgrades: tuple[Upgrade, ...]
    formats: tuple[tuple[str, int], ...]
    dry_run: bool
    applied: tuple[Upgrade, ...] = field(default=())

    @property
    def up_to_date(self) -> bool:
        """Whether nothing was (or would be) upgraded."""
        return not self.upgrades

    def lines(self) -> list[str]:
        """Human-readable report."""
        versions = ", ".join(f"{name} v{v}" for name, v in self.formats)
        if self.up_to_date:
            return [f"{self.root} is up to date ({versions})"]
        verb = "would upgrade" if self.dry_run else "upgraded"
        out = [f"{verb} {u.describe()}" for u in (self.upgrades if self.dry_run else self.applied)]
        done = "would be upgraded" if self.dry_run else "upgraded"
        out.append(f"{len(self.upgrades)} file(s) {done} in {self.root} (now: {versions})")
        return out


def migrate(
    root: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    dry_run: bool = False,
    progress: Callable[[Upgrade], None] | None = None,
) -> MigrationReport:
    """Upgrade every file of the repository at ``root`` whose format is older than this release.

    Parameters
    ----------
    root : str or os.PathLike
        Repository root (local path or URL).
    storage_options : dict, optional
        fsspec options (credentials).
    dry_run : bool
        Only report what would be upgraded.
    progress : callable, optional
        Called after each upgraded file.

    Raises
    ------
    FormatVersionError
        If any file is newer than this release reads (nothing is changed then).
    RepositoryNotFoundError
        If ``root`` has no ``butler.yaml``.
    """
    ctx = MigrationContext(root, storage_options, writeable=not dry_run)
    try:
        steps = migrations()
        pending = [(m, u) for m in steps for u in m.scan(ctx)]
        applied: list[Upgrade] = []
        if not dry_run:
            for m, upgrade in pending:
                m.apply(ctx, upgrade)
                applied.append(upgrade)
                logger.info("upgraded %s", upgrade.describe())
                if progress is not None:
                    progress(upgrade)
        return MigrationReport(
            root=ctx.repo.root,
            upgrades=tuple(u for _, u in pending),
            formats=tuple((m.format, m.current) for m in steps),
            dry_run=dry_run,
            applied=tuple(applied),
        )
    finally:
        ctx.close()
