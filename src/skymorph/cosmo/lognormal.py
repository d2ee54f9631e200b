"""Shifted-lognormal convergence maps: the fast, non-Gaussian simulator of ``skymorph lensing maps
--simulator lognormal`` (the particle-mesh runs stay the accurate one).

A map is

    kappa = lambda (exp(g - sigma_g^2 / 2) - 1),

with g a zero-mean Gaussian field of variance sigma_g^2, so <kappa> = 0 and kappa > -lambda
(Hilbert, Hartlap & Schneider 2011, A&A 536, A85; Xavier, Abdalla & Joachimi 2016, MNRAS 459,
3693). The two-point function of kappa is xi_kappa = lambda^2 (exp(xi_g) - 1), so g gets the
correlation function xi_g = ln(1 + xi_kappa / lambda^2) of the target.

Target and transforms (flat sky, on the periodic map grid itself): the target C_ell is the Limber
convergence spectrum of the linear matter power (:func:`skymorph.cosmo.lensing.kappa_power_limber`)
for the map's cosmology and source redshift, evaluated at the |ell| of every Fourier mode of the
npix x npix grid (ell = 0 set to zero). Its inverse FFT is the correlation function of the
pixelised spectrum at the pixel separations, xi_kappa = IFFT[C_ell] / A_pix; the log transform
gives xi_g; its FFT gives the Gaussian spectrum P_g = A_pix FFT[xi_g]. P_g can come out slightly
negative at a few modes (the lognormal transform of an arbitrary spectrum need not be a valid
spectrum); those values are clipped to zero, and sigma_g^2 is the variance of the clipped spectrum,
so the mean stays exactly zero in expectation while the power at the clipped modes is a little
above the target. Because everything lives on the same periodic grid, the expected power of the
maps at each grid mode equals the target C_ell (up to that clipping): no extra pixel window,
no aliasing from beyond the Nyquist frequency (as the Fourier-sampled PM maps).

Shift lambda: the fit of Hilbert et al. (2011) to the Millennium Simulation
convergence (Omega_m = 0.25, sigma8 = 0.9),

    kappa_0(z_s) = 0.008 z_s + 0.029 z_s^2 - 0.0079 z_s^3 + 0.00065 z_s^4,

carried to other Omega_m by the ratio of empty-beam convergences, lambda(z_s, Omega_m) =
kappa_0(z_s) |kappa_empty(z_s; Omega_m)| / |kappa_empty(z_s; 0.25)|, where kappa_empty =
-int q(chi) dchi is the convergence of a beam with delta = -1 (the physical lower bound of kappa;
|kappa_empty| is about 2 lambda at z_s = 1 and scales nearly as Omega_m). lambda does not depend
on sigma8. A test compares the maps' reduced skewness <kappa^3> / <kappa^2>^2 with that of PM maps
of the same cosmology (tests/test_lensing_campaign.py: within a factor 1.5; measured ~91 against
~76 for a 32^3 PM mesh and ~98 for a 64^3 one).

Speed: the Limber integral is the costly part (tens of ms per cosmology), so for a campaign over a
range of Omega_m it is tabulated once on a grid of Omega_m (spacing <= 0.01, sigma8 = 1) at the
grid's distinct |ell| and interpolated (cubic spline in Omega_m of ln C_ell, relative error below
1e-6); sigma8 enters exactly as the factor sigma8^2 of linear theory. Per map there remain three
small FFTs; the Gaussian spectrum of a cosmology is cached, so fixed-cosmology campaigns pay once.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.integrate
from scipy.interpolate import CubicSpline

from skymorph.cosmo.lensing import kappa_power_limber
from skymorph.cosmo.linear import Cosmology
from skymorph.errors import ConfigError

__all__ = ["SHIFT_MODEL", "hilbert_shift", "empty_beam_convergence", "shift_parameter", "grid_ells", "target_power",
           "gaussian_power", "lognormal_maps"]

SHIFT_MODEL = ("Hilbert, Hartlap & Schneider 2011 (A&A 536, A85) fit kappa_0(z_s), scaled by the empty-beam "
               "convergence ratio |kappa_empty(z_s; Omega_m)| / |kappa_empty(z_s; 0.25)|")
_H11_OMEGA_M = 0.25  # the Millennium Simulation cosmology of the Hilbert et al. (2011) fit
_OM_STEP = 0.01  # Omega_m spacing of the C_ell tables


def hilbert_shift(z_source) -> np.ndarray:
    """Hilbert, Hartlap & Schneider (2011) fit of the lognormal convergence shift kappa_0(z_s) for the
    Millennium Simulation cosmology (Omega_m = 0.25, sigma8 = 0.9)."""
    z = np.asarray(z_source, dtype=float)
    return 0.008 * z + 0.029 * z**2 - 0.0079 * z**3 + 0.00065 * z**4


@lru_cache(maxsize=4096)
def empty_beam_convergence(z_source: float, omega_m: float) -> float:
    """|kappa_empty| = int_0^chi_s q(chi) dchi, minus the convergence of an empty beam (delta = -1), with
    the Born kernel q of :func:`skymorph.cosmo.lensing.lensing_weight`: in redshift,
    3/2 Omega_m int_0^z_s chi (chi_s - chi) / chi_s (1 + z) dz / E(z) (chi in units of c / H0, flat
    LCDM without radiation; trapezoid rule on 1001 redshifts, relative error ~2e-6)."""
    z = np.linspace(0.0, float(z_source), 1001)
    inv_e = 1.0 / np.sqrt(omega_m * (1.0 + z) ** 3 + 1.0 - omega_m)
    chi = scipy.integrate.cumulative_trapezoid(inv_e, z, initial=0.0)
    return float(1.5 * omega_m * scipy.integrate.trapezoid(chi * (chi[-1] - chi) / chi[-1] * (1.0 + z) * inv_e, z))


def shift_parameter(z_source: float, omega_m: float) -> float:
    """The shift lambda of the module docstring: Hilbert et al. (2011) scaled by the empty-beam ratio."""
    if not z_source > 0:
        raise ConfigError(f"--z-source {z_source:g}: must be positive")
    z, om = float(z_source), float(omega_m)
    return float(hilbert_shift(z) * empty_beam_convergence(z, om) / empty_beam_convergence(z, _H11_OMEGA_M))


@lru_cache(maxsize=16)
def grid_ells(npix: int, field_deg: float):
    """|ell| of the rfft2 half-plane of an npix x npix map of side ``field_deg``: the distinct
    values (ascending, 0 first) and, per mode, the index into them."""
    pixel_rad = math.radians(field_deg) / npix
    f = 2.0 * math.pi / (npix * pixel_rad)
    ny = np.fft.fftfreq(npix, 1.0 / npix)
    nx = np.arange(npix // 2 + 1)
    n2 = (ny[:, None] ** 2 + nx[None, :] ** 2).astype(np.int64)
    uniq, inv = np.unique(n2, return_inverse=True)
    ell = f * np.sqrt(uniq.astype(float))
    ell.setflags(write=False)
    inv = inv.reshape(n2.shape)
    inv.setflags(write=False)
    return ell, inv


class _ClTable:
    """ln C_ell(Omega_m; sigma8 = 1) at the grid's distinct ell > 0, splined in Omega_m."""

    def __init__(self, z_source: float, npix: int, field_deg: float, om_lo: float, om_hi: float):
        self.lo, self.hi = om_lo, om_hi
        ell = grid_ells(npix, field_deg)[0][1:]
        n = 1 if om_hi == om_lo else max(4, math.ceil((om_hi - om_lo) / _OM_STEP) + 1)
        self.nodes = np.linspace(om_lo, om_hi, n)
        lncl = np.log(np.stack([kappa_power_limber(ell, Cosmology(float(om), 1.0), z_source) for om in self.nodes]))
        self.spline = None if n == 1 else CubicSpline(self.nodes, lncl, axis=0)
        self.lncl = lncl

    def __call__(self, omega_m: float) -> np.ndarray:
        if not self.lo - 1e-12 <= omega_m <= self.hi + 1e-12:
            raise ConfigError(f"Omega_m = {omega_m:g} is outside the tabulated range [{self.lo:g}, {self.hi:g}]")
        return np.exp(self.lncl[0] if self.spline is None else self.spline(omega_m))


@lru_cache(maxsize=8)
def _table(z_source: float, npix: int, field_deg: float, om_lo: float, om_hi: float) -> _ClTable:
    return _ClTable(z_source, npix, field_deg, om_lo, om_hi)


def target_power(omega_m: float, sigma8: float, z_source: float, npix: int, field_deg: float,
                 omega_m_range=None) -> np.ndarray:
    """Target C_ell at every rfft2 mode of the grid ((npix, npix // 2 + 1), zero at ell = 0).
    ``omega_m_range`` (lo, hi): interpolate in the table of that range (default: exact, a table of
    the single value)."""
    lo, hi = (omega_m, omega_m) if omega_m_range is None else (float(omega_m_range[0]), float(omega_m_range[1]))
    cl = np.concatenate([[0.0], float(sigma8) ** 2 * _table(float(z_source), int(npix), float(field_deg),
                                                             lo, hi)(float(omega_m))])
    return cl[grid_ells(npix, field_deg)[1]]


@lru_cache(maxsize=64)
def _gaussian_power_cached(omega_m, sigma8, z_source, npix, field_deg, lo, hi, shift):
    cl = target_power(omega_m, sigma8, z_source, npix, field_deg, (lo, hi))
    area = (math.radians(field_deg) / npix) ** 2
    xi = scipy.fft.irfft2(cl, s=(npix, npix)) / area
    if np.any(1.0 + xi / shift**2 <= 0):
        raise ConfigError(f"lognormal: the target correlation reaches -lambda^2 (lambda = {shift:g}); "
                          f"the shift is too small for this spectrum")
    xi_g = np.log1p(xi / shift**2)
    pg = scipy.fft.rfft2(xi_g).real * area
    pg = np.clip(pg, 0.0, None)
    # variance of the clipped spectrum: sum over the full plane (rfft half, doubled away from the edges)
    w = np.full(pg.shape, 2.0)
    w[:, 0] = 1.0
    if npix % 2 == 0:
        w[:, -1] = 1.0
    var_g = float((w * pg).sum() / (npix * npix * area))
    amp = np.sqrt(pg / area)
    amp.setflags(write=False)
    return amp, var_g


def gaussian_power(omega_m: float, sigma8: float, z_source: float, npix: int, field_deg: float, shift: float,
                   omega_m_range=None):
    """The Gaussian field's spectrum as the rfft2 amplitude sqrt(P_g / A_pix) ((npix, npix // 2 + 1),
    negative P_g clipped to zero) and its variance sigma_g^2 (module docstring)."""
    lo, hi = (omega_m, omega_m) if omega_m_range is None else omega_m_range
    return _gaussian_power_cached(float(omega_m), float(sigma8), float(z_source), int(npix), float(field_deg),
                                  float(lo), float(hi), float(shift))


def lognormal_maps(omega_m, sigma8, rngs, z_source: float = 1.0, field_deg: float = 5.0, npix: int = 128,
                   omega_m_range=None, shift=None):
    """Draw one shifted-lognormal convergence map per entry of the ``omega_m`` and ``sigma8`` arrays.

    ``rngs``: one seed (int) or ``numpy.random.Generator`` per map; map i uses only its own
    generator (npix^2 standard normals), so it does not depend on the other maps. ``omega_m_range``
    (lo, hi) covering every value: the Omega_m range of the C_ell table (default: the values' own
    min and max; pass it fixed so a map does not depend on its batch). ``shift``: lambda per map
    (default :func:`shift_parameter` of each map's Omega_m).
    Returns ``(kappa (N, npix, npix) float64, shift (N,))``.
    """
    om = np.atleast_1d(np.asarray(omega_m, dtype=float))
    s8 = np.atleast_1d(np.asarray(sigma8, dtype=float))
    if om.shape != s8.shape or len(rngs) != len(om):
        raise ConfigError(f"lognormal_maps: {len(om)} Omega_m, {len(s8)} sigma8 and {len(rngs)} seeds must match")
    if npix < 2 or not 0 < field_deg < 90:
        raise ConfigError(f"--npix {npix} / --field-deg {field_deg}: need npix >= 2 and 0 < field < 90 deg")
    for o, s in {(float(o), float(s)) for o, s in zip(om, s8)}:
        Cosmology(o, s)
    rng_range = (float(om.min()), float(om.max())) if omega_m_range is None else omega_m_range
    shifts = (np.array([shift_parameter(z_source, o) for o in om]) if shift is None
              else np.broadcast_to(np.asarray(shift, dtype=float), om.shape).copy())
    if not np.all(shifts > 0):
        raise ConfigError("lognormal: the shift lambda must be positive")
    out = np.empty((len(om), npix, npix))
    for i, (o, s, lam) in enumerate(zip(om, s8, shifts)):
        r = rngs[i] if isinstance(rngs[i], np.random.Generator) else np.random.default_rng(int(rngs[i]))
        amp, var_g = gaussian_power(o, s, z_source, npix, field_deg, lam, rng_range)
        g = scipy.fft.irfft2(scipy.fft.rfft2(r.standard_normal((npix, npix))) * amp, s=(npix, npix))
        out[i] = lam * np.expm1(g - 0.5 * var_g)
    return out, shifts
