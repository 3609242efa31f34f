"""Calibration-product formatters: skywcs, and kind/version checks shared by all three."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS, Sip

from warping.background import BackgroundComponent, BackgroundList
from warping.errors import FormatError
from warping.formats._common import open_fits_bytes
from warping.formats.calib_fits import (
    BackgroundFormatter,
    PhotoCalibFormatter,
    SkyWcsFormatter,
    read_skywcs,
    write_skywcs,
)
from warping.formats.fits_dict import hdulist_layout
from warping.geom import Box2I
from warping.photocalib import ChebyshevBoundedField, PhotoCalib

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "schemas" / "calib-fits.schema.json").read_text()
)


def sip() -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    w.wcs.crval = [10.0, -30.0]
    w.wcs.crpix = [-500.25, 3000.75]
    w.wcs.cd = np.array([[-4.6e-5, 0.0], [0.0, 4.6e-5]])
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[3, 0] = a[1, 2] = b[2, 1] = b[0, 3] = 2e-11
    w.sip = Sip(a, b, None, None, w.wcs.crpix)
    w.wcs.set()
    return w


def test_skywcs_round_trip(tmp_path: Path) -> None:
    w = sip()
    path = tmp_path / "wcs.fits"
    write_skywcs(w, path)
    back = read_skywcs(path)
    assert back.sip is not None and back.wcs.ctype[0] == "RA---TAN-SIP"
    xs = np.array([0.0, 1000.0, 2047.0])
    ys = np.array([0.0, 2000.0, 4175.0])
    np.testing.assert_allclose(
        back.pixel_to_world_values(xs, ys), w.pixel_to_world_values(xs, ys), atol=1e-11
    )
    hdr = fits.getheader(path)
    assert hdr["LTV1"] == 0.0 and hdr["RBKIND"] == "SKYWCS"
    with pytest.raises(TypeError, match="celestial astropy WCS"):
        SkyWcsFormatter().to_bytes("nope")


def test_layouts_match_schema() -> None:
    bg = BackgroundList([BackgroundComponent(Box2I(0, 0, 10, 10), np.ones((2, 2)))] * 2)
    pc = PhotoCalib(None, 0.0, ChebyshevBoundedField(Box2I(0, 0, 10, 10), np.ones((2, 2))))
    for data in (
        BackgroundFormatter().to_bytes(bg),
        PhotoCalibFormatter().to_bytes(pc),
        SkyWcsFormatter().to_bytes(sip()),
    ):
        jsonschema.validate(hdulist_layout(open_fits_bytes(data, "mem")), SCHEMA)


def test_kind_mismatch_is_reported() -> None:
    pc_bytes = PhotoCalibFormatter().to_bytes(PhotoCalib(2.0))
    with pytest.raises(
        FormatError, match=r"bg\.fits: holds a 'PHOTOCALIB', expected a 'BACKGROUND'"
    ):
        BackgroundFormatter().from_bytes(pc_bytes, source="bg.fits")
    bg_bytes = BackgroundFormatter().to_bytes(BackgroundList([]))
    with pytest.raises(FormatError, match="expected a 'SKYWCS'"):
        SkyWcsFormatter().from_bytes(bg_bytes, source="w.fits")
    with pytest.raises(FormatError, match="no celestial WCS"):
        SkyWcsFormatter().from_bytes(
            PhotoCalibFormatter()
            .to_bytes(PhotoCalib(2.0))
            .replace(b"PHOTOCALIB", b"SKYWCS    ", 1),
            source="w.fits",
        )
    assert len(BackgroundFormatter().from_bytes(bg_bytes, source="bg.fits")) == 0
