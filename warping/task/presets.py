"""Instrument config presets of MakeWarp: shipped config-override files, one per instrument.

A preset (``warping/task/instrument_presets/<INSTRUMENT>.cfg``) holds the values an
instrument's production pipelines run, in the ``config.<field> = <literal>`` syntax of
``--configfile``; it is parsed, never executed (:func:`warping.task.config.parse_config_file`).
:func:`warping.task.config.apply_overrides` applies it before the user's config files and
``--config`` overrides, so explicit settings always win. Not to be confused with
:mod:`warping.repo_preset`, the *repository* layout preset.
"""

from __future__ import annotations

from pathlib import Path

from repo_butler.errors import ConfigError

__all__ = ["PRESET_DIR", "available_presets", "instrument_preset"]

#: Where the preset files live (package data).
PRESET_DIR = Path(__file__).resolve().parent / "instrument_presets"
_SUFFIX = ".cfg"


def available_presets() -> list[str]:
    """Names of the instruments with a preset, sorted (``["HSC"]``)."""
    return sorted(p.name[: -len(_SUFFIX)] for p in PRESET_DIR.glob(f"*{_SUFFIX}"))


def instrument_preset(instrument: str) -> tuple[str, str]:
    """The preset of ``instrument`` (case-insensitive) as ``(source, text)`` for
    :func:`~warping.task.config.apply_overrides`.

    Raises
    ------
    ConfigError
        If no preset exists for ``instrument``; the message lists those that do.
    """
    by_key = {name.lower(): name for name in available_presets()}
    name = by_key.get(str(instrument).strip().lower())
    if name is None:
        known = ", ".join(available_presets()) or "none"
        raise ConfigError(
            f"No make-warp config preset for instrument {instrument!r} (presets: {known}). "
            "Leave the instrument out to use the automatic PSF-matching defaults, or give your "
            "values with --config / --configfile."
        )
    path = PRESET_DIR / f"{name}{_SUFFIX}"
    return f"preset {name} ({path.name})", path.read_text()
