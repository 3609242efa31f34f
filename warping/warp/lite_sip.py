"""SIP distortion polynomials (Shupe et al. 2005) for :mod:`warping.warp.lite_wcs` (numpy only).

:class:`SipPlan` evaluates ``A(u, v)``, ``B(u, v)`` and their Jacobian on arrays with every
temporary written into one workspace, and inverts ``(u + A, v + B) = (U, V)`` by vectorised
Newton iteration.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["SIP_TOLERANCE", "SipPlan", "SipTerms"]

logger = logging.getLogger(__name__)

#: Newton convergence tolerance for the SIP inverse, pixels.
SIP_TOLERANCE = 1e-9
_MAX_NEWTON = 30

#: Non-zero SIP coefficients as ``(p, q, value)`` for the term ``value * u**p * v**q``.
SipTerms = tuple[tuple[int, int, float], ...]


class SipPlan:
    """Evaluation plan of a SIP distortion and of its Jacobian.

    Monomials ``u**p v**q`` are built in order of degree, each by one multiply of a lower one;
    each output (``A``, ``B`` and their four partial derivatives) is a list of
    ``(monomial, coefficient)``; the constant monomial is kept as a plain number.
    """

    def __init__(self, sip_a: SipTerms, sip_b: SipTerms) -> None:
        outputs: list[dict[tuple[int, int], float]] = [{} for _ in range(6)]
        for row, terms in ((0, sip_a), (1, sip_b)):
            for p, q, c in terms:
                d = outputs[row]
                d[(p, q)] = d.get((p, q), 0.0) + c
                if p > 0:
                    d = outputs[2 + 2 * row]
                    d[(p - 1, q)] = d.get((p - 1, q), 0.0) + p * c
                if q > 0:
                    d = outputs[3 + 2 * row]
                    d[(p, q - 1)] = d.get((p, q - 1), 0.0) + q * c
        self.outputs = [[(m, c) for m, c in sorted(d.items()) if c != 0.0] for d in outputs]
        needed: set[tuple[int, int]] = set()
        for out in self.outputs:
            for (p, q), _c in out:
                # every monomial on the chain down to u or v is needed to build it
                while p + q > 1:
                    needed.add((p, q))
                    if p > 0:
                        p -= 1
                    else:
                        q -= 1
        self.build = sorted(needed, key=lambda m: (m[0] + m[1], m))
        self.forward_outputs = self.outputs[:2]

    def rows(self, outputs: int) -> int:
        """Workspace rows :meth:`_evaluate` needs for ``outputs`` outputs."""
        return len(self.build) + 1 + outputs

    def _evaluate(
        self,
        outputs: list[list[tuple[tuple[int, int], float]]],
        u: np.ndarray,
        v: np.ndarray,
        work: np.ndarray,
    ) -> list[np.ndarray]:
        """Outputs as rows of the workspace ``work`` (``rows(len(outputs))`` x ``>= u.size``).

        Everything is written in place into ``work``: fresh large temporaries would cost more in
        page faults than the arithmetic itself.
        """
        n = u.size
        mono: dict[tuple[int, int], np.ndarray] = {(1, 0): u, (0, 1): v}
        r = 0
        for p, q in self.build:
            row = work[r, :n]
            r += 1
            if p > 0:
                np.multiply(mono[(p - 1, q)], u, out=row)
            else:
                np.multiply(mono[(p, q - 1)], v, out=row)
            mono[(p, q)] = row
        tmp = work[r, :n]
        r += 1
        results = []
        for out in outputs:
            acc = work[r, :n]
            r += 1
            first = True
            const = 0.0
            for m, c in out:
                if m == (0, 0):
                    const += c
                elif first:
                    np.multiply(mono[m], c, out=acc)
                    first = False
                else:
                    np.multiply(mono[m], c, out=tmp)
                    acc += tmp
            if first:
                acc.fill(const)
            elif const:
                acc += const
            results.append(acc)
        return results

    def forward(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(A(u, v), B(u, v))``."""
        work = np.empty((self.rows(2), u.size))
        fa, fb = self._evaluate(self.forward_outputs, u, v, work)
        return fa, fb

    def invert(self, big_u: np.ndarray, big_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Solve ``u + A(u, v) = U``, ``v + B(u, v) = V`` by Newton iteration from ``(U, V)``.

        A point has converged when its Newton step ``δk`` is below :data:`SIP_TOLERANCE`, or
        when the quadratic-convergence estimate of the remaining error, ``|δk|³ / |δk-1|²``, is
        below a thousandth of it (with ``|δk| < 1e-4`` px). Points not converged after
        ``_MAX_NEWTON`` steps, or whose step is not finite, are NaN.
        """
        u_out = np.array(big_u, dtype=float)
        v_out = np.array(big_v, dtype=float)
        base = self.rows(6)
        work = np.empty((base + 4, u_out.size))
        active: np.ndarray | None = None  # None: all points
        u, v = u_out.copy(), v_out.copy()
        tu, tv = big_u, big_v
        prev: np.ndarray | None = None  # no convergence estimate before the second step
        for _ in range(_MAX_NEWTON):
            n = u.size
            fa, fb, au, av, bu, bv = self._evaluate(self.outputs, u, v, work)
            det, du, dv, tmp = (work[base + i, :n] for i in range(4))
            # residuals r = (u + A - U, v + B - V); Jacobian [[1 + Au, Av], [Bu, 1 + Bv]]
            fa += u
            fa -= tu
            fb += v
            fb -= tv
            au += 1.0
            bv += 1.0
            np.multiply(au, bv, out=det)
            np.multiply(av, bu, out=tmp)
            det -= tmp
            np.multiply(av, fb, out=du)
            np.multiply(bv, fa, out=tmp)
            du -= tmp
            du /= det
            np.multiply(bu, fa, out=dv)
            np.multiply(au, fb, out=tmp)
            dv -= tmp
            dv /= det
            u += du
            v += dv
            np.abs(du, out=du)
            np.abs(dv, out=dv)
            step = np.maximum(du, dv, out=du)
            small = step < SIP_TOLERANCE
            if prev is not None:
                np.multiply(step, step, out=tmp)
                tmp *= step
                np.multiply(prev, prev, out=dv)
                tmp /= dv
                small |= (tmp < 1e-3 * SIP_TOLERANCE) & (step < 1e-4)
            finite = np.isfinite(step)
            all_finite = bool(finite.all())
            if not all_finite:
                small |= ~finite  # diverged or undefined: give up now, NaN
                u[~finite] = np.nan
                v[~finite] = np.nan
            if small.all():
                if active is None:
                    return u, v
                u_out[active] = u
                v_out[active] = v
                return u_out, v_out
            if not small.any():
                prev = step.copy()  # ``step`` lives in the workspace
                continue
            keep = np.flatnonzero(~small)
            if active is None:  # still-active points are overwritten later
                u_out[:] = u
                v_out[:] = v
                active = keep
            else:
                done = np.flatnonzero(small)
                u_out[active[done]] = u[done]
                v_out[active[done]] = v[done]
                active = active[keep]
            u, v, tu, tv, prev = u[keep], v[keep], tu[keep], tv[keep], step[keep]
        if active is None:
            u_out[:] = np.nan
            v_out[:] = np.nan
        else:
            u_out[active] = np.nan
            v_out[active] = np.nan
            logger.debug("SIP inverse: %d points did not converge", active.size)
        return u_out, v_out
