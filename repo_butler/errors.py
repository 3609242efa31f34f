"""Exceptions raised by :mod:`repo_butler`.

Every user-facing error subclasses both :class:`RepoButlerError` and the builtin exception that
matches its meaning, so callers can catch either. Messages say what was wrong, the offending value
and what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "OVERWRITE_REMEDY",
    "ConfigError",
    "DataIdError",
    "DatasetExistsError",
    "DatasetNotFoundError",
    "DatasetTypeError",
    "FormatterError",
    "ParentRepositoryError",
    "QuerySyntaxError",
    "RegistryError",
    "Remedy",
    "RepoButlerError",
    "RepositoryExistsError",
    "RepositoryNotFoundError",
    "StorageError",
    "with_advice",
]


@dataclass(frozen=True)
class Remedy:
    """What a caller can do about an error, kept apart from the message's prose.

    The message of an error with a remedy ends with both ways out, e.g. "remove it first or pass
    overwrite=True"; a front end (the ``rb`` command line) renders :attr:`keyword` as its own
    option instead, or only :attr:`otherwise` when it has none.

    Parameters
    ----------
    keyword : str
        The keyword argument of the call that allows what was refused (``"overwrite"``).
    value : object
        The value to pass for it.
    otherwise : str
        What to do instead, in words that fit any caller ("remove it first").
    example : str, optional
        How to write the value when its repr would not do (``"{'v': ...}"``).
    """

    keyword: str
    value: Any = True
    otherwise: str = ""
    example: str | None = None

    def python_advice(self) -> str:
        """The advice as a Python caller reads it."""
        value = self.example if self.example is not None else repr(self.value)
        passing = f"pass {self.keyword}={value}"
        return f"{self.otherwise} or {passing}" if self.otherwise else passing


def with_advice(message: str, advice: str) -> str:
    """``message`` with ``advice`` at the end of its first line (later lines quote input)."""
    if not advice:
        return message
    first, sep, rest = message.partition("\n")
    return f"{first}; {advice}{sep}{rest}"


#: A dataset exists already: remove it, or replace it.
OVERWRITE_REMEDY = Remedy("overwrite", otherwise="remove it first")


class RepoButlerError(Exception):
    """Base class of every error raised by repo_butler.

    ``remedy`` (keyword-only, optional) is a structured :class:`Remedy`: ``str(err)`` appends
    its Python form to the message; :attr:`message` is the message without it.
    """

    def __init__(self, *args: object, remedy: Remedy | None = None) -> None:
        super().__init__(*args)
        self.remedy = remedy

    @property
    def message(self) -> str:
        """The message without the remedy's advice."""
        return str(self.args[0]) if len(self.args) == 1 else Exception.__str__(self)

    def __str__(self) -> str:
        remedy = getattr(self, "remedy", None)  # absent on instances unpickled from old pickles
        if remedy is None:
            return Exception.__str__(self)
        return with_advice(self.message, remedy.python_advice())


class ConfigError(RepoButlerError, ValueError):
    """A configuration file or value is invalid."""


class DataIdError(RepoButlerError, ValueError):
    """A data ID is missing keys, has unknown keys or has values of the wrong type or form."""


class DatasetTypeError(RepoButlerError, KeyError):
    """A dataset type is unknown or inconsistent with its definition."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        text = str(self.args[0]) if self.args else ""
        return with_advice(text, self.remedy.python_advice()) if self.remedy else text


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


class ParentRepositoryError(StorageError):
    """A parent repository cannot be used: not a repository, unreadable with the credentials
    given, unreachable, or part of a cycle of parents."""


class RepositoryExistsError(RepoButlerError, FileExistsError):
    """``create`` was asked to make a repository where one already exists."""


class RepositoryNotFoundError(RepoButlerError, FileNotFoundError):
    """No ``butler.yaml`` at the given root: it is not a repository."""
