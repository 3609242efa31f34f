"""inputRecorder knobs and the idGenerator packing of a warp's inputs table (issue #22, item 7)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repo_butler import DataId
from repo_butler.errors import ConfigError
from tests.test_make_warp_run import SKY, ccd_inputs, make_ccd
from warping.coadd_inputs import FORMAT_VERSION, CoaddInputs
from warping.exposure import Exposure
from warping.formats.exposure_fits import ExposureFormatter
from warping.id_packer import MAX_ID, DataIdPacker, IdPackingError
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.inputs import CcdInput, InMemoryHandle
from warping.task.make_warp import MakeWarpTask

V2_CCD_COLUMNS = [
    "id", "ccd", "visit", "goodpix", "weight", "filter", "bbox", "valid_bbox", "wcs", "psf",
    "photo_calib", "data_id",
]  # fmt: skip
CCD_COLUMNS = [*V2_CCD_COLUMNS, "valid_polygon", "ap_corr_map"]  # version 3
V2_VISIT_COLUMNS = ["id", "goodpix", "weight", "filter"]


def _all_masked(exp: Exposure) -> Exposure:
    """A CCD that overlaps the patch but whose every pixel is NO_DATA (0 good pixels)."""
    exp.mask[:] = exp.mask_planes.bitmask("NO_DATA")
    return exp


def _inputs(extra: str | None = None) -> list[CcdInput]:
    """CCDs 16 (good), 17 (good), 18 (all masked: empty) and, with ``extra``, 19 (missing)."""
    a = make_ccd(16, (110.0, 130.0), 0.0)
    b = make_ccd(17, (30.0, 130.0), 10.0, offset=1.0)
    c = _all_masked(make_ccd(18, (90.0, 100.0), 5.0))
    out = ccd_inputs([a, b, c])
    if extra is not None:
        out.append(CcdInput(DataId({"ccd": 19}), InMemoryHandle(None), missing=extra))
    return out


def _run(*overrides: str, extra: str | None = None) -> tuple[Exposure, CoaddInputs]:
    config = apply_overrides(MakeWarpConfig(), list(overrides))
    warp = MakeWarpTask(config).run(_inputs(extra), SKY, 7).exposures["direct"]
    assert warp is not None and warp.coadd_inputs is not None
    return warp, warp.coadd_inputs


def _hdus(inputs: CoaddInputs) -> tuple[list[str], list[str]]:
    visits, ccds = inputs.to_hdus()
    return list(visits.columns.names), list(ccds.columns.names)


def _round_trip(warp: Exposure) -> Exposure:
    fmt = ExposureFormatter()
    return fmt.from_bytes(fmt.to_bytes(warp), source="memory")


def _key(r: object) -> tuple[object, ...]:
    return tuple(getattr(r, k) for k in ("id", "ccd", "visit", "goodpix", "filter", "bbox"))


def test_defaults_record_only_contributing_ccds_with_the_v2_columns_and_v3_additions() -> None:
    _, inputs = _run(extra="calexp missing")
    assert [r.ccd for r in inputs.ccds] == [16, 17]
    assert [r.id for r in inputs.ccds] == [7 * 200 + 16, 7 * 200 + 17]  # ids as before
    assert [r.weight for r in inputs.ccds] == [1.0, 1.0]
    assert _hdus(inputs) == (V2_VISIT_COLUMNS, CCD_COLUMNS)
    visits, ccds = inputs.to_hdus()
    assert visits.header["CIFMTV"] == ccds.header["CIFMTV"] == FORMAT_VERSION


def test_save_empty_ccds_adds_exactly_the_empty_ccd_row() -> None:
    base, base_inputs = _run()
    warp, inputs = _run("inputRecorder.saveEmptyCcds=True", extra="calexp missing")
    assert [r.ccd for r in inputs.ccds] == [16, 17, 18]
    empty = inputs.ccds[2]
    assert (empty.id, empty.goodpix, empty.weight) == (7 * 200 + 18, 0, 1.0)
    assert empty.wcs is not None and empty.psf is not None and empty.filter == "HSC-I"
    assert [_key(r) for r in inputs.ccds[:2]] == [_key(r) for r in base_inputs.ccds]
    assert inputs.visits[0].goodpix == base_inputs.visits[0].goodpix
    np.testing.assert_array_equal(warp.image, base.image)
    # the CoaddPsf keeps the contributing CCDs only
    assert [c.ccd for c in warp.psf.ccds] == [16, 17]
    back = _round_trip(warp).coadd_inputs
    assert [_key(r) for r in back.ccds] == [_key(r) for r in inputs.ccds]


def test_save_error_ccds_adds_a_bare_row_for_the_unusable_ccd() -> None:
    _, without = _run(extra="calexp missing")
    warp, inputs = _run("inputRecorder.saveErrorCcds=True", extra="calexp missing")
    assert [r.ccd for r in inputs.ccds] == [16, 17, 19]
    err = inputs.ccds[2]
    assert (err.id, err.visit, err.goodpix, err.filter) == (7 * 200 + 19, 7, 0, "")
    assert math.isnan(err.weight) and err.bbox.is_empty()
    assert err.wcs is None and err.psf is None and err.photo_calib is None
    assert err.data_id == {"ccd": 19}
    assert [_key(r) for r in inputs.ccds[:2]] == [_key(r) for r in without.ccds]
    back = _round_trip(warp).coadd_inputs.ccds[2]
    assert _key(back) == _key(err) and back.wcs is None and back.psf is None
    assert math.isnan(back.weight) and back.data_id == {"ccd": 19}


def test_save_visit_goodpix_off_drops_only_that_column() -> None:
    _, base = _run()
    warp, inputs = _run("inputRecorder.saveVisitGoodPix=False")
    visit_cols, ccd_cols = _hdus(inputs)
    assert visit_cols == [c for c in V2_VISIT_COLUMNS if c != "goodpix"]
    assert ccd_cols == CCD_COLUMNS
    back = _round_trip(warp).coadd_inputs
    assert not back.visit_goodpix and back.visits[0].goodpix is None
    assert back.visits[0].id == 7 and back.visits[0].filter == base.visits[0].filter
    assert [_key(r) for r in back.ccds] == [_key(r) for r in base.ccds]


def test_save_ccd_weights_off_drops_only_that_column_and_keeps_the_coadd_psf() -> None:
    base_warp, base = _run()
    warp, inputs = _run("inputRecorder.saveCcdWeights=False")
    visit_cols, ccd_cols = _hdus(inputs)
    assert visit_cols == V2_VISIT_COLUMNS
    assert ccd_cols == [c for c in CCD_COLUMNS if c != "weight"]
    back = _round_trip(warp)
    assert not back.coadd_inputs.ccd_weights
    assert all(math.isnan(r.weight) for r in back.coadd_inputs.ccds)
    assert [_key(r) for r in back.coadd_inputs.ccds] == [_key(r) for r in base.ccds]
    x, y = 150.0, 150.0
    base_back = _round_trip(base_warp)  # the same CoaddPsf: weights 1.0 either way
    np.testing.assert_array_equal(
        back.psf.compute_kernel_image(x, y), base_back.psf.compute_kernel_image(x, y)
    )


# -- idGenerator ----------------------------------------------------------------------------


def test_default_packing_is_hsc_visit_times_200_plus_ccd() -> None:
    packer = MakeWarpConfig().idGenerator.packer()
    assert packer.pack({"visit": 903986, "ccd": 16, "filter": "HSC-I"}) == 903986 * 200 + 16
    assert packer.unpack(903986 * 200 + 16) == {"visit": 903986, "ccd": 16}


def test_configured_packing_sets_the_ids_of_the_rows() -> None:
    _, inputs = _run("idGenerator.dimensions=['visit', 'ccd']", "idGenerator.sizes=[1024]")
    assert [r.id for r in inputs.ccds] == [7 * 1024 + 16, 7 * 1024 + 17]


def test_a_ccd_out_of_range_fails_the_visit_naming_its_data_id() -> None:
    config = apply_overrides(MakeWarpConfig(), ["idGenerator.sizes=[17]"])
    with pytest.raises(IdPackingError, match=r"data ID ccd=17 visit=7: ccd=17 does not fit"):
        MakeWarpTask(config).run(_inputs(), SKY, 7)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("idGenerator.sizes=[200, 10]", r"sizes has 2 entries for 2 dimensions"),
        ("idGenerator.sizes=[0]", r"sizes must be integers >= 1"),
        ("idGenerator.dimensions=[]", r"dimensions is empty"),
        ("idGenerator.dimensions=['ccd', 'ccd']", r"repeats a key"),
        (f"idGenerator.sizes=[{2**40}, {2**30}]", r"above the 63-bit id range"),
    ],
)
def test_malformed_layouts_are_config_errors(override: str, message: str) -> None:
    overrides = [override]
    if str(2**40) in override:
        overrides = ["idGenerator.dimensions=['visit', 'ccd', 'amp']", override]
    if override.endswith("[]"):
        overrides.append("idGenerator.sizes=[]")
    with pytest.raises(ConfigError, match=message):
        apply_overrides(MakeWarpConfig(), overrides)


def test_overflow_of_the_first_field_names_the_data_id() -> None:
    packer = DataIdPacker(("visit", "ccd"), (2**32,))
    assert packer.max_first == 2**31 - 1
    packer.pack({"visit": packer.max_first, "ccd": 2**32 - 1})
    with pytest.raises(IdPackingError, match=r"data ID ccd=0 visit=\d+: visit=\d+ overflows"):
        packer.pack({"visit": packer.max_first + 1, "ccd": 0})
    with pytest.raises(IdPackingError, match=r"has no 'ccd'"):
        packer.pack({"visit": 1})
    with pytest.raises(IdPackingError, match=r"ccd='x' is not a non-negative integer"):
        packer.pack({"visit": 1, "ccd": "x"})


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5000), min_size=0, max_size=4),
    data=st.data(),
)
def test_pack_unpack_round_trip(sizes: list[int], data: st.DataObject) -> None:
    dims = tuple(f"k{i}" for i in range(len(sizes) + 1))
    packer = DataIdPacker(dims, tuple(sizes))
    first = data.draw(st.integers(0, packer.max_first))
    rest = [data.draw(st.integers(0, s - 1)) for s in sizes]
    values = dict(zip(dims, [first, *rest], strict=True))
    packed = packer.pack(values)
    assert 0 <= packed <= MAX_ID
    assert packer.unpack(packed) == values
    # mixed radix: the same number as the explicit positional sum
    expected, scale = 0, 1
    for value, size in zip(reversed([first, *rest]), [*reversed(sizes), 1], strict=True):
        expected += value * scale
        scale *= size
    assert packed == expected
