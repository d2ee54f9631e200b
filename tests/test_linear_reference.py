"""skymorph.cosmo against external references: Eisenstein & Hu (1998) and the growth factor against
colossus, the PM power spectrum at a = 1 against halofit (Takahashi et al. 2012) from CAMB.

Units: k in h/Mpc, P(k) in (Mpc/h)^3, lengths in Mpc/h.
"""
import math

import numpy as np
import pytest
import scipy.integrate
import torch

from skymorph.cosmo.linear import Cosmology, growth_factor, linear_power, transfer_eh98
from skymorph.cosmo.mesh import power_spectrum_3d
from skymorph.cosmo.nbody import simulate

COSMOLOGIES = [Cosmology(),  # Planck 2015 (TNG)
               Cosmology(0.25, 0.9, Omega_b=0.04, h=0.72, n_s=0.95, T_cmb=2.7),
               Cosmology(0.4, 0.7, Omega_b=0.06, h=0.65, n_s=1.0, T_cmb=2.6)]
K = np.logspace(-4, 2, 300)  # h/Mpc


def _colossus(c: Cosmology):
    cosmology = pytest.importorskip("colossus.cosmology.cosmology")
    # interpolation=False: colossus evaluates its fit directly. Its default P(k) is a spline
    # through a table, off by up to 4e-4 from its own fit near the BAO wiggles.
    return cosmology.setCosmology("skymorph-test", params=dict(
        flat=True, H0=100 * c.h, Om0=c.Omega_m, Ob0=c.Omega_b, sigma8=c.sigma8, ns=c.n_s, Tcmb0=c.T_cmb,
        relspecies=False), persistence="", interpolation=False)


@pytest.mark.parametrize("c", COSMOLOGIES, ids=["planck15", "low-om", "high-om"])
@pytest.mark.parametrize("wiggles, model", [(True, "eisenstein98"), (False, "eisenstein98_zb")],
                         ids=["bao", "no-wiggle"])
def test_eisenstein_hu_matches_colossus(c, wiggles, model):
    """T(k) is colossus's to rounding; P(k) has its shape to rounding and its amplitude to 2e-5.

    The amplitude difference (1.0e-5 to 1.7e-5 for these cosmologies) is colossus's sigma_8
    integral: skymorph's own is checked against an independent quadrature below."""
    ref = _colossus(c)
    ps = pytest.importorskip("colossus.cosmology.power_spectrum")
    fit = ps.modelEisenstein98 if wiggles else ps.modelEisenstein98ZeroBaryon
    t = transfer_eh98(torch.from_numpy(K), c, wiggles).numpy()
    assert np.max(np.abs(t / fit(K, c.h, c.Omega_m, c.Omega_b, c.T_cmb) - 1)) < 1e-12
    ratio = linear_power(torch.from_numpy(K), c, wiggles).numpy() / ref.matterPowerSpectrum(K, 0.0, model=model)
    assert ratio.max() / ratio.min() - 1 < 1e-12  # same k dependence over 1e-4 < k < 100 h/Mpc
    assert np.max(np.abs(ratio - 1)) < 2e-5


@pytest.mark.parametrize("c", COSMOLOGIES[:2], ids=["planck15", "low-om"])
@pytest.mark.parametrize("wiggles", [True, False], ids=["bao", "no-wiggle"])
def test_sigma8_normalisation_against_independent_quadrature(c, wiggles):
    """sigma(8 Mpc/h) of linear_power, from a 2^18-interval Simpson rule over 1e-6 < k < 1e4 h/Mpc
    (skymorph's sigma_r uses 4096 intervals over 1e-5 .. 1e3): equal to sigma8 to 1e-8."""
    lnk = np.linspace(math.log(1e-6), math.log(1e4), 2**18 + 1)
    k = np.exp(lnk)
    x = 8.0 * k
    w = 3.0 * (np.sin(x) - x * np.cos(x)) / x**3
    p = linear_power(torch.from_numpy(k), c, wiggles).numpy()
    sigma2 = scipy.integrate.simpson(k**3 * p * w**2 / (2 * math.pi**2), x=lnk)
    assert math.sqrt(sigma2) == pytest.approx(c.sigma8, rel=1e-8)


@pytest.mark.parametrize("c", COSMOLOGIES, ids=["planck15", "low-om", "high-om"])
def test_growth_factor_matches_colossus(c):
    """D(a) / D(1) against colossus's growth factor (no radiation, no interpolation): measured
    6e-8 at a = 0.02 and < 5e-10 from a = 0.05 (colossus's own quadrature; the integral solution
    matches a 1e-12 ODE solution to 1e-12, see test_cosmo)."""
    ref = _colossus(c)
    a = np.array([0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 0.9])
    d_ref = ref.growthFactor(1 / a - 1) / ref.growthFactor(0.0)
    assert np.max(np.abs(growth_factor(a, c).numpy() / d_ref - 1)) < 1e-7


# --------------------------------------------------------------------------- non-linear power

COSMO = Cosmology(0.3, 0.8)
BOX, PARTICLES, MESH, STEPS = 256.0, 32, 64, 10  # half the mesh Nyquist: pi MESH / (2 BOX) = 0.39 h/Mpc
BANDS = [0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.39]  # h/Mpc


def _halofit_boost(c: Cosmology):
    """k (h/Mpc) and P_halofit / P_lin at z = 0 from CAMB (Takahashi et al. 2012 halofit), for the
    same flat LCDM (massless neutrinos) normalised to the same sigma8."""
    camb = pytest.importorskip("camb")
    h = c.h
    pars = camb.set_params(H0=100 * h, ombh2=c.Omega_b * h * h, omch2=(c.Omega_m - c.Omega_b) * h * h, mnu=0.0,
                           num_massive_neutrinos=0, TCMB=c.T_cmb, ns=c.n_s, As=2e-9, WantCls=False,
                           WantTransfer=True, kmax=20.0, redshifts=[0.0], NonLinear=camb.model.NonLinear_both,
                           halofit_version="takahashi")
    res = camb.get_transfer_functions(pars)
    res.calc_power_spectra()
    pars.InitPower.set_params(As=2e-9 * (c.sigma8 / res.get_sigma8_0()) ** 2, ns=c.n_s)
    res.power_spectra_from_transfer(pars.InitPower)
    assert res.get_sigma8_0() == pytest.approx(c.sigma8, rel=1e-6)
    kh, _, p_nl = res.get_nonlinear_matter_power_spectrum(hubble_units=True, k_hunit=True)
    _, _, p_lin = res.get_linear_matter_power_spectrum(hubble_units=True, k_hunit=True)
    return kh, p_nl[0] / p_lin[0]


def _fixed_amplitude_noise(seed: int, n: int) -> np.ndarray:
    """White noise whose Fourier modes all have unit amplitude and random phases (Angulo &
    Pontzen 2016): no cosmic variance in the initial P(k)."""
    f = np.fft.rfftn(np.random.default_rng(seed).standard_normal((n, n, n)))
    return np.fft.irfftn(f / np.abs(f) * n**1.5, s=(n, n, n), axes=(0, 1, 2))


def test_pm_power_at_a1_matches_halofit():
    """P(k) of the PM density at a = 1 against halofit: CAMB's halofit boost P_hf / P_lin times the
    EH98 spectrum the run starts from (so that EH98's own 1-3% offsets from CAMB's linear P do not
    enter), averaged in bands of 0.05 h/Mpc over 0.02 < k < 0.39 h/Mpc (half the mesh Nyquist).

    32^3 particles on a 64^3 mesh in 256 Mpc/h, 10 steps from a = 0.1, three fixed-amplitude
    pairs (phases w and -w). Over 24 such pairs the band means are 1.01 (0.02-0.05), 1.00
    (0.05-0.1), 0.98 (0.1-0.2) and 0.95-0.97 (0.2-0.39 h/Mpc); the mean of three pairs scatters
    by at most 0.013 per band. Twice the resolution (64^3 particles, 128^3 mesh) raises
    0.2 < k < 0.35 by 1-2%: the rest of the deficit is within halofit's own few per cent.
    Bounds: 8% in every band, 3% below k = 0.1 h/Mpc."""
    kh, boost = _halofit_boost(COSMO)
    n = PARTICLES
    p_sum = 0.0
    seeds = (1, 2, 3)
    for seed in seeds:
        w = _fixed_amplitude_noise(seed, n)
        for sign in (1.0, -1.0):
            snap = simulate(torch.from_numpy(sign * w), BOX, COSMO, mesh=MESH, steps=STEPS, a_out=[1.0])[-1]
            assert torch.isfinite(snap.delta).all()
            k, p, counts = power_spectrum_3d(snap.delta, BOX, compensate_cic=True)
            p_sum = p_sum + p.numpy()
    k, counts, p_pm = k.numpy(), counts.numpy(), p_sum / (2 * len(seeds))
    p_ref = np.exp(np.interp(np.log(k), np.log(kh), np.log(boost))) * linear_power(torch.from_numpy(k), COSMO).numpy()
    ratios = []
    for lo, hi in zip(BANDS[:-1], BANDS[1:]):
        s = (k >= lo) & (k < hi)
        ratios.append(np.sum(counts[s] * p_pm[s]) / np.sum(counts[s] * p_ref[s]))
    ratios = np.array(ratios)
    assert np.all(np.abs(ratios - 1) < 0.08), dict(zip(BANDS[1:], ratios.round(3)))
    assert np.all(np.abs(ratios[:2] - 1) < 0.03), ratios  # k < 0.1 h/Mpc: linear theory, fixed amplitudes
