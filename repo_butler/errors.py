"""Exceptions raised by :mod:`repo_butler`.

Every user-facing error subclasses both :class:`RepoButlerError` and the builtin exception that
matches its meaning, so callers can catch either. Messages say what was wrong, the offending value
and what to do next.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataIdError",
    "DatasetExistsError",
    "DatasetNotFoundError",
    "DatasetTypeError",
    "FormatterError",
    "QuerySyntaxError",
    "RegistryError",
    "RepoButlerError",
    "RepositoryExistsError",
    "RepositoryNotFoundError",
    "StorageError",
]


class RepoButlerError(Exception):
    """Base class of every error raised by repo_butler."""


class ConfigError(RepoButlerError, ValueError):
    """A configuration file or value is invalid."""


class DataIdError(RepoButlerError, ValueError):
    """A data ID is missing keys, has unknown keys or has values of the wrong type or form."""


class DatasetTypeError(RepoButlerError, KeyError):
    """A dataset type is unknown or inconsistent with its definition."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class DatasetNotFoundError(RepoButlerError, LookupError):
    """No dataset matches the dataset type and data ID in the runs searched."""


class DatasetExistsError(RepoButlerError, FileExistsError):
    """A dataset with the same dataset type, data ID and run already exists."""


class ConcurrentWriteError(DatasetExistsError):
    """Another writer replaced a dataset's file between our write and its registration.

    With ``overwrite=True`` the later writer simply wins (our row is not recorded); with
    ``overwrite=False`` our put failed and nothing of ours is registered.
    """


class FormatterError(RepoButlerError, ValueError):
    """A file could not be read or written by its formatter (corrupt, truncated, wrong layout)."""


class QuerySyntaxError(RepoButlerError, ValueError):
    """A ``where`` expression could not be parsed; the message points at the column."""


class RegistryError(RepoButlerError, RuntimeError):
    """The registry database is unavailable or inconsistent."""


class StorageError(RepoButlerError, OSError):
    """The storage backend failed (unreachable endpoint, permission denied, ...)."""


class RepositoryExistsError(RepoButlerError, FileExistsError):
    """``create`` was asked to make a repository where one already exists."""


class RepositoryNotFoundError(RepoButlerError, FileNotFoundError):
    """No ``butler.yaml`` at the given root: it is not a repository."""
