"""What the Gen3 import tests share: the real daf_butler export files (tests/fixtures/gen3), small
FITS files written at their paths, and an extension of the real export with more collections."""

from __future__ import annotations

import io
import re
from pathlib import Path

from astropy.io import fits

from repo_butler.gen3 import Gen3Export, read_export

FIXTURES = Path(__file__).parent / "fixtures" / "gen3"
CI_HSC = FIXTURES / "ci_hsc-subset.yaml"
SKYMAP = FIXTURES / "ci_hsc-subset-skymap.yaml"
V0_DATASETS = FIXTURES / "datasets.yaml"
CI_RUN = "HSC/runs/ci_hsc/20240806T180642Z"
EXPOSURE_FORMATTER = "lsst.obs.base.formatters.fitsExposure.FitsExposureFormatter"
#: Gen3's calexp file template in ci_hsc: .../calexp/{day_obs}/{band}/{physical_filter}/{visit}/...
GEN3_CALEXP_PATH = re.compile(r"/calexp/(\d{8})/([a-z])/([A-Z0-9-]+)/(\d+)/calexp_")


def small_fits(dataset_id: str) -> bytes:
    """A valid one-HDU FITS file naming ``dataset_id`` (each dataset's file is distinct)."""
    hdu = fits.PrimaryHDU()
    hdu.header["DSID"] = dataset_id
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()


def write_files(export: Gen3Export, root: Path) -> dict[str, Path]:
    """A small FITS file at each dataset's path under ``root``; dataset ID -> the file."""
    out = {}
    for ds in export.datasets:
        path = root / ds.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(small_fits(ds.dataset_id))
        out[ds.dataset_id] = path
    return out


#: Appended to the real ci_hsc export (same schema, version 1.0.2): a second run holding one
#: calexp, a calexp written by a formatter we do not read and a source catalog; a chain of both
#: runs; a tagged collection of one ci_hsc calexp.
EXTRA = """\
- type: collection
  collection_type: RUN
  name: HSC/runs/other
  host: null
  timespan_begin: null
  timespan_end: null
- type: dataset_type
  name: src
  dimensions: [instrument, detector, visit]
  storage_class: SourceCatalog
  is_calibration: false
- type: dataset
  dataset_type: calexp
  run: HSC/runs/other
  records:
  - dataset_id:
    - !uuid '00000000-0000-4000-8000-000000000001'
    data_id:
    - instrument: HSC
      detector: 23
      visit: 903334
    path: other/calexp-903334-23.fits
    formatter: lsst.obs.base.formatters.fitsExposure.FitsExposureFormatter
  - dataset_id:
    - !uuid '00000000-0000-4000-8000-000000000002'
    data_id:
    - instrument: HSC
      detector: 22
      visit: 903334
    path: other/calexp-903334-22.parq
    formatter: lsst.daf.butler.formatters.parquet.ParquetFormatter
- type: dataset
  dataset_type: src
  run: HSC/runs/other
  records:
  - dataset_id:
    - !uuid '00000000-0000-4000-8000-000000000003'
    data_id:
    - instrument: HSC
      detector: 23
      visit: 903334
    path: other/src-903334-23.fits
    formatter: lsst.obs.base.formatters.fitsGeneric.FitsGenericFormatter
- type: collection
  collection_type: CHAINED
  name: HSC/defaults
  children:
  - HSC/runs/other
  - HSC/tagged
  - HSC/runs/ci_hsc/20240806T180642Z
- type: collection
  collection_type: TAGGED
  name: HSC/tagged
- type: associations
  collection: HSC/tagged
  collection_type: TAGGED
  dataset_ids:
  - !uuid '1b3a4c19-dffa-4942-af1d-b123a1497a00'
"""


def extended_export(directory: Path) -> Path:
    """The real ci_hsc export with :data:`EXTRA` appended, written to ``directory``."""
    path = directory / "export.yaml"
    path.write_text(CI_HSC.read_text() + EXTRA)
    return path


def load(path: Path) -> Gen3Export:
    return read_export(str(path))
