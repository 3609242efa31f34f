"""A warp (inputs table + CoaddPsf) survives the exposure FITS format exactly."""

from __future__ import annotations

import numpy as np

from tests.test_make_warp_run import SKY, ccd_inputs, make_ccd
from warping.formats.exposure_fits import ExposureFormatter
from warping.task.make_warp import MakeWarpTask


def test_warp_round_trip_keeps_inputs_and_psf() -> None:
    a = make_ccd(16, (110.0, 130.0), 0.0)
    b = make_ccd(17, (30.0, 130.0), 10.0, offset=1.0)
    inputs = ccd_inputs([a, b], [{"ccd": 16}, {"ccd": 17}])
    warp = MakeWarpTask().run(inputs, SKY, 7).exposures["direct"]
    assert warp is not None
    fmt = ExposureFormatter()
    back = fmt.from_bytes(fmt.to_bytes(warp), source="memory")
    np.testing.assert_array_equal(back.image, warp.image)
    np.testing.assert_array_equal(back.mask, warp.mask)
    np.testing.assert_array_equal(back.variance, warp.variance)
    assert back.xy0 == warp.xy0 and back.unit == "nJy"
    rows, rows_back = warp.coadd_inputs.ccds, back.coadd_inputs.ccds
    assert [(r.id, r.ccd, r.visit, r.goodpix, r.weight, r.filter, r.bbox) for r in rows] == [
        (r.id, r.ccd, r.visit, r.goodpix, r.weight, r.filter, r.bbox) for r in rows_back
    ]
    assert [r.data_id for r in rows_back] == [{"ccd": 16}, {"ccd": 17}]
    assert back.coadd_inputs.visits[0].goodpix == warp.coadd_inputs.visits[0].goodpix
    x, y = 150.0, 150.0
    np.testing.assert_allclose(
        back.psf.compute_kernel_image(x, y), warp.psf.compute_kernel_image(x, y), atol=1e-12
    )
