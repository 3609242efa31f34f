"""Two-way path templates: data ID → relative path, and relative path → data ID.

Templates use Python format syntax restricted to what can be parsed back unambiguously:

* ``{name}`` or ``{name:s}`` for ``str`` dimensions;
* ``{name}``, ``{name:d}`` or ``{name:0Nd}`` (zero-padded to at least ``N`` digits) for ``int``
  dimensions, which must have ``minimum >= 0`` (negative values are rejected at the boundary).
  Values wider than ``N`` digits are written in full and still parse back: the parser accepts
  exactly ``N`` digits, or more than ``N`` digits without a leading zero — the only strings
  :func:`format` can produce.
* a field may repeat (``deepCoadd/{filter}/.../warp-{filter}-...``); repeats must carry equal
  values when parsing;
* two fields may not touch (``{visit}{ccd}`` would be ambiguous);
* literal text is relative, ``/``-separated, without ``..`` or empty segments.

:meth:`PathTemplate.parse` returns ``None`` for paths that are not canonical outputs of
:meth:`PathTemplate.format`, so ``parse(format(d)) == d`` and ``format(parse(p)) == p`` whenever
``parse(p)`` is not ``None``.
"""

from __future__ import annotations

import logging
import re
import string

from repo_butler.dimensions import DataId, DataIdValue, DimensionUniverse
from repo_butler.errors import ConfigError, DataIdError

__all__ = ["PathTemplate"]

logger = logging.getLogger(__name__)

_INT_SPEC = re.compile(r"(?:0(?P<width>\d+))?d|")
_STR_SPEC = re.compile(r"s?")


class PathTemplate:
    """A validated, reversible path template.

    Parameters
    ----------
    template : str
        Format string such as ``"{pointing:05d}/{filter}/corr/CORR-{visit:07d}-{ccd:03d}.fits"``.
    universe : DimensionUniverse
        Dimensions that fields may reference.
    where : str
        Key path used in error messages (``"dataset_types.calexp.template"``).

    Raises
    ------
    ConfigError
        If the template references unknown dimensions, uses unsupported format specs, has
        touching fields, or literal text that is absolute, empty or climbs with ``..``.
    """

    __slots__ = ("_fields", "_formats", "_pieces", "_regex", "_universe", "template")

    def __init__(self, template: str, universe: DimensionUniverse, *, where: str = "template"):
        self.template = template
        self._universe = universe
        if not template or template.startswith("/") or "\\" in template:
            raise ConfigError(f"{where}: {template!r} must be a non-empty relative '/' path")
        fields: list[str] = []
        formats: dict[str, str] = {}
        pattern: list[str] = []
        previous_was_field = False
        literal_text = []
        pieces: list[tuple[str, str | None]] = []
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as err:
            raise ConfigError(f"{where}: {template!r} is not a valid format string: {err}") from err
        for literal, field, spec, conversion in parsed:
            literal_text.append(literal)
            pieces.append((literal, field))
            if literal:
                pattern.append(re.escape(literal))
                previous_was_field = False
            if field is None:
                continue
            if conversion:
                raise ConfigError(f"{where}: conversion '!{conversion}' is not supported")
            if field not in universe:
                raise ConfigError(
                    f"{where}: field {{{field}}} is not a known dimension "
                    f"(known: {', '.join(universe.names)})"
                )
            if previous_was_field:
                raise ConfigError(
                    f"{where}: field {{{field}}} directly follows another field; put literal "
                    "text between fields so the path can be parsed back"
                )
            dim = universe[field]
            spec = spec or ""
            if dim.type == "int":
                m = _INT_SPEC.fullmatch(spec)
                if m is None:
                    raise ConfigError(
                        f"{where}: {{{field}:{spec}}} - int fields support '', 'd' or '0Nd'"
                    )
                if dim.minimum is None or dim.minimum < 0:
                    raise ConfigError(
                        f"{where}: int dimension {field!r} needs 'minimum: 0' (or higher) to be "
                        "used in a path template"
                    )
                width = int(m.group("width") or 1)
                if width <= 1:
                    regex = r"(?:0|[1-9]\d*)"
                else:
                    regex = rf"(?:\d{{{width}}}|[1-9]\d{{{width},}})"
                formats[field] = f"{{:0{width}d}}" if width > 1 else "{:d}"
            else:
                if _STR_SPEC.fullmatch(spec) is None:
                    raise ConfigError(f"{where}: {{{field}:{spec}}} - str fields support '' or 's'")
                inner = dim.pattern.removeprefix("^").removesuffix("$") if dim.pattern else ""
                regex = f"(?:{inner})" if inner else r"[^/]+"
                formats[field] = "{}"
            if field in fields:
                pattern.append(f"(?P={field})")
            else:
                fields.append(field)
                pattern.append(f"(?P<{field}>{regex})")
            previous_was_field = True
        literal_path = "X".join(literal_text)
        if any(seg in ("", ".", "..") for seg in literal_path.split("/")) or ".." in literal_path:
            raise ConfigError(f"{where}: {template!r} has empty, '.' or '..' path segments")
        self._fields = tuple(fields)
        self._pieces = tuple(pieces)
        self._formats = formats
        self._regex = re.compile("".join(pattern))

    @property
    def fields(self) -> tuple[str, ...]:
        """Dimension names referenced, in order of first appearance."""
        return self._fields

    @property
    def n_segments(self) -> int:
        """Number of ``/``-separated segments in produced paths."""
        return self.template.count("/") + 1

    def __repr__(self) -> str:
        return f"PathTemplate({self.template!r})"

    def format(self, data_id: DataId) -> str:
        """Render the relative path for a normalised data ID.

        Raises
        ------
        DataIdError
            If a field's dimension is missing from ``data_id``.
        """
        out: list[str] = []
        for literal, name in self._pieces:
            out.append(literal)
            if name is None:
                continue
            try:
                out.append(self._formats[name].format(data_id[name]))
            except KeyError:
                raise DataIdError(
                    f"data ID {data_id} lacks {name!r} required by template {self.template!r}"
                ) from None
        return "".join(out)

    def parse(self, path: str) -> DataId | None:
        """Recover the data ID from a relative path, or ``None`` if it is not a canonical match."""
        m = self._regex.fullmatch(path)
        if m is None:
            return None
        raw: dict[str, DataIdValue] = {}
        for name in self._fields:
            text = m.group(name)
            raw[name] = int(text) if self._universe[name].type == "int" else text
        try:
            data_id = self._universe.normalize(raw, order=self._fields)
        except DataIdError:
            return None
        if self.format(data_id) != path:
            return None
        return data_id

    def parse_suffix(self, path: str) -> DataId | None:
        """Parse the trailing segments of ``path`` (e.g. an external file being ingested)."""
        segments = path.replace("\\", "/").split("/")
        n = self.n_segments
        if len(segments) < n:
            return None
        return self.parse("/".join(segments[-n:]))
