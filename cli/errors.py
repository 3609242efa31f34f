"""Error messages in the command line's words.

Library errors may carry a :class:`repo_butler.errors.Remedy`: the keyword argument that would
allow what was refused (``overwrite=True``) and what to do otherwise. Python callers read it in
the message; here it becomes the running command's own option (``--overwrite``) when the command
has one, or advice that fits the command line when it has not.
"""

from __future__ import annotations

from typing import Any

from repo_butler.errors import RepoButlerError, with_advice

__all__ = ["cli_message"]

#: How the command line says a remedy's ``otherwise``, where it has its own words for it.
_CLI_OTHERWISE = {"clobber_config": "write to another run (--rerun NAME)"}
#: What to do on the command line when the running command has no option for the keyword.
_WITHOUT_OPTION = {
    "overwrite": "remove it first (rb remove) or write to another --rerun",
    "exist_ok": "use it as it is (every rb command opens it), or choose another location",
}


def _option_for(command: Any, keyword: str) -> str | None:
    """The command's option setting the parameter named ``keyword``, e.g. ``--overwrite``."""
    for param in getattr(command, "params", ()):
        opts = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
        if param.name == keyword and opts and param.param_type_name == "option":
            return opts[0]
    return None


def cli_message(err: RepoButlerError, command: Any = None) -> str:
    """``err``'s message with its remedy in terms of ``command`` (a click command), if any."""
    remedy = getattr(err, "remedy", None)
    if remedy is None:
        return str(err)
    option = _option_for(command, remedy.keyword)
    otherwise = _CLI_OTHERWISE.get(remedy.keyword, remedy.otherwise)
    if option is not None:
        advice = f"{otherwise} or pass {option}" if otherwise else f"pass {option}"
    else:
        advice = _WITHOUT_OPTION.get(remedy.keyword, otherwise)
    return with_advice(err.message, advice)
