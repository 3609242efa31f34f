"""``rb warp-image``'s FITS adapters (astropy): inputs, errors, atomic output, celestial frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from repo_butler.errors import FormatterError
from warping.errors import FormatError
from warping.warp import WarpingControl, warp_image
from warping.warp.fits_io import read_image_and_wcs, read_target_header, warp_fits_file
from warping.warp.testing import gaussian_stars, make_sip_wcs, make_tan_wcs


def write_target(path: Path, wcs: WCS, shape: tuple[int, int]) -> Path:
    head = wcs.to_header()
    head["NAXIS"], head["NAXIS1"], head["NAXIS2"] = 2, shape[1], shape[0]
    path.write_text(head.tostring(sep="\n", endcard=True, padding=False) + "\n")
    return path


def write_inputs(tmp_path: Path) -> tuple[Path, Path, WCS, WCS, np.ndarray]:
    src = make_sip_wcs(150.0, 2.0, (256, 128), 0.168, corner_distortion_px=3.0)
    dest = make_tan_wcs(150.0, 2.0, (99.5, 99.5), 0.2, 30.0)
    image = np.random.default_rng(0).normal(size=(256, 128)).astype(np.float32)
    inp = tmp_path / "input.fits"
    fits.PrimaryHDU(image, header=src.to_header(relax=True)).writeto(inp)
    return inp, write_target(tmp_path / "target.head", dest, (200, 200)), src, dest, image


def test_format_error_is_a_formatter_and_value_error() -> None:
    assert issubclass(FormatError, FormatterError) and issubclass(FormatError, ValueError)


def test_warp_fits_file_equals_in_memory_warp(tmp_path: Path) -> None:
    inp, head, src, dest, image = write_inputs(tmp_path)
    out = tmp_path / "out.fits"
    summary = warp_fits_file(inp, head, out, control=WarpingControl(mask_kernel=""))
    ref = warp_image(image, src, dest, (200, 200), control=WarpingControl(mask_kernel=""))
    with fits.open(out) as hdul:
        data = hdul[0].data
        out_wcs = WCS(hdul[0].header)
    # the WCSs read back from the cards differ in the last digits: float32 rounding at most
    np.testing.assert_array_equal(np.isnan(data), np.isnan(ref))
    ok = np.isfinite(ref)
    np.testing.assert_allclose(data[ok], ref[ok], rtol=1e-6, atol=1e-7)
    assert summary == {"shape": (200, 200), "covered": int(np.isfinite(ref).sum())}
    assert summary["covered"] > 1000
    yy, xx = np.mgrid[0:200:9, 0:200:9].astype(float)
    np.testing.assert_allclose(out_wcs.all_pix2world(xx, yy, 0), dest.all_pix2world(xx, yy, 0))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    probe = tmp_path / "probe"
    probe.touch()
    assert out.stat().st_mode & 0o777 == probe.stat().st_mode & 0o777  # umask, not 0600


def test_integer_input_becomes_float(tmp_path: Path) -> None:
    inp, _head, src, _dest, _image = write_inputs(tmp_path)
    for dtype, want in ((np.int16, np.float32), (np.int32, np.float64)):
        data = np.arange(64, dtype=dtype).reshape(8, 8)
        fits.PrimaryHDU(data, header=src.to_header(relax=True)).writeto(inp, overwrite=True)
        got, _wcs = read_image_and_wcs(inp)
        assert got.dtype == want and got.dtype.isnative
        np.testing.assert_array_equal(got, data)


def test_first_image_extension_is_read(tmp_path: Path) -> None:
    _inp, _head, src, _dest, image = write_inputs(tmp_path)
    path = tmp_path / "ext.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.ImageHDU(image, header=src.to_header(relax=True))]
    ).writeto(path)
    got, wcs = read_image_and_wcs(path)
    np.testing.assert_array_equal(got, image)
    assert wcs.sip is not None


def test_bad_inputs_raise_format_error_naming_the_file(tmp_path: Path) -> None:
    _inp, head, _src, _dest, _image = write_inputs(tmp_path)
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"not a FITS file at all" * 10)
    with pytest.raises(FormatError, match=r"junk\.fits: cannot open as FITS"):
        read_image_and_wcs(junk)
    table = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([
        fits.Column(name="a", format="E", array=np.zeros(3))
    ])]).writeto(table)  # fmt: skip
    with pytest.raises(FormatError, match=r"table\.fits: no 2-D image HDU"):
        read_image_and_wcs(table)
    nowcs = tmp_path / "nowcs.fits"
    fits.PrimaryHDU(np.zeros((8, 8), np.float32)).writeto(nowcs)
    with pytest.raises(FormatError, match=r"nowcs\.fits.*no celestial WCS"):
        read_image_and_wcs(nowcs)
    text = head.read_text()
    head.write_text("\n".join(line for line in text.splitlines() if not line.startswith("NAXIS1")))
    with pytest.raises(FormatError, match=r"target\.head: the target header must give NAXIS1"):
        read_target_header(head)
    with pytest.raises(FormatError, match=r"missing\.head: cannot read FITS cards"):
        read_target_header(tmp_path / "missing.head")


def test_failed_write_leaves_old_output_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inp, head, _src, _dest, _image = write_inputs(tmp_path)
    with pytest.raises(FormatError, match=r"nodir.*cannot write"):
        warp_fits_file(inp, head, tmp_path / "nodir" / "out.fits")
    out = tmp_path / "out.fits"
    out.write_bytes(b"old")

    def fail_half_way(self: fits.PrimaryHDU, fh: object) -> None:
        fh.write(b"SIMPLE  =                    T")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(fits.PrimaryHDU, "writeto", fail_half_way)
    with pytest.raises(FormatError, match=r"out\.fits: cannot write \(disk full\)"):
        warp_fits_file(inp, head, out)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.fits", "out.fits", "target.head"]


def fk5_and_icrs() -> tuple[WCS, WCS]:
    """A 0.2"/px FK5 (equinox J2000) source and a 0.25"/px ICRS target, rotated 20 deg."""
    src = make_tan_wcs(150.0, 2.0, (99.5, 99.5), 0.2)
    src.wcs.radesys, src.wcs.equinox = "FK5", 2000.0
    src.wcs.set()
    dest = make_tan_wcs(150.0, 2.0, (79.5, 89.5), 0.25, rotation_deg=20.0)
    dest.wcs.radesys = "ICRS"
    dest.wcs.set()
    return src, dest


def icrs_truth(src: WCS, dest: WCS, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Destination pixels of source pixels, through astropy.coordinates' FK5 -> ICRS transform."""
    sky = src.pixel_to_world(x, y)
    assert sky.frame.name == str(src.wcs.radesys).lower()
    px, py = dest.world_to_pixel(sky.transform_to("icrs"))
    return np.asarray(px), np.asarray(py)


@pytest.mark.parametrize(
    ("radesys", "equinox", "dateobs"),
    [("FK5", 2000.0, ""), ("FK5", 2015.5, ""), ("FK4", 1950.0, "1983-06-01")],
)
def test_fk5_input_onto_icrs_target_transform_follows_astropy_coordinates(
    radesys: str, equinox: float, dateobs: str
) -> None:
    """FK5 at J2000 or another equinox, and FK4 B1950 (with its epoch), onto ICRS."""
    from warping.warp import wcs_pair_transform

    src, dest = fk5_and_icrs()
    src.wcs.radesys, src.wcs.equinox, src.wcs.dateobs = radesys, equinox, dateobs
    src.wcs.set()
    rng = np.random.default_rng(3)
    xs, ys = rng.uniform(0, 200, 50), rng.uniform(0, 200, 50)
    xd, yd = icrs_truth(src, dest, xs, ys)
    bx, by = wcs_pair_transform(src, dest)(xd, yd)
    assert np.max(np.hypot(bx - xs, by - ys)) < 1e-6
    # the frames really differ here: ignoring them misplaces by ~0.1 px (18-29 mas)
    naive = dest.all_world2pix(*src.all_pix2world(xs, ys, 0), 0)
    assert np.min(np.hypot(naive[0] - xd, naive[1] - yd)) > 0.05


def test_fk5_input_file_is_placed_where_astropy_coordinates_says(tmp_path: Path) -> None:
    """End to end through FITS headers (RADESYS/EQUINOX cards): a star's warped centroid."""
    src, dest = fk5_and_icrs()
    star = (97.3, 104.6)
    image = gaussian_stars((200, 200), [star], [1000.0], 2.0).astype(np.float32)
    inp = tmp_path / "fk5.fits"
    header = src.to_header()
    assert header["RADESYS"] == "FK5" and header["EQUINOX"] == 2000.0
    fits.PrimaryHDU(image, header=header).writeto(inp)
    head = write_target(tmp_path / "icrs.head", dest, (180, 160))
    assert "RADESYS = 'ICRS'" in head.read_text()
    out = tmp_path / "out.fits"
    warp_fits_file(inp, head, out, control=WarpingControl(mask_kernel="", interp_length=0))
    data = fits.getdata(out).astype(float)
    xe, ye = icrs_truth(src, dest, np.array([star[0]]), np.array([star[1]]))
    cx, cy = round(float(xe[0])), round(float(ye[0]))
    win = data[cy - 15 : cy + 16, cx - 15 : cx + 16]
    yy, xx = np.mgrid[cy - 15 : cy + 16, cx - 15 : cx + 16]
    total = win.sum()
    got = (float((win * xx).sum() / total), float((win * yy).sum() / total))
    assert np.hypot(got[0] - xe[0], got[1] - ye[0]) < 5e-3  # 1.2 mas


def test_frames_astropy_cannot_relate_are_a_format_error() -> None:
    from warping.warp._transform import wcs_pair_transform

    src = make_tan_wcs(150.0, 2.0, (32.0, 32.0), 0.2)
    src.wcs.radesys = "GAPPT"
    dest = make_tan_wcs(150.0, 2.0, (32.0, 32.0), 0.2)
    with pytest.raises(FormatError, match="cannot relate the celestial frames"):
        wcs_pair_transform(src, dest)
