"""The data ID of each file being ingested, from four sources.

1. **The file itself**, when the dataset type's formatter implements
   :class:`~repo_butler.formatters.base.ReadsDataId` (e.g. an instrument's FITS header);
2. **its path**, when its trailing segments follow the dataset type's template;
3. **the data ID given** (``rb ingest -d KEY=VALUE``; aliases accepted);
4. for keys none of those supply, **the registry**: the one data ID already registered (any
   dataset type with these dimensions, in the search runs) that matches the keys known, and
   then the formatter's documented **rule defaults** (e.g. ``pointing = visit``).

Sources 1-3 must agree where they overlap; a contradiction is a
:class:`~repo_butler.errors.DataIdError` naming the file, the key and both values with their
origins. A key no source supplies is an error naming the file, what was looked for, and the
``-d KEY=VALUE`` that would supply it.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from repo_butler.config import DatasetType
from repo_butler.dimensions import DataId, DataIdValue
from repo_butler.errors import DataIdError
from repo_butler.formatters import get_formatter
from repo_butler.formatters.base import FileDataId, ReadsDataId
from repo_butler.lookup import DatasetLookup

__all__ = ["DataIdDeriver", "DerivedDataId"]

logger = logging.getLogger(__name__)

#: Origins of values that did not come from the file, as shown in reports.
GIVEN, PATH, REGISTRY = "given", "path", "registry"


@dataclass(frozen=True)
class DerivedDataId:
    """A file's full data ID and where each value came from.

    Parameters
    ----------
    data_id : DataId
        The dataset type's full data ID.
    origins : Mapping
        Dimension -> origin (a file reader's description such as ``"IDNUM card"``, ``"given"``,
        ``"path"``, ``"registry"`` or a rule such as ``"rule: pointing = visit"``).
    rule : str
        The file reader's rule name (``""`` when the file was not read).
    """

    data_id: DataId
    origins: Mapping[str, str]
    rule: str = ""

    def describe(self) -> str:
        """``visit=849375 (IDNUM card), ccd=12 (Detector id)``: the report's explanation."""
        return ", ".join(f"{k}={v!r} ({self.origins.get(k, '?')})" for k, v in self.data_id.items())


class DataIdDeriver:
    """Derives the data IDs of one ingest batch (one dataset type, one given data ID).

    Parameters
    ----------
    lookup : DatasetLookup
        The repository's look-up (configuration, registry, search runs).
    dt : DatasetType
        The dataset type being ingested.
    given : Mapping, optional
        The data ID given for every file (aliases and implied keys accepted).

    Raises
    ------
    DataIdError
        If ``given`` has unknown keys or invalid values.
    """

    def __init__(
        self, lookup: DatasetLookup, dt: DatasetType, given: Mapping[str, Any] | None
    ) -> None:
        self.lookup = lookup
        self.dt = dt
        self.universe = lookup.config.universe
        raw = dict(given or {})
        implied = self.universe.implied
        # an implied key (band) may come without its dimension: the file may supply that one
        self.given_implied = {k: str(v) for k, v in raw.items() if k in implied}
        dims = {k: v for k, v in raw.items() if k not in implied}
        self.given: DataId = lookup.partial(dt, dims, {}) if dims else DataId()
        formatter = get_formatter(dt.formatter)
        self.reader: ReadsDataId | None = formatter if isinstance(formatter, ReadsDataId) else None

    def derive(self, source: str, path: str, data: bytes) -> DerivedDataId:
        """The full data ID of the file ``source`` (local or fsspec ``path``, bytes ``data``).

        Raises
        ------
        DataIdError
            If two sources contradict each other, or a key cannot be derived from any source
            (both naming the file).
        """
        dt = self.dt
        parsed = dt.path_template.parse_suffix(path) or DataId()
        self._check(source, key_values(parsed), PATH, key_values(self.given), GIVEN)
        known = {**parsed.to_dict(), **self.given.to_dict()}
        origins = dict.fromkeys(parsed, PATH) | dict.fromkeys(self.given, GIVEN)
        found = FileDataId()
        if self.reader is not None:
            found = self.reader.data_id_from_file(
                io.BytesIO(data), source=source, dimensions=dt.dimensions, known=known
            )
            values, implied = self._from_file(source, found.values, found.origins)
            for label, other in ((PATH, parsed), (GIVEN, self.given)):
                self._check(source, values, "file", key_values(other), label)
            self._check_implied(source, implied)
            for key, (value, origin) in values.items():
                known[key] = value
                origins[key] = origin
        missing = [k for k in dt.dimensions if k not in known]
        if missing and known:
            for key, value in self._from_registry(source, known, missing).items():
                known[key] = value
                origins[key] = REGISTRY
        missing = [k for k in dt.dimensions if k not in known]
        if missing:
            defaults, _ = self._from_file(source, found.defaults, found.origins)
            still = [k for k in missing if k not in defaults]
            if still:
                raise DataIdError(self._missing_message(source, still, found, known))
            for key in missing:
                known[key], origins[key] = defaults[key]
        data_id = self.lookup.complete(dt, known, {})
        return DerivedDataId(data_id, {k: origins[k] for k in data_id}, found.rule)

    # -- helpers ------------------------------------------------------------------------------
    def _from_file(
        self, source: str, values: Mapping[str, Any], origins: Mapping[str, str]
    ) -> tuple[dict[str, tuple[DataIdValue, str]], dict[str, tuple[str, str]]]:
        """A reader's values as ``{dimension: (value, origin)}`` for the dataset type's
        dimensions, and its implied keys ``{key: (text, origin)}``; other keys are ignored."""
        universe = self.universe
        dims: dict[str, tuple[DataIdValue, str]] = {}
        implied: dict[str, tuple[str, str]] = {}
        for key, raw in values.items():
            origin = origins.get(key, "the file")
            if key in universe.implied:
                implied[key] = (str(raw), origin)
                continue
            name = key if key in universe else universe.aliases.get(key)
            if name is None or name not in self.dt.dimensions:
                continue
            try:
                dims[name] = (universe[name].normalize(raw), origin)
            except DataIdError as err:
                raise DataIdError(
                    f"{source}: the file gives {key}={raw!r} ({origin}), which is not a valid "
                    f"{name} in this repository ({err}); give -d {name}=VALUE"
                ) from None
        return dims, implied

    @staticmethod
    def _check(
        source: str,
        first: Mapping[str, tuple[DataIdValue, str]],
        first_label: str,
        second: Mapping[str, tuple[DataIdValue, str]],
        second_label: str,
    ) -> None:
        """Refuse a key on which two sources disagree, naming both."""
        for key, (value, origin) in first.items():
            if key in second and second[key][0] != value:
                other, other_origin = second[key]
                raise DataIdError(
                    f"{source}: {_says(first_label, key, value, origin)} but "
                    f"{_says(second_label, key, other, other_origin)}; check the file or drop "
                    f"-d {key}"
                )

    def _check_implied(self, source: str, implied: Mapping[str, tuple[str, str]]) -> None:
        for key, text in self.given_implied.items():
            if key in implied and implied[key][0] != text:
                raise DataIdError(
                    f"{source}: {_says('file', key, implied[key][0], implied[key][1])} but "
                    f"{_says(GIVEN, key, text, GIVEN)}; check the file or drop -d {key}"
                )

    def _from_registry(
        self, source: str, known: Mapping[str, DataIdValue], missing: list[str]
    ) -> dict[str, DataIdValue]:
        """The missing keys of the one registered data ID that matches ``known`` (none: {})."""
        universe = self.universe
        missing = [
            k
            for k in missing
            if universe[k].determined_by and all(d in known for d in universe[k].determined_by)
        ]  # a registered visit fixes its filter, never the CCD of another file
        if not missing:
            return {}
        matches = self.lookup.query_data_ids(self.dt.dimensions, data_id=known)
        values = {k: {m[k] for m in matches} for k in missing}
        if all(len(v) <= 1 for v in values.values()):  # the registered IDs agree on each key
            return {k: next(iter(v)) for k, v in values.items() if v}
        shown = "; ".join(str(m) for m in matches[:5])
        more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
        raise DataIdError(
            f"{source}: {missing} are not in the file, its path or the data ID given, and "
            f"{len(matches)} registered data IDs match {dict(known)} ({shown}{more}); give "
            + " ".join(f"-d {k}=VALUE" for k in missing)
        )

    def _missing_message(
        self, source: str, missing: list[str], found: FileDataId, known: Mapping[str, Any]
    ) -> str:
        dt = self.dt
        looked = "; ".join(f"{k}: {found.missing[k]}" for k in missing if k in found.missing)
        rule = f" (rule {found.rule!r})" if found.rule else ""
        read = f"the file{rule} lacks them ({looked}), " if looked else ""
        return (
            f"{source}: cannot derive a full {dt.name} data ID: {missing} missing; {read}its "
            f"path does not end like the template {dt.template!r}, the data ID given "
            f"({self.given or {}}) lacks them and no registered dataset matches "
            f"{dict(known) or '{}'}. Give them with " + " ".join(f"-d {k}=VALUE" for k in missing)
        )


def key_values(data_id: Mapping[str, DataIdValue]) -> dict[str, tuple[DataIdValue, str]]:
    """``{key: (value, "")}``: a data ID in the form :meth:`DataIdDeriver._check` compares."""
    return {k: (v, "") for k, v in data_id.items()}


def _says(label: str, key: str, value: Any, origin: str) -> str:
    subject = {
        "file": "the file",
        PATH: "its path",
        GIVEN: "the data ID given",
    }.get(label, label)
    detail = f" ({origin})" if origin and origin not in (PATH, GIVEN) else ""
    return f"{subject} says {key}={value!r}{detail}"
