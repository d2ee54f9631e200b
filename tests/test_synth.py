"""Synthetic galaxy generator: published relations, population statistics, TNG file format,
particle-level physics, determinism and failure modes (DESIGN.md section 4)."""
from __future__ import annotations

import hashlib
import os
import time

import h5py
import numpy as np
import pytest
from astropy import constants as const
from astropy import units as u
from scipy.special import i0, i1
from scipy.stats import spearmanr

from skymorph import sph
from skymorph.errors import OutputExistsError, SkymorphError
from skymorph.sim import relations as rel
from skymorph.sim import synth, units

H = 0.6774


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def params_pop():
    """400 galaxies' parameters (the truth), drawn exactly as sample_galaxy draws them."""
    return [synth.draw_params(np.random.default_rng([21, i]), 0.0) for i in range(400)]


@pytest.fixture(scope="module")
def small_pop():
    return [synth.sample_galaxy(np.random.default_rng([7, i]), 300) for i in range(40)]


@pytest.fixture(scope="module")
def galaxies_3k():
    return [synth.sample_galaxy(np.random.default_rng([11, i]), 3000) for i in range(4)]


@pytest.fixture(scope="module")
def milky_way():
    """A Milky-Way-mass galaxy at the default resolution (10,000 particles per species)."""
    g = synth.sample_galaxy(np.random.default_rng([13, 0]), 10_000)
    assert 11.9 < np.log10(g.params.m200) < 12.2 and 10.4 < np.log10(g.params.mstar) < 10.9
    return g


@pytest.fixture(scope="module")
def synth_dir_z05(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    synth.synthesize(out, 3, 200, seed=5, redshift=0.5, progress=False)
    return out


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _unwrap(x, centre, box=synth.BOX_SIZE):
    return np.mod(x - centre + 0.5 * box, box) - 0.5 * box


# ---------------------------------------------------------------------------------------------
# relations against hand-computed values with the papers' numbers
# ---------------------------------------------------------------------------------------------
def test_moster13_against_hand_values():
    # Moster, Naab & White 2013, Table 1: M10 = 11.590, N10 = 0.0351, beta10 = 1.376, gamma10 = 0.608
    x = 1e12 / 10**11.590
    expected = 1e12 * 2 * 0.0351 / (x**-1.376 + x**0.608)
    assert rel.moster13_stellar_mass(1e12, 0.0) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(3.43e10, rel=0.01)  # the familiar Milky-Way value
    # z = 1: z / (1 + z) = 1/2; M11 = 1.195, N11 = -0.0247, beta11 = -0.826, gamma11 = 0.329
    m1, n = 10 ** (11.590 + 0.5 * 1.195), 0.0351 - 0.5 * 0.0247
    beta, gamma = 1.376 - 0.5 * 0.826, 0.608 + 0.5 * 0.329
    x = 1e12 / m1
    assert rel.moster13_stellar_mass(1e12, 1.0) == pytest.approx(1e12 * 2 * n / (x**-beta + x**gamma), rel=1e-12)


def test_dutton_maccio14_against_hand_values():
    # z = 0: a = 0.905, b = -0.101; at M200 = 1e12 h^-1 Msun, log c = a
    assert rel.concentration_dutton_maccio14(1e12 / H, 0.0, H) == pytest.approx(10**0.905, rel=1e-12)
    # z = 1: a = 0.520 + 0.385 exp(-0.617), b = -0.101 + 0.026; M200 = 1e13 h^-1 Msun
    a = 0.520 + (0.905 - 0.520) * np.exp(-0.617)
    b = -0.101 + 0.026
    assert rel.concentration_dutton_maccio14(1e13 / H, 1.0, H) == pytest.approx(10 ** (a + b), rel=1e-12)
    # concentration falls with mass and with redshift
    c = rel.concentration_dutton_maccio14(np.array([1e11, 1e12, 1e13]), 0.0)
    assert np.all(np.diff(c) < 0)
    assert rel.concentration_dutton_maccio14(1e12, 2.0) < rel.concentration_dutton_maccio14(1e12, 0.0)


def test_catinella18_is_the_fit_to_table_1():
    # Catinella et al. 2018, Table 1: log M*, weighted average log(M_HI/M*), its error
    table = np.array([(9.14, -0.242, 0.053), (9.44, -0.459, 0.067), (9.74, -0.748, 0.069),
                      (10.07, -0.869, 0.042), (10.34, -1.175, 0.037), (10.65, -1.231, 0.036),
                      (10.95, -1.475, 0.033), (11.20, -1.589, 0.044)])
    slope, intercept = np.polyfit(table[:, 0] - 10.0, table[:, 1], 1, w=1.0 / table[:, 2])
    assert rel.CATINELLA18_A == pytest.approx(intercept, abs=1e-3)
    assert rel.CATINELLA18_B == pytest.approx(slope, abs=1e-3)
    assert rel.catinella18_log_hi_fraction(1e10) == pytest.approx(-0.852, abs=1e-12)
    # the line passes within 0.11 dex of every tabulated average
    pred = rel.catinella18_log_hi_fraction(10 ** table[:, 0])
    assert np.max(np.abs(pred - table[:, 1])) < 0.11


def test_critical_density_and_r200_use_tng_cosmology():
    rho_c0 = (3 * (67.74 * u.km / u.s / u.Mpc) ** 2 / (8 * np.pi * const.G)).to(u.Msun / u.kpc**3).value
    assert rel.rho_crit_msun_kpc3(0.0) == pytest.approx(rho_c0, rel=1e-9)
    assert rho_c0 == pytest.approx(277.5 * H**2, rel=2e-3)  # 2.775e11 h^2 Msun / Mpc^3
    # no radiation term: E(z)^2 = Om (1+z)^3 + OL exactly, as in Arepo
    assert rel.rho_crit_msun_kpc3(1.0) == pytest.approx(rho_c0 * (0.3089 * 8 + 0.6911), rel=1e-9)
    r = rel.r200_kpc(1e12, 0.0)
    assert 1e12 == pytest.approx(200 * rho_c0 * 4 / 3 * np.pi * r**3, rel=1e-12)
    assert r == pytest.approx(210.8, rel=2e-3)


def test_ionisation_state_model():
    # Rahmati+13 eq. 14 at n_H = n_SSh: 0.98 2^-2.28 + 0.02 2^-0.84
    assert rel.rahmati13_photoionisation_suppression(1.1e-3, 1.1e-3) == pytest.approx(
        0.98 * 2**-2.28 + 0.02 * 2**-0.84, rel=1e-12)
    assert rel.case_a_recombination(1e4) == pytest.approx(4.18e-13, rel=0.02)  # Osterbrock
    # optically thin, photoionised limit: eta = alpha_A n_H / Gamma_UVB (HM01 z=0: 8.34e-14 s^-1)
    eta = rel.neutral_hydrogen_fraction(1e-5, 1e4, 0.0)
    assert eta == pytest.approx(rel.case_a_recombination(1e4) * 1e-5 / 8.34e-14, rel=0.03)
    # self-shielding transition near n_H ~ 10^-2.5 cm^-3, monotonic in density
    n = np.logspace(-6, 2, 200)
    f = rel.neutral_hydrogen_fraction(n, 1e4, 0.0)
    assert np.all(np.diff(f) >= 0)
    n_half = np.interp(0.5, f, n)
    assert 10**-3.0 < n_half < 10**-2.0
    assert f[-1] > 0.99
    # collisional ionisation: hot gas is ionised at any density
    assert np.all(rel.neutral_hydrogen_fraction(n, 1e6, 0.0) < 1e-5)
    assert np.all(rel.neutral_hydrogen_fraction(n, 10**4.5, 0.0) < 1e-2)
    # electrons: fully ionised H + He gives 1 + 2y, neutral gas only the floor
    y = 0.24 / (4 * 0.76)
    assert rel.electron_abundance(0.0, 1e6, floor=0.0) == pytest.approx(1 + 2 * y, rel=1e-6)
    assert rel.electron_abundance(1.0, 1e3) == pytest.approx(2e-4)


def test_springel_hernquist_sfr():
    # t_* = 2.27 Gyr (n_H / 0.1)^-1/2; at n_H = 0.4 t_* = 1.135 Gyr
    assert rel.sfr_springel_hernquist(1e6, 0.4) == pytest.approx(1e6 / 1.135e9, rel=1e-12)
    assert rel.sfr_springel_hernquist(1e6, 0.099) == 0.0


def test_virial_temperature():
    t = rel.virial_temperature_k(200.0)
    assert t == pytest.approx((0.59 * const.m_p * (200 * u.km / u.s) ** 2 / (2 * const.k_B)).to(u.K).value)
    assert 1.3e6 < t < 1.5e6


# ---------------------------------------------------------------------------------------------
# population statistics
# ---------------------------------------------------------------------------------------------
def test_population_follows_published_relations(params_pop):
    m200 = np.array([p.m200 for p in params_pop])
    mstar = np.array([p.mstar for p in params_pop])
    n = len(m200)
    assert m200.min() >= 1e11 and m200.max() <= 5e12
    assert np.mean(np.log10(m200)) == pytest.approx(0.5 * (11 + np.log10(5e12)), abs=0.1)
    resid = np.log10(mstar / rel.moster13_stellar_mass(m200, 0.0))
    assert abs(resid.mean()) < 3 * 0.15 / np.sqrt(n)
    assert 0.13 < resid.std() < 0.17
    c = np.array([p.concentration for p in params_pop])
    c_res = np.log10(c / rel.concentration_dutton_maccio14(m200, 0.0))
    assert abs(c_res.mean()) < 3 * 0.11 / np.sqrt(n) and 0.095 < c_res.std() < 0.125
    hi = np.log10(np.array([p.m_hi for p in params_pop]) / mstar) - rel.catinella18_log_hi_fraction(mstar)
    assert abs(hi.mean()) < 3 * 0.35 / np.sqrt(n) and 0.31 < hi.std() < 0.39
    spin = np.array([p.spin for p in params_pop])
    assert np.median(spin) == pytest.approx(0.035, rel=0.1)


def test_structural_parameters(params_pop):
    for p in params_pop:
        assert p.r_d == pytest.approx(p.spin * p.r200 / np.sqrt(2.0), rel=1e-12)
        assert 0.1 <= p.z0 / p.r_d <= 0.2 and 1.5 <= p.r_gas / p.r_d <= 2.0
        assert 0.6 <= p.axis_ca <= p.axis_ba <= 1.0 and 0.0 <= p.bulge_fraction <= 0.5
        assert p.arms in (2, 3) and 10 <= p.pitch_deg <= 30
        assert np.linalg.norm(p.disk_normal) == pytest.approx(1.0)
        # baryons never exceed the cosmic share; DM fills the rest of M200
        assert p.mstar + p.m_cold + p.m_hot <= 0.0486 / 0.3089 * p.m200 * (1 + 1e-12)
        assert p.m_dm + p.mstar + p.m_cold + p.m_hot == pytest.approx(p.m200, rel=1e-12)
    # disk normals are isotropic: the mean normal vanishes
    normals = np.array([p.disk_normal for p in params_pop])
    assert np.linalg.norm(normals.mean(axis=0)) < 0.15


def test_particle_masses_match_the_truth(small_pop):
    for g in small_pop:
        p, gas, st = g.params, g.gas, g.stars
        not_wind = st["component"] != 3
        assert st["mass"][not_wind].sum() == pytest.approx(p.mstar, rel=1e-9)
        assert np.all(st["mass"][~not_wind] < st["mass"][not_wind][0])
        assert gas["mass"].sum() == pytest.approx(p.m_cold + p.m_hot, rel=1e-9)
        m_cell = gas["mass"][0]
        cold = gas["mass"][gas["component"] > 0].sum()
        assert abs(cold - p.m_cold) <= 2 * (synth.MIN_PER_COMPONENT + 1) * m_cell
        assert g.dm["mass"].sum() == pytest.approx(p.m_dm, rel=1e-9)
        total = g.dm["mass"].sum() + gas["mass"].sum() + st["mass"][not_wind].sum()
        assert total == pytest.approx(p.m200, rel=1e-9)
        # every component has cells, the count proportional to its mass
        assert np.bincount(gas["component"], minlength=3).min() >= synth.MIN_PER_COMPONENT


def _hi_dex(g):
    return np.log10(units.X_H * np.sum(g.gas["mass"] * g.gas["f_hi"]) / g.params.m_hi)


def test_realised_hi_tracks_the_target(milky_way, galaxies_3k):
    """The cells' HI (X_H m f_HI) matches the xGASS draw at the default resolution; it can only
    fall short (UV-ionised diluted gas), never exceed it by more than 1 / F_NEUTRAL_COLD."""
    assert abs(_hi_dex(milky_way)) < 0.2
    for g in galaxies_3k:
        assert _hi_dex(g) < np.log10(1.0 / synth.F_NEUTRAL_COLD) + 1e-6


# ---------------------------------------------------------------------------------------------
# kernel density / volume consistency
# ---------------------------------------------------------------------------------------------
def test_kernel_density_of_a_uniform_cube():
    rng = np.random.default_rng(0)
    pos = rng.random((8000, 3)) * 10.0  # kpc
    mass = np.full(8000, 5.0)  # total 4e4 Msun in 1000 kpc^3 -> rho = 40
    rho = synth.cell_density(pos, mass)
    inner = np.all((pos > 2) & (pos < 8), axis=1)
    assert np.mean(rho[inner]) == pytest.approx(40.0, rel=0.05)
    assert np.median(rho[inner]) == pytest.approx(40.0, rel=0.1)
    # the raw SPH sum counts each point's own kernel weight: ~ +34 per cent for Poisson points
    raw, h = sph.kernel_density(pos, mass, synth.N_NGB)
    assert np.allclose(raw - rho, mass * sph.cubic_spline_3d(0.0, h))
    vol = np.sum(mass[inner] / rho[inner])
    assert vol == pytest.approx(inner.sum() / 8000 * 1000.0, rel=0.15)


def test_gas_volumes_and_hot_halo_density(galaxies_3k):
    for g in galaxies_3k:
        gas, p = g.gas, g.params
        vol = gas["mass"] / gas["rho"]
        assert np.all(np.isfinite(vol)) and np.all(vol > 0)
        # far from the disk the kernel density follows the beta model it was sampled from
        r = np.linalg.norm(gas["pos"], axis=1)
        sel = (gas["component"] == 0) & (r > 0.3 * p.r200) & (r < 0.6 * p.r200)
        xt = p.r200 / p.r_core
        rho0 = p.m_hot / (4 * np.pi * p.r_core**3 * (xt - np.arctan(xt)))
        ratio = gas["rho"][sel] / (rho0 / (1 + (r[sel] / p.r_core) ** 2))
        assert 0.7 < np.median(ratio) < 1.4


# ---------------------------------------------------------------------------------------------
# physics at particle level
# ---------------------------------------------------------------------------------------------
def test_neutral_fraction_rises_with_density_in_cold_gas(galaxies_3k):
    for g in galaxies_3k:
        cold = g.gas["component"] > 0
        assert spearmanr(g.gas["rho"][cold], g.gas["f_hi"][cold])[0] > 0.5


def test_hot_halo_is_virial_and_ionised(galaxies_3k):
    for g in galaxies_3k:
        hot = g.gas["component"] == 0
        t = g.gas["temperature"][hot] / g.params.t_vir
        assert np.all((t > 0.5) & (t < 2.0)) and np.median(t) == pytest.approx(1.0, abs=0.05)
        assert np.all(g.gas["f_hi"][hot] < 1e-3)
        assert np.allclose(g.gas["x_e"][hot], 1 + 2 * rel.Y_HE, atol=0.01)
        clumps = g.gas["component"] == 2
        assert np.median(g.gas["temperature"][clumps]) < 0.5 * np.median(g.gas["temperature"][g.gas["component"] == 1])


def test_magnetic_field_scales_as_rho_two_thirds(galaxies_3k):
    for g in galaxies_3k:
        b = np.linalg.norm(g.gas["bfield"], axis=1)
        slope = np.polyfit(np.log10(g.gas["rho"]), np.log10(b), 1)[0]
        assert slope == pytest.approx(2.0 / 3.0, abs=0.05)
        b1 = g.params.b0_gauss  # a few microGauss at n_H = 1 cm^-3
        assert 1e-6 < b1 < 1e-5
        # ordered part is toroidal: B . e_phi > 0 on average in the disk
        disk = g.gas["component"] == 1
        e_phi = np.cross(g.params.disk_normal, g.gas["pos"][disk])
        e_phi /= np.linalg.norm(e_phi, axis=1, keepdims=True)
        assert np.mean(np.sum(g.gas["bfield"][disk] * e_phi, axis=1) / b[disk]) > 0.3


def test_star_formation_only_in_dense_gas(milky_way, galaxies_3k):
    for g in [milky_way, *galaxies_3k]:
        gas = g.gas
        assert np.all(gas["sfr"][gas["n_h"] <= rel.SF_THRESHOLD_NH] == 0.0)
        sf = gas["sfr"] > 0
        assert np.all(gas["n_h"][sf] > rel.SF_THRESHOLD_NH)
        expected = gas["mass"][sf] / (2.27e9 * np.sqrt(0.1 / gas["n_h"][sf]))
        assert np.allclose(gas["sfr"][sf], expected, rtol=1e-12)
    # a Milky-Way disk forms stars at a plausible rate (MW: ~1.6 Msun/yr)
    assert 0.1 < milky_way.gas["sfr"].sum() < 10.0


def _vphi(g, d, sel):
    p = g.params
    x = d["pos"][sel]
    v = d["vel"][sel] - p.bulk_velocity
    n = p.disk_normal
    r_vec = x - np.outer(x @ n, n)
    radius = np.linalg.norm(r_vec, axis=1)
    e_phi = np.cross(n, r_vec) / radius[:, None]
    vc = rel.circular_velocity_kms(synth.enclosed_mass(radius, p), radius)
    return np.sum(v * e_phi, axis=1), vc


def test_disks_rotate_at_the_circular_speed(galaxies_3k):
    for g in galaxies_3k:
        vphi, vc = _vphi(g, g.stars, np.isin(g.stars["component"], (0, 2)))
        assert 0.6 < vphi.mean() / vc.mean() < 1.05  # asymmetric drift lowers it a little
        vphi, vc = _vphi(g, g.gas, g.gas["component"] == 1)
        assert vphi.mean() / vc.mean() == pytest.approx(1.0, abs=0.05)
        # the bulge does not rotate
        vphi, vc = _vphi(g, g.stars, g.stars["component"] == 1)
        if len(vphi) > 50:
            assert abs(vphi.mean()) < 0.2 * vc.mean()


def test_dm_halo_shape_matches_axis_ratios(galaxies_3k):
    for g in galaxies_3k:
        x = g.dm["pos"]
        eig = np.sort(np.linalg.eigvalsh(x.T @ x / len(x)))[::-1]
        assert np.sqrt(eig[1] / eig[0]) == pytest.approx(g.params.axis_ba, abs=0.05)
        assert np.sqrt(eig[2] / eig[0]) == pytest.approx(g.params.axis_ca, abs=0.05)


def test_spiral_arms_shared_by_gas_and_young_stars(milky_way, galaxies_3k):
    """<cos m (phi - phi_arm(R))> about the truth's arm phase: f_arm I1(kappa) / I0(kappa) for the
    disk gas (von Mises arms), the full I1/I0 for the young stars (same phase), weaker for all stars."""
    for g in [milky_way, *galaxies_3k]:
        p = g.params
        contrast = i1(p.arm_kappa) / i0(p.arm_kappa)

        def arm_power(d, sel):
            x = d["pos"][sel] @ p.disk_basis.T
            radius = np.hypot(x[:, 0], x[:, 1])
            phi = np.arctan2(x[:, 1], x[:, 0])
            arm = p.arm_phase - np.log(radius / p.r_gas) / np.tan(np.radians(p.pitch_deg))
            return np.mean(np.cos(p.arms * (phi - arm))), 4.0 * np.sqrt(0.5 / sel.sum())

        power, tol = arm_power(g.gas, g.gas["component"] == 1)
        assert power == pytest.approx(p.arm_frac_gas * contrast, abs=tol)
        power, tol = arm_power(g.stars, g.stars["component"] == 2)
        assert power == pytest.approx(contrast, abs=tol)
        power, tol = arm_power(g.stars, np.isin(g.stars["component"], (0, 2)))
        assert power == pytest.approx(p.arm_frac_star * contrast, abs=tol)
        assert p.arm_frac_star < p.arm_frac_gas


def test_stellar_ages_and_metallicity_gradient(galaxies_3k):
    for g in galaxies_3k:
        st, p = g.stars, g.params
        a = 1.0 / (1.0 + p.redshift)
        stars = st["component"] != 3
        assert np.all((st["a_form"][stars] > 0) & (st["a_form"][stars] <= a))
        assert np.all(st["a_form"][~stars] <= 0)
        med = [np.median(st["a_form"][st["component"] == c]) for c in (1, 0, 2)]
        assert med[0] < med[1] < med[2]  # bulge older than disk, arms youngest
        disk = g.gas["component"] == 1
        radius = np.linalg.norm(g.gas["pos"][disk] - np.outer(g.gas["pos"][disk] @ p.disk_normal, p.disk_normal), axis=1)
        slope = np.polyfit(radius, np.log10(g.gas["metallicity"][disk]), 1)[0]
        assert slope == pytest.approx(p.z_grad_per_rd / p.r_d, rel=0.1)


# ---------------------------------------------------------------------------------------------
# the TNG file format
# ---------------------------------------------------------------------------------------------
FIELDS = {
    "PartType0": {"Coordinates": ((3,), np.float64), "Masses": ((), np.float32), "Density": ((), np.float32),
                  "InternalEnergy": ((), np.float32), "ElectronAbundance": ((), np.float32),
                  "NeutralHydrogenAbundance": ((), np.float32), "MagneticField": ((3,), np.float32),
                  "StarFormationRate": ((), np.float32), "GFM_Metallicity": ((), np.float32),
                  "Velocities": ((3,), np.float32), "ParticleIDs": ((), np.uint64)},
    "PartType1": {"Coordinates": ((3,), np.float64), "Velocities": ((3,), np.float32),
                  "ParticleIDs": ((), np.uint64)},
    "PartType4": {"Coordinates": ((3,), np.float64), "Masses": ((), np.float32),
                  "GFM_StellarFormationTime": ((), np.float32), "GFM_Metallicity": ((), np.float32),
                  "Velocities": ((3,), np.float32), "ParticleIDs": ((), np.uint64)},
}
TRUTH = ["M200", "R200", "Concentration", "Spin", "BulgeFraction", "DiskScaleLength", "DiskScaleHeight",
         "MStar", "MGasDisk", "MHI", "MHotHalo", "AxisRatioBA", "AxisRatioCA", "SpiralArms", "PitchAngle",
         "SpiralPhase", "DiskNormal", "Redshift"]


def test_cutout_layout(synth_dir_z05):
    ids = []
    for i in range(3):
        with h5py.File(synth_dir_z05 / f"cutout_{i}.hdf5", "r") as f:
            hdr = f["Header"].attrs
            assert hdr["BoxSize"] == 75000.0 and hdr["HubbleParam"] == H
            assert hdr["Time"] == pytest.approx(1 / 1.5) and hdr["Redshift"] == 0.5
            assert hdr["Omega0"] == 0.3089 and hdr["OmegaBaryon"] == 0.0486
            assert hdr["Omega0"] + hdr["OmegaLambda"] == pytest.approx(1.0)
            assert hdr["NumFilesPerSnapshot"] == 1
            mt = hdr["MassTable"]
            assert mt.shape == (6,) and mt.dtype == np.float64 and mt[1] > 0
            assert np.all(mt[[0, 2, 3, 4, 5]] == 0)
            for key in ("NumPart_ThisFile", "NumPart_Total"):
                assert list(hdr[key]) == [200, 200, 0, 0, len(f["PartType4/Masses"]), 0]
            assert "PartType1/Masses" not in f
            for grp, fields in FIELDS.items():
                n = len(f[grp]["ParticleIDs"])
                for name, (shape, dtype) in fields.items():
                    ds = f[grp][name]
                    assert ds.shape == (n, *shape), (grp, name)
                    assert ds.dtype == dtype, (grp, name)
                x = f[grp]["Coordinates"][:]
                assert np.all((x >= 0) & (x < 75000.0))
                ids.append(f[grp]["ParticleIDs"][:])
            sft = f["PartType4/GFM_StellarFormationTime"][:]
            wind = sft <= 0
            assert 1 <= wind.sum() <= 0.02 * len(sft)
            assert np.all(sft[~wind] <= hdr["Time"] * (1 + 1e-6))
            if i == 1:  # straddles the box corner on every axis
                x = f["PartType1/Coordinates"][:]
                assert np.all((x < 100).any(axis=0) & (x > 75000 - 100).any(axis=0))
    ids = np.concatenate(ids)
    assert len(np.unique(ids)) == len(ids)


def test_catalog_matches_particles(synth_dir_z05):
    with h5py.File(synth_dir_z05 / "catalog.hdf5", "r") as cat:
        assert cat["Header"].attrs["generator"] == "skymorph.synth"
        assert cat["Header"].attrs["seed"] == 5 and cat["Header"].attrs["n_particles"] == 200
        sub = {k: cat["Subhalo"][k][:] for k in cat["Subhalo"]}
        for name in TRUTH:
            ds = cat["Truth"][name]
            assert ds.shape == ((3, 3) if name == "DiskNormal" else (3,)) and "unit" in ds.attrs
        assert cat["Truth/M200"].attrs["unit"] == "Msun" and cat["Truth/R200"].attrs["unit"] == "kpc"
        assert np.allclose(cat["Truth/Redshift"][:], 0.5)
        truth = {k: cat["Truth"][k][:] for k in cat["Truth"]}
    assert sub["SubhaloPos"].shape == (3, 3) and sub["SubhaloMassType"].shape == (3, 6)
    assert sub["SubhaloHalfmassRadType"].shape == (3, 6) and sub["SubhaloLenType"].shape == (3, 6)
    cu = units.CodeUnits(a=1 / 1.5, h=H)
    for i in range(3):
        with h5py.File(synth_dir_z05 / f"cutout_{i}.hdf5", "r") as f:
            centre = sub["SubhaloPos"][i].astype(np.float64)
            mom, mtot = np.zeros(3), 0.0
            for t, grp in ((0, "PartType0"), (1, "PartType1"), (4, "PartType4")):
                n = len(f[grp]["ParticleIDs"])
                m = (f[grp]["Masses"][:].astype(np.float64) if t != 1
                     else np.full(n, f["Header"].attrs["MassTable"][1]))
                assert sub["SubhaloMassType"][i, t] == pytest.approx(m.sum(), rel=1e-5)
                assert sub["SubhaloLenType"][i, t] == n
                r = np.linalg.norm(_unwrap(f[grp]["Coordinates"][:], centre), axis=1)
                keep = f[grp]["GFM_StellarFormationTime"][:] > 0 if t == 4 else slice(None)
                r, mk = r[keep], m[keep]
                r_half = float(sub["SubhaloHalfmassRadType"][i, t])
                # half of the mass lies within r_half: strictly inside <= 1/2 <= inside or on it
                assert mk[r < r_half * (1 - 1e-6)].sum() <= 0.5 * mk.sum() * (1 + 1e-6)
                assert mk[r <= r_half * (1 + 1e-6)].sum() >= 0.5 * mk.sum() * (1 - 1e-6)
                mom += (m[:, None] * f[grp]["Velocities"][:]).sum(axis=0) * np.sqrt(cu.a)
                mtot += m.sum()
            assert np.allclose(sub["SubhaloVel"][i], mom / mtot, rtol=1e-4, atol=1e-3)
            # the catalogue's masses are the truth's, in code units
            m_star = sub["SubhaloMassType"][i, 4] * cu.mass_msun
            assert m_star == pytest.approx(truth["MStar"][i], rel=0.01)  # + ~0.2% wind
            m_gas = sub["SubhaloMassType"][i, 0] * cu.mass_msun
            assert m_gas == pytest.approx(truth["MGasDisk"][i] + truth["MHotHalo"][i], rel=1e-5)
            assert np.all(sub["SubhaloLenType"][i, [2, 3, 5]] == 0)


def test_code_units_round_trip(synth_dir_z05):
    """The file holds sample_galaxy's physical fields, converted with the header's a and h."""
    g = synth.sample_galaxy(np.random.default_rng([5, 0]), 200, 0.5)
    cu = units.CodeUnits(a=1 / 1.5, h=H)
    with h5py.File(synth_dir_z05 / "cutout_0.hdf5", "r") as f:
        gas = {k: f["PartType0"][k][:] for k in f["PartType0"]}
        centre = g.params.centre
        assert np.allclose(_unwrap(gas["Coordinates"], centre) * cu.length_kpc, g.gas["pos"], atol=1e-6)
        assert np.allclose(gas["Masses"] * cu.mass_msun, g.gas["mass"], rtol=1e-6)
        assert np.allclose(gas["Density"] * cu.density_msun_kpc3, g.gas["rho"], rtol=1e-6)
        t = units.temperature(gas["InternalEnergy"], gas["ElectronAbundance"])
        assert np.allclose(t, g.gas["temperature"], rtol=1e-5)
        b = np.linalg.norm(gas["MagneticField"].astype(np.float64), axis=1) * cu.bfield_gauss
        assert np.allclose(b, np.linalg.norm(g.gas["bfield"], axis=1), rtol=1e-5)
        assert np.allclose(gas["Velocities"] * cu.velocity_kms, g.gas["vel"], rtol=1e-5, atol=1e-3)
        assert np.allclose(f["PartType4/Velocities"][:] * cu.velocity_kms, g.stars["vel"], rtol=1e-5, atol=1e-3)
        m_dm = f["Header"].attrs["MassTable"][1] * cu.mass_msun
        assert m_dm == pytest.approx(g.dm["mass"][0], rel=1e-12)
        assert np.allclose(f["PartType4/GFM_StellarFormationTime"][:], g.stars["a_form"], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_bytes(tmp_path):
    a, b, c, d = (tmp_path / k for k in "abcd")
    synth.synthesize(a, 2, 200, seed=3, progress=False)
    time.sleep(1.1)  # any stored timestamp would now differ
    synth.synthesize(b, 2, 200, seed=3, progress=False)
    for name in ("cutout_0.hdf5", "cutout_1.hdf5", "catalog.hdf5"):
        assert _sha(a / name) == _sha(b / name), name
    synth.synthesize(c, 2, 200, seed=4, progress=False)
    assert _sha(a / "cutout_0.hdf5") != _sha(c / "cutout_0.hdf5")
    synth.synthesize(d, 1, 200, seed=3, progress=False)
    assert _sha(a / "cutout_0.hdf5") == _sha(d / "cutout_0.hdf5")
    assert sorted(os.listdir(a)) == ["catalog.hdf5", "cutout_0.hdf5", "cutout_1.hdf5"]  # no temp files


def test_truth_does_not_depend_on_resolution():
    lo = synth.sample_galaxy(np.random.default_rng([9, 0]), 60).params
    hi = synth.sample_galaxy(np.random.default_rng([9, 0]), 600).params
    assert lo.truth().keys() == hi.truth().keys()
    for k, (v, _) in lo.truth().items():
        assert np.array_equal(v, hi.truth()[k][0]), k


# ---------------------------------------------------------------------------------------------
# failure modes
# ---------------------------------------------------------------------------------------------
def test_existing_output_is_refused_and_kept(tmp_path):
    synth.synthesize(tmp_path, 1, 60, seed=1, progress=False)
    before = {p.name: (_sha(p), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    with pytest.raises(OutputExistsError, match="cutout_0.hdf5"):
        synth.synthesize(tmp_path, 2, 60, seed=2, progress=False)
    after = {p.name: (_sha(p), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert before == after  # nothing written, not even cutout_1
    # only the catalogue exists: still refused before any cutout is written
    other = tmp_path / "other"
    other.mkdir()
    (other / "catalog.hdf5").write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="catalog.hdf5"):
        synth.synthesize(other, 1, 60, progress=False)
    assert sorted(os.listdir(other)) == ["catalog.hdf5"]
    assert (other / "catalog.hdf5").read_bytes() == b"old"
    # overwrite replaces
    synth.synthesize(other, 1, 60, overwrite=True, progress=True)
    with h5py.File(other / "catalog.hdf5", "r") as f:
        assert f["Subhalo/SubhaloPos"].shape == (1, 3)


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    g = synth.sample_galaxy(np.random.default_rng([0, 0]), 60)
    monkeypatch.setattr(synth, "_put", boom)
    with pytest.raises(RuntimeError):
        synth.write_cutout(tmp_path / "cutout_0.hdf5", g, 0)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_galaxies=0), "n_galaxies"),
    (dict(n_galaxies=2, n_particles=49), "n_particles"),
    (dict(n_galaxies=1, redshift=-0.5), "redshift"),
    (dict(n_galaxies=1, seed=-1), "seed"),
])
def test_bad_arguments_raise(tmp_path, kwargs, match):
    with pytest.raises(SkymorphError, match=match):
        synth.synthesize(tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_output_folder_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SkymorphError, match="existing file"):
        synth.synthesize(tmp_path / "f", 1, 60, progress=False)
    with pytest.raises(SkymorphError, match="n_particles"):
        synth.sample_galaxy(np.random.default_rng(0), 10)
