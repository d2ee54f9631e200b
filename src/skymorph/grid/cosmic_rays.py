"""Cosmic-ray transport along the magnetic field: diffusion and streaming, explicit and subcycled.

Both act on the CR energy density e_c through face fluxes (so e_c is conserved by diffusion to
round-off) and are operator-split from the MHD step (:mod:`skymorph.grid.mhd`):

- diffusion along B: F = -kappa b (b . grad e_c), b = B / |B|;
- streaming at the Alfven speed down the CR gradient, regularised as Sharma, Colella & Martin (2009):
  F = -gamma_c e_c v_A b tanh(h (b . grad e_c) / e_c), with the energy loss to the gas
  v_st . grad p_c = -(v_A / 3) (b . grad e_c) tanh(h (b . grad e_c) / e_c) <= 0 per cell (the gas is
  isothermal, so the heat it receives is radiated); h (``smoothing`` cells) sets the regularisation.

On each face the gradient normal to it is the two-cell difference and each transverse one the minmod of
the four one-sided differences around the face (the limiter of Sharma & Hammett 2007, which keeps
anisotropic diffusion from creating new extrema). The forward-Euler step is limited to
dx^2 / (4 ndim kappa_eff), kappa_eff = kappa + gamma_c v_A h for streaming; a longer step is one RKL2
super-time-step (Meyer, Balsara & Aslam 2014, as Athena++ uses for parabolic terms) of s stages,
s ~ sqrt(8 dt / dt_explicit) instead of dt / dt_explicit substeps.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.extending import register_jitable

from .mhd import GAMMA_CR, KERNELS, _axis, active, from_pencils, to_pencils

__all__ = ["transport", "substep_limit"]

_TINY = 1e-300


@register_jitable
def _minmod4(a, b, c, d):
    """The smallest of four differences if they share a sign, else 0."""
    return (np.maximum(np.minimum(np.minimum(a, b), np.minimum(c, d)), 0.0)
            + np.minimum(np.maximum(np.maximum(a, b), np.maximum(c, d)), 0.0))


@register_jitable
def _face_flux(ec_lo, ec_hi, bn, bt1, bt2, g_t1, g_t2, rho_lo, rho_hi, kappa, stream, h, dx):
    """CR energy flux through a face: ec and rho of the cells below and above it, the face field
    (normal, two transverse), the limited transverse gradients of e_c."""
    bmag = np.sqrt(bn * bn + bt1 * bt1 + bt2 * bt2)
    inv = 1.0 / np.maximum(bmag, _TINY)
    grad = (bn * (ec_hi - ec_lo) / dx + bt1 * g_t1 + bt2 * g_t2) * inv
    flux = -kappa * bn * inv * grad
    if stream:
        ecf = 0.5 * (ec_lo + ec_hi)
        va = bmag / np.sqrt(0.5 * (rho_lo + rho_hi))
        flux = flux - GAMMA_CR * ecf * va * bn * inv * np.tanh(h * grad / np.maximum(ecf, _TINY))
    return flux


@register_jitable
def _transverse(ec, a, b, i, im, ap, am, bp, bm, dx):
    """The limited gradients of e_c along the rows' two other axes at the face between cells im and i."""
    g0 = _minmod4((ec[ap, b, i] - ec[a, b, i]) / dx, (ec[a, b, i] - ec[am, b, i]) / dx,
                  (ec[ap, b, im] - ec[a, b, im]) / dx, (ec[a, b, im] - ec[am, b, im]) / dx)
    g1 = _minmod4((ec[a, bp, i] - ec[a, b, i]) / dx, (ec[a, b, i] - ec[a, bm, i]) / dx,
                  (ec[a, bp, im] - ec[a, b, im]) / dx, (ec[a, b, im] - ec[a, bm, im]) / dx)
    return g0, g1


@njit(parallel=True, cache=True, fastmath=True)
def _faces_numba(ec, bc, rho, swap, dx, kappa, stream, h, out):
    """Fluxes through the lower faces along the last axis of pencils ec, rho (A, B, n), bc (3, A, B, n)
    holding (B_n, B_t1, B_t2); t1 lies along axis 0 of the rows unless ``swap``."""
    na, nb, n = ec.shape
    for row in prange(na * nb):
        a, b = row // nb, row % nb
        ap, am = (a + 1 if a < na - 1 else 0), (a - 1 if a > 0 else na - 1)
        bp, bm = (b + 1 if b < nb - 1 else 0), (b - 1 if b > 0 else nb - 1)
        for i in range(n):
            im = i - 1 if i > 0 else n - 1
            g0, g1 = _transverse(ec, a, b, i, im, ap, am, bp, bm, dx)
            out[a, b, i] = _face_flux(ec[a, b, im], ec[a, b, i], 0.5 * (bc[0, a, b, i] + bc[0, a, b, im]),
                                      0.5 * (bc[1, a, b, i] + bc[1, a, b, im]), 0.5 * (bc[2, a, b, i] + bc[2, a, b, im]),
                                      g1 if swap else g0, g0 if swap else g1, rho[a, b, im], rho[a, b, i],
                                      kappa, stream, h, dx)


def _faces_numpy(ec, bc, rho, swap, dx, kappa, stream, h, out):
    lower = lambda x: np.roll(x, 1, -1)  # noqa: E731  (the cell below along the row)
    g = []
    for ax in (0, 1):
        up, down = (np.roll(ec, -1, ax) - ec) / dx, (ec - np.roll(ec, 1, ax)) / dx
        g.append(_minmod4(up, down, lower(up), lower(down)))
    bf = 0.5 * (bc + lower(bc))
    out[...] = _face_flux(lower(ec), ec, bf[0], bf[1], bf[2], g[1] if swap else g[0], g[0] if swap else g[1],
                          lower(rho), rho, kappa, stream, h, dx)


def _rate(ec, bc, rho, dx, kappa, stream, h, kernel="numba"):
    """d e_c / dt from diffusion and streaming."""
    dims = [d for d, on in enumerate(active(ec.shape)) if on]
    rate = np.zeros_like(ec)
    for d in dims:
        t1, t2 = (d + 1) % 3, (d + 2) % 3
        rows = [a for a in range(3) if a != _axis(d)]  # the pencils' first two axes
        swap = rows.index(_axis(t1)) == 1
        e = to_pencils(ec, d, 0)
        flux = np.empty_like(e)
        (_faces_numba if kernel == "numba" else _faces_numpy)(
            e, to_pencils(bc[[d, t1, t2]], d), to_pencils(rho, d, 0), swap, dx, kappa, stream, h, flux)
        rate -= from_pencils((np.roll(flux, -1, -1) - flux) / dx, d, 0)
    if stream:
        bmag = np.sqrt((bc ** 2).sum(axis=0))
        bhat = bc / np.maximum(bmag, _TINY)
        grad = sum(bhat[d] * (np.roll(ec, -1, _axis(d)) - np.roll(ec, 1, _axis(d))) / (2 * dx) for d in dims)
        rate -= bmag / np.sqrt(rho) / 3.0 * grad * np.tanh(h * grad / np.maximum(ec, _TINY))
    return rate


def substep_limit(bc, rho, dx, kappa, stream, h) -> float:
    """Largest stable explicit transport step: dx^2 / (4 ndim kappa_eff)."""
    ndim = sum(active(rho.shape))
    k_eff = kappa + (GAMMA_CR * float(np.max(np.sqrt((bc ** 2).sum(axis=0) / rho))) * h if stream else 0.0)
    return math.inf if k_eff <= 0 else dx * dx / (4.0 * ndim * k_eff)


def rkl2_stages(ratio: float) -> int:
    """Stages s of RKL2 for a step ``ratio`` times the explicit limit: the least s >= 2 with
    (s^2 + s - 2) / 4 >= ratio."""
    return max(2, math.ceil((-1.0 + math.sqrt(9.0 + 16.0 * ratio)) / 2.0 - 1e-12))


def _rkl2(ec, rate, dt: float, s: int):
    """One RKL2 super-time-step of d e_c/dt = rate(e_c) over dt with s stages (Meyer, Balsara & Aslam
    2014): second order, stable for dt <= dt_explicit (s^2 + s - 2) / 4."""
    w = 4.0 / (s * s + s - 2.0)
    b = [1.0 / 3.0] * 3 + [(j * j + j - 2.0) / (2.0 * j * (j + 1.0)) for j in range(3, s + 1)]
    l0 = rate(ec)
    prev2, prev = ec, ec + b[1] * w * dt * l0
    for j in range(2, s + 1):
        mu = (2.0 * j - 1.0) / j * b[j] / b[j - 1]
        nu = -(j - 1.0) / j * b[j] / b[j - 2]
        step = (mu * prev + nu * prev2 + (1.0 - mu - nu) * ec + mu * w * dt * rate(prev)
                - (1.0 - b[j - 1]) * mu * w * dt * l0)
        prev2, prev = prev, step
    return prev


def transport(ec: np.ndarray, bc: np.ndarray, rho: np.ndarray, dt: float, dx: float, kappa: float = 0.0,
              stream: bool = False, smoothing: float = 8.0, kernel: str = "numba") -> tuple[np.ndarray, int]:
    """Advance e_c by dt (code units) with diffusion coefficient ``kappa`` along B and optional
    streaming (regularisation length ``smoothing`` cells): one forward-Euler step when dt is within the
    explicit limit, else one RKL2 super-time-step; returns e_c (floored at 0) and the stages used."""
    if kappa < 0 or kernel not in KERNELS:
        raise ValueError(f"kappa {kappa:g} must be >= 0, kernel {kernel!r} one of {KERNELS}")
    if kappa == 0 and not stream:
        return ec, 0
    h = smoothing * dx
    ratio = dt / substep_limit(bc, rho, dx, kappa, stream, h)
    rate = lambda e: _rate(e, bc, rho, dx, kappa, stream, h, kernel)  # noqa: E731
    if ratio <= 1.0:
        return np.maximum(ec + dt * rate(ec), 0.0), 1
    s = rkl2_stages(ratio)
    return np.maximum(_rkl2(ec, rate, dt, s), 0.0), s
