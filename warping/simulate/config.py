"""Configuration of the simulated survey: camera, visits, sources, noise and defects."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np

from warping.errors import SimulationError

logger = logging.getLogger(__name__)

__all__ = ["SimulationConfig", "VisitSpec", "default_visits"]


@dataclass(frozen=True)
class VisitSpec:
    """One visit: pointing, filter, observing conditions.

    ``zero_point`` is the AB magnitude of one count *in this exposure* at the focal-plane centre;
    ``zero_point_variation`` the fractional amplitude of the calibration's variation across the
    focal plane; ``sky_level`` the sky in counts/pixel at the centre and ``sky_gradient`` its
    fractional variation across the focal plane.
    """

    visit: int
    pointing: int = 0
    filter: str = "HSC-I"
    ra_deg: float = 150.0
    dec_deg: float = 2.0
    rotation_deg: float = 0.0
    seeing_fwhm_arcsec: float = 0.7
    zero_point: float = 31.0
    zero_point_variation: float = 0.02
    sky_level: float = 400.0
    sky_gradient: float = 0.05
    exposure_time: float = 200.0
    mjd: float = 57000.0
    airmass: float = 1.1


def default_visits(
    center_ra: float = 150.0,
    center_dec: float = 2.0,
    n_visits: int = 4,
    *,
    filter: str = "HSC-I",
    dither_arcsec: float = 60.0,
    rotation_step_deg: float = 15.0,
    first_visit: int = 1000,
    seed: int = 1,
) -> tuple[VisitSpec, ...]:
    """``n_visits`` dithered, rotated visits around ``(center_ra, center_dec)``.

    Visit ``i`` is offset by ``dither_arcsec`` towards position angle ``i * 360/n`` (visit 0 is
    centred), rotated by ``i * rotation_step_deg``, with seeing, zero point and sky drawn
    deterministically from ``seed``. Visit numbers are ``first_visit + 2 i`` (HSC-like even
    numbers); visits are paired into pointings.
    """
    rng = np.random.default_rng([seed, 7919])
    visits = []
    cosd = math.cos(math.radians(center_dec))
    for i in range(n_visits):
        if i == 0:
            dx = dy = 0.0
        else:
            ang = 2 * math.pi * (i - 1) / max(n_visits - 1, 1)
            dx = dither_arcsec * math.cos(ang)
            dy = dither_arcsec * math.sin(ang)
        visits.append(
            VisitSpec(
                visit=first_visit + 2 * i,
                pointing=i // 2,
                filter=filter,
                ra_deg=center_ra + dx / 3600.0 / cosd,
                dec_deg=center_dec + dy / 3600.0,
                rotation_deg=(i * rotation_step_deg) % 360.0,
                seeing_fwhm_arcsec=float(rng.uniform(0.55, 0.95)),
                zero_point=float(31.0 + rng.normal(0.0, 0.08)),
                zero_point_variation=0.02,
                sky_level=float(rng.uniform(300.0, 600.0)),
                sky_gradient=0.05,
                mjd=57000.0 + 0.01 * i,
                airmass=float(1.0 + 0.3 * rng.random()),
            )
        )
    return tuple(visits)


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a simulated repository; deterministic for a given ``seed``.

    The focal plane is ``n_ccd_columns`` x ``n_ccd_rows`` CCDs of ``ccd_width`` x ``ccd_height``
    pixels separated by ``gap_pixels``; CCD id = ``row * n_ccd_columns + col``; only ``ccds`` are
    simulated. Densities are per arcmin²; magnitudes AB.
    """

    seed: int = 1
    ccd_width: int = 2048
    ccd_height: int = 4176
    pixel_scale_arcsec: float = 0.168
    n_ccd_columns: int = 7
    n_ccd_rows: int = 2
    ccds: tuple[int, ...] = (2, 3, 4)
    gap_pixels: int = 100
    visits: tuple[VisitSpec, ...] = field(default_factory=lambda: default_visits(n_visits=3))
    star_density: float = 3.0
    star_mag_range: tuple[float, float] = (17.0, 24.5)
    bright_star_density: float = 0.05
    bright_star_mag_range: tuple[float, float] = (12.5, 15.5)
    galaxy_density: float = 30.0
    galaxy_mag_range: tuple[float, float] = (20.0, 25.5)
    distortion_px_at_edge: float = 20.0
    wcs_error_px: float = 0.25
    psf_variation: float = 0.06
    psf_ellipticity: float = 0.04
    read_noise: float = 4.5
    gain: float = 3.0
    saturation: float = 60000.0
    cosmic_ray_rate: float = 5.0
    bad_columns: int = 2
    background_bin_size: int = 256
    background_residual: float = 0.5
    calib_error: float = 0.01
    skycorr_bin_size: int = 128
    tract: int = 0

    def __post_init__(self) -> None:
        n = self.n_ccd_columns * self.n_ccd_rows
        bad = [c for c in self.ccds if not 0 <= c < n]
        if bad:
            raise SimulationError(
                f"CCD ids {bad} are outside the {self.n_ccd_columns}x{self.n_ccd_rows} focal plane "
                f"(valid ids 0..{n - 1})"
            )
        if not self.visits:
            raise SimulationError("a simulation needs at least one visit")
        if len({v.visit for v in self.visits}) != len(self.visits):
            raise SimulationError("visit numbers must be unique")
        if self.ccd_width < 16 or self.ccd_height < 16:
            raise SimulationError(
                f"CCDs must be at least 16x16 pixels, got {self.ccd_width}x{self.ccd_height}"
            )

    # -- presets -------------------------------------------------------------------------------
    @classmethod
    def small(cls, seed: int = 1) -> SimulationConfig:
        """2 visits x 2 CCDs of 256x512 pixels: builds in about a second (tests). Defect rates
        are raised (40 cosmic rays per Mpix) so that every small CCD shows each mask plane."""
        return cls(
            seed=seed,
            ccd_width=256,
            ccd_height=512,
            n_ccd_columns=2,
            n_ccd_rows=1,
            ccds=(0, 1),
            gap_pixels=20,
            visits=default_visits(n_visits=2, dither_arcsec=6.0, rotation_step_deg=3.0, seed=seed),
            bright_star_density=1.0,
            cosmic_ray_rate=40.0,
            distortion_px_at_edge=2.0,
            background_bin_size=64,
            skycorr_bin_size=64,
        )

    @classmethod
    def demo(cls, seed: int = 1) -> SimulationConfig:
        """3 visits x 4 CCDs of 1024x2088 pixels (a 2x2 block of a half-scale HSC-like camera)."""
        return cls(
            seed=seed,
            ccd_width=1024,
            ccd_height=2088,
            n_ccd_columns=4,
            n_ccd_rows=2,
            ccds=(1, 2, 5, 6),
            gap_pixels=60,
            visits=default_visits(
                n_visits=3, dither_arcsec=40.0, rotation_step_deg=10.0, seed=seed
            ),
            distortion_px_at_edge=10.0,
            background_bin_size=256,
        )

    @classmethod
    def preset(cls, name: str, seed: int = 1) -> SimulationConfig:
        """``"small"``, ``"demo"`` or ``"full"`` (3 full-size CCDs x 3 visits)."""
        if name == "small":
            return cls.small(seed)
        if name == "demo":
            return cls.demo(seed)
        if name == "full":
            return cls(seed=seed, visits=default_visits(n_visits=3, seed=seed))
        raise SimulationError(f"unknown simulation preset {name!r}; use small, demo or full")

    def with_changes(self, **changes: object) -> SimulationConfig:
        """A copy with some fields replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]

    # -- geometry ------------------------------------------------------------------------------
    @property
    def focal_plane_size(self) -> tuple[float, float]:
        """Width and height (pixels) of the CCD array including gaps."""
        w = self.n_ccd_columns * self.ccd_width + (self.n_ccd_columns - 1) * self.gap_pixels
        h = self.n_ccd_rows * self.ccd_height + (self.n_ccd_rows - 1) * self.gap_pixels
        return float(w), float(h)

    @property
    def focal_plane_radius(self) -> float:
        """Distance (pixels) from the focal-plane centre to its corner."""
        w, h = self.focal_plane_size
        return math.hypot(w / 2.0, h / 2.0)

    def ccd_origin(self, ccd: int) -> tuple[float, float]:
        """Focal-plane position (pixels from the boresight) of the centre of CCD pixel (0, 0)."""
        row, col = divmod(int(ccd), self.n_ccd_columns)
        if not 0 <= row < self.n_ccd_rows:
            raise SimulationError(f"CCD {ccd} is outside the focal plane")
        w, h = self.focal_plane_size
        x = col * (self.ccd_width + self.gap_pixels) - w / 2.0 + 0.5
        y = row * (self.ccd_height + self.gap_pixels) - h / 2.0 + 0.5
        return x, y

    def visit(self, visit: int) -> VisitSpec:
        """The spec of visit number ``visit``."""
        for v in self.visits:
            if v.visit == visit:
                return v
        raise SimulationError(
            f"visit {visit} is not in this simulation ({[v.visit for v in self.visits]})"
        )
