"""Code units of IllustrisTNG/Arepo and their conversion to physical units (DESIGN.md section 3).

Physical units everywhere outside the readers: kpc (physical), Msun, K, Gauss, km/s.
Constants come from astropy; the conversions take the file's own scale factor a and h.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import constants as const
from astropy import units as u

X_H = 0.76  # hydrogen mass fraction (TNG)
GAMMA = 5.0 / 3.0  # adiabatic index
UNIT_MASS_MSUN = 1e10  # code mass unit, Msun / h
#: sqrt(UnitPressure) in Gauss: UnitPressure = 1e10 Msun (km/s)^2 / kpc^3 (≈ 2.60e-6 G)
B_UNIT_GAUSS = float(np.sqrt((1e10 * u.Msun * (u.km / u.s) ** 2 / u.kpc**3).to(u.barye).value))
#: (gamma - 1) * 1 (km/s)^2 * m_p / k_B [K]: T = this * u * mu (≈ 80.8 K per (km/s)^2)
_T_PER_U = float(((GAMMA - 1.0) * (1 * u.km / u.s) ** 2 * const.m_p / const.k_B).to(u.K).value)
#: (gamma - 1) * 1 Msun/kpc^3 * 1 (km/s)^2 / k_B [K cm^-3]: P / k_B = this * rho * u
_PK_PER_RHO_U = float(((GAMMA - 1.0) * u.Msun / u.kpc**3 * (u.km / u.s) ** 2 / const.k_B).to(u.K / u.cm**3).value)


@dataclass(frozen=True)
class CodeUnits:
    """Conversion factors for one snapshot: scale factor a and little h from the file header."""

    a: float
    h: float

    @property
    def length_kpc(self) -> float:
        """ckpc/h -> physical kpc."""
        return self.a / self.h

    @property
    def mass_msun(self) -> float:
        """1e10 Msun/h -> Msun."""
        return UNIT_MASS_MSUN / self.h

    @property
    def density_msun_kpc3(self) -> float:
        """1e10 Msun/h / (ckpc/h)^3 -> physical Msun / kpc^3."""
        return UNIT_MASS_MSUN * self.h**2 / self.a**3

    @property
    def velocity_kms(self) -> float:
        """Particle velocities, km sqrt(a) / s -> peculiar km/s."""
        return float(np.sqrt(self.a))

    @property
    def bfield_gauss(self) -> float:
        """(h/a^2) UnitPressure^(1/2) -> physical Gauss."""
        return self.h / self.a**2 * B_UNIT_GAUSS


def mean_molecular_weight(electron_abundance: np.ndarray) -> np.ndarray:
    """mu in units of m_p: 4 / (1 + 3 X_H + 4 X_H x_e), x_e = n_e / n_H."""
    return 4.0 / (1.0 + 3.0 * X_H + 4.0 * X_H * np.asarray(electron_abundance, dtype=np.float64))


def temperature(internal_energy: np.ndarray, electron_abundance: np.ndarray) -> np.ndarray:
    """Gas temperature [K] from specific internal energy [(km/s)^2] and x_e (TNG team's formula)."""
    return _T_PER_U * np.asarray(internal_energy, dtype=np.float64) * mean_molecular_weight(electron_abundance)


def internal_energy(temperature_k: np.ndarray, electron_abundance: np.ndarray) -> np.ndarray:
    """Inverse of :func:`temperature`: specific internal energy [(km/s)^2]."""
    return np.asarray(temperature_k, dtype=np.float64) / (_T_PER_U * mean_molecular_weight(electron_abundance))


def pressure_k(rho_msun_kpc3: np.ndarray, internal_energy: np.ndarray) -> np.ndarray:
    """Gas pressure P / k_B [K cm^-3] = (gamma - 1) rho u / k_B (for star-forming cells the
    effective equation of state's pressure, as Arepo stores it)."""
    return _PK_PER_RHO_U * np.asarray(rho_msun_kpc3, dtype=np.float64) * np.asarray(internal_energy, dtype=np.float64)


def hydrogen_number_density(rho_msun_kpc3: np.ndarray) -> np.ndarray:
    """n_H [cm^-3] from the physical gas density [Msun / kpc^3]."""
    return np.asarray(rho_msun_kpc3, dtype=np.float64) * X_H * _MSUN_KPC3_IN_MP_CM3


_MSUN_KPC3_IN_MP_CM3 = float((u.Msun / u.kpc**3 / const.m_p).to(u.cm**-3).value)
