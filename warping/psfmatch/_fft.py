"""Multi-line FFTs of the PSF-matching convolution, compiled for this machine's CPU.

pocketfft (the header-only C++ library scipy and numpy use; BSD-3-Clause, vendored in
``_pocketfft/`` with its licence) is compiled from ``_fft.cc`` when the package is installed
(``meson.build``) in two builds: ``_fft_base`` and, on x86-64, ``_fft_avx2`` (``-mavx2 -mfma``).
On CPUs with AVX2 and FMA the AVX2 build is loaded: it transforms eight lines at once where
scipy's baseline build transforms four, which makes the strided column passes about 1.5-2x
faster.

When the installation has no FFT build (it was installed without a C++ compiler) or with
``REPO_BUTLER_FFT=scipy``, :func:`available` is False and the convolution uses the public
:mod:`scipy.fft` functions instead (same results to float rounding; see
:mod:`warping.psfmatch.fft_passes`).
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import logging
import os
import platform
import threading

import numpy as np

from warping.warp._clib import CoreBuildError, compiled_path

__all__ = ["available", "c2c", "c2r", "library", "r2c", "variant"]

logger = logging.getLogger(__name__)

ABI_VERSION = 1

_I64 = ctypes.c_int64
_P = ctypes.c_void_p
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_failed: str | None = None


def variant() -> str:
    """``"avx2"`` on x86-64 CPUs with AVX2 and FMA, else ``"base"``."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "base"
    try:  # numpy's own CPU feature detection
        module = importlib.import_module("numpy._core._multiarray_umath")
        features = dict(getattr(module, "__cpu_features__", {}))
    except ImportError:  # pragma: no cover - other numpy layouts
        return "base"
    return "avx2" if features.get("AVX2") and features.get("FMA3") else "base"


def _find() -> ctypes.CDLL:
    module = f"warping.psfmatch._fft_{variant()}"
    found = compiled_path(module)
    if found is None:
        raise CoreBuildError(
            f"{module} is not in this installation (it was built without a C++ compiler)"
        )
    return ctypes.CDLL(str(found))


def _configure(lib: ctypes.CDLL) -> ctypes.CDLL:
    lib.rb_fft_abi_version.restype = _I64
    if lib.rb_fft_abi_version() != ABI_VERSION:
        raise CoreBuildError(f"FFT library ABI {lib.rb_fft_abi_version()} != {ABI_VERSION}")
    multi = [_P, _I64, _P, _P, _P, _I64, _I64, ctypes.c_double, _P, _P]
    for name in ("c2c", "r2c"):
        for suffix in ("f32", "f64"):
            fn = getattr(lib, f"rb_fft_{name}_{suffix}")
            fn.restype, fn.argtypes = _I64, multi
    for suffix in ("f32", "f64"):
        fn = getattr(lib, f"rb_fft_c2r_{suffix}")
        fn.restype = _I64
        fn.argtypes = [_P, _I64, _P, _P, _I64, _I64, ctypes.c_double, _P, _P]
    lib.rb_fft_last_error.restype = ctypes.c_char_p
    lib.rb_fft_vlen.restype = _I64
    return lib


def library() -> ctypes.CDLL | None:
    """The loaded FFT library for this CPU; None when the installation has none or it cannot be
    loaded (the reason is logged once) or when ``REPO_BUTLER_FFT=scipy``."""
    global _lib, _failed
    if os.environ.get("REPO_BUTLER_FFT", "").lower() == "scipy":
        return None
    if _lib is not None or _failed is not None:
        return _lib
    with _lock:
        if _lib is not None or _failed is not None:
            return _lib
        try:
            _lib = _configure(_find())
        except (CoreBuildError, OSError) as err:
            _failed = str(err)
            logger.warning(
                "Using scipy's FFTs for PSF matching (slower): the compiled FFT library is not "
                "available (%s)",
                _failed.splitlines()[0],
            )
        return _lib


def available() -> bool:
    """True when the compiled FFT library is in use."""
    return library() is not None


@functools.lru_cache(maxsize=512)
def _arr_of(values: tuple[int, ...]) -> ctypes.Array[ctypes.c_int64]:
    return (_I64 * len(values))(*values)


def _arr(values: tuple[int, ...] | list[int]) -> ctypes.Array[ctypes.c_int64]:
    """A ctypes int64 array of ``values`` (cached: the bands of a convolution repeat a few
    shapes and strides hundreds of times; the arrays are only read)."""
    return _arr_of(tuple(values))


def _call(name: str, dtype: np.dtype, *args: object) -> None:
    lib = _lib if _lib is not None else library()  # callers decide with available()
    if lib is None:
        raise CoreBuildError("the compiled FFT library is not available")
    suffix = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}.get(np.dtype(dtype))
    if suffix is None:
        raise TypeError(f"FFTs run in float32 or float64, got {dtype}")
    if getattr(lib, f"rb_fft_{name}_{suffix}")(*args) != 0:
        raise RuntimeError(f"pocketfft {name} failed: {lib.rb_fft_last_error().decode()}")


def _real_of(a: np.ndarray) -> np.dtype:
    return np.dtype(a.real.dtype if a.dtype.kind == "c" else a.dtype)


def _check(a: np.ndarray, kind: str, name: str) -> None:
    if a.dtype.kind != kind or not a.dtype.isnative:
        want = "complex" if kind == "c" else "real"
        raise TypeError(f"{name} must be a native {want} array, got {a.dtype}")


def c2c(a: np.ndarray, out: np.ndarray, axes: tuple[int, ...], forward: bool, fct: float) -> None:
    """Complex FFT of ``a`` over ``axes`` into ``out`` (same shape; may be ``a`` itself),
    scaled by ``fct``. Any strides."""
    _check(a, "c", "a")
    _check(out, "c", "out")
    if a.shape != out.shape or a.dtype != out.dtype:
        raise ValueError(f"c2c: a {a.dtype} {a.shape} and out {out.dtype} {out.shape} differ")
    nd = a.ndim
    ax = [x % nd for x in axes]
    _call("c2c", _real_of(a), _arr(a.shape), nd, _arr(a.strides), _arr(out.strides), _arr(ax),
          len(ax), int(forward), float(fct), a.ctypes.data, out.ctypes.data)  # fmt: skip


def r2c(a: np.ndarray, out: np.ndarray, axes: tuple[int, ...], fct: float = 1.0) -> None:
    """Forward real FFT of ``a`` over ``axes`` (the last listed is the halved one) into
    ``out``, scaled by ``fct``."""
    _check(a, "f", "a")
    _check(out, "c", "out")
    nd = a.ndim
    ax = [x % nd for x in axes]
    want = list(a.shape)
    want[ax[-1]] = a.shape[ax[-1]] // 2 + 1
    if list(out.shape) != want or _real_of(out) != a.dtype:
        raise ValueError(f"r2c: out {out.dtype} {out.shape}, expected {tuple(want)} for {a.dtype}")
    _call("r2c", a.dtype, _arr(a.shape), nd, _arr(a.strides), _arr(out.strides), _arr(ax),
          len(ax), 1, float(fct), a.ctypes.data, out.ctypes.data)  # fmt: skip


def c2r(a: np.ndarray, out: np.ndarray, axis: int, fct: float) -> None:
    """Backward complex-to-real FFT of ``a`` along ``axis`` into ``out`` (``out.shape[axis]``
    real points from ``a.shape[axis] = out.shape[axis] // 2 + 1``), scaled by ``fct``."""
    _check(a, "c", "a")
    _check(out, "f", "out")
    nd = out.ndim
    ax = axis % nd
    want = list(out.shape)
    want[ax] = out.shape[ax] // 2 + 1
    if list(a.shape) != want or _real_of(a) != out.dtype:
        raise ValueError(f"c2r: a {a.dtype} {a.shape}, expected {tuple(want)} for {out.dtype}")
    _call("c2r", out.dtype, _arr(out.shape), nd, _arr(a.strides), _arr(out.strides), ax, 0,
          float(fct), a.ctypes.data, out.ctypes.data)  # fmt: skip


if __name__ == "__main__":  # ``python -m warping.psfmatch._fft``: which build this CPU loads
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    lib = library()
    print(lib._name if lib is not None else f"not built: {_failed}")
