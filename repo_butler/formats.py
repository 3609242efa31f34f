"""Format versions: the check every reader of a versioned file makes.

Every file format a repository holds carries an integer version (``butler.yaml`` ``version``,
the registry's ``meta.schema_version``, ``schema_version`` in provenance records,
``format_version`` in run markers and skymaps, ``RBFMTV``/``CIFMTV`` cards in our FITS layouts).
A file written before its format had a version counts as version 0. Readers accept every version
from the oldest they still read up to the one this release writes; a newer file is refused with
a message that says to upgrade repo-butler, an older one that cannot be read says to run
``rb migrate``. ``docs/formats.md`` lists the formats and their versions.
"""

from __future__ import annotations

import logging
from typing import Any

from repo_butler.errors import RepoButlerError

__all__ = ["FormatVersionError", "check_version", "version_of"]

logger = logging.getLogger(__name__)


class FormatVersionError(RepoButlerError, ValueError):
    """A file's format version is not one this release reads (newer, or too old to read)."""


def version_of(value: Any, *, what: str, source: str) -> int:
    """The version number ``value`` read from a file (``None``: unversioned, version 0).

    Raises
    ------
    FormatVersionError
        If ``value`` is not a non-negative integer.
    """
    if value is None:
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or isinstance(value, bool) or (isinstance(value, float) and value != number):
        raise FormatVersionError(f"{source}: {what} format version {value!r} is not a number")
    return number


def check_version(
    value: Any,
    current: int,
    *,
    what: str,
    source: str,
    oldest: int = 0,
    error: type[Exception] = FormatVersionError,
) -> int:
    """Return the version ``value`` of a ``what`` file if this release reads it.

    Parameters
    ----------
    value
        The version found in the file (``None`` when the file has none: version 0).
    current : int
        The version this release writes (the newest it reads).
    what : str
        The format's name for messages (``"provenance"``, ``"registry schema"``).
    source : str
        The file (path or URL), named in messages.
    oldest : int
        The oldest version still read; older files need ``rb migrate``.
    error : type
        The exception raised (a package's own format error, say); default
        :class:`FormatVersionError`.

    Raises
    ------
    FormatVersionError
        If the version is newer than ``current`` (upgrade repo-butler) or older than ``oldest``
        (run ``rb migrate``), naming ``source``.
    """
    try:
        found = version_of(value, what=what, source=source)
    except FormatVersionError as err:
        raise error(str(err)) from None
    if found > current:
        raise error(
            f"{source}: {what} format version {found} is newer than this reader "
            f"(up to {current}); upgrade repo-butler to read this repository"
        )
    if found < oldest:
        raise error(
            f"{source}: {what} format version {found} is older than this reader "
            f"(from {oldest}); run `rb migrate REPO` to upgrade the repository"
        )
    return found
