"""Typed configuration of the MakeWarp task, with LSST's field names and defaults.

Configuration is data: overrides come from ``key=value`` strings and from files in the LSST
``config.a.b['C'].d = literal`` syntax, which are *parsed* (with :mod:`ast`), never executed.
Every value is type-checked against the dataclass field it targets; unknown fields get a
"did you mean" suggestion.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

from repo_butler.errors import ConfigError

__all__ = [
    "CoaddPsfConfig",
    "GaussianPsfFactoryConfig",
    "MakeWarpConfig",
    "ModelPsfMatchConfig",
    "PsfMatchConfigAL",
    "WarpAndPsfMatchConfig",
    "WarperConfig",
    "apply_overrides",
    "config_to_dict",
    "parse_config_file",
    "parse_override",
]

WARP_KERNELS = ("nearest", "bilinear", "lanczos2", "lanczos3", "lanczos4", "lanczos5")
PHOTO_CALIB_NAMES = ("jointcal", "fgcm")
SKY_WCS_NAMES = ("jointcal",)
VARIANCE_MODES = ("covariance", "lsst")


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"doc": text, **extra}


#: Largest PSF stamp or matching kernel, in pixels (a side): bigger ones would allocate gigabytes
#: per CCD (``modelPsf.size = 20001`` asked 3 to 7.5 GiB) where LSST uses a few tens of pixels.
MAX_STAMP = 255
#: Largest cell or interpolation length, in pixels.
MAX_PIXELS = 10_000


def _above(value: Any, maximum: float | None) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return maximum is not None and number and value > maximum


def _check_bounds(config: Any, prefix: str = "") -> None:
    """Raise :class:`ConfigError` for a field above its ``maximum`` (in the schema too)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            _check_bounds(value, path + ".")
        elif isinstance(value, Mapping):
            for key, sub in value.items():
                if dataclasses.is_dataclass(sub) and not isinstance(sub, type):
                    _check_bounds(sub, f"{path}[{key!r}].")
        elif _above(value, f.metadata.get("maximum")):
            raise ConfigError(
                f"{path} = {value} is above its maximum {f.metadata['maximum']}; "
                "give a smaller value."
            )


@dataclass(frozen=True)
class WarperConfig:
    """Warping kernel and WCS-approximation settings (afw ``WarperConfig``)."""

    warpingKernelName: str = field(
        default="lanczos3", metadata=_doc("Image/variance kernel.", choices=WARP_KERNELS)
    )
    maskWarpingKernelName: str = field(
        default="bilinear",
        metadata=_doc('Mask kernel; "" means the image kernel.', choices=(*WARP_KERNELS, "")),
    )
    interpLength: int = field(
        default=10,
        metadata=_doc(
            "Exact WCS every this many pixels, bilinear inside; 0 = exact everywhere.",
            maximum=MAX_PIXELS,
        ),
    )
    growFullMask: tuple[str, ...] = field(
        default=("EDGE",),
        metadata=_doc("Mask planes OR'ed over the full image-kernel footprint."),
    )


@dataclass(frozen=True)
class PsfMatchConfigAL:
    """Alard-Lupton matching-kernel settings (``psfMatch.kernel['AL']``)."""

    kernelSize: int = field(
        default=21, metadata=_doc("Matching kernel size (odd), pixels.", maximum=MAX_STAMP)
    )
    sizeCellX: int = field(
        default=128, metadata=_doc("Cell width for PSF sampling, pixels.", maximum=MAX_PIXELS)
    )
    sizeCellY: int = field(
        default=128, metadata=_doc("Cell height for PSF sampling, pixels.", maximum=MAX_PIXELS)
    )
    alardSigGauss: tuple[float, ...] = field(
        default=(0.7, 1.5, 3.0), metadata=_doc("Sigmas of the basis Gaussians, pixels.")
    )
    alardDegGauss: tuple[int, ...] = field(
        default=(4, 2, 2), metadata=_doc("Polynomial degree per basis Gaussian.")
    )
    spatialKernelOrder: int = field(
        default=2, metadata=_doc("Order of the Chebyshev spatial variation of the kernel.")
    )


@dataclass(frozen=True)
class ModelPsfMatchConfig:
    """Model-PSF matching settings (``warpAndPsfMatch.psfMatch``)."""

    kernel: Mapping[str, PsfMatchConfigAL] = field(
        default_factory=lambda: types.MappingProxyType({"AL": PsfMatchConfigAL()}),
        metadata=_doc("Kernel configurations by basis name; only 'AL' exists."),
    )
    doAutoPadPsf: bool = field(default=True, metadata=_doc("Pad PSF stamps automatically."))
    autoPadPsfTo: float = field(
        default=1.4, metadata=_doc("Minimum PSF-stamp/kernel size ratio when auto-padding [1, 2].")
    )
    padPsfBy: int = field(
        default=0, metadata=_doc("Manual padding (even), when not auto.", maximum=MAX_STAMP)
    )
    # Not an LSST field (issue #18, item 4): which variance plane a PSF-matched warp carries.
    varianceMode: str = field(
        default="covariance",
        metadata=_doc(
            "PSF-matched variance plane: 'covariance' = the per-pixel variance of the matched "
            "image, propagating the noise correlation warping made; 'lsst' = LSST's "
            "sum K^2 V, which treats the warped noise as white (per-pixel variance 20-35 % "
            "higher with Lanczos-3).",
            choices=VARIANCE_MODES,
        ),
    )

    @property
    def al(self) -> PsfMatchConfigAL:
        """The active (Alard-Lupton) kernel configuration."""
        return self.kernel["AL"]


@dataclass(frozen=True)
class WarpAndPsfMatchConfig:
    """Warping and PSF-matching sub-tasks (``warpAndPsfMatch``)."""

    warp: WarperConfig = field(default_factory=WarperConfig, metadata=_doc("Warper."))
    psfMatch: ModelPsfMatchConfig = field(
        default_factory=ModelPsfMatchConfig, metadata=_doc("Model-PSF matcher.")
    )


@dataclass(frozen=True)
class GaussianPsfFactoryConfig:
    """Model PSF for PSF-matched warps (LSST ``GaussianPsfFactory``)."""

    size: int | None = field(
        default=None, metadata=_doc("Kernel size; None = from FWHM.", maximum=MAX_STAMP)
    )
    sizeFactor: float = field(default=3.0, metadata=_doc("Size = sizeFactor x FWHM (odd)."))
    minSize: int = field(default=5, metadata=_doc("Minimum kernel size.", maximum=MAX_STAMP))
    maxSize: int | None = field(
        default=None, metadata=_doc("Maximum kernel size.", maximum=MAX_STAMP)
    )
    defaultFwhm: float = field(default=3.0, metadata=_doc("Model FWHM in warp pixels."))
    addWing: bool = field(default=True, metadata=_doc("Add a wide Gaussian wing."))
    wingFwhmFactor: float = field(default=2.5, metadata=_doc("Wing FWHM / core FWHM."))
    wingAmplitude: float = field(default=0.1, metadata=_doc("Wing/core peak amplitude ratio."))


@dataclass(frozen=True)
class CoaddPsfConfig:
    """CoaddPsf settings for direct warps."""

    warpingKernelName: str = field(
        default="lanczos3", metadata=_doc("Kernel warping the input PSFs.", choices=WARP_KERNELS)
    )


@dataclass(frozen=True)
class MakeWarpConfig:
    """Configuration of :class:`warping.task.MakeWarpTask` (LSST ``MakeCoaddTempExpConfig``)."""

    makeDirect: bool = field(default=True, metadata=_doc("Make direct warps."))
    makePsfMatched: bool = field(default=False, metadata=_doc("Make PSF-matched warps."))
    bgSubtracted: bool = field(
        default=True, metadata=_doc("Use background-subtracted calexps; False adds it back.")
    )
    doApplySkyCorr: bool = field(default=False, metadata=_doc("Subtract skyCorr (in counts)."))
    doRevertOldBackground: bool = field(
        default=False,
        metadata=_doc("Gen3 name: add calexpBackground back (the same as bgSubtracted=False)."),
    )
    doApplyNewBackground: bool = field(
        default=False,
        metadata=_doc("Gen3 name: subtract skyCorr (the same as doApplySkyCorr=True)."),
    )
    doApplyExternalPhotoCalib: bool = field(
        default=False, metadata=_doc("Use {externalPhotoCalibName}_photoCalib.")
    )
    externalPhotoCalibName: str = field(
        default="jointcal",
        metadata=_doc("External photometric calibration.", choices=PHOTO_CALIB_NAMES),
    )
    doApplyExternalSkyWcs: bool = field(
        default=False, metadata=_doc("Use {externalSkyWcsName}_wcs.")
    )
    externalSkyWcsName: str = field(
        default="jointcal",
        metadata=_doc("External astrometric calibration.", choices=SKY_WCS_NAMES),
    )
    # Gen3 defaults these to True (finalVisitSummary is always there); ours are False because
    # Gen2-shaped repositories rarely hold a visitSummary (see docs/make-warp.md).
    useVisitSummaryWcs: bool = field(
        default=False,
        metadata=_doc("Use the WCS of the CCD's row of the visit's visitSummary (Gen3: True)."),
    )
    useVisitSummaryPhotoCalib: bool = field(
        default=False,
        metadata=_doc("Use the PhotoCalib of the CCD's visitSummary row (Gen3: True)."),
    )
    useVisitSummaryPsf: bool = field(
        default=False,
        metadata=_doc("Use the PSF of the CCD's visitSummary row (Gen3: True)."),
    )
    doWriteEmptyWarps: bool = field(
        default=False, metadata=_doc("Write warps that received no pixels.")
    )
    coaddName: str = field(default="deep", metadata=_doc("Prefix of output dataset types."))
    badMaskPlanes: tuple[str, ...] = field(
        default=("NO_DATA",), metadata=_doc("Pixels with these planes are not copied into warps.")
    )
    warpAndPsfMatch: WarpAndPsfMatchConfig = field(
        default_factory=WarpAndPsfMatchConfig, metadata=_doc("Warping and PSF matching.")
    )
    modelPsf: GaussianPsfFactoryConfig = field(
        default_factory=GaussianPsfFactoryConfig, metadata=_doc("Model PSF.")
    )
    coaddPsf: CoaddPsfConfig = field(default_factory=CoaddPsfConfig, metadata=_doc("CoaddPsf."))

    @property
    def revert_background(self) -> bool:
        """Add ``calexpBackground`` back (``bgSubtracted=False`` or ``doRevertOldBackground``)."""
        return not self.bgSubtracted or self.doRevertOldBackground

    @property
    def apply_sky_corr(self) -> bool:
        """Subtract ``skyCorr`` (``doApplySkyCorr`` or ``doApplyNewBackground``)."""
        return self.doApplySkyCorr or self.doApplyNewBackground

    @property
    def visit_summary_components(self) -> tuple[str, ...]:
        """Components taken from the visitSummary (``wcs``, ``photo_calib``, ``psf``), or ()."""
        from warping.task.calib_sources import visit_summary_components

        return visit_summary_components(self)

    def validate(self) -> None:
        """Check cross-field rules; raise :class:`ConfigError` naming the field."""
        from warping.task.calib_sources import check_calibration_sources

        if not (self.makeDirect or self.makePsfMatched):
            raise ConfigError("At least one of makeDirect and makePsfMatched must be True.")
        check_calibration_sources(self)
        if self.revert_background and self.apply_sky_corr:
            raise ConfigError(
                "bgSubtracted=False (doRevertOldBackground) together with doApplySkyCorr=True "
                "(doApplyNewBackground) counts the background twice: a skyCorr list starts with "
                "the calexpBackground negated, so subtracting it already restores the old "
                "background. Drop bgSubtracted=False (doRevertOldBackground=True)."
            )
        al = self.warpAndPsfMatch.psfMatch.al
        pm = self.warpAndPsfMatch.psfMatch
        if al.kernelSize < 3 or al.kernelSize % 2 == 0:
            raise ConfigError(
                f"warpAndPsfMatch.psfMatch.kernel['AL'].kernelSize must be odd and >= 3, "
                f"got {al.kernelSize}."
            )
        if al.sizeCellX < 8 or al.sizeCellY < 8:
            raise ConfigError("kernel['AL'].sizeCellX/sizeCellY must be >= 8 pixels.")
        if len(al.alardSigGauss) != len(al.alardDegGauss) or not al.alardSigGauss:
            raise ConfigError(
                "kernel['AL'].alardSigGauss and alardDegGauss must have the same non-zero "
                f"length, got {list(al.alardSigGauss)} and {list(al.alardDegGauss)}."
            )
        if any(s <= 0 for s in al.alardSigGauss) or any(d < 0 for d in al.alardDegGauss):
            raise ConfigError("kernel['AL'].alardSigGauss must be > 0 and alardDegGauss >= 0.")
        if al.spatialKernelOrder < 0:
            raise ConfigError("kernel['AL'].spatialKernelOrder must be >= 0.")
        if not 1.0 <= pm.autoPadPsfTo <= 2.0:
            raise ConfigError(
                f"warpAndPsfMatch.psfMatch.autoPadPsfTo must be in [1, 2], got {pm.autoPadPsfTo}."
            )
        if pm.padPsfBy < 0 or pm.padPsfBy % 2:
            raise ConfigError(
                f"warpAndPsfMatch.psfMatch.padPsfBy must be even and >= 0, got {pm.padPsfBy}."
            )
        warp = self.warpAndPsfMatch.warp
        if warp.interpLength < 0:
            raise ConfigError("warpAndPsfMatch.warp.interpLength must be >= 0.")
        mp = self.modelPsf
        if mp.defaultFwhm <= 0 or mp.sizeFactor <= 0 or mp.minSize < 1:
            raise ConfigError("modelPsf.defaultFwhm, sizeFactor and minSize must be positive.")
        if mp.maxSize is not None and mp.maxSize < mp.minSize:
            raise ConfigError("modelPsf.maxSize must be >= modelPsf.minSize.")
        for name, value in (("size", mp.size), ("minSize", mp.minSize), ("maxSize", mp.maxSize)):
            if value is not None and value % 2 == 0:
                raise ConfigError(f"modelPsf.{name} must be odd, got {value}.")
        _check_bounds(self)
        if self.makePsfMatched and mp.size is None:
            size = max((int(mp.sizeFactor * mp.defaultFwhm) // 2) * 2 + 1, mp.minSize)
            if mp.maxSize is not None:
                size = min(size, mp.maxSize)
            if size > MAX_STAMP:
                raise ConfigError(
                    f"modelPsf.sizeFactor x defaultFwhm gives a {size}-pixel model PSF, above "
                    f"{MAX_STAMP}; lower them or set modelPsf.maxSize."
                )

    @property
    def warp_types(self) -> list[str]:
        """Requested warp types, in LSST's order: ``direct`` then ``psfMatched``."""
        return [
            t for t, on in (("direct", self.makeDirect), ("psfMatched", self.makePsfMatched)) if on
        ]

    def dataset_type(self, warp_type: str) -> str:
        """Output dataset type name for ``warp_type`` (``deepCoadd_directWarp`` ...)."""
        return f"{self.coaddName}Coadd_{warp_type}Warp"


# --------------------------------------------------------------------------------------------
# Overrides: paths, type coercion, parsing
# --------------------------------------------------------------------------------------------

C = TypeVar("C")
_PathElem = str


def config_to_dict(config: Any) -> Any:
    """Plain JSON-compatible dict of a config (tuples become lists)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {k: config_to_dict(v) for k, v in config.items()}
    if isinstance(config, tuple | list):
        return [config_to_dict(v) for v in config]
    return config


def _field_map(cls: type) -> dict[str, tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def _suggest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` to type ``tp``; raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}.")
    if origin is tuple:
        (elem,) = typing.get_args(tp)[:1]
        if isinstance(value, str) and elem is str:
            value = [value]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list of {_type_name(elem)}, got {value!r}.")
        return tuple(_coerce(v, elem, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be True or False, got {value!r}.")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {value!r}.")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {value!r}.")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {value!r}.")
    raise ConfigError(f"{where} cannot be set directly; set one of its fields instead.")


def _set_path(config: C, path: Sequence[_PathElem], value: Any, full: str) -> C:
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ConfigError(f"{full}: {path[0]!r} is not a configuration field.")
    fields = _field_map(type(config))
    name = path[0]
    if name not in fields:
        where = full[: full.index(name)] if name in full else ""
        raise ConfigError(
            f"Unknown configuration field {name!r} in {full!r}"
            f"{' under ' + where.rstrip('.') if where.rstrip('.') else ''}."
            f"{_suggest(name, fields)} Known fields: {', '.join(sorted(fields))}."
        )
    fld, tp = fields[name]
    current = getattr(config, name)
    if len(path) == 1:
        new = _coerce(value, tp, full)
        choices = fld.metadata.get("choices")
        if choices is not None and new not in choices:
            raise ConfigError(
                f"{full} must be one of {list(choices)}, got {new!r}.{_suggest(str(new), choices)}"
            )
    elif isinstance(current, Mapping):
        key = path[1]
        if key == "active":
            key = next(iter(current))
        if key not in current:
            raise ConfigError(
                f"{full}: {name} has no entry {key!r}; available: {sorted(current)}."
                f"{_suggest(key, current)}"
            )
        if len(path) == 2:
            raise ConfigError(f"{full} cannot be set directly; set one of its fields instead.")
        updated = dict(current)
        updated[key] = _set_path(current[key], path[2:], value, full)
        new = types.MappingProxyType(updated)
    else:
        new = _set_path(current, path[1:], value, full)
    return dataclasses.replace(config, **{name: new})


def _path_from_target(node: ast.expr, line: str) -> list[str]:
    """``config.a.b['C'].d`` -> ``['a', 'b', 'C', 'd']``; anything else is an error."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript):
            sl = node.slice
            if not (isinstance(sl, ast.Constant) and isinstance(sl.value, str)):
                raise ConfigError(f"Only string keys like ['AL'] are allowed: {line!r}")
            parts.append(sl.value)
            node = node.value
        elif isinstance(node, ast.Name):
            if node.id != "config":
                parts.append(node.id)
            break
        else:
            raise ConfigError(f"Not a configuration field reference: {line!r}")
    return parts[::-1]


def _literal(node: ast.expr, line: str) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise ConfigError(
            f"Only literal values (numbers, strings, True/False/None, lists) are allowed: {line!r}"
        ) from None
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse one ``--config`` token ``key=value`` into a field path and a value.

    The key may be written with or without a leading ``config.``; values are Python literals
    (``27``, ``1.6``, ``True``, ``[1.5, 3.0]``, ``'fgcm'``), ``true``/``false``, or a bare word
    taken as a string (``externalPhotoCalibName=fgcm``).
    """
    if "=" not in text:
        raise ConfigError(f"Config override {text!r} must look like key=value.")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    try:
        target = ast.parse(key, mode="eval").body
    except SyntaxError:
        raise ConfigError(f"Config override {text!r}: {key!r} is not a field path.") from None
    path = _path_from_target(target, text)
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return path, lowered == "true"
    try:
        value: Any = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        if raw and all(ch.isalnum() or ch in "_-.:/+" for ch in raw):
            value = raw
        else:
            raise ConfigError(f"Config override {text!r}: cannot parse value {raw!r}.") from None
    return path, value


def parse_config_file(text: str, *, source: str = "<config>") -> list[tuple[list[str], Any, str]]:
    """Parse an LSST-style config file into ``(path, value, line)`` assignments, never executing it.

    Accepted: comments, blank lines, and ``config.<field path> = <literal>`` statements (one per
    line or spread over several lines). Anything else (imports, calls, expressions, loops) is a
    :class:`ConfigError` that quotes the offending line.
    """
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as err:
        raise ConfigError(
            f"{source}:{err.lineno}: syntax error in config file: {(err.text or '').strip()!r}"
        ) from None
    lines = text.splitlines()
    out: list[tuple[list[str], Any, str]] = []
    for stmt in tree.body:
        line = "\n".join(lines[stmt.lineno - 1 : (stmt.end_lineno or stmt.lineno)]).strip()
        loc = f"{source}:{stmt.lineno}"
        if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
            raise ConfigError(
                f"{loc}: only assignments 'config.<field> = <literal>' are allowed, got: {line!r}"
            )
        target = stmt.targets[0]
        root = target
        while isinstance(root, ast.Attribute | ast.Subscript):
            root = root.value
        if not (isinstance(root, ast.Name) and root.id == "config"):
            raise ConfigError(f"{loc}: assignments must start with 'config.': {line!r}")
        try:
            path = _path_from_target(target, line)
            value = _literal(stmt.value, line)
        except ConfigError as err:
            raise ConfigError(f"{loc}: {err}") from None
        out.append((path, value, f"{loc}: {line}"))
    return out


def apply_overrides(
    config: MakeWarpConfig,
    overrides: Sequence[str] = (),
    *,
    files: Sequence[tuple[str, str]] = (),
) -> MakeWarpConfig:
    """Apply config files (``(source, text)`` pairs) then ``key=value`` overrides; validate.

    Later assignments win, as on LSST's command line (``--configfile`` before ``--config``).
    """
    for source, text in files:
        for path, value, where in parse_config_file(text, source=source):
            try:
                config = _set_path(config, path, value, ".".join(path))
            except ConfigError as err:
                raise ConfigError(f"{where.split(': ', 1)[0]}: {err}") from None
    for text in overrides:
        path, value = parse_override(text)
        if not path:
            raise ConfigError(f"Config override {text!r} names no field.")
        config = _set_path(config, path, value, text.split("=", 1)[0].strip())
    config.validate()
    return config
