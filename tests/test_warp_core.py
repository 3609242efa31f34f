"""The compiled warp core: vector vs scalar path, NaN isolation, threads, row padding, build."""

from __future__ import annotations

import numpy as np
import pytest

from warping.geom import Box2I
from warping.masks import MaskPlanes
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
    box = Box2I(0, 0, 140, 140)
    f = rotation(-40.0, 0.9, 10.0, 60.0)
    args = (img.astype(np.float32), var.astype(np.float32), mask, (0, 0), box, f)
    padded = warp_with_transform(*args, control=WarpingControl())
    monkeypatch.setattr(_core, "_unaliased", lambda a: a)
    plain = warp_with_transform(*args, control=WarpingControl())
    np.testing.assert_array_equal(padded.image, plain.image)
    np.testing.assert_array_equal(padded.variance, plain.variance)  # type: ignore[arg-type]
    np.testing.assert_array_equal(padded.mask, plain.mask)


def test_core_builds_into_a_given_path_and_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import ctypes

    target = _clib.build(tmp_path / "core.so")
    lib = _clib._configure(ctypes.CDLL(str(target)))
    assert lib.rb_abi_version() == _clib.ABI_VERSION
    assert not list(tmp_path.glob(".ckernel-*"))  # temporary file renamed, none left behind
    name = _clib.library_path()[0].name
    assert name.startswith("_ckernel-") and name.endswith(".so")


def test_core_build_removes_builds_of_older_sources(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stale = tmp_path / "_ckernel-0000000000000000.so"
    stale.write_bytes(b"old build")
    other = tmp_path / "unrelated.so"
    other.write_bytes(b"keep")
    target = _clib.build(tmp_path / _clib.library_path()[0].name)
    assert target.exists() and not stale.exists() and other.exists()


def test_core_build_failure_is_reported(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    with pytest.raises(_clib.CoreBuildError, match=r"_ckernel\.c") as info:
        _clib.build(tmp_path / "core.so")
    assert isinstance(info.value, RuntimeError)
    assert not list(tmp_path.iterdir())  # nothing half-written
