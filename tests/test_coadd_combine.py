"""The coadd's statistics on synthetic warp stacks against numpy references computed here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from warping.coadd import (
    CoaddConfig,
    CoaddConfigError,
    MismatchedWarpsError,
    NoWarpsError,
    assemble,
)
from warping.coadd.weights import clipped_mean
from warping.masks import MaskPlanes

PLANES = MaskPlanes.default()
BIT = {name: 1 << PLANES.bit(name) for name in PLANES}


def make_stack(
    image: np.ndarray, variance: np.ndarray, mask: np.ndarray | None = None, *, filters=None
) -> xr.Dataset:
    n, h, w = image.shape
    mask = np.zeros(image.shape, dtype=np.int32) if mask is None else mask
    coords = {
        "visit": np.arange(n, dtype=np.int64) * 2 + 1000,
        "y": np.arange(h, dtype=np.int64) + 300,
        "x": np.arange(w, dtype=np.int64) + 700,
    }
    if filters is not None:
        coords["filter"] = ("visit", np.array(filters))
    names = sorted(PLANES.bits, key=PLANES.bit)
    return xr.Dataset(
        {
            "image": (("visit", "y", "x"), image.astype(np.float32)),
            "variance": (("visit", "y", "x"), variance.astype(np.float32)),
            "mask": (
                ("visit", "y", "x"),
                mask.astype(np.int32),
                {
                    "flag_masks": [BIT[n] for n in names],
                    "flag_meanings": " ".join(names),
                    "mask_planes": dict(PLANES.bits),
                },
            ),
        },
        coords=coords,
        attrs={"tract": 0, "patch": "1,1", "filter": "HSC-I"},
    )


def random_stack(n: int = 7, h: int = 40, w: int = 53, seed: int = 3) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.5, 2.0, n)
    var = np.broadcast_to((sigma**2)[:, None, None], (n, h, w)) * rng.uniform(0.9, 1.1, (n, h, w))
    img = 20.0 + rng.normal(0.0, 1.0, (n, h, w)) * np.sqrt(var)
    mask = np.zeros((n, h, w), dtype=np.int32)
    img[0, :5, :] = np.nan  # warp 0 does not cover the first rows
    mask[0, :5, :] = BIT["NO_DATA"]
    mask[1, 10:14, 20:30] = BIT["BAD"]
    mask[2, 30, :] = BIT["CR"]  # not a bad plane: used and propagated
    return make_stack(img, var, mask)


def good_inputs(ds: xr.Dataset) -> np.ndarray:
    bad = BIT["NO_DATA"] | BIT["BAD"] | BIT["SAT"] | BIT["EDGE"]
    img, var, mask = (ds[k].values for k in ("image", "variance", "mask"))
    return np.isfinite(img) & np.isfinite(var) & ((mask & bad) == 0)


def test_weighted_mean_with_scalar_weights_matches_numpy() -> None:
    ds = random_stack()
    weights = {int(v): 1.0 / (k + 1.5) for k, v in enumerate(ds["visit"].values)}
    r = assemble(ds, CoaddConfig(statistic="MEAN", tile=16), weights=weights)
    good = good_inputs(ds)
    w = np.array(list(weights.values()))[:, None, None] * good
    x = np.where(good, ds["image"].values, 0.0).astype(np.float64)
    v = np.where(good, ds["variance"].values, 0.0).astype(np.float64)
    ref = (w * x).sum(0) / w.sum(0)
    ref_var = (w * w * v).sum(0) / w.sum(0) ** 2
    np.testing.assert_allclose(r.image, ref.astype(np.float32), rtol=2e-7, atol=0)
    np.testing.assert_allclose(r.variance, ref_var.astype(np.float32), rtol=2e-7, atol=0)
    np.testing.assert_array_equal(r.n_inputs, good.sum(0))
    assert r.bbox.to_list() == [700, 300, 53, 40]
    assert r.visits == tuple(weights)


def test_inverse_variance_pixel_weighting_matches_numpy() -> None:
    ds = random_stack(seed=5)
    r = assemble(ds, CoaddConfig(statistic="MEAN", weighting="pixel", tile=9))
    good = good_inputs(ds)
    var = ds["variance"].values.astype(np.float64)
    w = np.where(good, 1.0 / var, 0.0)
    ref = (w * np.where(good, ds["image"].values, 0.0)).sum(0) / w.sum(0)
    np.testing.assert_allclose(r.image, ref.astype(np.float32), rtol=2e-7)
    np.testing.assert_allclose(r.variance, (1.0 / w.sum(0)).astype(np.float32), rtol=2e-7)


def test_median_and_its_variance_match_numpy() -> None:
    ds = random_stack(n=6, seed=8)
    r = assemble(ds, CoaddConfig(statistic="MEDIAN", tile=11))
    good = good_inputs(ds)
    x = np.where(good, ds["image"].values, np.nan)
    np.testing.assert_allclose(r.image, np.nanmedian(x, axis=0).astype(np.float32), rtol=2e-7)
    n = good.sum(0)
    vsum = np.where(good, ds["variance"].values, 0.0).astype(np.float64).sum(0)
    np.testing.assert_allclose(
        r.variance, (math.pi / 2 * vsum / n**2).astype(np.float32), rtol=2e-7
    )


def test_scalar_weights_are_inverse_clipped_mean_variance_over_good_pixels() -> None:
    n, h, w = 3, 30, 30
    var = np.ones((n, h, w)) * np.array([1.0, 4.0, 0.25])[:, None, None]
    mask = np.zeros((n, h, w), dtype=np.int32)
    var[1, :3, :] = 1e6  # masked pixels must not count
    mask[1, :3, :] = BIT["BAD"]
    var[2, 5, 5] = np.nan  # nor non-finite ones
    r = assemble(make_stack(np.ones((n, h, w)), var, mask), CoaddConfig(statistic="MEAN"))
    assert list(r.weights.values()) == pytest.approx([1.0, 0.25, 4.0], rel=1e-12)


def test_clipped_mean_drops_far_values_like_the_iqr_then_sigma_rule() -> None:
    values = np.concatenate([np.linspace(-1.0, 1.0, 101), [50.0, -40.0]])
    assert clipped_mean(values, 3.0, 2) == pytest.approx(0.0, abs=1e-12)
    assert clipped_mean(np.array([]), 3.0, 2) != clipped_mean(np.array([]), 3.0, 2)  # NaN


def test_meanclip_removes_an_injected_outlier_and_marks_clipped() -> None:
    n, h, w = 11, 6, 7
    base = 10.0 + np.linspace(-1.0, 1.0, n)[:, None, None] * np.ones((n, h, w))
    img = base.copy()
    img[4, 2, 3] = 1000.0  # a cosmic ray missed by the warp's mask
    var = np.ones((n, h, w))
    r = assemble(make_stack(img, var), CoaddConfig(statistic="MEANCLIP"))
    others = np.delete(base[:, 2, 3], 4)
    assert r.image[2, 3] == pytest.approx(others.mean(), rel=1e-6)
    assert r.variance[2, 3] == pytest.approx(1.0 / (n - 1), rel=1e-6)  # equal weights
    clipped = 1 << r.mask_planes.bit("CLIPPED")
    inexact = 1 << r.mask_planes.bit("INEXACT_PSF")
    assert r.mask[2, 3] & clipped and r.mask[2, 3] & inexact
    assert r.n_clipped == 1
    assert (r.mask & clipped).astype(bool).sum() == 1
    # elsewhere nothing was clipped: the plain mean of the inputs
    np.testing.assert_allclose(r.image[0], base.mean(0)[0], rtol=1e-6)
    # MEAN keeps the outlier
    mean = assemble(make_stack(img, var), CoaddConfig(statistic="MEAN"))
    assert mean.image[2, 3] == pytest.approx(img[:, 2, 3].mean(), rel=1e-6)
    assert not (mean.mask & clipped).any()


def test_no_data_rejected_edge_and_or_of_used_masks() -> None:
    n, h, w = 4, 5, 5
    img = np.ones((n, h, w)) * np.arange(1, n + 1)[:, None, None]
    var = np.ones((n, h, w))
    mask = np.zeros((n, h, w), dtype=np.int32)
    img[:, 0, 0] = np.nan  # no warp covers (0, 0)
    mask[:, 0, 0] = BIT["NO_DATA"]
    mask[:, 0, 1] = BIT["BAD"]  # every input masked
    mask[1, 1, 1] = BIT["BAD"]
    mask[2, 2, 2] = BIT["EDGE"]
    mask[3, 3, 3] = BIT["DETECTED"] | BIT["CR"]
    r = assemble(
        make_stack(img, var, mask),
        CoaddConfig(statistic="MEAN"),
        weights=dict.fromkeys((1000, 1002, 1004, 1006), 1.0),
    )
    p = r.mask_planes
    no_data, rejected = p.bitmask("NO_DATA"), p.bitmask("REJECTED")
    edge, inexact = p.bitmask("SENSOR_EDGE"), p.bitmask("INEXACT_PSF")
    for yx in ((0, 0), (0, 1)):
        assert r.mask[yx] & no_data and np.isnan(r.image[yx]) and np.isinf(r.variance[yx])
        assert r.n_inputs[yx] == 0
    assert r.mask[0, 1] & rejected  # the inputs were there but BAD
    assert not r.mask[0, 0] & rejected
    assert r.image[1, 1] == pytest.approx((1 + 3 + 4) / 3) and r.mask[1, 1] == rejected | inexact
    assert r.image[2, 2] == pytest.approx((1 + 2 + 4) / 3) and r.mask[2, 2] == edge | inexact
    assert r.mask[3, 3] == p.bitmask("DETECTED", "CR") and r.n_inputs[3, 3] == 4
    assert r.mask[4, 4] == 0 and r.image[4, 4] == pytest.approx(2.5)
    assert r.n_no_data == 2


def test_sat_is_propagated_above_its_weight_fraction() -> None:
    n, h, w = 10, 1, 3
    mask = np.zeros((n, h, w), dtype=np.int32)
    mask[:1, 0, 0] = BIT["SAT"]  # 10% of the weight: not more than 0.1
    mask[:3, 0, 1] = BIT["SAT"]  # 30%
    r = assemble(make_stack(np.ones((n, h, w)), np.ones((n, h, w)), mask), CoaddConfig("MEAN"))
    sat = r.mask_planes.bitmask("SAT")
    assert not r.mask[0, 0] & sat and r.mask[0, 1] & sat and not r.mask[0, 2] & sat
    assert r.mask[0, 1] & r.mask_planes.bitmask("REJECTED")


@pytest.mark.parametrize("statistic", ["MEAN", "MEANCLIP", "MEDIAN"])
@pytest.mark.parametrize("weighting", ["scalar", "pixel"])
def test_tile_by_tile_equals_one_shot_exactly(statistic: str, weighting: str) -> None:
    ds = random_stack(n=9, h=45, w=61, seed=11)
    one = assemble(ds, CoaddConfig(statistic, weighting, tile=1000))
    for tile in (7, 16):
        tiled = assemble(ds, CoaddConfig(statistic, weighting, tile=tile))
        assert tiled.n_tiles > 1
        for name in ("image", "variance", "mask", "n_inputs"):
            np.testing.assert_array_equal(getattr(tiled, name), getattr(one, name))
        assert tiled.n_clipped == one.n_clipped


def test_dask_backed_stack_gives_the_numpy_result() -> None:
    ds = random_stack(seed=2)
    lazy = ds.chunk({"visit": 1, "y": 16, "x": 16})
    assert lazy["image"].chunks is not None
    a = assemble(ds, CoaddConfig(tile=20))
    b = assemble(lazy, CoaddConfig(tile=20))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.weights == b.weights


def test_progress_reports_weights_then_tiles() -> None:
    seen: list[tuple[int, int, str]] = []
    assemble(random_stack(n=3), CoaddConfig(tile=20), progress=lambda *a: seen.append(a))
    assert seen[:3] == [(1, 3, "weights"), (2, 3, "weights"), (3, 3, "weights")]
    assert seen[-1] == (6, 6, "tiles")


def test_empty_warps_are_left_out_with_a_reason_and_none_usable_is_an_error() -> None:
    n, h, w = 3, 4, 4
    img = np.ones((n, h, w))
    img[1] = np.nan
    mask = np.zeros((n, h, w), dtype=np.int32)
    mask[1] = BIT["NO_DATA"]
    r = assemble(make_stack(img, np.ones((n, h, w)), mask), CoaddConfig("MEAN"))
    assert r.visits == (1000, 1004) and "no good pixels" in r.skipped[1002]
    mask[:] = BIT["NO_DATA"]
    with pytest.raises(NoWarpsError, match="none of the 3 warps"):
        assemble(make_stack(img, np.ones((n, h, w)), mask), CoaddConfig("MEAN"))


def test_mixed_filters_and_bad_config_are_refused() -> None:
    ones = np.ones((2, 3, 3))
    with pytest.raises(MismatchedWarpsError, match="different filters"):
        assemble(make_stack(ones, ones, filters=["HSC-I", "HSC-R"]))
    with pytest.raises(CoaddConfigError, match="MEAN, MEANCLIP, MEDIAN"):
        CoaddConfig(statistic="MAX")
    with pytest.raises(ValueError, match="scalar, pixel"):
        CoaddConfig(weighting="both")
    with pytest.raises(CoaddConfigError, match="tile"):
        CoaddConfig(tile=0)


def test_pixel_weighting_reports_inverse_mean_variance_from_the_tile_pass() -> None:
    ds = random_stack(n=4, seed=9)
    img = ds["image"].values.copy()
    img[3] = np.nan  # warp 3 has no usable pixel
    ds["image"] = (("visit", "y", "x"), img)
    r = assemble(ds, CoaddConfig("MEAN", "pixel", tile=13))
    good = good_inputs(ds)
    var = ds["variance"].values.astype(np.float64)
    visits = [int(v) for v in ds["visit"].values]
    expected = {visits[i]: 1.0 / var[i][good[i]].mean() for i in range(3)}
    assert r.weights == pytest.approx(expected, rel=1e-12)
    assert "no good pixels" in r.skipped[visits[3]]


class _RecordingArray:
    """A read-only array that records the size of every read (a stand-in for warp files)."""

    def __init__(self, data: np.ndarray, reads: list[tuple[int, int]]) -> None:
        self.data, self.reads = data, reads
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, key: object) -> np.ndarray:
        out = self.data[key]  # type: ignore[index]
        self.reads.append((out.shape[0] if out.ndim == 3 else 1, out.size))
        return out


def test_reads_are_one_tile_of_every_warp_or_one_warp_at_a_time() -> None:
    import dask.array as da

    ds = random_stack(n=6, h=120, w=90, seed=4)
    reads: list[tuple[int, int]] = []
    lazy = ds.copy()
    for name in ("image", "variance", "mask"):
        arr = _RecordingArray(ds[name].values, reads)
        lazy[name] = (("visit", "y", "x"), da.from_array(arr, chunks=arr.shape), ds[name].attrs)
    tile = 30
    r = assemble(lazy, CoaddConfig("MEANCLIP", tile=tile))
    np.testing.assert_array_equal(r.image, assemble(ds, CoaddConfig("MEANCLIP", tile=tile)).image)
    whole_warps = [size for warps, size in reads if size > 6 * tile * tile]
    assert whole_warps and all(size == 120 * 90 for size in whole_warps)  # weights: one warp
    assert all(warps == 1 for warps, size in reads if size > 6 * tile * tile)
    tiles = [size for warps, size in reads if warps == 6]
    assert len(tiles) == 3 * r.n_tiles and max(tiles) <= 6 * tile * tile
