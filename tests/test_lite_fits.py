"""lite_fits (numpy-only FITS image / text-header I/O) against astropy.io.fits."""

from __future__ import annotations

import gzip
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from repo_butler.errors import FormatterError
from warping.errors import FormatError
from warping.warp.lite_fits import FitsCards, Unparsed, read_cards, read_image, write_image

WCS_CARDS = {
    "CTYPE1": "RA---TAN",
    "CTYPE2": "DEC--TAN",
    "CRVAL1": 150.123456789012,
    "CRVAL2": -2.5,
    "CRPIX1": 10.5,
    "CRPIX2": 20.25,
    "CD1_1": -4.811252243246912e-05,
    "CD1_2": 1e-7,
    "CD2_1": 0.0,
    "CD2_2": 4.6666666666666e-05,
}


def write_raw(path: Path, raw: np.ndarray, cards: dict[str, Any], extension: bool = False) -> None:
    """Write raw (unscaled) pixel values with the given cards using astropy."""
    header = fits.Header()
    for k, v in cards.items():
        header[k] = v
    if extension:
        hdu: Any = fits.ImageHDU(raw, header=header, do_not_scale_image_data=True)
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    else:
        fits.PrimaryHDU(raw, header=header, do_not_scale_image_data=True).writeto(path)


def astropy_data(path: Path) -> np.ndarray:
    with fits.open(path) as hdul:
        for hdu in hdul:
            if hdu.data is not None:
                return np.array(hdu.data)
    raise AssertionError("no data")


RAW_CASES = [
    ("u1", {}),
    ("i2", {}),
    ("i4", {}),
    ("i8", {}),
    ("f4", {}),
    ("f8", {}),
    ("i2", {"BSCALE": 0.5, "BZERO": 10.0}),  # scaled 16-bit -> float32
    ("u1", {"BSCALE": 2.0}),  # scaled 8-bit -> float32
    ("i4", {"BSCALE": 1e-3, "BZERO": -7}),  # scaled 32-bit -> float64
    ("i8", {"BZERO": 3}),  # offset only -> float64
    ("i2", {"BZERO": 32768}),  # astropy's uint16
    ("i4", {"BZERO": 2147483648}),  # uint32
    ("i8", {"BZERO": 9223372036854775808}),  # uint64
    ("u1", {"BZERO": -128}),  # int8
    ("f4", {"BSCALE": 3.0, "BZERO": 1.5}),  # scaled float: stays float32
    ("f8", {"BZERO": -1.25}),
]


@pytest.mark.parametrize("extension", [False, True], ids=["primary", "extension"])
@pytest.mark.parametrize(("code", "scaling"), RAW_CASES, ids=lambda v: str(v))
def test_read_matches_astropy(
    tmp_path: Path, code: str, scaling: dict[str, Any], extension: bool
) -> None:
    rng = np.random.default_rng(7)
    dtype = np.dtype(code)
    if dtype.kind == "f":
        raw = rng.normal(0, 100, (13, 17)).astype(dtype)
        raw[0, 0] = np.nan
    else:
        info = np.iinfo(dtype)
        raw = rng.integers(info.min, info.max, (13, 17), dtype=dtype, endpoint=True)
    path = tmp_path / "img.fits"
    write_raw(path, raw, WCS_CARDS | scaling, extension=extension)
    got = read_image(path)
    assert got is not None
    data, cards = got
    ref = astropy_data(path)
    assert data.dtype == ref.dtype.newbyteorder("=")
    assert data.dtype.isnative and data.flags.writeable and data.shape == (13, 17)
    np.testing.assert_array_equal(data, ref)
    ref_header = fits.getheader(path, ext=1 if extension else 0)
    for key in WCS_CARDS:
        assert cards[key] == ref_header[key]
    if extension:
        assert cards["XTENSION"] == "IMAGE"


def test_header_values_match_astropy(tmp_path: Path) -> None:
    header = fits.Header()
    header["STR"] = ("it's a 'quoted' value  ", "comment / with slash")
    header["EMPTY"] = ""
    header["LOGT"] = True
    header["LOGF"] = False
    header["BIGINT"] = 12345678901234
    header["NEG"] = -3.25e-300
    header["UNDEF"] = None
    header["HISTORY"] = "made by a test"
    header["COMMENT"] = "a comment"
    header["LONGSTR"] = "x" * 150  # CONTINUE cards
    header["HIERARCH ESO DET CHIP"] = 3
    path = tmp_path / "h.fits"
    fits.PrimaryHDU(np.zeros((2, 3), np.float32), header=header).writeto(path)
    got = read_image(path)
    assert got is not None
    _data, cards = got
    ref = fits.getheader(path)
    for key in ("STR", "EMPTY", "LOGT", "LOGF", "BIGINT", "NEG", "LONGSTR"):
        assert cards[key] == ref[key], key
    assert cards["UNDEF"] is None
    assert cards["ESO DET CHIP"] == 3
    assert ("HISTORY", "made by a test", "") in cards.cards
    assert cards.comment("STR") == "comment / with slash"


def test_big_image_read_speed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = np.random.default_rng(1).normal(size=(4096, 2048)).astype(np.float32)
    path = tmp_path / "big.fits"
    fits.PrimaryHDU(data).writeto(path)
    read_image(path)
    t0 = time.perf_counter()
    got = read_image(path)
    t_read = time.perf_counter() - t0
    assert got is not None
    np.testing.assert_array_equal(got[0], data)
    out = tmp_path / "out.fits"
    t0 = time.perf_counter()
    write_image(out, np.zeros((4200, 4200), np.float32), [])
    t_write = time.perf_counter() - t0
    with capsys.disabled():
        print(
            f"\n[lite_fits] read 4096x2048 float32 {t_read * 1e3:.0f} ms; "
            f"write 4200x4200 float32 {t_write * 1e3:.0f} ms"
        )


# ---- fall-backs and errors -----------------------------------------------------------------


def test_tile_compressed_gives_none(tmp_path: Path) -> None:
    path = tmp_path / "c.fits"
    data = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data)]).writeto(path)
    assert read_image(path) is None


def test_gzip_gives_none(tmp_path: Path) -> None:
    plain = tmp_path / "p.fits"
    fits.PrimaryHDU(np.ones((4, 4), np.float32)).writeto(plain)
    gz = tmp_path / "p.fits.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_image(gz) is None


@pytest.mark.parametrize("layout", ["cube", "table", "blank", "empty"])
def test_other_layouts_give_none(tmp_path: Path, layout: str) -> None:
    path = tmp_path / f"{layout}.fits"
    if layout == "cube":
        fits.PrimaryHDU(np.zeros((2, 3, 4), np.float32)).writeto(path)
    elif layout == "table":
        table = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.ones(3))])
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    elif layout == "blank":
        write_raw(path, np.ones((3, 3), np.int16), {"BLANK": -32768})
    else:
        fits.PrimaryHDU().writeto(path)
    assert read_image(path) is None


def test_truncated_file_raises_naming_path(tmp_path: Path) -> None:
    path = tmp_path / "cut.fits"
    fits.PrimaryHDU(np.ones((100, 100), np.float32)).writeto(path)
    path.write_bytes(path.read_bytes()[: 2880 + 1000])
    with pytest.raises(FormatError, match=r"cut\.fits.*truncated"):
        read_image(path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(FormatError, match=r"cut\.fits.*truncated header"):
        read_image(path)


def test_not_fits_raises(tmp_path: Path) -> None:
    path = tmp_path / "notfits.fits"
    for size in (500, 5):  # longer and shorter than one FITS block
        path.write_bytes(b"hello world" * size)
        with pytest.raises(FormatError, match=r"notfits\.fits.*not a FITS file"):
            read_image(path)
    with pytest.raises(FormatError, match="cannot open"):
        read_image(tmp_path / "missing.fits")


def test_format_error_is_a_formatter_and_value_error() -> None:
    assert issubclass(FormatError, FormatterError) and issubclass(FormatError, ValueError)


def test_malformed_card_in_fits_is_kept_unparsed(tmp_path: Path) -> None:
    path = tmp_path / "bad.fits"
    fits.PrimaryHDU(np.ones((2, 2), np.float32)).writeto(path)
    raw = bytearray(path.read_bytes())
    card = b"CRVAL1  = 15O.0 / letter O instead of zero".ljust(80)
    end = raw.index(b"END     ")
    raw[end : end + 80] = card
    raw[end + 80 : end + 160] = b"END".ljust(80)
    path.write_bytes(bytes(raw))
    got = read_image(path)
    assert got is not None
    assert isinstance(got[1]["CRVAL1"], Unparsed)


# ---- text headers ------------------------------------------------------------------------------

TEXT_HEADER = """\
SIMPLE  =                    T / file does conform to FITS standard
NAXIS   =                    2
NAXIS1  =                 4200 / width
NAXIS2  =                 4200
CTYPE1  = 'RA---TAN'           / first axis
CTYPE2  = 'DEC--TAN'
CRVAL1  =        150.000000001
CRVAL2  =   2.0000000000000D+00 / D exponent
CD1_1   =  -4.811252243246912E-05
CD1_2   = 0.
CD2_1   = .5e-9
CD2_2   = +4.8112522432469E-05
OBJECT  = 'O''Brien''s field'  / quotes escaped
EMPTY   = ''
FLAG    =                    F
CPLX    = (1.5, -2)
UNDEF   =
LONG    = 'first part of a long string value that goes on and on and &'
CONTINUE  'is continued here'
COMMENT   this is a comment
HISTORY   and some history

EXPTIME = 30 / no fixed-format alignment
END
IGNORED = 'after END'
"""


def read_cards_unpadded(tmp_path: Path) -> FitsCards:
    path = tmp_path / "unpadded.head"
    path.write_text(TEXT_HEADER)
    return read_cards(path)


def test_read_cards_matches_astropy(tmp_path: Path) -> None:
    path = tmp_path / "target.head"
    # astropy needs 80-character lines to join CONTINUE cards; lite_fits does not care
    path.write_text("".join(line.ljust(80) + "\n" for line in TEXT_HEADER.splitlines()))
    assert dict(read_cards(path)) == dict(read_cards_unpadded(tmp_path))
    cards = read_cards(path)
    ref = fits.Header.fromtextfile(str(path))
    for key in ref:
        if key in ("COMMENT", "HISTORY", ""):
            continue
        assert cards[key] == ref[key], key
        assert type(cards[key]) is type(ref[key]), key
    assert set(cards) == {k for k in ref if k not in ("COMMENT", "HISTORY", "")}
    assert "IGNORED" not in cards
    assert cards["OBJECT"] == "O'Brien's field"
    assert cards["LONG"].endswith("and on and is continued here")
    assert cards["UNDEF"] is None and cards["cd1_1"] == cards["CD1_1"]
    assert ("COMMENT", ref["COMMENT"][0], "") in cards.cards  # leading blanks kept, as astropy
    assert isinstance(cards, FitsCards) and len(cards) == len(set(cards))


def test_read_cards_without_end_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "noend.head"
    path.write_text("NAXIS1  = 10\nNAXIS1  = 20\nCRPIX1  = 1.5\n")
    cards = read_cards(path)
    ref = fits.Header.fromtextfile(str(path))
    assert cards["NAXIS1"] == ref["NAXIS1"] == 10  # first occurrence, as astropy
    assert cards["CRPIX1"] == 1.5


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("CRVAL1  = 15O.0", "cannot parse"),
        ("CTYPE1  = 'RA---TAN", "closing quote"),
        ("CTYPE1  = 'RA---TAN' junk", "unexpected text"),
        ("BAD KEY = 3", "invalid keyword"),
    ],
)
def test_read_cards_malformed_names_path_and_line(tmp_path: Path, line: str, why: str) -> None:
    path = tmp_path / "bad.head"
    path.write_text(f"NAXIS1  = 10\nNAXIS2  = 10\n{line}\n")
    with pytest.raises(FormatError, match=rf"bad\.head: line 3: .*{why}"):
        read_cards(path)


def test_read_cards_non_ascii_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "utf.head"
    path.write_bytes("NAXIS1  = 10\nOBJECT  = 'Café'\n".encode())
    with pytest.raises(FormatError, match=r"utf\.head: line 2: non-ASCII"):
        read_cards(path)
    with pytest.raises(FormatError, match="cannot read"):
        read_cards(tmp_path / "nope.head")


# ---- writing -------------------------------------------------------------------------------


OUT_CARDS: list[tuple[str, Any, str]] = [
    ("CTYPE1", "RA---TAN-SIP", "projection"),
    ("CRVAL1", 150.123456789012345, "full repr precision"),
    ("CD1_1", -4.811252243246912e-05, ""),
    ("TINY", 5e-324, ""),
    ("INTVAL", np.int64(-42), "numpy int"),
    ("FLT32", np.float32(0.1), "numpy float32"),
    ("FLAG", True, ""),
    ("QUOTED", "it's", "escaped quote"),
    ("UNDEF", None, "no value"),
    ("HISTORY", "written by lite_fits", ""),
    ("NAXIS1", 999, "structural: ignored"),
    ("LONGCMT", 1, "c" * 100),
]


@pytest.mark.parametrize(
    "dtype", ["float32", "float64", "uint8", "int16", "int32", "int64", "int8", "uint16", "uint32"]
)
def test_write_then_astropy_reads(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(3)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        data = rng.normal(size=(37, 53)).astype(dt)
        data[3, 4] = np.nan
    else:
        info = np.iinfo(dt)
        data = rng.integers(info.min, info.max, (37, 53), dtype=dt, endpoint=True)
    path = tmp_path / "w.fits"
    write_image(path, data, OUT_CARDS)
    assert path.stat().st_size % 2880 == 0
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert len(hdul) == 1
        ref = np.array(hdul[0].data)
        header = hdul[0].header
    assert ref.dtype.newbyteorder("=") == dt and ref.shape == (37, 53)
    np.testing.assert_array_equal(ref, data)
    assert header["NAXIS1"] == 53 and header["NAXIS2"] == 37
    for key, value, _comment in OUT_CARDS:
        if key in ("HISTORY", "NAXIS1", "LONGCMT"):
            continue
        assert header[key] == (value if value is not None else header[key]), key
        assert (header[key] is None) == (value is None)
    assert header["CRVAL1"] == 150.123456789012345  # not truncated to 20 characters
    assert "written by lite_fits" in str(header["HISTORY"])
    got = read_image(path)  # and our own reader
    assert got is not None
    np.testing.assert_array_equal(got[0], data)
    assert got[0].dtype == dt


def test_write_non_contiguous_and_big_endian(tmp_path: Path) -> None:
    base = np.arange(40 * 30, dtype=">f8").reshape(40, 30)
    view = base[::2, 1::3]
    path = tmp_path / "v.fits"
    write_image(path, view, [])
    np.testing.assert_array_equal(fits.getdata(path), view)


def test_write_is_atomic_and_validates(tmp_path: Path) -> None:
    path = tmp_path / "keep.fits"
    write_image(path, np.ones((2, 2), np.float32), [])
    before = path.read_bytes()
    with pytest.raises(FormatError, match="cannot write bool"):
        write_image(path, np.ones((2, 2), bool), [])
    with pytest.raises(FormatError, match="non-finite"):
        write_image(path, np.ones((2, 2), np.float32), [("BAD", float("nan"), "")])
    with pytest.raises(FormatError, match="2-D"):
        write_image(path, np.ones(3, np.float32), [])
    with pytest.raises(FormatError, match="invalid FITS keyword"):
        write_image(path, np.ones((2, 2), np.float32), [("TOO LONG KEY", 1, "")])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.fits"]  # no temp files left


def test_accept_hook_decides_before_reading_data(tmp_path: Path) -> None:
    path = tmp_path / "cut.fits"
    write_raw(path, np.ones((100, 100), np.float32), WCS_CARDS)
    path.write_bytes(path.read_bytes()[: 2880 + 100])  # data truncated
    seen: list[FitsCards] = []
    assert read_image(path, accept=lambda h: seen.append(h) is not None) is None
    assert seen[0]["CTYPE1"] == "RA---TAN"  # the header was parsed, the data never read
    with pytest.raises(FormatError, match="truncated"):
        read_image(path, accept=lambda h: True)
