"""Code-unit conversions and derived-field formulas against hand-computed values (DESIGN.md section 3)."""
import numpy as np
import pytest
from astropy.cosmology import FlatLambdaCDM

from skymorph.sim import units
from skymorph.sim.derived import T21_COEFF_MK, brightness_temperature_21cm, hi_mass

M_P_G, K_B_CGS = 1.67262192e-24, 1.380649e-16  # proton mass [g], Boltzmann [erg/K]


def test_temperature_matches_tng_formula_by_hand():
    u, xe = 1000.0, 1.0
    mu = 4.0 / (1 + 3 * 0.76 + 4 * 0.76 * xe)  # = 0.632911...
    t_hand = (5 / 3 - 1) * u * 1e10 * mu * M_P_G / K_B_CGS  # ≈ 5.11e4 K
    assert units.temperature(u, xe) == pytest.approx(t_hand, rel=1e-6)
    assert units.temperature(u, xe) == pytest.approx(51117.0, rel=1e-3)
    # neutral gas is heavier per particle: mu = 4 / (1 + 3 X_H) ≈ 1.22 -> hotter at the same u
    assert units.temperature(u, 0.0) / units.temperature(u, xe) == pytest.approx((1 + 2.28 + 3.04) / 3.28)


def test_internal_energy_inverts_temperature():
    t = np.array([1e2, 1e4, 1e7])
    xe = np.array([0.0, 0.5, 1.17])
    assert np.allclose(units.temperature(units.internal_energy(t, xe), xe), t, rtol=1e-12)


def test_code_unit_factors_by_hand():
    cu = units.CodeUnits(a=0.5, h=0.7)
    assert cu.length_kpc * 1000.0 == pytest.approx(714.285714, rel=1e-8)
    assert cu.mass_msun * 1e-4 == pytest.approx(1e6 / 0.7)
    assert cu.density_msun_kpc3 * 1e-3 == pytest.approx(1e-3 * 1e10 * 0.49 / 0.125)
    assert cu.velocity_kms == pytest.approx(np.sqrt(0.5))
    # TNG docs: B [G] = B_code * h / a^2 * 2.60e-6
    assert cu.bfield_gauss == pytest.approx(0.7 / 0.25 * 2.60e-6, rel=1e-3)


def test_21cm_coefficient_is_villaescusa_navarro():
    assert 188.0 < T21_COEFF_MK < 191.0


def test_21cm_brightness_by_hand():
    cosmo = FlatLambdaCDM(H0=67.74, Om0=0.3089)
    h = 0.6774
    rho_c0 = 277.536627 * h**2  # Msun / kpc^3 (2.775e11 h^2 Msun / Mpc^3)
    sigma, depth = 1e7, 50.0  # Msun/kpc^2, kpc -> rho_HI = 2e5 Msun/kpc^3
    t0 = brightness_temperature_21cm(sigma, depth, 0.0, cosmo)
    assert t0 == pytest.approx(T21_COEFF_MK * h * 2e5 / rho_c0, rel=1e-4)
    # at z = 1 the comoving density is a^3 the physical one, times (1+z)^2 H0/H(z)
    t1 = brightness_temperature_21cm(sigma, depth, 1.0, cosmo)
    ez = np.sqrt(0.3089 * 8 + 0.6911)
    assert t1 / t0 == pytest.approx(4.0 / ez / 8.0, rel=1e-6)


def test_hi_mass_simple_model():
    assert hi_mass(np.array([1e6]), np.array([0.5]))[0] == pytest.approx(0.76 * 0.5e6)


def test_hydrogen_number_density_by_hand():
    # 1 Msun/kpc^3 = 1.989e33 g / 2.938e64 cm^3 = 6.77e-32 g/cm^3; n_H = X_H rho / m_p
    assert units.hydrogen_number_density(1e7) == pytest.approx(0.76 * 1e7 * 6.770e-32 / M_P_G, rel=2e-3)
