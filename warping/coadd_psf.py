"""PSFs of warped images: :class:`WarpedPsf` (one CCD) and :class:`CoaddPsf` (a warp's mixture).

``WarpedPsf`` follows afw/meas_algorithms (since DM-32411): linearise the warp's pixel map at the
requested position, ask the source PSF for its image at the mapped sub-pixel position, and warp that
small image with the same kernel family as the pixels (zero padding). ``CoaddPsf`` averages the
warped PSFs of every input CCD containing the position, with the CCD weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from warping._threads import thread_limit
from warping.geom import Box2I
from warping.psf.base import Psf, PsfError
from warping.skywcs import SkyWcs

__all__ = ["CoaddPsf", "WarpedPsf"]

DestToSrc = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

#: afw refuses PSF transforms whose linear part is this large ("Unexpectedly large transform").
MAX_LINEAR_COEFFICIENT = 200.0


def _axis_weights(f: np.ndarray, kernel: str) -> tuple[np.ndarray, np.ndarray]:
    """Tap offsets and weights ``(P, taps)`` of a warping kernel at fractional offsets ``f``."""
    from warping.warp._kernels import lanczos_reference, parse_kernel

    spec = parse_kernel(kernel)
    if spec.name.startswith("lanczos"):
        taps = np.arange(-(spec.n - 1), spec.n + 1)
        return taps, lanczos_reference(taps[None, :] - f[:, None], spec.n)
    taps = np.arange(0, 2)
    if spec.name == "bilinear":
        return taps, np.stack([1.0 - f, f], axis=1)
    return taps, np.stack([(f < 0.5).astype(float), (f >= 0.5).astype(float)], axis=1)


def resample_zero_padded(
    src: np.ndarray, src_box: Box2I, u: np.ndarray, v: np.ndarray, kernel: str
) -> np.ndarray:
    """Interpolate ``src`` (covering ``src_box``, zero outside) at parent positions ``(u, v)``.

    The weights are afw's warping kernels normalised by their sum, as in ``warpExposure``; this
    vectorised form is used for small PSF images, where it is faster than the compiled
    full-image warper.
    """
    lu = u - src_box.x0
    lv = v - src_box.y0
    i0 = np.floor(lu).astype(int)
    j0 = np.floor(lv).astype(int)
    tx, wx = _axis_weights(lu - i0, kernel)
    ty, wy = _axis_weights(lv - j0, kernel)
    pad = int(max(abs(tx).max(), abs(ty).max())) + 1
    padded = np.zeros((src.shape[0] + 2 * pad, src.shape[1] + 2 * pad))
    padded[pad:-pad, pad:-pad] = src
    cols = np.clip(i0[:, None] + tx[None, :] + pad, 0, padded.shape[1] - 1)
    rows = np.clip(j0[:, None] + ty[None, :] + pad, 0, padded.shape[0] - 1)
    vals = padded[rows[:, :, None], cols[:, None, :]]  # (P, taps_y, taps_x)
    out = np.einsum("pb,pba,pa->p", wy, vals, wx)
    return out / (wx.sum(axis=1) * wy.sum(axis=1))


class WarpedPsf(Psf):
    """The PSF of a source image, seen through a destination-to-source pixel map.

    Parameters
    ----------
    psf
        PSF of the source image, in source parent pixels.
    dest_to_src
        Map from destination parent pixel positions to source parent pixel positions.
    kernel
        Warping kernel used to resample the PSF image (``lanczos3`` by default, as afw).
    """

    def __init__(self, psf: Psf, dest_to_src: DestToSrc, *, kernel: str = "lanczos3") -> None:
        from warping.warp._kernels import parse_kernel

        parse_kernel(kernel)  # validates the name
        self.psf = psf
        self.dest_to_src = dest_to_src
        self.kernel = kernel

    @classmethod
    def from_wcs_pair(
        cls, psf: Psf, src_wcs: SkyWcs, dest_wcs: SkyWcs, *, kernel: str = "lanczos3"
    ) -> WarpedPsf:
        """WarpedPsf for an image warped from ``src_wcs`` to ``dest_wcs``."""
        from warping.warp import wcs_pair_transform

        return cls(psf, wcs_pair_transform(src_wcs, dest_wcs), kernel=kernel)

    def _linearize(self, x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
        h = 0.5
        xs = np.array([x, x - h, x + h, x, x], dtype=float)
        ys = np.array([y, y, y, y - h, y + h], dtype=float)
        sx, sy = self.dest_to_src(xs, ys)
        s0 = np.array([sx[0], sy[0]])
        jac = np.array(
            [[(sx[2] - sx[1]) / (2 * h), (sx[4] - sx[3]) / (2 * h)],
             [(sy[2] - sy[1]) / (2 * h), (sy[4] - sy[3]) / (2 * h)]]
        )  # fmt: skip
        if not np.all(np.isfinite(jac)) or not np.all(np.isfinite(s0)):
            raise PsfError(f"Cannot evaluate the warp's pixel map at ({x:.2f}, {y:.2f}).")
        if np.abs(jac).max() > MAX_LINEAR_COEFFICIENT:
            raise PsfError(
                f"Unexpectedly large transform at ({x:.2f}, {y:.2f}): linear part {jac.tolist()}; "
                "check the WCS of the input exposure."
            )
        return s0, jac

    def _render(self, xc: float, yc: float, at_x: float, at_y: float) -> tuple[np.ndarray, Box2I]:
        """Warped unit-flux PSF image centred on destination position ``(xc, yc)``."""
        s0, jac = self._linearize(at_x, at_y)
        # source position that maps to the requested destination centre
        sc = s0 + jac @ np.array([xc - at_x, yc - at_y])
        src, src_box = self.psf.compute_image(float(sc[0]), float(sc[1]))
        inv = np.linalg.inv(jac)
        dest_off = (src_box.corners() - sc) @ inv.T
        half_x = math.floor(0.5 * (dest_off[:, 0].max() - dest_off[:, 0].min()))
        half_y = math.floor(0.5 * (dest_off[:, 1].max() - dest_off[:, 1].min()))
        half = max(half_x, half_y, 1)
        xr, yr = round(xc), round(yc)
        dest_box = Box2I(xr - half, yr - half, 2 * half + 1, 2 * half + 1)
        yy, xx = np.mgrid[dest_box.y0 : dest_box.y1 + 1, dest_box.x0 : dest_box.x1 + 1]
        dx, dy = xx.ravel() - xc, yy.ravel() - yc
        u = sc[0] + jac[0, 0] * dx + jac[0, 1] * dy
        v = sc[1] + jac[1, 0] * dx + jac[1, 1] * dy
        img = resample_zero_padded(src, src_box, u, v, self.kernel).reshape(dest_box.shape)
        total = img.sum()
        if not total > 0:
            raise PsfError(f"Warped PSF at ({xc:.2f}, {yc:.2f}) has no flux.")
        return img / total, dest_box

    def compute_image(self, x: float, y: float) -> tuple[np.ndarray, Box2I]:
        """Unit-flux image of a point source at destination position ``(x, y)``."""
        return self._render(x, y, x, y)

    def compute_kernel_image(self, x: float, y: float) -> np.ndarray:
        """Kernel at ``(x, y)`` centred on pixel ``(0, 0)``, odd square, sum 1."""
        img, _ = self._render(float(round(x)), float(round(y)), x, y)
        return img

    def compute_kernel_images(self, xs: np.ndarray, ys: np.ndarray) -> list[np.ndarray | PsfError]:
        """:meth:`compute_kernel_image` at many positions at once.

        One call of the pixel map for all linearisations and one compiled resampling pass
        (Lanczos kernels; other kernels fall back to per-position evaluation). Positions where the
        PSF cannot be evaluated give the :class:`PsfError` instead of an image.
        """
        from warping.warp._kernels import parse_kernel

        xs = np.asarray(xs, dtype=float).ravel()
        ys = np.asarray(ys, dtype=float).ravel()
        spec = parse_kernel(self.kernel)
        if not spec.name.startswith("lanczos"):
            return [self._kernel_or_error(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
        n = len(xs)
        hd = 0.5
        px = np.stack([xs, xs - hd, xs + hd, xs, xs])
        py = np.stack([ys, ys, ys, ys - hd, ys + hd])
        sx, sy = self.dest_to_src(px.ravel(), py.ravel())
        sx, sy = np.asarray(sx, float).reshape(5, n), np.asarray(sy, float).reshape(5, n)
        s0 = np.stack([sx[0], sy[0]], axis=1)
        jac = np.empty((n, 2, 2))
        jac[:, 0, 0] = (sx[2] - sx[1]) / (2 * hd)
        jac[:, 0, 1] = (sx[4] - sx[3]) / (2 * hd)
        jac[:, 1, 0] = (sy[2] - sy[1]) / (2 * hd)
        jac[:, 1, 1] = (sy[4] - sy[3]) / (2 * hd)
        results: list[np.ndarray | PsfError | None] = [None] * n
        finite = np.isfinite(jac).all(axis=(1, 2)) & np.isfinite(s0).all(axis=1)
        large = np.abs(np.where(np.isfinite(jac), jac, 0.0)).max(axis=(1, 2))
        rx, ry = np.round(xs), np.round(ys)
        centres = s0 + np.einsum("cab,cb->ca", jac, np.stack([rx - xs, ry - ys], axis=1))
        ok: list[int] = []
        srcs: list[tuple[np.ndarray, Box2I]] = []
        for c in range(n):
            if not finite[c]:
                results[c] = PsfError(
                    f"Cannot evaluate the warp's pixel map at ({xs[c]:.2f}, {ys[c]:.2f})."
                )
                continue
            if large[c] > MAX_LINEAR_COEFFICIENT:
                results[c] = PsfError(
                    f"Unexpectedly large transform at ({xs[c]:.2f}, {ys[c]:.2f}): linear part "
                    f"{jac[c].tolist()}; check the WCS of the input exposure."
                )
                continue
            try:
                img, box = self.psf.compute_image(float(centres[c, 0]), float(centres[c, 1]))
            except PsfError as exc:
                results[c] = exc
                continue
            ok.append(c)
            srcs.append((img, box))
        if ok:
            idx = np.array(ok)
            m = len(idx)
            hmax = max(img.shape[0] for img, _ in srcs)
            wmax = max(img.shape[1] for img, _ in srcs)
            src = np.zeros((m, hmax, wmax))
            shape = np.empty((m, 2), dtype=np.int64)
            xy0 = np.empty((m, 2))
            corners = np.empty((m, 4, 2))
            for k, (img, box) in enumerate(srcs):
                src[k, : img.shape[0], : img.shape[1]] = img
                shape[k] = img.shape
                xy0[k] = (box.x0, box.y0)
                corners[k] = box.corners()
            inv = np.linalg.inv(jac[idx])
            off = np.einsum("kab,kcb->kca", inv, corners - centres[idx, None, :])
            span = off.max(axis=1) - off.min(axis=1)
            half = np.maximum(np.floor(0.5 * span).astype(np.int64).max(axis=1), 1)
            # Output pixel (i, j) is destination offset (j - half, i - half) from the centre.
            du = jac[idx, :, 0]  # source step per destination column
            dv = jac[idx, :, 1]  # source step per destination row
            start = centres[idx] - half[:, None] * (du + dv)
            size = 2 * int(half.max()) + 1
            out = np.zeros((m, size, size))

            from warping.psfmatch._match_loops import resample_lanczos

            def resample(sl: slice) -> None:
                resample_lanczos(src[sl], shape[sl], xy0[sl], start[sl], du[sl], dv[sl],
                                 half[sl], spec.n, out[sl])  # fmt: skip

            if m >= 64 and thread_limit() > 1:  # two threads (the C loop releases the GIL)
                with ThreadPoolExecutor(max_workers=2) as pool:
                    jobs = [
                        pool.submit(resample, sl) for sl in (slice(0, m // 2), slice(m // 2, m))
                    ]
                    for job in jobs:
                        job.result()
            else:
                resample(slice(0, m))
            for k, c in enumerate(idx):
                s = 2 * int(half[k]) + 1
                img = out[k, :s, :s]
                total = img.sum()
                if not total > 0:
                    results[c] = PsfError(f"Warped PSF at ({xs[c]:.2f}, {ys[c]:.2f}) has no flux.")
                else:
                    results[c] = img / total
        return [r if r is not None else PsfError("not evaluated") for r in results]

    def _kernel_or_error(self, x: float, y: float) -> np.ndarray | PsfError:
        try:
            return self.compute_kernel_image(x, y)
        except PsfError as exc:
            return exc

    def average_position(self) -> tuple[float, float]:
        """The source PSF's average position mapped into the destination frame (by inversion)."""
        sx, sy = self.psf.average_position()
        # Newton iterations on the linearised map starting from the destination origin guess
        x, y = 0.0, 0.0
        for _ in range(20):
            s0, jac = self._linearize(x, y)
            step = np.linalg.solve(jac, np.array([sx, sy]) - s0)
            x, y = x + float(step[0]), y + float(step[1])
            if abs(step).max() < 1e-6:
                break
        return x, y


class CoaddPsf(Psf):
    """Weighted mean of the warped PSFs of the input CCDs that contain each position.

    Parameters
    ----------
    ccds
        Input CCD records (:class:`warping.coadd_inputs.CcdRecord`) with ``psf``, ``wcs``,
        ``bbox``, ``valid_bbox``, ``weight`` and ``goodpix``.
    coadd_wcs
        WCS of the warp (parent pixels).
    kernel
        Kernel used to warp the input PSFs.
    """

    def __init__(self, ccds: Sequence[Any], coadd_wcs: SkyWcs, *, kernel: str = "lanczos3") -> None:
        self.ccds = [c for c in ccds if c.psf is not None and c.wcs is not None]
        self.coadd_wcs = coadd_wcs
        self.kernel = kernel
        self._warped: dict[int, WarpedPsf] = {}

    def _warped_psf(self, i: int) -> WarpedPsf:
        if i not in self._warped:
            c = self.ccds[i]
            self._warped[i] = WarpedPsf.from_wcs_pair(
                c.psf, c.wcs, self.coadd_wcs, kernel=self.kernel
            )
        return self._warped[i]

    def containing(self, x: float, y: float) -> list[int]:
        """Indices of the CCDs whose valid area contains warp position ``(x, y)``."""
        ra, dec = self.coadd_wcs.pixel_to_world_values(np.array([x]), np.array([y]))
        return [i for i, c in enumerate(self.ccds) if bool(c.contains_sky(ra, dec)[0])]

    def _combine(
        self, x: float, y: float, render: Callable[[WarpedPsf], tuple[np.ndarray, Box2I]]
    ) -> tuple[np.ndarray, Box2I]:
        idx = self.containing(x, y)
        if not idx:
            raise PsfError(
                f"No input CCD of this warp covers position ({x:.1f}, {y:.1f}); the CoaddPsf is "
                "undefined there."
            )
        parts = [(render(self._warped_psf(i)), float(self.ccds[i].weight)) for i in idx]
        x0 = min(b.x0 for (_, b), _ in parts)
        y0 = min(b.y0 for (_, b), _ in parts)
        x1 = max(b.x1 for (_, b), _ in parts)
        y1 = max(b.y1 for (_, b), _ in parts)
        union = Box2I.from_minmax(x0, y0, x1, y1)
        out = np.zeros(union.shape, dtype=np.float64)
        wsum = 0.0
        for (img, box), w in parts:
            out[box.slices(union)] += w * img / img.sum()
            wsum += w
        return out / wsum, union

    def compute_image(self, x: float, y: float) -> tuple[np.ndarray, Box2I]:
        """Mixture image of a unit point source at ``(x, y)``."""
        return self._combine(x, y, lambda p: p.compute_image(x, y))

    def compute_kernel_image(self, x: float, y: float) -> np.ndarray:
        """Mixture kernel at ``(x, y)``, centred on ``(0, 0)``, sum 1, odd square."""
        img, box = self._combine(x, y, lambda p: self._kernel_with_box(p, x, y))
        # pad to a square centred on (0, 0)
        half = max(-box.x0, box.x1, -box.y0, box.y1)
        full = Box2I(-half, -half, 2 * half + 1, 2 * half + 1)
        out = np.zeros(full.shape)
        out[box.slices(full)] = img
        return out / out.sum()

    @staticmethod
    def _kernel_with_box(p: WarpedPsf, x: float, y: float) -> tuple[np.ndarray, Box2I]:
        k = p.compute_kernel_image(x, y)
        h, w = k.shape
        return k, Box2I(-(w // 2), -(h // 2), w, h)

    def to_dict(self) -> dict[str, Any]:
        """Persistable form: the input CCD records, the warp WCS and the kernel."""
        from warping.coadd_inputs import exact_wcs_text, wcs_to_text
        from warping.psf import psf_to_dict

        return {
            "type": "CoaddPsf",
            "module": __name__,
            "kernel": self.kernel,
            # the tract WCS is astropy; an exact model is stored as its own text
            "coadd_wcs": exact_wcs_text(self.coadd_wcs) or wcs_to_text(self.coadd_wcs),
            "ccds": [
                {
                    "id": c.id,
                    "ccd": c.ccd,
                    "visit": c.visit,
                    "goodpix": c.goodpix,
                    "weight": c.weight,
                    "filter": c.filter,
                    "bbox": c.bbox.to_list(),
                    "valid_bbox": (c.valid_bbox or c.bbox).to_list(),
                    "wcs": wcs_to_text(c.wcs, c.bbox),
                    **({"wcs_exact": exact_wcs_text(c.wcs)} if exact_wcs_text(c.wcs) else {}),
                    "psf": psf_to_dict(c.psf),
                    **(
                        {"valid_polygon": c.valid_polygon.to_list()}
                        if c.valid_polygon is not None
                        else {}
                    ),
                }
                for c in self.ccds
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CoaddPsf:
        """Inverse of :meth:`to_dict`."""
        from warping.coadd_inputs import CcdRecord, wcs_from_text
        from warping.polygon import ValidPolygon
        from warping.psf import psf_from_dict

        ccds = [
            CcdRecord(
                id=int(c["id"]),
                ccd=int(c["ccd"]),
                visit=int(c["visit"]),
                goodpix=int(c["goodpix"]),
                weight=float(c["weight"]),
                filter=str(c["filter"]),
                bbox=Box2I(*(int(v) for v in c["bbox"])),
                wcs=wcs_from_text(str(c["wcs"]), str(c.get("wcs_exact", ""))),
                psf=psf_from_dict(c["psf"]),
                valid_bbox=Box2I(*(int(v) for v in c["valid_bbox"])),
                valid_polygon=(
                    ValidPolygon.from_list(c["valid_polygon"]) if "valid_polygon" in c else None
                ),
            )
            for c in d["ccds"]
        ]
        wcs = wcs_from_text(str(d["coadd_wcs"]))
        if wcs is None:
            raise ValueError("CoaddPsf dict has no coadd WCS")
        return cls(ccds, wcs, kernel=str(d["kernel"]))

    def average_position(self) -> tuple[float, float]:
        """Mean of the inputs' average positions weighted by ``weight x goodpix`` (LSST)."""
        pts = []
        for i, c in enumerate(self.ccds):
            try:
                pts.append((*self._warped_psf(i).average_position(), c.weight * max(c.goodpix, 1)))
            except PsfError:
                continue
        if not pts:
            raise PsfError("CoaddPsf has no usable inputs.")
        arr = np.array(pts)
        order = np.argsort(arr[:, 2])
        for start in range(len(arr)):
            sub = arr[order[start:]]
            px = float((sub[:, 0] * sub[:, 2]).sum() / sub[:, 2].sum())
            py = float((sub[:, 1] * sub[:, 2]).sum() / sub[:, 2].sum())
            if self.containing(px, py):
                return px, py
        return float(arr[order[-1], 0]), float(arr[order[-1], 1])


def _register() -> None:
    from warping.psf import register_psf_type

    register_psf_type("CoaddPsf", CoaddPsf)


_register()
