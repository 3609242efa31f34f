"""Secret values in storage options, and their removal from messages and documents.

Storage options carry credentials (``secret``, ``token``, ``password`` ...). Neither error
messages nor stored provenance may show them: :func:`secret_values` lists the values to hide and
:func:`redact_text` removes them from a message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["redact_text", "secret_option_keys", "secret_values"]

_SECRET_OPTION_KEYS = ("secret", "token", "password", "passwd", "credential", "session")


#: Keys that name credentials although no secret word is in them (s3fs's access key ID).
_CREDENTIAL_KEYS = ("key", "aws_access_key_id", "access_key", "access_key_id")


def secret_option_keys(options: Mapping[str, Any] | None, prefix: str = "") -> list[str]:
    """Dotted paths of the options in ``options`` that hold credentials (secrets, tokens,
    passwords, access keys): what must never be written into a file."""
    found: list[str] = []
    for k, v in (options or {}).items():
        key = str(k).lower()
        path = f"{prefix}{k}"
        if isinstance(v, Mapping):
            found += secret_option_keys(v, path + ".")
        elif key in _CREDENTIAL_KEYS or any(s in key for s in _SECRET_OPTION_KEYS):
            found.append(path)
    return found


def secret_values(options: Mapping[str, Any] | None) -> list[str]:
    """Every string value under a secret-looking key in ``options`` (recursively), plus the
    secret environment variables botocore reads, longest first (for :func:`redact_text`)."""
    found: list[str] = []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, str(k).lower())
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and value and any(s in key for s in _SECRET_OPTION_KEYS):
            found.append(value)

    walk(options or {}, "")
    for var in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD"):
        if os.environ.get(var):
            found.append(os.environ[var])
    return sorted(set(found), key=len, reverse=True)


def redact_text(text: str, secrets: list[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
