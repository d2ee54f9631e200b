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
anisotropic diffusion from creating new extrema). The explicit step is limited to
dx^2 / (4 ndim kappa_eff), kappa_eff = kappa + gamma_c v_A h for streaming; longer steps are subcycled.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.extending import register_jitable

from .mhd import GAMMA_CR, KERNELS, _axis, active, shift

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


def _faces_numpy(ec, bc, rho, d, dims, dx, kappa, stream, h, out):
    ax = _axis(d)
    lower = lambda a: np.roll(a, 1, ax)  # noqa: E731  (the cell below along d)
    bf = 0.5 * (bc + np.roll(bc, 1, ax + 1))
    g = []
    for t in ((d + 1) % 3, (d + 2) % 3):
        if t in dims:
            at = _axis(t)
            up, down = (np.roll(ec, -1, at) - ec) / dx, (ec - np.roll(ec, 1, at)) / dx
            g.append(_minmod4(up, down, lower(up), lower(down)))
        else:
            g.append(0.0)
    out[...] = _face_flux(lower(ec), ec, bf[d], bf[(d + 1) % 3], bf[(d + 2) % 3], g[0], g[1], lower(rho), rho,
                          kappa, stream, h, dx)


@register_jitable
def _transverse(ec, c, lo, t, on, nz, ny, nx, dx):
    """Limited gradient of e_c along t at the face between cells lo and c (0 if t is inactive)."""
    if not on:
        return 0.0
    cu = shift(c[0], c[1], c[2], t, 1, nz, ny, nx)
    cd = shift(c[0], c[1], c[2], t, -1, nz, ny, nx)
    lu = shift(lo[0], lo[1], lo[2], t, 1, nz, ny, nx)
    ld = shift(lo[0], lo[1], lo[2], t, -1, nz, ny, nx)
    e_c, e_lo = ec[c[0], c[1], c[2]], ec[lo[0], lo[1], lo[2]]
    return _minmod4((ec[cu[0], cu[1], cu[2]] - e_c) / dx, (e_c - ec[cd[0], cd[1], cd[2]]) / dx,
                    (ec[lu[0], lu[1], lu[2]] - e_lo) / dx, (e_lo - ec[ld[0], ld[1], ld[2]]) / dx)


@njit(parallel=True, cache=True, fastmath=True)
def _faces_numba(ec, bc, rho, d, on, dx, kappa, stream, h, out):
    nz, ny, nx = ec.shape
    t1, t2 = (d + 1) % 3, (d + 2) % 3
    for row in prange(nz * ny):
        for i in range(nx):
            _face_cell(ec, bc, rho, d, t1, t2, on, dx, kappa, stream, h, out, (row // ny, row % ny, i), nz, ny, nx)


@register_jitable
def _face_cell(ec, bc, rho, d, t1, t2, on, dx, kappa, stream, h, out, c, nz, ny, nx):
    lo = shift(c[0], c[1], c[2], d, -1, nz, ny, nx)
    bn = 0.5 * (bc[d, c[0], c[1], c[2]] + bc[d, lo[0], lo[1], lo[2]])
    b1 = 0.5 * (bc[t1, c[0], c[1], c[2]] + bc[t1, lo[0], lo[1], lo[2]])
    b2 = 0.5 * (bc[t2, c[0], c[1], c[2]] + bc[t2, lo[0], lo[1], lo[2]])
    out[c[0], c[1], c[2]] = _face_flux(
        ec[lo[0], lo[1], lo[2]], ec[c[0], c[1], c[2]], bn, b1, b2,
        _transverse(ec, c, lo, t1, on[t1], nz, ny, nx, dx), _transverse(ec, c, lo, t2, on[t2], nz, ny, nx, dx),
        rho[lo[0], lo[1], lo[2]], rho[c[0], c[1], c[2]], kappa, stream, h, dx)


def _rate(ec, bc, rho, dx, kappa, stream, h, kernel="numba"):
    """d e_c / dt from diffusion and streaming."""
    on = active(ec.shape)
    dims = [d for d in range(3) if on[d]]
    rate = np.zeros_like(ec)
    flux = np.empty_like(ec)
    for d in dims:
        if kernel == "numba":
            _faces_numba(ec, bc, rho, d, np.array(on), dx, kappa, stream, h, flux)
        else:
            _faces_numpy(ec, bc, rho, d, dims, dx, kappa, stream, h, flux)
        rate -= (np.roll(flux, -1, _axis(d)) - flux) / dx
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


def transport(ec: np.ndarray, bc: np.ndarray, rho: np.ndarray, dt: float, dx: float, kappa: float = 0.0,
              stream: bool = False, smoothing: float = 8.0, kernel: str = "numba") -> tuple[np.ndarray, int]:
    """Advance e_c by dt (code units) with diffusion coefficient ``kappa`` along B and optional
    streaming (regularisation length ``smoothing`` cells); returns e_c (floored at 0) and the substeps."""
    if kappa < 0 or kernel not in KERNELS:
        raise ValueError(f"kappa {kappa:g} must be >= 0, kernel {kernel!r} one of {KERNELS}")
    if kappa == 0 and not stream:
        return ec, 0
    h = smoothing * dx
    n = max(1, math.ceil(dt / substep_limit(bc, rho, dx, kappa, stream, h)))
    for _ in range(n):
        ec = np.maximum(ec + dt / n * _rate(ec, bc, rho, dx, kappa, stream, h, kernel), 0.0)
    return ec, n
