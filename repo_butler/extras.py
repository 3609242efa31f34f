"""Optional dependencies: import one, or say which extra to install.

The core install is what a butler and make-warp need locally and on S3. Plotting (``[plots]``:
matplotlib), Dask (``[dask]``: dask.distributed), the PostgreSQL registry (``[postgres]``:
psycopg) and the Delta Lake bucket registry (``[delta]``: deltalake, pyarrow) are extras;
``[all]`` has every one.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from repo_butler.errors import RepoButlerError

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(RepoButlerError, ImportError):
    """An optional dependency is not installed (the message names the extra to install)."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming ``extra``.

    Parameters
    ----------
    module
        The module to import, e.g. ``"matplotlib"``.
    extra
        The package extra that installs it, e.g. ``"plots"``.
    purpose
        What needs it, for the message (e.g. ``"rb quicklook"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = module.partition(".")[0]
        raise MissingExtraError(
            f"{purpose} needs {package}, which is not installed: "
            f"pip install 'repo-butler[{extra}]' (or '[all]')"
        ) from err
