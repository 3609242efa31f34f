"""Parse LSST command-line data-ID and config arguments (``--id``, ``--selectId``, ``--config``).

LSST's ``CmdLineTask`` syntax takes several ``key=value`` tokens after one option, values lists
``ccd=16^17`` and inclusive ranges ``ccd=16..24``; this module turns raw tokens into plain data.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from repo_butler.errors import ConfigError, DataIdError

__all__ = ["TaskArgs", "expand_data_id", "parse_task_args", "split_task_args"]

_GROUP_OPTIONS = {
    "--id": "id",
    "--selectId": "select",
    "--select-id": "select",
    "--config": "config",
    "-c": "config",
    "--configfile": "configfile",
    "--config-file": "configfile",
    "-C": "configfile",
}
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)(?::(\d+))?$")
#: Most data IDs one ``--id`` / ``--selectId`` may expand to (ranges and lists multiplied):
#: checked before anything is expanded, so ``ccd=0..20000000`` is an error, not gigabytes.
MAX_DATA_IDS = 100_000


@dataclass
class TaskArgs:
    """Grouped ``--id`` / ``--selectId`` data IDs, ``--config`` overrides and config files."""

    ids: list[dict[str, Any]] = field(default_factory=list)
    select_ids: list[dict[str, Any]] = field(default_factory=list)
    config: list[str] = field(default_factory=list)
    config_files: list[str] = field(default_factory=list)


def _scalar(text: str) -> int | str:
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def _values(key: str, text: str, option: str = "--id") -> list[int | str]:
    out: list[int | str] = []
    for part in text.split("^"):
        if not part:
            raise DataIdError(f"Empty value in {key}={text!r}; write e.g. {key}=16^17 or 16..24")
        m = _RANGE.match(part)
        if m:
            lo, hi, step = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
            if hi < lo:
                raise DataIdError(f"Range {key}={part} is empty: the end is below the start")
            if step < 1:
                raise DataIdError(f"Range {key}={part}: the step must be at least 1")
            values = range(lo, hi + 1, step)
            if len(out) + len(values) > MAX_DATA_IDS:
                raise DataIdError(
                    f"{option} {key}={text} gives {len(out) + len(values):,} values, more than "
                    f"{MAX_DATA_IDS:,}; give a smaller range, or leave {key} out to take every "
                    "value in the repository"
                )
            out.extend(values)
        else:
            out.append(_scalar(part))
    return out


def expand_data_id(tokens: Sequence[str], *, option: str = "--id") -> list[dict[str, Any]]:
    """Turn ``["visit=1^2", "ccd=16..17"]`` into the product of all value combinations."""
    keys: list[str] = []
    lists: list[list[int | str]] = []
    for tok in tokens:
        if "=" not in tok:
            raise DataIdError(f"{option} expects key=value tokens, got {tok!r}")
        key, value = tok.split("=", 1)
        key = key.strip()
        if not key:
            raise DataIdError(f"{option}: missing key in {tok!r}")
        if key in keys:
            raise DataIdError(f"{option}: key {key!r} given twice")
        keys.append(key)
        lists.append(_values(key, value.strip(), option))
    total = 1
    for values in lists:
        total *= len(values)
    if total > MAX_DATA_IDS:
        shown = " ".join(tokens)
        raise DataIdError(
            f"{option} {shown} combines into {total:,} data IDs, more than {MAX_DATA_IDS:,}; "
            "select fewer values, or leave a key out to take every value in the repository"
        )
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*lists)]


def parse_task_args(argv: Sequence[str]) -> TaskArgs:
    """Group raw tokens after the repository argument into :class:`TaskArgs`.

    Every ``--id`` / ``--selectId`` / ``--config`` / ``--configfile`` option takes all the
    following tokens up to the next option (``-x`` / ``--x``). Unknown options are an error.
    """
    args = TaskArgs()
    current: str | None = None
    group: list[str] = []

    def flush() -> None:
        nonlocal group
        if current is None:
            if group:
                raise ConfigError(
                    f"Unexpected arguments {group}; data IDs go after --id or --selectId, "
                    "overrides after --config"
                )
            return
        opt = next(k for k, v in _GROUP_OPTIONS.items() if v == current)
        if not group:
            raise ConfigError(f"Option {opt} needs at least one value")
        if current == "id":
            args.ids.extend(expand_data_id(group, option="--id"))
        elif current == "select":
            args.select_ids.extend(expand_data_id(group, option="--selectId"))
        elif current == "config":
            args.config.extend(group)
        else:
            args.config_files.extend(group)
        group = []

    for tok in argv:
        if tok.startswith("-") and not re.fullmatch(r"-\d.*", tok):
            flush()
            if tok not in _GROUP_OPTIONS:
                raise ConfigError(
                    f"Unknown option {tok!r}; known: {', '.join(sorted(_GROUP_OPTIONS))}"
                )
            current = _GROUP_OPTIONS[tok]
        else:
            group.append(tok)
    flush()
    return args


def split_task_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate LSST's multi-token options from the rest of a command line.

    Returns ``(lsst, rest)``: ``lsst`` holds every ``--id`` / ``--selectId`` / ``--config`` /
    ``--configfile`` (and their aliases) with the tokens that follow it up to the next option,
    for :func:`parse_task_args`; ``rest`` holds everything else, in order, for the ordinary
    option parser (``--opt=value`` spellings of the group options are split at ``=``).
    """
    lsst: list[str] = []
    rest: list[str] = []
    in_group = False
    for tok in argv:
        if tok == "--":
            in_group = False
            rest.append(tok)
        elif tok.startswith("-") and not re.fullmatch(r"-\d.*", tok):
            name, eq, value = tok.partition("=")
            in_group = name in _GROUP_OPTIONS
            if not in_group:
                rest.append(tok)
            else:
                lsst.append(name)
                if eq:
                    lsst.append(value)
        elif in_group:
            lsst.append(tok)
        else:
            rest.append(tok)
    return lsst, rest
