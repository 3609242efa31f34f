"""Load the compiled core with ctypes.

One shared library holds the warping core (``warping/warp/_ckernel.c``) and the PSF-matching
loops (``warping/psfmatch/_match_loops.c``, configured by :mod:`warping.psfmatch._match_loops`).
It is compiled when the package is installed (``pip install .``, ``pip wheel .``, ``make venv``;
see ``meson.build``) into ``warping/warp/_ckernel<platform suffix>``: an extension-module file
name, so importlib finds it in wheels and editable installs alike, but loaded with ctypes (its
API is plain C functions). Nothing is compiled or written at run time.

Only the standard library is imported here: loading the core costs about a millisecond, which
keeps ``rb warp-image`` start-up small (no JIT).
"""

from __future__ import annotations

import ctypes
import importlib.util
import threading
from pathlib import Path

from warping.errors import WarpingError

__all__ = ["CoreArgs", "CoreBuildError", "compiled_path", "library"]

#: The module name the core is built as (``meson.build``).
MODULE = "warping.warp._ckernel"
ABI_VERSION = 4

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


class CoreBuildError(WarpingError, RuntimeError):
    """The compiled C warping core is missing from the installation or could not be loaded."""


class CoreArgs(ctypes.Structure):
    """Mirror of ``rb_args`` in ``_ckernel.c`` (field order and types must match)."""

    _fields_ = [
        ("src_img", ctypes.c_void_p),
        ("src_var", ctypes.c_void_p),
        ("src_mask", ctypes.c_void_p),
        ("hs", ctypes.c_int64),
        ("ws", ctypes.c_int64),
        ("sstride", ctypes.c_int64),
        ("mstride", ctypes.c_int64),
        ("do_var", ctypes.c_int64),
        ("mask_in", ctypes.c_int64),
        ("mask_out", ctypes.c_int64),
        ("nodes_x", ctypes.c_void_p),
        ("nnx", ctypes.c_int64),
        ("nodes_y", ctypes.c_void_p),
        ("nny", ctypes.c_int64),
        ("gx", ctypes.c_void_p),
        ("gy", ctypes.c_void_p),
        ("ga", ctypes.c_void_p),
        ("step", ctypes.c_int64),
        ("origin_y", ctypes.c_int64),
        ("out_img", ctypes.c_void_p),
        ("out_var", ctypes.c_void_p),
        ("out_mask", ctypes.c_void_p),
        ("wd", ctypes.c_int64),
        ("ostride", ctypes.c_int64),
        ("vstride", ctypes.c_int64),
        ("omstride", ctypes.c_int64),
        ("kind", ctypes.c_int64),
        ("n", ctypes.c_int64),
        ("table", ctypes.c_void_p),
        ("dtable", ctypes.c_void_p),
        ("tsum", ctypes.c_void_p),
        ("tstride", ctypes.c_int64),
        ("rows", ctypes.c_int64),
        ("mkind", ctypes.c_int64),
        ("mn", ctypes.c_int64),
        ("full_bits", ctypes.c_int64),
        ("nodata_bits", ctypes.c_int64),
        ("pad_value", ctypes.c_double),
        ("conserve_flux", ctypes.c_int64),
        ("full_map", ctypes.c_void_p),
        ("map_cols", ctypes.c_int64),
        ("use_full_map", ctypes.c_int64),
    ]


def compiled_path(module: str) -> Path | None:
    """The file of the compiled library built as extension module ``module`` (e.g.
    ``"warping.warp._ckernel"``), or None when this installation has none.

    The libraries are never imported as Python modules (they have no module init); importlib
    only locates them, which also works through meson-python's editable-install finder.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".so"):
        return None
    return Path(spec.origin)


def _configure(lib: ctypes.CDLL) -> ctypes.CDLL:
    lib.rb_abi_version.restype = ctypes.c_int64
    if lib.rb_abi_version() != ABI_VERSION:
        raise CoreBuildError(f"warping core ABI {lib.rb_abi_version()} != {ABI_VERSION}")
    for name in ("rb_warp_rows_f32", "rb_warp_rows_f64"):
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int64
        fn.argtypes = [ctypes.POINTER(CoreArgs), ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    lib.rb_block_map.restype = None
    lib.rb_block_map.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int32,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    return lib


def library() -> ctypes.CDLL:
    """The loaded C core (thread-safe; loaded once per process)."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        found = compiled_path(MODULE)
        if found is None:
            raise CoreBuildError(
                f"the compiled warping core ({MODULE}) is not in this installation of repo-butler; "
                "install the package (pip install repo-butler, or pip install . in a checkout: it "
                "compiles the core) instead of running it from an uninstalled source tree"
            )
        try:
            _lib = _configure(ctypes.CDLL(str(found)))
        except OSError as err:
            raise CoreBuildError(
                f"cannot load the warping core {found} ({err}); reinstall repo-butler"
            ) from None
        return _lib
