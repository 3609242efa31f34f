"""File formats for exposures and calibration products (ours and LSST afw files)."""
