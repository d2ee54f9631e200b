"""Weak-lensing operators and theory on flat-sky maps (shared by the convergence-map generator and
mass mapping).

Conventions: a map is a tensor (..., H, W) indexed [y, x] on a square grid of pixel side
``pixel_rad`` radians; k1 is the wavenumber along x (last axis), k2 along y. Shear is complex,
gamma = gamma1 + i gamma2, and the Kaiser-Squires forward operator is, in Fourier space,

    gamma(k) = D(k) kappa(k),   D(k) = (k1^2 - k2^2 + 2 i k1 k2) / k^2,   D(0) = 0,

applied with periodic FFTs. |D| = 1 away from k = 0, so the inverse is kappa = D* gamma, returning
kappa_E + i kappa_B. Distances are comoving in Mpc/h.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.integrate
import torch
from astropy.cosmology import FlatLambdaCDM

from skymorph.cosmo.linear import Cosmology, growth_factor, linear_power
from skymorph.errors import ConfigError

__all__ = ["C_OVER_H0", "ARCMIN", "ks_forward", "ks_inverse", "shape_noise_std", "comoving_distance",
           "redshift_at_distance", "lensing_weight", "kappa_power_limber"]

C_OVER_H0 = 2997.92458  # Mpc/h
ARCMIN = math.pi / (180.0 * 60.0)  # radians


@lru_cache(maxsize=8)
def _ks_kernel(h: int, w: int, device, dtype) -> torch.Tensor:
    k2_ = torch.fft.fftfreq(h, device=device, dtype=dtype).view(h, 1)
    k1 = torch.fft.fftfreq(w, device=device, dtype=dtype).view(1, w)
    ksq = k1 * k1 + k2_ * k2_
    ksq_safe = torch.where(ksq > 0, ksq, torch.ones_like(ksq))
    d = torch.complex(k1 * k1 - k2_ * k2_, 2.0 * k1 * k2_) / ksq_safe
    return torch.where(ksq > 0, d, torch.zeros_like(d))


def _complex(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_complex() else torch.complex(x, torch.zeros_like(x))


def ks_forward(kappa: torch.Tensor) -> torch.Tensor:
    """Shear gamma1 + i gamma2 (complex, (..., H, W)) of a convergence map (real, or complex
    kappa_E + i kappa_B). The map mean (k = 0) does not contribute."""
    k = _complex(kappa)
    d = _ks_kernel(k.shape[-2], k.shape[-1], k.device, k.real.dtype)
    return torch.fft.ifft2(torch.fft.fft2(k) * d)


def ks_inverse(gamma: torch.Tensor) -> torch.Tensor:
    """Kaiser-Squires inversion: kappa_E + i kappa_B (complex, (..., H, W), zero mean) of a shear
    map gamma1 + i gamma2. Exact inverse of :func:`ks_forward` away from k = 0."""
    g = _complex(gamma)
    d = _ks_kernel(g.shape[-2], g.shape[-1], g.device, g.real.dtype)
    return torch.fft.ifft2(torch.fft.fft2(g) * d.conj())


def shape_noise_std(sigma_e: float, n_gal: float, pixel_arcmin: float) -> float:
    """Per-component shear noise of a pixel: sigma_e / sqrt(n_gal A_pix), with sigma_e the
    per-component ellipticity dispersion, n_gal in galaxies per arcmin^2, A_pix in arcmin^2."""
    if not (sigma_e >= 0 and n_gal > 0 and pixel_arcmin > 0):
        raise ConfigError(f"shape noise: need sigma_e >= 0 (got {sigma_e}), n_gal > 0 per arcmin^2 "
                          f"(got {n_gal}) and a positive pixel size")
    return float(sigma_e / math.sqrt(n_gal * pixel_arcmin**2))


@lru_cache(maxsize=16)
def _distance_table(omega_m: float, z_max: float = 20.0):
    """chi(z) in Mpc/h on 4001 redshifts in [0, z_max], from astropy with H0 = 100 and no radiation
    (the expansion history of :func:`skymorph.cosmo.linear.hubble_e`)."""
    z = np.linspace(0.0, z_max, 4001)
    chi = FlatLambdaCDM(H0=100.0, Om0=omega_m, Tcmb0=0.0).comoving_distance(z).value
    return z, chi


def comoving_distance(z, cosmo: Cosmology) -> np.ndarray:
    """Line-of-sight comoving distance chi(z) in Mpc/h (flat LCDM, radiation neglected)."""
    zg, chi = _distance_table(cosmo.params()["Omega_m"])
    z = np.asarray(z, dtype=float)
    if np.any(z < 0) or np.any(z > zg[-1]):
        raise ConfigError(f"redshift outside [0, {zg[-1]:g}]")
    return np.interp(z, zg, chi)


def redshift_at_distance(chi, cosmo: Cosmology) -> np.ndarray:
    """Inverse of :func:`comoving_distance` (Mpc/h -> z)."""
    zg, chig = _distance_table(cosmo.params()["Omega_m"])
    return np.interp(np.asarray(chi, dtype=float), chig, zg)


def lensing_weight(chi, chi_source: float, cosmo: Cosmology) -> np.ndarray:
    """Born lensing kernel q(chi) = 3/2 Omega_m (H0/c)^2 chi (chi_s - chi) / (chi_s a(chi)) in h/Mpc,
    so that kappa = int_0^chi_s q(chi) delta(chi theta, chi) dchi (zero beyond chi_s)."""
    chi = np.asarray(chi, dtype=float)
    a = 1.0 / (1.0 + redshift_at_distance(chi, cosmo))
    om = cosmo.params()["Omega_m"]
    q = 1.5 * om / C_OVER_H0**2 * chi * (chi_source - chi) / (chi_source * a)
    return np.where(chi < chi_source, q, 0.0)


def kappa_power_limber(ell, cosmo: Cosmology, z_source: float, wiggles: bool = True,
                       nodes: int = 256) -> np.ndarray:
    """Convergence power spectrum C_ell of the linear matter power in the flat-sky Limber
    approximation for a single source plane: C_ell = int_0^chi_s q(chi)^2 / chi^2
    D(a)^2 P_lin(ell / chi) dchi (Gauss-Legendre with ``nodes`` points, ``scipy.integrate.fixed_quad``)."""
    ell = np.atleast_1d(np.asarray(ell, dtype=float))
    chi_s = float(comoving_distance(z_source, cosmo))

    def integrand(chi):
        a = 1.0 / (1.0 + redshift_at_distance(chi, cosmo))
        d = growth_factor(torch.as_tensor(a), cosmo).detach().numpy()
        k = ell[:, None] / chi[None, :]
        p = linear_power(torch.as_tensor(k), cosmo, wiggles).detach().numpy()
        return (lensing_weight(chi, chi_s, cosmo) * d / chi) ** 2 * p

    return scipy.integrate.fixed_quad(integrand, 0.0, chi_s, n=nodes)[0]
