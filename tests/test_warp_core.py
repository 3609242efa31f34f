"""The compiled warp core: vector vs scalar path, NaN isolation, threads, row padding, build."""

from __future__ import annotations

import numpy as np
import pytest

from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.row_padding import as_rows, contiguous_rows, empty_rows
from warping.warp import WarpingControl, _clib, _core, warp_with_transform

PLANES = MaskPlanes.default()
EDGE = PLANES.bitmask("EDGE")
BAD = PLANES.bitmask("BAD")


def rotation(angle_deg: float, scale: float, x0: float, y0: float):  # type: ignore[no-untyped-def]
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))

    def f(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x0 + scale * (c * x - s * y), y0 + scale * (s * x + c * y)

    return f


def _inputs(shape: tuple[int, int], seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = rng.normal(100.0, 10.0, size=shape)
    var = rng.uniform(1.0, 9.0, size=shape)
    mask = np.zeros(shape, np.int32)
    mask[:, :3] = mask[:, -3:] = EDGE
    mask[:3] = mask[-3:] = EDGE
    mask[rng.integers(0, shape[0], 40), rng.integers(0, shape[1], 40)] = BAD
    return img, var, mask


@pytest.mark.parametrize("kernel", ["lanczos2", "lanczos3", "lanczos4", "lanczos5"])
def test_float32_vector_path_matches_float64_scalar_path(kernel: str) -> None:
    """float32 data take the AVX2 path (if the CPU has it), float64 the scalar one: same numbers."""
    img, var, mask = _inputs((90, 110))
    box = Box2I(0, 0, 100, 100)
    f = rotation(25.0, 0.8, 40.0, 5.0)
    ctl = WarpingControl(kernel=kernel)
    r32 = warp_with_transform(
        img.astype(np.float32), var.astype(np.float32), mask, (0, 0), box, f, control=ctl
    )
    r64 = warp_with_transform(img, var, mask, (0, 0), box, f, control=ctl)
    assert r32.n_good == r64.n_good > 3000
    np.testing.assert_array_equal(np.isnan(r32.image), np.isnan(r64.image))
    ok = np.isfinite(r64.image)
    # float32 inputs/outputs: agreement at float32 resolution
    np.testing.assert_allclose(r32.image[ok], r64.image[ok], rtol=2e-6)
    assert r32.variance is not None and r64.variance is not None
    np.testing.assert_allclose(r32.variance[ok], r64.variance[ok], rtol=2e-6)
    np.testing.assert_array_equal(r32.mask, r64.mask)


@pytest.mark.parametrize("kernel", ["lanczos2", "lanczos3", "lanczos4", "lanczos5"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_pixel_only_reaches_outputs_whose_footprint_holds_it(
    kernel: str, bad: float
) -> None:
    """The vector path reads whole quads of source floats: lanes outside the footprint must not leak
    a NaN/inf (0 * NaN is NaN). A half-pixel shift makes every footprint exactly 2n x 2n."""
    n = int(kernel[-1])
    img = np.random.default_rng(2).normal(size=(60, 60)).astype(np.float32)
    img[30, 30] = bad

    def shift(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x + 0.5, y + 0.5

    out = warp_with_transform(
        img, None, None, (0, 0), Box2I(0, 0, 60, 60), shift, control=WarpingControl(kernel=kernel)
    ).image
    inner = out[n + 1 : 60 - n - 1, n + 1 : 60 - n - 1]
    hit = {tuple(p) for p in np.argwhere(~np.isfinite(inner)) + n + 1}
    # output i samples source i + 0.5: taps i - (n - 1) .. i + n
    expect = {(j, i) for j in range(30 - n, 30 + n) for i in range(30 - n, 30 + n)}
    assert hit == expect


def test_threads_give_identical_results() -> None:
    img, var, mask = _inputs((300, 260))
    box = Box2I(0, 0, 320, 330)
    f = rotation(30.0, 0.84, 120.0, -40.0)
    a = warp_with_transform(
        img.astype(np.float32), var.astype(np.float32), mask, (0, 0), box, f,
        control=WarpingControl(threads=1),
    )  # fmt: skip
    b = warp_with_transform(
        img.astype(np.float32), var.astype(np.float32), mask, (0, 0), box, f,
        control=WarpingControl(threads=3),
    )  # fmt: skip
    assert a.n_good == b.n_good
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.variance, b.variance)  # type: ignore[arg-type]
    np.testing.assert_array_equal(a.mask, b.mask)


def test_padded_source_rows_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of 128 float32 (512 bytes) are copied to a padded buffer; results are identical."""
    img, var, mask = _inputs((150, 128))
    assert _core._unaliased(img.astype(np.float32)).strides[0] == (128 + 16) * 4
    padded_in = empty_rows(img.shape, np.float32)
    padded_in[...] = img
    assert padded_in.strides[0] == (128 + 16) * 4  # as the FITS reader gives them: no new copy
    assert _core._unaliased(padded_in) is padded_in
    box = Box2I(0, 0, 140, 140)
    f = rotation(-40.0, 0.9, 10.0, 60.0)
    args = (img.astype(np.float32), var.astype(np.float32), mask, (0, 0), box, f)
    padded = warp_with_transform(*args, control=WarpingControl())
    monkeypatch.setattr(_core, "_unaliased", lambda a: a)
    plain = warp_with_transform(*args, control=WarpingControl())
    np.testing.assert_array_equal(padded.image, plain.image)
    np.testing.assert_array_equal(padded.variance, plain.variance)  # type: ignore[arg-type]
    np.testing.assert_array_equal(padded.mask, plain.mask)


def test_core_is_an_installed_library_inside_the_package() -> None:
    """The core was compiled at install time as ``warping.warp._ckernel`` (meson.build; in an
    editable install it lives in meson's build directory); loading it compiles nothing."""
    found = _clib.compiled_path(_clib.MODULE)
    assert found is not None and found.name.startswith("_ckernel.") and found.suffix == ".so"
    assert _clib.library().rb_abi_version() == _clib.ABI_VERSION


def test_a_missing_core_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_clib, "MODULE", "warping.warp._no_such_core")
    monkeypatch.setattr(_clib, "_lib", None)
    assert _clib.compiled_path(_clib.MODULE) is None
    with pytest.raises(_clib.CoreBuildError, match=r"_no_such_core.*pip install") as info:
        _clib.library()
    assert isinstance(info.value, RuntimeError)


def test_row_padding_rules() -> None:
    """Only aliasing row lengths are padded; as_rows copies only what the C loops cannot read."""
    assert empty_rows((20, 128), np.float32).strides[0] == (128 + 16) * 4
    assert empty_rows((20, 64), np.float64).strides[0] == (64 + 8) * 8
    assert empty_rows((20, 100), np.float32).flags.c_contiguous  # 400-byte rows: fine
    assert empty_rows((4, 128), np.float32).flags.c_contiguous  # too few rows to matter
    big = np.arange(40 * 300, dtype=np.float32).reshape(40, 300)
    box = big[5:30, 10:200]  # a box of a larger image: contiguous rows, any stride
    assert contiguous_rows(box) and as_rows(box) is box
    strided = big[:, ::2]
    assert not contiguous_rows(strided)
    copy = as_rows(strided)
    assert contiguous_rows(copy) and copy is not strided
    np.testing.assert_array_equal(copy, strided)
    flipped = big[::-1]
    assert not contiguous_rows(flipped)
    np.testing.assert_array_equal(as_rows(flipped), flipped)
    converted = as_rows(box, np.float64)
    assert converted.dtype == np.float64
    np.testing.assert_array_equal(converted, box)


def test_warp_of_padded_strided_and_c_contiguous_inputs_agree() -> None:
    """The same pixels as a padded view, a box of a larger array and a C-contiguous array warp
    to identical outputs (the core reads rows by their stride)."""
    img, var, mask = _inputs((150, 128))
    box = Box2I(0, 0, 140, 140)
    f = rotation(25.0, 1.1, 5.0, -20.0)
    runs = []
    for wrap in (
        np.ascontiguousarray,
        as_rows,
        lambda a: np.pad(a, ((0, 0), (0, 37)))[:, :128],
    ):
        args = (wrap(img.astype(np.float32)), wrap(var.astype(np.float32)), wrap(mask))
        runs.append(warp_with_transform(*args, (0, 0), box, f, control=WarpingControl()))
    # image with padded rows, variance with aliasing ones: both copied to one padded stride
    padded_img = empty_rows(img.shape, np.float32)
    padded_img[...] = img
    mixed = (padded_img, var.astype(np.float32), mask)
    assert padded_img.strides[0] != mixed[1].strides[0]
    runs.append(warp_with_transform(*mixed, (0, 0), box, f, control=WarpingControl()))
    for other in runs[1:]:
        assert other.n_good == runs[0].n_good > 0
        np.testing.assert_array_equal(other.image, runs[0].image)
        np.testing.assert_array_equal(other.variance, runs[0].variance)  # type: ignore[arg-type]
        np.testing.assert_array_equal(other.mask, runs[0].mask)
