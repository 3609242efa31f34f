"""The warp stack API (issue 24, point 1): a patch's warps as a lazy xarray/Dask dataset.

Truth: synthetic warps of known pixels written with ``butler.put`` (plain and tile-compressed
files, a real CoaddPsf per warp), warps made by make-warp on the small simulation (compared with
``butler.get``), astropy's WCS for sky coordinates, and the kernel's own count of the bytes
the process read (``/proc/self/io``) or the byte ranges sent to the S3 server for "only the
requested pixels are read".
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import xarray as xr
from stack_support import MATCHED_SIGMA, PATCH, SyntheticWarp, write_synthetic_warps

from repo_butler import Butler
from warping.coadd_psf import CoaddPsf
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.stack import (
    NoWarpsError,
    UnknownWarpTypeError,
    WarpBBoxMismatchError,
    WarpStackError,
    open_warp_stack,
    warp_metadata,
)

PROC_IO = Path("/proc/self/io")


@pytest.fixture(scope="module")
def skymap() -> Any:
    from scale_support import small_skymap

    return small_skymap()


@pytest.fixture(scope="module")
def synthetic(
    tmp_path_factory: pytest.TempPathFactory, skymap: Any
) -> tuple[Butler, dict[int, SyntheticWarp]]:
    """Three visits of direct and PSF-matched warps of tract 0 patch 5,4 (visit 903988's
    direct warp tile-compressed)."""
    butler = Butler.create(str(tmp_path_factory.mktemp("stack") / "repo"))
    butler.put(skymap, "deepCoadd_skyMap", {})
    truth = write_synthetic_warps(butler, skymap)
    return butler, truth


def _open(butler: Butler, **kwargs: Any) -> Any:
    return open_warp_stack(butler, **PATCH, **kwargs)  # type: ignore[arg-type]


def _bytes_read(func: Callable[[], Any]) -> tuple[Any, int]:
    """``func()`` and the bytes this process read meanwhile (the kernel's ``rchar``)."""

    def rchar() -> int:
        for line in PROC_IO.read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise AssertionError("no rchar in /proc/self/io")

    before = rchar()
    out = func()
    return out, rchar() - before


@pytest.mark.parametrize("tile", [None, 64])
def test_lazy_values_equal_the_warps(synthetic: Any, tile: int | None) -> None:
    butler, truth = synthetic
    stack = _open(butler, tile=tile)
    assert stack.image.dims == ("visit", "y", "x")
    assert list(stack.visit.values) == sorted(truth)
    height, width = next(iter(truth.values())).image.shape
    chunk = (tile or height, tile or width)
    for name, dtype in (("image", np.float32), ("variance", np.float32), ("mask", np.int32)):
        var = stack[name]
        assert var.dtype == dtype and var.chunks is not None
        assert var.data.chunksize == (
            1,
            *(min(c, s) for c, s in zip(chunk, (height, width), strict=True)),
        )
    box = skymap_box(butler)
    assert stack.attrs["bbox"] == [box.x0, box.y0, box.width, box.height]
    assert np.array_equal(stack.x.values, np.arange(box.x0, box.x0 + box.width))
    assert np.array_equal(stack.y.values, np.arange(box.y0, box.y0 + box.height))
    computed = stack.compute()
    for i, (visit, warp) in enumerate(sorted(truth.items())):
        assert int(computed.visit[i]) == visit
        assert np.array_equal(computed.image.values[i], warp.image, equal_nan=True)
        assert np.array_equal(computed.variance.values[i], warp.variance)
        assert np.array_equal(computed.mask.values[i], warp.mask)
    assert any(w.compressed for w in truth.values()) and not all(
        w.compressed for w in truth.values()
    )


def skymap_box(butler: Butler) -> Box2I:
    skymap = butler.get("deepCoadd_skyMap", {})
    box: Box2I = skymap[PATCH["tract"]].patch(PATCH["patch"]).outer_bbox
    return box


def test_windows_by_label_and_position(synthetic: Any) -> None:
    butler, truth = synthetic
    stack = _open(butler, tile=100)
    box = skymap_box(butler)
    warp = truth[903988]
    window = stack.image.sel(visit=903988, y=slice(box.y0 + 95, box.y0 + 104), x=box.x0 + 107)
    assert np.array_equal(window.values, warp.image[95:105, 107])
    steps = stack.mask.isel(visit=[0, 2], y=slice(3, 200, 7), x=[5, 150, 330]).values
    for k, visit in enumerate((903986, 904010)):
        assert np.array_equal(steps[k], truth[visit].mask[3:200:7][:, [5, 150, 330]])


@pytest.mark.parametrize(
    "key",
    [
        (1,),
        (slice(0, 3, 2), 5, slice(10, 20)),
        ([2, 0], slice(None, None, -7)),
        (Ellipsis, 4),
        (slice(None), slice(5, 2)),
        (-1, -1, -1),
        (slice(None), [3, 1, 300], slice(100, 105)),
    ],
)
def test_dask_indexing_matches_numpy(synthetic: Any, key: tuple[Any, ...]) -> None:
    butler, truth = synthetic
    stack = _open(butler, tile=100)
    full = np.stack([truth[v].mask for v in sorted(truth)])
    got = stack.mask.data[key].compute()
    assert got.shape == full[key].shape and np.array_equal(got, full[key])


def test_per_visit_coordinates(synthetic: Any) -> None:
    butler, truth = synthetic
    stack = _open(butler)
    for i, (visit, warp) in enumerate(sorted(truth.items())):
        assert stack.mjd.values[i] == warp.mjd
        assert stack["filter"].values[i] == PATCH["filter"]
        # a Gaussian of sigma s seen through a CoaddPsf of CCDs aligned on the tract pixels
        assert stack.psf_sigma.values[i] == pytest.approx(warp.sigma, rel=2e-3)
        assert stack.n_good_pixels.values[i] == warp.goodpix
        assert stack.n_good_pixels.values[i] == np.count_nonzero(
            (warp.mask & warp.mask_planes.bitmask("NO_DATA")) == 0
        )
        assert stack.n_ccds.values[i] == len(warp.ccds)
        assert stack.ccds.values[i] == ",".join(map(str, warp.ccds))
        data_id = {**PATCH, "visit": visit}
        assert stack.ref.values[i] == butler.uri("deepCoadd_directWarp", data_id)
        assert json.loads(str(stack.data_id.values[i])) == data_id
    for name, dtype in (("mjd", np.float64), ("psf_sigma", np.float64), ("n_ccds", np.int64)):
        assert stack[name].dtype == dtype and stack[name].dims == ("visit",)
    attrs = stack.attrs
    assert (attrs["dataset_type"], attrs["tract"], attrs["patch"], attrs["filter"]) == (
        "deepCoadd_directWarp", 0, "5,4", "HSC-I",
    )  # fmt: skip
    assert attrs["units"] == "nJy" and stack.image.attrs["units"] == "nJy"
    planes = MaskPlanes.default()
    mask = stack.mask.attrs
    assert mask["mask_planes"] == dict(planes.bits)
    names = mask["flag_meanings"].split()
    assert [1 << planes.bit(n) for n in names] == mask["flag_masks"]
    assert set(names) == set(planes.bits)


def test_a_small_window_reads_only_its_bytes(synthetic: Any) -> None:
    if not PROC_IO.is_file():
        pytest.skip("/proc/self/io (Linux) is needed to count the bytes read")
    butler, _ = synthetic
    with dask.config.set(scheduler="synchronous"):
        for tile in (None, 64):
            stack = _open(butler, tile=tile)
            plane = stack.image.attrs["bytes_on_disk"]
            _bytes_read(lambda s=stack: s.image.isel(y=slice(0, 2), x=slice(0, 2)).values)
            whole, n_whole = _bytes_read(lambda s=stack: s.image.values)
            assert n_whole >= plane  # every warp's IMAGE plane, compressed or not
            window, n_window = _bytes_read(
                lambda s=stack: s.image.isel(y=slice(200, 210), x=slice(300, 310)).values
            )
            assert np.array_equal(window, whole[:, 200:210, 300:310], equal_nan=True)
            # uncompressed warps: 10 rows of 340 float32 each; the compressed one: the 64-row
            # compression tile(s) holding rows 200-209, and the headers astropy reads first
            assert n_window < 0.25 * plane, (tile, n_window, plane)
            one = stack.image.isel(visit=0, y=slice(200, 210), x=slice(300, 310))
            _, n_one = _bytes_read(lambda o=one: o.values)
            # one uncompressed warp: the span from (200, 300) to (209, 309), in one read
            assert (9 * 340 + 10) * 4 <= n_one <= (9 * 340 + 10) * 4 + 2880, n_one


def test_tiles_read_only_the_tiles_touched(synthetic: Any) -> None:
    """A chained selection is not folded into the read: it costs the chunks it touches."""
    if not PROC_IO.is_file():
        pytest.skip("/proc/self/io (Linux) is needed to count the bytes read")
    butler, truth = synthetic
    stack = _open(butler, tile=32, where="visit = 903986")
    with dask.config.set(scheduler="synchronous"):
        _bytes_read(lambda: stack.image.isel(y=slice(0, 1), x=slice(0, 1)).values)  # imports
        sub = stack.image.isel(visit=0).isel(y=slice(40, 50)).isel(x=slice(40, 50))
        values, n = _bytes_read(lambda: sub.values)
    assert np.array_equal(values, truth[903986].image[40:50, 40:50], equal_nan=True)
    assert n <= 32 * 340 * 4 + 2880, n  # one 32x32 tile: its 32 rows (less than a page apart)


def test_psf_matched_warps(synthetic: Any) -> None:
    butler, truth = synthetic
    stack = _open(butler, dataset_type="deepCoadd_psfMatchedWarp", where="visit > 903986")
    assert list(stack.visit.values) == [903988, 904010]
    assert stack.attrs["dataset_type"] == "deepCoadd_psfMatchedWarp"
    np.testing.assert_allclose(stack.psf_sigma.values, MATCHED_SIGMA, rtol=2e-3)
    for i, visit in enumerate((903988, 904010)):
        assert np.array_equal(stack.image.values[i], truth[visit].image, equal_nan=True)
        assert np.array_equal(stack.variance.values[i], truth[visit].variance)


def test_sky_coordinates_equal_astropy(synthetic: Any) -> None:
    from astropy.io import fits
    from astropy.wcs import WCS

    butler, _ = synthetic
    stack = _open(butler, sky=True, tile=128)
    assert stack.ra.dims == ("y", "x") and stack.ra.chunks is not None  # lazy
    tract = butler.get("deepCoadd_skyMap", {})[PATCH["tract"]]
    xx, yy = np.meshgrid(stack.x.values, stack.y.values)
    ra, dec = tract.wcs.pixel_to_world_values(xx, yy)  # the tract's own astropy WCS
    # the warps' WCS went through their FITS headers: equal to 1e-10 deg (0.4 micro-arcsec)
    np.testing.assert_allclose(stack.ra.values, ra, rtol=0, atol=1e-10)
    np.testing.assert_allclose(stack.dec.values, dec, rtol=0, atol=1e-10)
    # the patch header in attrs is relative to the arrays: pixel (0, 0) is x[0], y[0]
    header = WCS(fits.Header.fromstring(stack.attrs["wcs"], sep="\n"))
    ra2, dec2 = header.pixel_to_world_values(xx - stack.x.values[0], yy - stack.y.values[0])
    np.testing.assert_allclose(ra2, ra, rtol=0, atol=1e-10)
    np.testing.assert_allclose(dec2, dec, rtol=0, atol=1e-10)
    assert "ra" not in _open(butler).coords


def test_warp_metadata_reads_no_pixels(synthetic: Any) -> None:
    butler, truth = synthetic
    stack = _open(butler)
    metas, n = _bytes_read(lambda: warp_metadata(butler, stack))
    assert [m.visit for m in metas] == sorted(truth)
    planes = sum(int(stack[v].attrs["bytes_on_disk"]) for v in ("image", "variance", "mask"))
    if PROC_IO.is_file():
        assert n < 0.1 * planes, (n, planes)
    box = skymap_box(butler)
    full = butler.get("deepCoadd_directWarp", {**PATCH, "visit": 903988})
    meta = metas[1]
    assert meta.ref == butler.get_ref("deepCoadd_directWarp", {**PATCH, "visit": 903988})
    assert isinstance(meta.psf, CoaddPsf) and meta.bbox == box
    x, y = box.x0 + 200.0, box.y0 + 170.0
    assert np.array_equal(meta.psf.compute_kernel_image(x, y), full.psf.compute_kernel_image(x, y))
    assert [c.ccd for c in meta.coadd_inputs.ccds] == truth[903988].ccds
    assert meta.coadd_inputs.visits[0].goodpix == truth[903988].goodpix
    assert meta.photo_calib.calibration_mean == 1.0
    assert meta.wcs.pixel_to_world_values(x, y) == full.wcs.pixel_to_world_values(x, y)
    other = Butler(butler.root, rerun="elsewhere")  # same warps, seen from a rerun
    assert [m.ref.uri for m in warp_metadata(other, stack)] == list(stack.ref.values)


def test_stack_pickles_for_workers_in_other_processes(synthetic: Any) -> None:
    butler, truth = synthetic
    stack = _open(butler, tile=128, sky=True)
    again = pickle.loads(pickle.dumps(stack))
    assert "storage_options" not in repr(again.image.data.dask)  # no secrets in reprs
    with dask.config.set(scheduler="synchronous"):
        assert np.array_equal(again.image.values[1], truth[903988].image, equal_nan=True)
        assert np.array_equal(again.ra.values, stack.ra.values)


@pytest.mark.slow
def test_stack_computes_on_distributed_worker_processes(synthetic: Any) -> None:
    pytest.importorskip("distributed", reason="the [dask] extra (distributed) is not installed")
    import logging

    from distributed import Client, LocalCluster

    butler, _ = synthetic
    stack = _open(butler, tile=128, sky=True)
    local = stack.compute(scheduler="synchronous")
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.WARNING, host="127.0.0.1",
        ) as cluster,
        Client(cluster),
    ):  # fmt: skip
        remote = stack.compute()
    xr.testing.assert_identical(remote, local)


def test_no_warps_is_a_clear_error(synthetic: Any) -> None:
    butler, _ = synthetic
    expected = r"no warp matches deepCoadd_directWarp tract=0 patch=5,4 filter=HSC-I where "
    with pytest.raises(NoWarpsError, match=expected + r"'visit = 1'.*check the tract") as err:
        _open(butler, where="visit = 1")
    assert isinstance(err.value, LookupError) and isinstance(err.value, WarpStackError)
    with pytest.raises(NoWarpsError, match="filter=HSC-R"):
        open_warp_stack(butler, tract=0, patch="5,4", filter="HSC-R")


def test_unknown_dataset_type(synthetic: Any) -> None:
    butler, _ = synthetic
    with pytest.raises(UnknownWarpTypeError, match="'calexp' is not a warp dataset type") as err:
        _open(butler, dataset_type="calexp")
    assert isinstance(err.value, KeyError)
    assert "deepCoadd_psfMatchedWarp" in str(err.value)
    with pytest.raises(UnknownWarpTypeError, match="'deepCoadd_warp' is not a dataset type"):
        _open(butler, dataset_type="deepCoadd_warp")


def test_warps_of_one_patch_with_different_bboxes(tmp_path: Path, skymap: Any) -> None:
    butler = Butler.create(str(tmp_path / "repo"))
    write_synthetic_warps(butler, skymap, visits=(1, 2), matched=False)
    box = skymap[0].patch(PATCH["patch"]).outer_bbox
    smaller = Box2I(box.x0 + 10, box.y0, box.width - 10, box.height)
    write_synthetic_warps(butler, skymap, visits=(3,), matched=False, bbox=smaller)
    with pytest.raises(WarpBBoxMismatchError, match=r"visits 1, 2;.*visits 3") as err:
        _open(butler)
    assert isinstance(err.value, ValueError)
    assert list(_open(butler, where="visit < 3").visit.values) == [1, 2]


def test_goodpix_counted_from_the_mask_when_not_recorded(tmp_path: Path, skymap: Any) -> None:
    butler = Butler.create(str(tmp_path / "repo"))
    truth = write_synthetic_warps(butler, skymap, visits=(5, 6), record_goodpix=False)
    stack = _open(butler)
    assert list(stack.n_good_pixels.values) == [truth[5].goodpix, truth[6].goodpix]


def test_masks_with_other_bits_are_remapped_by_plane_name(tmp_path: Path, skymap: Any) -> None:
    butler = Butler.create(str(tmp_path / "repo"))
    first = write_synthetic_warps(butler, skymap, visits=(1,), matched=False)
    bits = {"NO_DATA": 0, "CR": 1, "SAT": 2, "GHOST": 3}  # other bits, and a plane of its own
    odd = MaskPlanes(bits)
    second = write_synthetic_warps(butler, skymap, visits=(2,), matched=False, mask_planes=odd)
    stack = _open(butler)
    planes = stack.mask.attrs["mask_planes"]
    assert planes["GHOST"] not in MaskPlanes.default().bits.values()
    assert dict(list(planes.items())[: len(MaskPlanes.default().bits)]) == dict(
        MaskPlanes.default().bits
    )
    mask = stack.mask.values
    assert np.array_equal(mask[0], first[1].mask)
    for name, bit in bits.items():
        assert np.array_equal((mask[1] >> planes[name]) & 1, (second[2].mask >> bit) & 1), name


def test_tile_must_be_positive(synthetic: Any) -> None:
    butler, _ = synthetic
    with pytest.raises(ValueError, match="tile must be a positive number"):
        _open(butler, tile=0)


# -- warps made by make-warp, and the stack over S3 -----------------------------------------------
@pytest.fixture(scope="module")
def made_warps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small simulation warped by make-warp (direct and PSF-matched) into rerun ``w``."""
    from scale_support import write_small_repo
    from typer.testing import CliRunner

    from repo_butler_cli.main import app

    root = tmp_path_factory.mktemp("made") / "repo"
    write_small_repo(str(root)).close()
    argv = ["make-warp", str(root), "--rerun", "w", "--id", "tract=0", "patch=5,4",
            "filter=HSC-I", "--config", "makePsfMatched=True"]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    return root


@pytest.mark.parametrize("dataset_type", ["deepCoadd_directWarp", "deepCoadd_psfMatchedWarp"])
def test_stack_of_warps_made_by_make_warp(made_warps: Path, dataset_type: str) -> None:
    butler = Butler(str(made_warps), rerun="w", writeable=False)
    stack = _open(butler, dataset_type=dataset_type, tile=100)
    assert len(stack.visit) == 3
    for i, visit in enumerate(stack.visit.values):
        warp = butler.get(dataset_type, {**PATCH, "visit": int(visit)})
        assert np.array_equal(stack.image.values[i], warp.image, equal_nan=True)
        assert np.array_equal(stack.variance.values[i], warp.variance)
        assert np.array_equal(stack.mask.values[i], warp.mask)
        no_data = warp.mask_planes.bitmask("NO_DATA")
        assert stack.n_good_pixels.values[i] == np.count_nonzero((warp.mask & no_data) == 0)
        assert stack.mjd.values[i] == warp.visit_info.mid_time_mjd
        ccds = sorted({c.ccd for c in warp.coadd_inputs.ccds if c.goodpix > 0})
        assert stack.ccds.values[i] == ",".join(map(str, ccds)) and ccds
        assert np.isfinite(stack.psf_sigma.values[i]) and stack.psf_sigma.values[i] > 0.5


class RangeBytes:
    """Bytes the S3 server was asked for by ranged GETs (botocore's ``before-send`` event)."""

    def __init__(self, fs: Any) -> None:
        self.total = 0
        fs.s3.meta.events.register("before-send.s3.GetObject", self._count, unique_id="rb-range")

    def _count(self, request: Any = None, **kwargs: Any) -> None:
        value = request.headers.get("Range", b"")
        text = value.decode() if isinstance(value, bytes) else str(value)
        first, _, last = text.removeprefix("bytes=").partition("-")
        self.total += int(last) - int(first) + 1 if first and last else 10**12  # unranged: huge


@pytest.mark.s3
def test_stack_over_s3_equals_the_local_one(synthetic: Any, s3_root: Any, skymap: Any) -> None:
    from servers.requests import RequestCounter

    local_butler, truth = synthetic
    with Butler.create(s3_root.url, storage_options=s3_root.storage_options) as butler:
        write_synthetic_warps(butler, skymap)  # the same seed: the same pixels and files
        for kwargs in ({}, {"tile": 64, "sky": True}, {"dataset_type": "deepCoadd_psfMatchedWarp"}):
            remote = _open(butler, **kwargs).compute()
            local = _open(local_butler, **kwargs).compute()
            assert remote.attrs.pop("repo").startswith("s3://") and local.attrs.pop("repo")
            assert [u.startswith("s3://") for u in remote.ref.values] == [True] * 3
            xr.testing.assert_identical(remote.drop_vars("ref"), local.drop_vars("ref"))
        stack = _open(butler)
        counter = RequestCounter().attach(butler.datastore.filesystem)
        ranges = RangeBytes(butler.datastore.filesystem)
        with dask.config.set(scheduler="synchronous"):
            window = stack.image.isel(y=slice(200, 210), x=slice(300, 310)).values
        assert np.array_equal(window, np.stack([w.image[200:210, 300:310] for w in truth.values()]))
        plane = int(stack.image.attrs["bytes_on_disk"])
        assert ranges.total < 0.25 * plane, (ranges.total, plane, counter.snapshot())
        assert set(counter.snapshot()) <= {"GetObject", "HeadObject"}, counter.snapshot()


def test_files_that_are_not_our_warps_are_refused() -> None:
    import io

    from astropy.io import fits

    from warping.errors import FormatError
    from warping.stack.warp_file import read_warp_file

    plain = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4), np.float32))]).writeto(plain)
    with pytest.raises(FormatError, match=r"x\.fits: not a repo-butler exposure file"):
        read_warp_file(io.BytesIO(plain.getvalue()), "x.fits")
    hdr = fits.Header({"RBFMTV": 1, "RBKIND": "EXPOSURE"})
    image = fits.ImageHDU(np.zeros((4, 4), np.float32), name="IMAGE")
    mask = fits.ImageHDU(np.zeros((4, 5), np.int32), name="MASK")
    bad = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(header=hdr), image, mask]).writeto(bad)
    with pytest.raises(FormatError, match="missing the VARIANCE extension"):
        read_warp_file(io.BytesIO(bad.getvalue()), "y.fits")
    variance = fits.ImageHDU(np.zeros((4, 4), np.float64), name="VARIANCE")
    bad = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(header=hdr), image, mask, variance]).writeto(bad)
    with pytest.raises(FormatError, match="VARIANCE has BITPIX -64, expected -32"):
        read_warp_file(io.BytesIO(bad.getvalue()), "z.fits")
    variance = fits.ImageHDU(np.zeros((4, 4), np.float32), name="VARIANCE")
    bad = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(header=hdr), image, mask, variance]).writeto(bad)
    with pytest.raises(FormatError, match="the planes differ in shape"):
        read_warp_file(io.BytesIO(bad.getvalue()), "w.fits")
