"""Print the requirements of repo-butler with the given extras, one per line (``make venv``).

``make venv`` installs these first, with pip's usual build isolation, then the project itself
with ``--no-build-isolation --no-deps`` (a meson-python editable install needs its build tools in
the venv). Installing everything with ``--no-build-isolation`` would also build sdist-only
dependencies (LSSTDESC.Coord, via galsim) without isolation, which fails on a fresh venv.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
name = project["name"]
extras: dict[str, list[str]] = project.get("optional-dependencies", {})
seen: set[str] = set()
out: list[str] = list(project["dependencies"])


def add(extra: str) -> None:
    if extra in seen:
        return
    seen.add(extra)
    for req in extras[extra]:
        own = re.fullmatch(rf"{re.escape(name)}\[([^\]]+)\]", req.replace(" ", ""))
        if own:  # a self-reference such as repo-butler[postgres,plots,dask]
            for sub in own.group(1).split(","):
                add(sub)
        else:
            out.append(req)


for wanted in sys.argv[1:]:
    add(wanted)
print("\n".join(dict.fromkeys(out)))
