"""Code-unit conversions and derived-field formulas against hand-computed values (DESIGN.md section 3)."""
import numpy as np
import pytest

from skymorph.errors import ConfigError
from skymorph.sim import units
from skymorph.sim.derived import hi_column_density, moment0_21cm, neutral_hydrogen_mass, split_neutral
from skymorph.sim.units import pressure_k

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


def test_21cm_moment0_by_hand():
    # 1 Msun/pc^2 = 1e6 Msun/kpc^2 = 1.989e33 g / (3.0857e18 cm)^2 / 1.6737e-24 g = 1.248e20 atoms / cm^2
    n = hi_column_density(1e6)
    assert n == pytest.approx(1.989e33 / 3.0857e18**2 / 1.6737e-24, rel=2e-3)
    assert moment0_21cm(1e6) == pytest.approx(n / 1.823e18)  # K km/s, optically thin


def test_br06_split_by_hand_and_neutral_mass_kept():
    p = np.array([4.3e3, 4.3e4, 4.3e5])  # K cm^-3
    neutral = np.array([1e6, 1e6, 1e6])
    hi, h2 = split_neutral(neutral, p, "br06")
    r = np.array([0.1 ** 0.92, 1.0, 10 ** 0.92])
    np.testing.assert_allclose(h2 / hi, r, rtol=1e-12)
    np.testing.assert_allclose(hi + h2, neutral, rtol=1e-15)
    assert hi[1] == pytest.approx(5e5)  # P = P0: half molecular
    hi_s, h2_s = split_neutral(neutral, p, "simple")
    assert np.array_equal(hi_s, neutral) and not h2_s.any()
    with pytest.raises(ConfigError, match="--hi-model 'krumholz'"):
        split_neutral(neutral, p, "krumholz")
    assert neutral_hydrogen_mass(np.array([1e6]), np.array([0.5]))[0] == pytest.approx(0.76 * 0.5e6)


def test_pressure_by_hand():
    # (2/3) rho u / k_B: 1e7 Msun/kpc^3 = 6.77e-25 g/cm^3, u = 100 (km/s)^2 = 1e12 cm^2/s^2
    rho_cgs = 1e7 * 1.98841e33 / 3.085678e21**3
    assert pressure_k(1e7, 100.0) == pytest.approx(2 / 3 * rho_cgs * 1e12 / 1.380649e-16, rel=1e-4)


def test_hydrogen_number_density_by_hand():
    # 1 Msun/kpc^3 = 1.989e33 g / 2.938e64 cm^3 = 6.77e-32 g/cm^3; n_H = X_H rho / m_p
    assert units.hydrogen_number_density(1e7) == pytest.approx(0.76 * 1e7 * 6.770e-32 / M_P_G, rel=2e-3)
