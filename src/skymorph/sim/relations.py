"""Published scaling relations used by the synthetic galaxy generator (DESIGN.md section 4).

Each function is small, pure and vectorised, cites its source, and states its units.
Physical units throughout: Msun, kpc (physical), km/s, K, cm^-3, s^-1, yr.

Cosmology: IllustrisTNG's Planck 2015 parameters (Planck Collaboration 2016, XIII), flat,
h = 0.6774, Omega_m = 0.3089, Omega_b = 0.0486. ``Tcmb0 = 0``: Arepo/TNG integrate the
background with matter + Lambda only, H(z)^2 = H0^2 [Om (1+z)^3 + OL] with OL = 1 - Om = 0.6911
exactly, so leaving radiation out reproduces the simulation's own H(z) and rho_crit(z).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from astropy import constants as const
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM

from skymorph.sim.units import X_H

#: IllustrisTNG cosmology (Planck 2015); no radiation term, as in the simulation.
TNG_COSMOLOGY = FlatLambdaCDM(H0=67.74, Om0=0.3089, Ob0=0.0486, Tcmb0=0.0, name="TNG Planck2015")
#: Gravitational constant in kpc (km/s)^2 / Msun.
G_KPC_KMS2_MSUN = float(const.G.to(u.kpc * u.km**2 / u.s**2 / u.Msun).value)
#: Helium-to-hydrogen number ratio y = n_He / n_H for X_H = 0.76.
Y_HE = (1.0 - X_H) / (4.0 * X_H)
#: TNG's solar metallicity (mass fraction; GFM_SOLAR_METALLICITY, Asplund+09 based).
Z_SUN_TNG = 0.0127
_SEC_PER_YR = float((1 * u.yr).to(u.s).value)
_SEC_PER_GYR = 1e9 * _SEC_PER_YR


# --------------------------------------------------------------------------------------------
# Cosmology
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def rho_crit_msun_kpc3(z: float) -> float:
    """Critical density rho_crit(z) = 3 H(z)^2 / (8 pi G) [Msun / kpc^3, physical]."""
    return float(TNG_COSMOLOGY.critical_density(z).to(u.Msun / u.kpc**3).value)


def r200_kpc(m200_msun, z: float):
    """R200 [kpc, physical] from M200 [Msun]: M200 = 200 rho_crit(z) (4/3) pi R200^3."""
    m = np.asarray(m200_msun, dtype=np.float64)
    return np.cbrt(3.0 * m / (800.0 * np.pi * rho_crit_msun_kpc3(float(z))))


def circular_velocity_kms(mass_msun, r_kpc):
    """Circular speed sqrt(G M(<r) / r) [km/s] for mass [Msun] inside radius [kpc]."""
    return np.sqrt(G_KPC_KMS2_MSUN * np.asarray(mass_msun) / np.asarray(r_kpc))


def virial_temperature_k(v200_kms, mu: float = 0.59):
    """Virial temperature T_vir = mu m_p V200^2 / (2 k_B) [K] for V200 [km/s].

    mu = 0.59 is the mean molecular weight of fully ionised primordial gas.
    """
    fac = float((const.m_p * (u.km / u.s) ** 2 / (2.0 * const.k_B)).to(u.K).value)
    return mu * fac * np.asarray(v200_kms, dtype=np.float64) ** 2


# --------------------------------------------------------------------------------------------
# Haloes
# --------------------------------------------------------------------------------------------
def concentration_dutton_maccio14(m200_msun, z: float, h: float = 0.6774):
    """NFW concentration c200(M200, z), Dutton & Macciò 2014 (MNRAS 441, 3359), eqs. 7, 10, 11.

    log10 c200 = a + b log10(M200 / (1e12 h^-1 Msun)), with
    b = -0.101 + 0.026 z and a = 0.520 + (0.905 - 0.520) exp(-0.617 z^1.21).
    M200 in Msun (physical, converted here to h^-1 Msun with the given h); median relation,
    the intrinsic scatter is 0.11 dex. Calibrated for 0 <= z <= 5.
    """
    m = np.asarray(m200_msun, dtype=np.float64) * h
    b = -0.101 + 0.026 * z
    a = 0.520 + (0.905 - 0.520) * np.exp(-0.617 * z**1.21)
    return 10.0 ** (a + b * np.log10(m / 1e12))


def nfw_mu(x):
    """NFW enclosed-mass shape mu(x) = ln(1 + x) - x / (1 + x), x = r / r_s (Navarro+97)."""
    x = np.asarray(x, dtype=np.float64)
    return np.log1p(x) - x / (1.0 + x)


def mmw98_disk_scale_length(spin, r200_kpc_):
    """Exponential disk scale length R_d = lambda R200 / sqrt(2) [kpc] (Mo, Mao & White 1998, eq. 12).

    Assumes the disk keeps the halo's specific angular momentum (j_d = m_d) and neglects the
    contraction and concentration factors f_c, f_R.
    """
    return np.asarray(spin) * np.asarray(r200_kpc_) / np.sqrt(2.0)


#: Bullock et al. 2001 (ApJ 555, 240): spin lambda' is lognormal, median 0.035, sigma_ln 0.5.
SPIN_MEDIAN = 0.035
SPIN_SIGMA_LN = 0.5


# --------------------------------------------------------------------------------------------
# Stellar mass
# --------------------------------------------------------------------------------------------
#: Moster, Naab & White 2013 (MNRAS 428, 3121), Table 1 best-fitting parameters.
MOSTER13 = dict(M10=11.590, M11=1.195, N10=0.0351, N11=-0.0247, beta10=1.376, beta11=-0.826,
                gamma10=0.608, gamma11=0.329)
#: Intrinsic scatter of M* at fixed halo mass [dex] (Moster+13, section 3).
MOSTER13_SCATTER_DEX = 0.15


def moster13_stellar_mass(m200_msun, z: float = 0.0):
    """Median stellar mass M* [Msun] of a central in a halo of M200 [Msun], Moster+13 eqs. 2, 11-14.

    m/M = 2 N [(M/M1)^-beta + (M/M1)^gamma]^-1 with log M1 = M10 + M11 z/(z+1) and likewise
    N, beta, gamma. Halo masses are M200c; the paper's h = 0.704 is not rescaled (< 0.04 dex).
    """
    p = MOSTER13
    s = z / (z + 1.0)
    m1 = 10.0 ** (p["M10"] + p["M11"] * s)
    n = p["N10"] + p["N11"] * s
    beta = p["beta10"] + p["beta11"] * s
    gamma = p["gamma10"] + p["gamma11"] * s
    m = np.asarray(m200_msun, dtype=np.float64)
    return m * 2.0 * n / ((m / m1) ** (-beta) + (m / m1) ** gamma)


# --------------------------------------------------------------------------------------------
# Atomic gas
# --------------------------------------------------------------------------------------------
#: Catinella et al. 2018 (xGASS, MNRAS 476, 875), Table 1: stellar-mass bin centre log M*,
#: weighted average of log(M_HI / M*) (non-detections at their upper limits) and its error.
XGASS_TABLE1 = (
    (9.14, -0.242, 0.053),
    (9.44, -0.459, 0.067),
    (9.74, -0.748, 0.069),
    (10.07, -0.869, 0.042),
    (10.34, -1.175, 0.037),
    (10.65, -1.231, 0.036),
    (10.95, -1.475, 0.033),
    (11.20, -1.589, 0.044),
)
#: Error-weighted straight-line fit to XGASS_TABLE1 (np.polyfit, weights 1/err):
#: log(M_HI/M*) = CATINELLA18_A + CATINELLA18_B (log M* - 10). Residuals < 0.11 dex.
CATINELLA18_A = -0.852
CATINELLA18_B = -0.648
#: Scatter of log(M_HI/M*) at fixed M* [dex] (xGASS interquartile spread ~0.4-0.5 dex).
CATINELLA18_SCATTER_DEX = 0.35


def catinella18_log_hi_fraction(mstar_msun):
    """Mean log10(M_HI / M*) at stellar mass M* [Msun], from xGASS (Catinella et al. 2018, Table 1).

    A straight-line fit to the Table 1 weighted averages, valid for 10^9 - 10^11.5 Msun
    (extrapolated linearly outside). xGASS is at z ~ 0.03; no redshift evolution is applied.
    Stellar masses assume h = 0.7 (shift 2 log(0.6774/0.7) = -0.03 dex, neglected).
    """
    x = np.log10(np.asarray(mstar_msun, dtype=np.float64)) - 10.0
    return CATINELLA18_A + CATINELLA18_B * x


# --------------------------------------------------------------------------------------------
# Metallicity
# --------------------------------------------------------------------------------------------
def tremonti04_oxygen_abundance(mstar_msun):
    """Gas-phase 12 + log(O/H) at M* [Msun], Tremonti et al. 2004 (ApJ 613, 898), eq. 3.

    12 + log(O/H) = -1.492 + 1.847 x - 0.08026 x^2, x = log M*, valid (and clipped to)
    8.5 <= x <= 11.5; measured within the SDSS fibre (~ the inner disk).
    """
    x = np.clip(np.log10(np.asarray(mstar_msun, dtype=np.float64)), 8.5, 11.5)
    return -1.492 + 1.847 * x - 0.08026 * x**2


def metallicity_from_oh(oh12, oh12_sun: float = 8.69):
    """Metal mass fraction Z = Z_sun,TNG 10^([O/H]) for 12 + log(O/H) (solar 8.69, Asplund+09)."""
    return Z_SUN_TNG * 10.0 ** (np.asarray(oh12) - oh12_sun)


# --------------------------------------------------------------------------------------------
# Ionisation state of hydrogen
# --------------------------------------------------------------------------------------------
#: Rahmati et al. 2013a (MNRAS 430, 2427), Table 2, Haardt & Madau 2001 UV background:
#: redshift, HI photoionisation rate Gamma_UVB [s^-1], self-shielding density n_H,SSh [cm^-3].
RAHMATI13_HM01 = (
    (0.0, 8.34e-14, 1.1e-3),
    (1.0, 7.39e-13, 5.1e-3),
    (2.0, 1.50e-12, 8.7e-3),
    (3.0, 1.16e-12, 7.4e-3),
    (4.0, 7.92e-13, 5.8e-3),
    (5.0, 5.43e-13, 4.5e-3),
)


def uvb_hm01(z: float) -> tuple[float, float]:
    """(Gamma_UVB [s^-1], n_H,SSh [cm^-3]) at redshift z: log-linear interpolation in Rahmati+13
    Table 2 (HM01), clamped to 0 <= z <= 5."""
    t = np.asarray(RAHMATI13_HM01)
    zc = float(np.clip(z, 0.0, 5.0))
    gamma = 10.0 ** np.interp(zc, t[:, 0], np.log10(t[:, 1]))
    n_ssh = 10.0 ** np.interp(zc, t[:, 0], np.log10(t[:, 2]))
    return float(gamma), float(n_ssh)


def rahmati13_photoionisation_suppression(n_h, n_ssh, temperature_k=1e4):
    """Gamma_phot / Gamma_UVB from self-shielding, Rahmati et al. 2013a eq. 14 (with eq. 13's T-scaling).

    f = 0.98 [1 + (n_H/n0)^1.64]^-2.28 + 0.02 [1 + n_H/n0]^-0.84, n0 = n_H,SSh (T/1e4 K)^0.17.
    n_H, n_ssh in cm^-3.
    """
    n0 = n_ssh * (np.asarray(temperature_k, dtype=np.float64) / 1e4) ** 0.17
    x = np.asarray(n_h, dtype=np.float64) / n0
    return 0.98 * (1.0 + x**1.64) ** -2.28 + 0.02 * (1.0 + x) ** -0.84


def case_a_recombination(temperature_k):
    """Case-A HII recombination coefficient alpha_A(T) [cm^3 s^-1], Hui & Gnedin 1997 (eq. A3 of Rahmati+13).

    alpha_A = 1.269e-13 lam^1.503 / [1 + (lam/0.522)^0.47]^1.923, lam = 2 * 157807 K / T.
    """
    lam = 315614.0 / np.asarray(temperature_k, dtype=np.float64)
    return 1.269e-13 * lam**1.503 / (1.0 + (lam / 0.522) ** 0.47) ** 1.923


def collisional_ionisation_rate(temperature_k):
    """Collisional ionisation coefficient of HI Lambda_T(T) [cm^3 s^-1], Theuns et al. 1998 (Rahmati+13 eq. A6).

    Lambda_T = 1.17e-10 T^0.5 exp(-157809 / T) / (1 + sqrt(T / 1e5)).
    """
    t = np.asarray(temperature_k, dtype=np.float64)
    return 1.17e-10 * np.sqrt(t) * np.exp(-157809.0 / t) / (1.0 + np.sqrt(t / 1e5))


def neutral_hydrogen_fraction(n_h, temperature_k, z: float = 0.0):
    """Neutral hydrogen fraction eta = n_HI / n_H in ionisation equilibrium (Rahmati et al. 2013a, eq. A8).

    Model: photoionisation by the HM01 UV background, attenuated by self-shielding with the
    Rahmati+13 fitting function (transition at n_H ~ 10^-2.5 cm^-3 at z = 0, where the gas turns
    from ionised to neutral), plus collisional ionisation (which ionises gas above ~10^4.5 K) and
    case-A recombination; electrons from hydrogen only (n_e = (1 - eta) n_H). Solves
    A eta^2 - B eta + C = 0 with A = alpha_A + Lambda_T, B = 2 alpha_A + Gamma_phot / n_H + Lambda_T,
    C = alpha_A, using the cancellation-free root 2C / (B + sqrt(B^2 - 4AC)).
    n_H [cm^-3], T [K]; H2 is not separated (eta counts HI + H2, as TNG's NeutralHydrogenAbundance).
    """
    n = np.maximum(np.asarray(n_h, dtype=np.float64), 1e-30)
    t = np.asarray(temperature_k, dtype=np.float64)
    gamma_uvb, n_ssh = uvb_hm01(z)
    gamma = gamma_uvb * rahmati13_photoionisation_suppression(n, n_ssh, t)
    alpha = case_a_recombination(t)
    lam = collisional_ionisation_rate(t)
    a = alpha + lam
    b = 2.0 * alpha + gamma / n + lam
    disc = np.sqrt(np.maximum(b * b - 4.0 * a * alpha, 0.0))
    return np.clip(2.0 * alpha / (b + disc), 0.0, 1.0)


def electron_abundance(neutral_fraction, temperature_k, floor: float = 2e-4):
    """Electron abundance x_e = n_e / n_H [dimensionless] consistent with the hydrogen state.

    x_e = (1 - eta) [1 + y (1 + s(T))] + floor: helium (y = n_He/n_H = 0.079) is singly ionised
    where hydrogen is, and doubly ionised collisionally above ~10^4.85 K (smooth step s(T) in
    log T, width 0.15 dex), so fully ionised H + He gives 1 + 2y = 1.158. The floor stands for
    electrons from metals (C, Si) in neutral gas.
    """
    eta = np.asarray(neutral_fraction, dtype=np.float64)
    s = 0.5 * (1.0 + np.tanh((np.log10(np.asarray(temperature_k, dtype=np.float64)) - 4.85) / 0.15))
    return (1.0 - eta) * (1.0 + Y_HE * (1.0 + s)) + floor


# --------------------------------------------------------------------------------------------
# Star formation
# --------------------------------------------------------------------------------------------
#: Star-formation density threshold n_H [cm^-3] (Springel & Hernquist 2003; TNG: ~0.1).
SF_THRESHOLD_NH = 0.1
#: Gas consumption time-scale at the threshold [Gyr] (Springel & Hernquist 2003; 2.27 Gyr in
#: Illustris/TNG, Vogelsberger et al. 2013).
SF_T0_GYR = 2.27


def sfr_springel_hernquist(mass_msun, n_h):
    """Star formation rate [Msun/yr] of gas cells, Springel & Hernquist 2003 (MNRAS 339, 289), eq. 21.

    SFR = m / t_*, t_* = t0 (n_H / n_th)^-1/2 with t0 = 2.27 Gyr, n_th = 0.1 cm^-3: a volumetric
    Kennicutt-Schmidt law (rho_SFR ~ rho^1.5) that reproduces Kennicutt 1998. Zero below n_th.
    """
    n = np.asarray(n_h, dtype=np.float64)
    t_star_yr = SF_T0_GYR * 1e9 * np.sqrt(SF_THRESHOLD_NH / np.maximum(n, 1e-30))
    return np.where(n > SF_THRESHOLD_NH, np.asarray(mass_msun, dtype=np.float64) / t_star_yr, 0.0)
