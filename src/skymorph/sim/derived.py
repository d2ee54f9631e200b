"""Derived physical fields of gas: HI mass and 21 cm brightness temperature (DESIGN.md section 3)."""
from __future__ import annotations

import numpy as np
from astropy import constants as const
from astropy import units as u
from astropy.cosmology import FLRW

from .units import X_H

HI_MODEL = "simple: M_HI = X_H m NeutralHydrogenAbundance"

#: 3 h c^3 A10 / (32 pi k_B nu21^2 m_H) [K (km/s/Mpc) per (Msun/Mpc^3)] — the physical 21 cm coefficient
_A10 = 2.85e-15 / u.s  # Einstein coefficient of the 21 cm transition (astropy has none)
_NU21 = 1420.405751768 * u.MHz
_T21_COEFF = 3 * const.h * const.c**3 * _A10 / (32 * np.pi * const.k_B * _NU21**2 * const.m_p)


#: T_b / [h (1+z)^2 H0/H(z) Omega_HI] [mK]: 3 h c^3 A10 / (32 pi k_B nu21^2 m_H) * 3 (100 km/s/Mpc) / (8 pi G),
#: ≈ 188.9 mK (Villaescusa-Navarro+18 quote 189; DESIGN.md rounds to 190)
T21_COEFF_MK = float((_T21_COEFF * 3 * (100 * u.km / u.s / u.Mpc) / (8 * np.pi * const.G)).to(u.mK).value)


def hi_mass(mass: np.ndarray, neutral_fraction: np.ndarray) -> np.ndarray:
    """HI mass [Msun] = X_H m f_HI (the simple model; label maps with HI_MODEL)."""
    return X_H * np.asarray(mass, dtype=np.float64) * np.asarray(neutral_fraction, dtype=np.float64)


def brightness_temperature_21cm(sigma_hi: np.ndarray, depth_kpc: float, redshift: float, cosmology: FLRW) -> np.ndarray:
    """21 cm brightness temperature [mK] of HI columns.

    T_b = 190 mK h (1+z)^2 H0/H(z) rho_HI / rho_c0 with rho_HI the comoving HI density of the
    column: Sigma_HI [Msun/kpc^2, physical] / depth [kpc, physical] times a^3.
    """
    a = 1.0 / (1.0 + redshift)
    rho_hi_comoving = np.asarray(sigma_hi, dtype=np.float64) / depth_kpc * a**3  # Msun / kpc^3
    rho_c0 = cosmology.critical_density0.to(u.Msun / u.kpc**3).value
    h = cosmology.H0.value / 100.0
    e_z = cosmology.efunc(redshift)
    return T21_COEFF_MK * h * (1.0 + redshift) ** 2 / e_z * rho_hi_comoving / rho_c0
