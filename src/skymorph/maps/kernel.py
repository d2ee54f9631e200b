"""Line-of-sight-integrated (projected) cubic-spline kernel, tabulated for the deposit.

The 3D kernel is ``skymorph.sph``'s cubic spline with compact support h,
W(r, h) = 8 / (pi h^3) w(r / h). Integrating it along the line of sight gives the
projected kernel

    Sigma(R) = m / h^2 F(R / h),   F(q) = 8/pi * int_{-sqrt(1-q^2)}^{sqrt(1-q^2)} w(sqrt(q^2 + z^2)) dz,

which vanishes for q >= 1 and integrates to one over the unit disk. F is evaluated here in
closed form (the pieces of w are polynomials in r = sqrt(R^2 + z^2), whose z-primitives are
elementary), and tabulated once at import on a uniform grid in s = q^2 (so the hot loop needs
no square root), for linear interpolation in s.

Table layout (used by ``skymorph.maps.projection``): ``KERNEL_TABLE`` has shape
(TABLE_SIZE + 2, 2); row i holds (F(s_i), F(s_{i+1}) - F(s_i)) with s_i = i / TABLE_SIZE,
so F(s) ~= T[i, 0] + (x - i) T[i, 1] with x = s * TABLE_SIZE, i = floor(x). The last two
rows are zero, so any x in [TABLE_SIZE, TABLE_SIZE + 1] (round-off at the support edge) gives
zero. The linear interpolant differs from the exact F by at most ~2e-6 (~1e-6 of F(0); largest
near q = 0, where F has an s^2 ln s term); to make it integrate to one over the unit disk
exactly (to round-off), the table is rescaled by ``TABLE_RENORM`` = 1 - 6.6e-7.

For the hot loop the same interpolant is also stored as ``TABLE_A``, ``TABLE_B`` (1D, length
TABLE_SIZE + 2) with F(s) ~= TABLE_A[i] + x TABLE_B[i], TABLE_A[i] = T[i, 0] - i T[i, 1],
TABLE_B[i] = T[i, 1]: one float-to-int conversion per evaluation and no (x - i) term.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "TABLE_SIZE",
    "KERNEL_TABLE",
    "TABLE_RENORM",
    "TABLE_A",
    "TABLE_B",
    "F_CENTRAL",
    "projected_kernel",
    "projected_kernel_table",
]

#: Number of intervals of the table in s = q^2 on [0, 1]. 2048 intervals keep the two
#: hot-loop arrays at 32 KiB (one L1 data cache) and the linear-interpolation error at
#: ~1e-6 of the central value (far below the pixelisation error of any map).
TABLE_SIZE = 2048

#: Analytic central value F(0) = 8/pi * 2 * [int_0^1/2 (1 - 6z^2 + 6z^3) dz + int_1/2^1 2(1-z)^3 dz]
#: = 16/pi * (11/32 + 1/32) = 6/pi.
F_CENTRAL = 6.0 / np.pi


def _log_term(b: np.ndarray, z: np.ndarray, r: np.ndarray) -> np.ndarray:
    """ln(z + r) - ln(b) = asinh(z / b), with the convention 0 where b = 0.

    It only ever appears multiplied by b^2 or b^4, whose product with it vanishes as b -> 0.
    """
    out = np.zeros_like(b)
    ok = b > 0.0
    out[ok] = np.arcsinh(z[ok] / b[ok])
    return out


def _primitives(b: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """int_0^z r^k dz' for k = 0..3, with r = sqrt(b^2 + z'^2) (b, z >= 0, elementwise)."""
    r = np.sqrt(b * b + z * z)
    lg = _log_term(b, z, r)
    p0 = z
    p1 = 0.5 * z * r + 0.5 * b * b * lg
    p2 = b * b * z + z**3 / 3.0
    p3 = z / 8.0 * (2.0 * z * z + 5.0 * b * b) * r + 3.0 / 8.0 * b**4 * lg
    return p0, p1, p2, p3


def projected_kernel(q: np.ndarray) -> np.ndarray:
    """Exact projected kernel F(q), q = R / h (dimensionless; Sigma = m / h^2 F(R / h)).

    Closed form; F(q) = 0 for q >= 1 and int F d^2q over the unit disk = 1.
    """
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    b = np.clip(np.abs(q), 0.0, 1.0)
    z2 = np.sqrt(np.clip(1.0 - b * b, 0.0, None))  # end of the support along z
    z1 = np.sqrt(np.clip(0.25 - b * b, 0.0, None))  # end of the inner piece (r < 1/2)
    a0, a1, a2, a3 = _primitives(b, z1)
    c0, c1, c2, c3 = _primitives(b, z2)
    # inner piece on [0, z1]: w = 1 - 6 r^2 + 6 r^3
    inner = a0 - 6.0 * a2 + 6.0 * a3
    # outer piece on [z1, z2]: w = 2 (1 - r)^3 = 2 (1 - 3 r + 3 r^2 - r^3)
    outer = 2.0 * ((c0 - a0) - 3.0 * (c1 - a1) + 3.0 * (c2 - a2) - (c3 - a3))
    f = 16.0 / np.pi * (inner + outer)
    return np.where(np.abs(q) < 1.0, np.clip(f, 0.0, None), 0.0)


def _build_table(n: int) -> tuple[np.ndarray, float]:
    s = np.arange(n + 1, dtype=np.float64) / n
    f = projected_kernel(np.sqrt(s))
    f[-1] = 0.0
    # int F d^2q = pi int_0^1 F(s) ds; for the piecewise-linear interpolant in s this is the
    # trapezoid rule, exactly.
    integral = np.pi / n * (f.sum() - 0.5 * (f[0] + f[-1]))
    renorm = 1.0 / integral
    f *= renorm
    table = np.zeros((n + 2, 2), dtype=np.float64)
    table[:n, 0] = f[:n]
    table[:n, 1] = f[1:] - f[:n]
    return table, float(renorm)


KERNEL_TABLE, TABLE_RENORM = _build_table(TABLE_SIZE)
KERNEL_TABLE.setflags(write=False)
TABLE_A = np.ascontiguousarray(KERNEL_TABLE[:, 0] - np.arange(TABLE_SIZE + 2) * KERNEL_TABLE[:, 1])
TABLE_B = np.ascontiguousarray(KERNEL_TABLE[:, 1])
TABLE_A.setflags(write=False)
TABLE_B.setflags(write=False)


def projected_kernel_table(q: np.ndarray) -> np.ndarray:
    """F(q) from the table, exactly as the deposit evaluates it (numpy, for checks and plots)."""
    q = np.asarray(q, dtype=np.float64)
    x = np.clip(q * q * TABLE_SIZE, 0.0, TABLE_SIZE + 1.0)
    i = x.astype(np.int64)
    return TABLE_A[i] + x * TABLE_B[i]
