"""ctypes wrappers of the PSF-matching loops in ``_match_loops.c`` (built with the warping core).

Each wrapper checks dtypes and layouts (innermost axis contiguous) and passes base pointers and
row strides; the C functions release the GIL, so tiles and mask bands run on threads. Loading
costs about a millisecond (no JIT): :func:`warping.warp._clib.library` loads the library compiled
when the package was installed.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from warping.warp._clib import CoreBuildError, library

__all__ = [
    "BandCombiner",
    "BandSummer",
    "Dilation",
    "Window",
    "cell_gram",
    "dilate_band",
    "gather",
    "multiply",
    "resample_lanczos",
]

ABI_VERSION = 4

_P = ctypes.c_void_p
_I = ctypes.c_int64
_I32 = ctypes.c_int32

_DILATE = [_P, _I, _P, _P, _I, _I, _I, _I, _I, _I32, _I, _I, _I, _I, _P, _I, _P, _P]
_GATHER = [_P, _I, _P, _I, _P, _I, _I, _I, _I32, _I, _I, _I, _I, _I, _I, _P, _P]
_SUM_Y = [_P, _I, _I, _I, _P, _I, _P, _P, _I, _I, _I, _I, _P, _I]
_COMBINE = [
    *(_P, _I, _I, _I),  # rows_i, strides, n_a
    *(_P, _I, _I, _I),  # rows_v, strides, rank
    *(_P, _I, _I, _I),  # tx_a, tw, th, c0
    *(_P, _I, _I, _I),  # tys, tstride, nd, ry
    *(_P, _I, _P, _I, _I),  # sx, nsb, dx, y0, x0
    *(_P, _I, _I32),  # out_mask, stride, no_data
    *(_P, _I, _P, _I, _P),  # out_img, stride, out_var, stride, scratch
]
_SIGNATURES: dict[str, list[Any]] = {
    **{f"rb_pm_dilate_band_{f}": _DILATE for f in ("f32", "f64")},
    **{f"rb_pm_gather_{a}_{b}": _GATHER for a in ("f32", "f64") for b in ("f32", "f64")},
    **{
        f"rb_pm_multiply_{c}": [_P, _I, _P, _I, _I, _P, _I, _I, _I, _I, _I] for c in ("c64", "c128")
    },
    **{f"rb_pm_sum_y_{c}": _SUM_Y for c in ("c64", "c128")},
    **{f"rb_pm_combine_{f}": _COMBINE for f in ("f32", "f64")},
    "rb_pm_resample_lanczos": [_P, _I, _I, _I, _P, _P, _P, _P, _P, _P, _I, _P, _I],
    "rb_pm_cell_gram": [_P, _I, _I, _P, _P, _I, _I, _P, _P, _P, _I, _I, _I, _P],
}
#: Functions returning a status (0 = done).
_RETURNS_STATUS = ("rb_pm_resample_lanczos", "rb_pm_cell_gram")

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            lib = library()
            lib.rb_pm_abi_version.restype = ctypes.c_int64
            if lib.rb_pm_abi_version() != ABI_VERSION:
                raise CoreBuildError(
                    f"PSF-matching loops ABI {lib.rb_pm_abi_version()} != {ABI_VERSION}"
                )
            for name, argtypes in _SIGNATURES.items():
                fn = getattr(lib, name)
                fn.restype = ctypes.c_int64 if name in _RETURNS_STATUS else None
                fn.argtypes = argtypes
            _lib = lib
    return _lib


def _ptr(a: np.ndarray) -> int:
    return int(a.ctypes.data)


def _i32(bits: int) -> int:
    """A 32-bit mask value as the signed int32 the C code sees (same bit pattern)."""
    bits &= 0xFFFFFFFF
    return bits - (1 << 32) if bits >= 1 << 31 else bits


def _rows(a: np.ndarray, name: str) -> int:
    """Row stride (elements) of a 2-D array whose rows are contiguous."""
    if a.ndim != 2 or (a.shape[1] > 1 and a.strides[1] != a.itemsize):
        raise ValueError(f"{name} must be 2-D with contiguous rows, got strides {a.strides}")
    return a.strides[0] // a.itemsize


_SUFFIX = {
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
    np.dtype(np.complex64): "c64",
    np.dtype(np.complex128): "c128",
}


def _real(dtype: np.dtype) -> str:
    return _suffix(dtype, "f", "float32 or float64")


def _cplx(dtype: np.dtype) -> str:
    return _suffix(dtype, "c", "complex64 or complex128")


def _suffix(dtype: np.dtype, kind: str, expected: str) -> str:
    """Name suffix of the C loop for ``dtype`` (``f32``, ``c64``, ...), or a TypeError."""
    suffix = _SUFFIX.get(np.dtype(dtype), "")
    if not suffix.startswith(kind):
        raise TypeError(f"expected {expected}, got {dtype}")
    return suffix


def _contiguous(a: np.ndarray, dtype: np.dtype, name: str) -> None:
    if a.dtype != dtype or not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous {dtype}, got {a.dtype}")


@dataclass(frozen=True)
class Dilation:
    """An OR-dilation of mask bits over the ``(2h+1)²`` square (``h = half_width``).

    With ``check_finite``, pixels whose image or variance is not finite count as ``no_data``;
    with ``border``, rows and columns within ``h`` of the edge are ``no_data`` alone.
    """

    half_width: int
    no_data: int = 0
    check_finite: bool = False
    border: bool = False


@dataclass(frozen=True)
class Window:
    """``rows x cols`` pixels starting at ``(y0, x0)`` (may reach outside an array)."""

    y0: int
    x0: int
    rows: int
    cols: int


def dilate_band(
    mask: np.ndarray,
    image: np.ndarray,
    variance: np.ndarray,
    dilation: Dilation,
    r0: int,
    r1: int,
    out: np.ndarray,
) -> None:
    """Rows ``r0 <= y < r1`` of ``dilation`` of ``mask`` (int32) into ``out``; ``image`` and
    ``variance`` (float32/float64, one dtype) are read only with ``dilation.check_finite``."""
    check, no_data, h, border = (
        dilation.check_finite, dilation.no_data, dilation.half_width, dilation.border,
    )  # fmt: skip
    height, width = mask.shape
    if mask.dtype != np.int32 or out.dtype != np.int32:
        raise TypeError(f"mask and out must be int32, got {mask.dtype}, {out.dtype}")
    if image.dtype != variance.dtype:
        raise TypeError(f"image {image.dtype} and variance {variance.dtype} differ")
    if check and (image.shape != mask.shape or variance.shape != mask.shape):
        raise ValueError("image, variance and mask must have one shape")
    if not 0 <= r0 <= r1 <= height or out.ndim != 2 or out.shape[0] < r1 or out.shape[1] < width:
        raise ValueError(
            f"dilate_band: rows {r0}..{r1} of a {height}x{width} mask do not fit out "
            f"{out.shape} (0 <= r0 <= r1 <= height, out at least r1 x width)"
        )
    if h < 0:
        raise ValueError(f"dilate_band: half_width must be >= 0, got {h}")
    ring = np.empty((2 * h + 1, width), np.int32)
    acc = np.empty(width, np.int32)
    fn = getattr(_library(), f"rb_pm_dilate_band_{_real(image.dtype)}")
    fn(_ptr(mask), _rows(mask, "mask"), _ptr(image), _ptr(variance),
       _rows(image, "image") if check else 0, _rows(variance, "variance") if check else 0,
       height, width, int(bool(check)), _i32(no_data), h,
       int(bool(border)), r0, r1, _ptr(out), _rows(out, "out"), _ptr(ring), _ptr(acc))  # fmt: skip


def gather(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    no_data: int,
    window: Window,
    buf_i: np.ndarray,
    buf_v: np.ndarray,
) -> None:
    """``buf[r, c] = input[y0 + r, x0 + c]`` for ``r < rows, c < cols`` of ``window``, zero
    everywhere else, also where the input is outside the arrays or bad (``no_data`` bits,
    non-finite image or variance)."""
    y0, x0, ny, nx = window.y0, window.x0, window.rows, window.cols
    if mask.dtype != np.int32:
        raise TypeError(f"mask must be int32, got {mask.dtype}")
    if image.dtype != variance.dtype:
        raise TypeError(f"image {image.dtype} and variance {variance.dtype} differ")
    _contiguous(buf_v, buf_i.dtype, "buf_v")
    _contiguous(buf_i, buf_i.dtype, "buf_i")
    if buf_i.ndim != 2 or buf_v.shape != buf_i.shape:
        raise ValueError(f"buf_i {buf_i.shape} and buf_v {buf_v.shape} must be one 2-D shape")
    if variance.shape != image.shape or mask.shape != image.shape:
        raise ValueError(
            f"image {image.shape}, variance {variance.shape} and mask {mask.shape} differ"
        )
    height, width = image.shape
    rows, cols = buf_i.shape
    fn = getattr(_library(), f"rb_pm_gather_{_real(image.dtype)}_{_real(buf_i.dtype)}")
    fn(_ptr(image), _rows(image, "image"), _ptr(variance), _rows(variance, "variance"),
       _ptr(mask), _rows(mask, "mask"), height, width,
       _i32(no_data), y0, x0, ny, nx, rows, cols,
       _ptr(buf_i), _ptr(buf_v))  # fmt: skip


def multiply(f: np.ndarray, k: np.ndarray, out: np.ndarray) -> None:
    """``out[t] = f * k[t]`` (a tile spectrum times each kernel spectrum).

    ``f`` is 2-D, ``k`` and ``out`` 3-D with ``out.shape[0] >= k.shape[0]``; any of them may be
    a view (e.g. a block of columns) as long as its last axis is contiguous.
    """
    dt = f.dtype
    for name, arr, nd in (("f", f, 2), ("k", k, 3), ("out", out, 3)):
        if (
            arr.dtype != dt
            or arr.ndim != nd
            or (arr.shape[-1] > 1 and arr.strides[-1] != arr.itemsize)
        ):
            raise ValueError(
                f"{name} must be a {nd}-D {dt} array with a contiguous last axis, got "
                f"{arr.dtype} {arr.shape} strides {arr.strides}"
            )
    if k.shape[1:] != f.shape or out.shape[0] < k.shape[0] or out.shape[1:] != f.shape:
        raise ValueError(f"shapes f {f.shape}, k {k.shape}, out {out.shape} do not match")
    isz = f.itemsize
    fn = getattr(_library(), f"rb_pm_multiply_{_cplx(dt)}")
    fn(_ptr(f), f.strides[0] // isz, _ptr(k), k.strides[0] // isz, k.strides[1] // isz,
       _ptr(out), out.strides[0] // isz, out.strides[1] // isz, k.shape[0], f.shape[0],
       f.shape[1])  # fmt: skip


def _check_rows(
    what: str, count: tuple[str, int, int], starts: tuple[tuple[str, int, int], ...]
) -> None:
    """ValueError unless ``0 <= n <= max_n`` for ``count = (name, n, max_n)`` and
    ``0 <= start`` and ``start + n <= limit`` for each ``(name, start, limit)`` of ``starts``."""
    _, n, max_n = count
    if not 0 <= n <= max_n or any(s < 0 or s + n > limit for _, s, limit in starts):
        rows = ", ".join(f"{k}={v}" for k, v, _ in (*starts, count))
        raise ValueError(f"{what}: rows {rows} out of range")


class BandSummer:
    """Sums over the y terms for the bands of one tile: arrays checked and converted once, so a
    band costs one ctypes call (a few microseconds instead of ~30)."""

    def __init__(
        self, z: np.ndarray, ty: np.ndarray, a_of_t: np.ndarray, b_of_t: np.ndarray,
        out: np.ndarray,
    ) -> None:  # fmt: skip
        _contiguous(z, z.dtype, "z")
        _contiguous(out, z.dtype, "out")
        _contiguous(ty, np.dtype(np.float32), "ty")
        a_of_t = np.ascontiguousarray(a_of_t, dtype=np.int64)
        b_of_t = np.ascontiguousarray(b_of_t, dtype=np.int64)
        nt, zrows, nc = z.shape
        if (
            out.shape[2] != nc
            or len(a_of_t) != nt
            or len(b_of_t) != nt
            or (nt and (min(a_of_t.min(), b_of_t.min()) < 0))
            or (nt and (a_of_t.max() >= out.shape[0] or b_of_t.max() >= ty.shape[0]))
        ):
            raise ValueError("sum over y: inconsistent shapes")
        self._fn = getattr(_library(), f"rb_pm_sum_y_{_cplx(z.dtype)}")
        self._keep = (z, ty, a_of_t, b_of_t, out)  # the pointers below stay valid
        self._zrows, self._tlen, self._orows = zrows, ty.shape[1], out.shape[1]
        self._head = (_ptr(z), nt, zrows, nc, _ptr(ty), ty.shape[1], _ptr(a_of_t),
                      _ptr(b_of_t), out.shape[0])  # fmt: skip
        self._tail = (_ptr(out), out.shape[1])

    def __call__(self, r0: int, ry: int, nrows: int) -> None:
        """``out[a, r] = sum_{t: a_t = a} ty[b_t, ry + r] z[t, r0 + r]`` for ``r < nrows``."""
        _check_rows("sum over y", ("nrows", nrows, self._orows),
                    (("r0", r0, self._zrows), ("ry", ry, self._tlen)))  # fmt: skip
        self._fn(*self._head, r0, ry, nrows, *self._tail)


class BandCombiner:
    """The per-pixel combination for the bands of one tile: arrays checked and converted once,
    so a band costs one ctypes call (a few microseconds instead of ~60).

    Per pixel: ``sum_a Tx_a rows_i[a] / ksum`` and ``sum_p w_p rows_v[p] / ksum²``, where
    ``rows_*[., r, c0 + c]`` is output pixel ``(y0 + r, x0 + c)`` for ``r < th``,
    ``ksum = sum_b tys[b, ry + r] sx[b, c]`` and ``w_p = sum_j tys[j, ry + r] dx[p, j, c]``.
    Pixels whose (already dilated) ``out_mask`` has ``no_data`` become NaN / +inf.
    """

    def __init__(
        self,
        rows_i: np.ndarray,
        tx_a: np.ndarray,
        rows_v: np.ndarray,
        c0: int,
        tys: np.ndarray,
        sx: np.ndarray,
        dx: np.ndarray,
        x0: int,
        out_mask: np.ndarray,
        no_data: int,
        out_img: np.ndarray,
        out_var: np.ndarray,
    ) -> None:
        f32 = np.dtype(np.float32)
        for name, arr in (("tx_a", tx_a), ("tys", tys), ("sx", sx), ("dx", dx)):
            _contiguous(arr, f32, name)
        if rows_v.dtype != rows_i.dtype:
            raise TypeError(f"rows_i {rows_i.dtype} and rows_v {rows_v.dtype} differ")
        for name, arr in (("rows_i", rows_i), ("rows_v", rows_v)):
            if arr.ndim != 3 or arr.strides[2] != arr.itemsize:
                raise ValueError(
                    f"{name} must be 3-D with contiguous rows, got strides {arr.strides}"
                )
        if out_img.dtype != f32 or out_var.dtype != f32 or out_mask.dtype != np.int32:
            raise TypeError("out_img/out_var must be float32 and out_mask int32")
        n_a, tw = tx_a.shape
        rank, nd = dx.shape[0], dx.shape[1]
        nsb = sx.shape[0]
        if (
            rows_i.shape[0] != n_a
            or rows_v.shape[0] != rank
            or dx.shape[2] != tw
            or sx.shape[1] != tw
            or tys.shape[0] < max(nd, nsb)
            or min(c0, x0) < 0
            or c0 + tw > min(rows_i.shape[2], rows_v.shape[2])
            or x0 + tw > out_img.shape[1]
            or out_var.shape != out_img.shape
            or out_mask.shape != out_img.shape
        ):
            raise ValueError("combine: inconsistent shapes")
        isz = rows_i.itemsize
        scratch = np.empty(5 * tw, np.float32)
        self._fn = getattr(_library(), f"rb_pm_combine_{_real(rows_i.dtype)}")
        self._keep = (rows_i, tx_a, rows_v, tys, sx, dx, out_mask, out_img, out_var, scratch)
        self._max_rows = min(rows_i.shape[1], rows_v.shape[1])
        self._tlen, self._height = tys.shape[1], out_img.shape[0]
        self._head = (
            _ptr(rows_i), rows_i.strides[0] // isz, rows_i.strides[1] // isz, n_a,
            _ptr(rows_v), rows_v.strides[0] // isz, rows_v.strides[1] // isz, rank,
            _ptr(tx_a), tw,
        )  # fmt: skip
        self._mid = (c0, _ptr(tys), tys.shape[1], nd)
        self._sx = (_ptr(sx), nsb, _ptr(dx))
        self._tail = (
            x0, _ptr(out_mask), _rows(out_mask, "out_mask"), _i32(no_data),
            _ptr(out_img), _rows(out_img, "out_img"), _ptr(out_var), _rows(out_var, "out_var"),
            _ptr(scratch),
        )  # fmt: skip

    def __call__(self, th: int, ry: int, y0: int) -> None:
        """Band-buffer rows ``0 .. th`` become output rows ``y0 .. y0 + th``; their y terms are
        rows ``ry .. ry + th`` of ``tys``."""
        _check_rows("combine", ("th", th, self._max_rows),
                    (("ry", ry, self._tlen), ("y0", y0, self._height)))  # fmt: skip
        self._fn(*self._head, th, *self._mid, ry, *self._sx, y0, *self._tail)


def resample_lanczos(
    src: np.ndarray,
    src_shape: np.ndarray,
    src_xy0: np.ndarray,
    start: np.ndarray,
    du: np.ndarray,
    dv: np.ndarray,
    half: np.ndarray,
    n: int,
    out: np.ndarray,
) -> None:
    """Lanczos-``n`` resampling of one small source image per cell, zero outside it.

    Cell ``c``: output pixel ``(i, j)`` (``i, j < 2 half[c] + 1``) samples source parent
    position ``start[c] + i * dv[c] + j * du[c]`` (``du``/``dv``: source step per output column
    / row) from ``src[c, :h, :w]`` (``h, w = src_shape[c]``) whose pixel ``[0, 0]`` is parent
    ``src_xy0[c]``. Weights are normalised by their sums per axis, as
    :func:`warping.coadd_psf.resample_zero_padded`.
    """
    f64 = np.dtype(np.float64)
    src = np.ascontiguousarray(src, dtype=f64)
    _contiguous(out, f64, "out")
    m = src.shape[0]
    args = [np.ascontiguousarray(a, dtype=f64) for a in (src_xy0, start, du, dv)]
    shape = np.ascontiguousarray(src_shape, dtype=np.int64)
    half = np.ascontiguousarray(half, dtype=np.int64)
    if (
        not 1 <= n <= 16
        or shape.shape != (m, 2)
        or half.shape != (m,)
        or any(a.shape != (m, 2) for a in args)
        or out.shape[0] != m
        or out.shape[1] != out.shape[2]
        or (m and (2 * half.max() + 1 > out.shape[1] or (shape > src.shape[1:]).any()))
    ):
        raise ValueError("resample_lanczos: inconsistent shapes")
    status = _library().rb_pm_resample_lanczos(
        _ptr(src), m, src.shape[1], src.shape[2], _ptr(shape), *(_ptr(a) for a in args),
        _ptr(half), n, _ptr(out), out.shape[1],
    )  # fmt: skip
    if status != 0:
        raise MemoryError(
            f"resample_lanczos: cannot allocate the padded stamp buffer ({src.shape})"
        )


def cell_gram(
    science: np.ndarray,
    target: np.ndarray,
    functions: np.ndarray,
    ix: np.ndarray,
    iy: np.ndarray,
    transform: np.ndarray,
    offset: int,
    size: int,
    out: np.ndarray,
) -> None:
    """Gram matrices of the separable kernel-fit design, with the target, per cell.

    For cell ``c`` and raw kernel ``j`` (``functions[iy[j]]`` down the columns times
    ``functions[ix[j]]`` along the rows, true convolution, the stamp zero outside), ``D_j`` is
    ``science[c]`` convolved with kernel ``j`` on the ``size x size`` window starting at pixel
    ``(offset, offset)``. The basis images are ``E_i = sum_j transform[i, j] D_j``
    (``transform`` square and lower triangular, as the Alard-Lupton renormalisation is), and
    ``E_nraw = target[c]`` (the window's pixels, row by row). ``out[c, i, j] = <E_i, E_j>``:
    ``out`` is ``(n, nraw + 1, nraw + 1)`` float64, C-contiguous.
    """
    f64 = np.dtype(np.float64)
    science = np.ascontiguousarray(science, dtype=f64)
    target = np.ascontiguousarray(target, dtype=f64)
    functions = np.ascontiguousarray(functions, dtype=f64)
    ix = np.ascontiguousarray(ix, dtype=np.int64)
    iy = np.ascontiguousarray(iy, dtype=np.int64)
    transform = np.ascontiguousarray(transform, dtype=f64)
    _contiguous(out, f64, "out")
    n, p = science.shape[:2]
    nf, k = functions.shape
    nraw = len(ix)
    if (
        science.shape != (n, p, p)
        or target.shape != (n, size * size)
        or iy.shape != (nraw,)
        or nraw < 1
        or k % 2 != 1
        or offset < 0
        or size < 1
        or offset + size > p
        or (nraw and (min(ix.min(), iy.min()) < 0 or max(ix.max(), iy.max()) >= nf))
        or out.shape != (n, nraw + 1, nraw + 1)
        or transform.shape != (nraw, nraw)
    ):
        raise ValueError(
            f"cell_gram: inconsistent shapes science {science.shape}, target {target.shape}, "
            f"functions {functions.shape}, {nraw} raw kernels, window {offset}+{size}, "
            f"out {out.shape}"
        )
    if np.triu(transform, 1).any():
        raise ValueError("cell_gram: the transform must be lower triangular (applied in place)")
    status = _library().rb_pm_cell_gram(
        _ptr(science), n, p, _ptr(target), _ptr(functions), nf, k, _ptr(ix), _ptr(iy),
        _ptr(transform), nraw, offset, size, _ptr(out),
    )  # fmt: skip
    if status == -1:
        raise MemoryError(f"cell_gram: cannot allocate the buffers for {p}x{p} stamps")
    if status != 0:
        raise ValueError(f"cell_gram: arguments refused by the compiled loop (status {status})")
