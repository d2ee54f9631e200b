"""Isothermal ideal MHD with a cosmic-ray fluid: second-order finite volumes on a periodic grid.

Scheme: piecewise-linear reconstruction of the primitive variables (monotonised-central limiter), HLL
fluxes, SSP-RK2 (Heun) in time, the magnetic field on cell faces updated by constrained transport with
edge EMFs that are arithmetic means of the face fluxes (Balsara & Spicer 1999), so div B stays at
round-off. Unsplit in 1, 2 or 3 dimensions: an axis of one cell is inactive.

Code units: box length 1, isothermal sound speed ``cs`` (default 1), mean density 1; B in
Heaviside-Lorentz units (magnetic pressure B^2 / 2, Alfven speed |B| / sqrt(rho)), as Athena++.
Cosmic rays: p_c = e_c / 3 (gamma_c = 4/3) enters the total pressure and the fast speed; the CR fluid
is advected as its entropy s = p_c^(3/4), conserved along the flow (ds/dt + div(s v) = 0 is the adiabatic
pdV work exactly, and CRs, being collisionless, gain no entropy at shocks). Transport along B (diffusion,
streaming) is operator-split in :mod:`skymorph.grid.cosmic_rays`.

Arrays are (nz, ny, nx) with x the last axis; face field ``b[d]`` sits on the lower face of each cell
along axis d (x at i - 1/2, ...). Sweeps run on "pencils": the swept direction moved to the last, contiguous
axis. The HLL sweep exists twice from the same scalar functions: a numba kernel (fused, threaded over
rows) and plain numpy with ``np.roll`` (the benchmark's reference).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange
from numba.extending import register_jitable

__all__ = ["GAMMA_CR", "State", "cell_field", "primitives", "time_step", "divergence", "fluxes", "rhs",
           "rk2_step", "KERNELS", "total"]

GAMMA_CR = 4.0 / 3.0
KERNELS = ("numba", "numpy")


@dataclass
class State:
    """Conserved cell variables ``u`` (5, nz, ny, nx): rho, rho v_x, rho v_y, rho v_z, CR entropy
    s = p_c^(3/4); face fields ``b`` (3, nz, ny, nx); time ``t``; grid spacing ``dx`` (box / n)."""

    u: np.ndarray
    b: np.ndarray
    dx: float
    t: float = 0.0

    def copy(self) -> "State":
        return State(self.u.copy(), self.b.copy(), self.dx, self.t)


def _axis(d: int) -> int:
    """Array axis of direction d (x, y, z = 0, 1, 2)."""
    return 2 - d


def active(shape) -> tuple[bool, bool, bool]:
    """Which of x, y, z have more than one cell."""
    return tuple(shape[_axis(d)] > 1 for d in range(3))


def cell_field(b: np.ndarray) -> np.ndarray:
    """Cell-centred B (3, nz, ny, nx): the mean of each component's two faces."""
    return np.stack([0.5 * (b[d] + np.roll(b[d], -1, _axis(d))) for d in range(3)])


def divergence(b: np.ndarray, dx: float) -> np.ndarray:
    """div B per cell from the face fields (exactly what constrained transport preserves)."""
    return sum(np.roll(b[d], -1, _axis(d)) - b[d] for d in range(3)) / dx


def primitives(state: State) -> np.ndarray:
    """(8, nz, ny, nx): rho, v_x, v_y, v_z, B_x, B_y, B_z (cell-centred), s."""
    u = state.u
    return np.concatenate([u[:1], u[1:4] / u[:1], cell_field(state.b), u[4:5]])


def total(state: State) -> dict:
    """Box totals: mass, momentum (3,), CR entropy; the quantities the scheme conserves to round-off."""
    vol = state.dx ** sum(active(state.u.shape[1:]))
    return {"mass": state.u[0].sum() * vol, "momentum": state.u[1:4].sum(axis=(1, 2, 3)) * vol,
            "cr_entropy": state.u[4].sum() * vol}


@register_jitable
def _mc(dl, dr):
    """Monotonised-central limited slope from the left and right differences."""
    return 0.5 * (np.sign(dl) + np.sign(dr)) * np.minimum(np.minimum(2.0 * np.abs(dl), 2.0 * np.abs(dr)),
                                                         0.5 * np.abs(dl + dr))


@register_jitable
def _fast(rho, pc, bn, bt1, bt2, cs2):
    """Fast magnetosonic speed with the CR pressure's contribution gamma_c p_c / rho."""
    a2 = cs2 + GAMMA_CR * pc / rho
    b2 = (bn * bn + bt1 * bt1 + bt2 * bt2) / rho
    s = a2 + b2
    return np.sqrt(0.5 * (s + np.sqrt(np.maximum(s * s - 4.0 * a2 * bn * bn / rho, 0.0))))


@register_jitable
def _mix(fl, fr, ul, ur, sl, sr):
    """HLL flux from the two states' fluxes and conserved values, with sl <= 0 <= sr."""
    return (sr * fl - sl * fr + sl * sr * (ur - ul)) / (sr - sl)


@register_jitable
def _hll(rl, vnl, vt1l, vt2l, bt1l, bt2l, sl, rr, vnr, vt1r, vt2r, bt1r, bt2r, sr, bn, cs2):
    """HLL fluxes (rho, m_n, m_t1, m_t2, B_t1, B_t2, s) across a face with normal field bn."""
    pcl = sl * np.cbrt(sl)
    pcr = sr * np.cbrt(sr)
    cfl = _fast(rl, pcl, bn, bt1l, bt2l, cs2)
    cfr = _fast(rr, pcr, bn, bt1r, bt2r, cs2)
    lo = np.minimum(np.minimum(vnl - cfl, vnr - cfr), 0.0)
    hi = np.maximum(np.maximum(vnl + cfl, vnr + cfr), 0.0)
    ptl = rl * cs2 + pcl + 0.5 * (bn * bn + bt1l * bt1l + bt2l * bt2l)
    ptr = rr * cs2 + pcr + 0.5 * (bn * bn + bt1r * bt1r + bt2r * bt2r)
    return (_mix(rl * vnl, rr * vnr, rl, rr, lo, hi),
            _mix(rl * vnl * vnl + ptl - bn * bn, rr * vnr * vnr + ptr - bn * bn, rl * vnl, rr * vnr, lo, hi),
            _mix(rl * vnl * vt1l - bn * bt1l, rr * vnr * vt1r - bn * bt1r, rl * vt1l, rr * vt1r, lo, hi),
            _mix(rl * vnl * vt2l - bn * bt2l, rr * vnr * vt2r - bn * bt2r, rl * vt2l, rr * vt2r, lo, hi),
            _mix(vnl * bt1l - vt1l * bn, vnr * bt1r - vt1r * bn, bt1l, bt1r, lo, hi),
            _mix(vnl * bt2l - vt2l * bn, vnr * bt2r - vt2r * bn, bt2l, bt2r, lo, hi),
            _mix(sl * vnl, sr * vnr, sl, sr, lo, hi))


def _order(d: int) -> list[int]:
    """Primitive indices in the face frame of direction d: rho, v_n, v_t1, v_t2, B_t1, B_t2, s."""
    return [0, 1 + d, 1 + (d + 1) % 3, 1 + (d + 2) % 3, 4 + (d + 1) % 3, 4 + (d + 2) % 3, 7]


def to_pencils(a: np.ndarray, d: int, lead: int = 1) -> np.ndarray:
    """``a`` (lead axes, nz, ny, nx) with direction d moved to the last axis, contiguous: every kernel
    then sweeps along its last axis (rows are contiguous, neighbours are i +- 1)."""
    return np.ascontiguousarray(np.moveaxis(a, lead + _axis(d), -1))


def from_pencils(a: np.ndarray, d: int, lead: int = 1) -> np.ndarray:
    return np.moveaxis(a, -1, lead + _axis(d))


@register_jitable
def _left_right(w, v, a, b, im2, im1, i, ip1):
    """Left and right states of variable v at the lower face of cell i of row (a, b)."""
    m2, m1, c, p1 = w[v, a, b, im2], w[v, a, b, im1], w[v, a, b, i], w[v, a, b, ip1]
    return m1 + 0.5 * _mc(m1 - m2, c - m1), c - 0.5 * _mc(c - m1, p1 - c)


@njit(parallel=True, cache=True, fastmath=True)
def _sweep_numba(w, bn, cs2, out):
    """HLL fluxes through the lower faces along the last axis; w, out (7, A, B, n) in face-frame order."""
    na, nb, n = w.shape[1], w.shape[2], w.shape[3]
    for row in prange(na * nb):
        a, b = row // nb, row % nb
        for i in range(n):
            im2 = i - 2 if i >= 2 else i - 2 + n
            im1 = i - 1 if i >= 1 else n - 1
            ip1 = i + 1 if i < n - 1 else 0
            rl, rr = _left_right(w, 0, a, b, im2, im1, i, ip1)
            vnl, vnr = _left_right(w, 1, a, b, im2, im1, i, ip1)
            v1l, v1r = _left_right(w, 2, a, b, im2, im1, i, ip1)
            v2l, v2r = _left_right(w, 3, a, b, im2, im1, i, ip1)
            b1l, b1r = _left_right(w, 4, a, b, im2, im1, i, ip1)
            b2l, b2r = _left_right(w, 5, a, b, im2, im1, i, ip1)
            sl, sr = _left_right(w, 6, a, b, im2, im1, i, ip1)
            f = _hll(rl, vnl, v1l, v2l, b1l, b2l, sl, rr, vnr, v1r, v2r, b1r, b2r, sr, bn[a, b, i], cs2)
            out[0, a, b, i] = f[0]
            out[1, a, b, i] = f[1]
            out[2, a, b, i] = f[2]
            out[3, a, b, i] = f[3]
            out[4, a, b, i] = f[4]
            out[5, a, b, i] = f[5]
            out[6, a, b, i] = f[6]


def _sweep_numpy(w, bn, cs2, out):
    m1, m2, p1 = np.roll(w, 1, -1), np.roll(w, 2, -1), np.roll(w, -1, -1)
    left, right = m1 + 0.5 * _mc(m1 - m2, w - m1), w - 0.5 * _mc(w - m1, p1 - w)
    for q, fq in enumerate(_hll(*left, *right, bn, cs2)):
        out[q] = fq


def fluxes(w: np.ndarray, b: np.ndarray, d: int, cs2: float = 1.0, kernel: str = "numba") -> np.ndarray:
    """HLL fluxes (7, nz, ny, nx) through the lower faces along d in the face frame: rho, m_n, m_t1,
    m_t2, B_t1, B_t2, s (t1 = d + 1, t2 = d + 2 cyclically)."""
    rotated = to_pencils(w[_order(d)], d)
    f = np.empty_like(rotated)
    (_sweep_numba if kernel == "numba" else _sweep_numpy)(rotated, to_pencils(b[d], d, 0), cs2, f)
    return from_pencils(f, d)


def _emf(f: dict, c: int, shape) -> np.ndarray:
    """Edge EMF E_c on the (a, b) corner of each cell, (a, b, c) cyclic: the mean of the face fluxes
    -F^a[B_b] (B_t1 of a) averaged over b and F^b[B_a] (B_t2 of b) averaged over a; inactive
    directions drop out."""
    a, b = (c + 1) % 3, (c + 2) % 3
    terms = []
    if a in f:
        terms.append(-0.5 * (f[a][4] + np.roll(f[a][4], 1, _axis(b))))
    if b in f:
        terms.append(0.5 * (f[b][5] + np.roll(f[b][5], 1, _axis(a))))
    return sum(terms) / len(terms) if terms else np.zeros(shape)


def rhs(state: State, cs2: float = 1.0, kernel: str = "numba") -> tuple[np.ndarray, np.ndarray]:
    """Time derivatives of the cell variables and the face fields."""
    w = primitives(state)
    dims = [d for d, on in enumerate(active(state.u.shape[1:])) if on]
    f = {d: fluxes(w, state.b, d, cs2, kernel) for d in dims}
    du = np.zeros_like(state.u)
    for d in dims:
        ax = _axis(d)
        for slot, var in ((0, 0), (1, 1 + d), (2, 1 + (d + 1) % 3), (3, 1 + (d + 2) % 3), (6, 4)):
            du[var] -= (np.roll(f[d][slot], -1, ax) - f[d][slot]) / state.dx
    e = [_emf(f, c, state.b.shape[1:]) for c in range(3)]
    db = np.empty_like(state.b)
    for a in range(3):
        b, c = (a + 1) % 3, (a + 2) % 3
        curl = (np.roll(e[c], -1, _axis(b)) - e[c]) - (np.roll(e[b], -1, _axis(c)) - e[b])
        db[a] = -curl / state.dx
    return du, db


def time_step(state: State, cfl: float, cs2: float = 1.0) -> float:
    """CFL time step: cfl * dx / max(|v_d| + c_fast,d) over cells and active directions."""
    w = primitives(state)
    pc = w[7] ** (4.0 / 3.0)
    speed = 0.0
    for d, on in enumerate(active(state.u.shape[1:])):
        if on:
            t1, t2 = 4 + (d + 1) % 3, 4 + (d + 2) % 3
            speed = max(speed, float(np.max(np.abs(w[1 + d]) + _fast(w[0], pc, w[4 + d], w[t1], w[t2], cs2))))
    return cfl * state.dx / speed


def rk2_step(state: State, dt: float, cs2: float = 1.0, kernel: str = "numba") -> State:
    """One SSP-RK2 (Heun) step of the ideal MHD + CR advection equations."""
    du, db = rhs(state, cs2, kernel)
    mid = State(state.u + dt * du, state.b + dt * db, state.dx, state.t + dt)
    du2, db2 = rhs(mid, cs2, kernel)
    return State(0.5 * (state.u + mid.u + dt * du2), 0.5 * (state.b + mid.b + dt * db2), state.dx, state.t + dt)
