"""skymorph.cosmo: linear theory, initial conditions, the FastPM integrator, gradients, the CLI."""
import math

import h5py
import numpy as np
import pytest
import scipy.integrate
import torch
from scipy.special import erfc
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.cosmo.linear import Cosmology, growth_factor, growth_rate, linear_power, momentum_growth
from skymorph.cosmo.mesh import cic_paint, cic_readout, gravity, linear_field, power_spectrum_3d
from skymorph.cosmo.nbody import check_memory, simulate
from skymorph.errors import ConfigError

COSMO = Cosmology(0.3, 0.8)


# --------------------------------------------------------------------------- linear theory


# Eisenstein & Hu and D(a) against colossus, sigma_8 against an independent quadrature: see
# test_linear_reference.py


def test_growth_matches_ode_solution():
    """D(a) and f(a) of the integral solution against the growth ODE integrated from deep in matter
    domination (D = a there): D'' + (3/a + E'/E) D' = 3/2 Omega_m D / (a^5 E^2). Measured: D to
    7e-13, f to 3e-12 (0.05 <= a <= 1)."""
    om = COSMO.Omega_m

    def e2(a):
        return om / a**3 + 1 - om

    def rhs(a, y):
        d, dp = y
        dlne_da = -1.5 * om / a**4 / e2(a)
        return [dp, -(3 / a + dlne_da) * dp + 1.5 * om * d / (a**5 * e2(a))]

    a0 = 1e-3
    a = np.array([0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0])
    sol = scipy.integrate.solve_ivp(rhs, (a0, 1.0), [a0, 1.0], t_eval=a, rtol=1e-12, atol=1e-15, method="DOP853")
    d_ode = sol.y[0] / sol.y[0][-1]
    f_ode = a * sol.y[1] / sol.y[0]
    assert np.max(np.abs(growth_factor(a, COSMO).numpy() / d_ode - 1)) < 1e-10
    assert np.max(np.abs(growth_rate(a, COSMO).numpy() / f_ode - 1)) < 1e-10
    # G_p = a^3 E dD/da obeys dG_p/da = 3/2 Omega_m D / (a^2 E): the identity FastPM's kick uses
    h = 1e-5
    dgp = (momentum_growth(a[1:-1] + h, COSMO) - momentum_growth(a[1:-1] - h, COSMO)).numpy() / (2 * h)
    expect = 1.5 * om * d_ode[1:-1] / (a[1:-1] ** 2 * np.sqrt(e2(a[1:-1])))
    assert np.max(np.abs(dgp / expect - 1)) < 1e-5


def test_cosmology_rejects_bad_parameters():
    with pytest.raises(ConfigError, match="Omega_m"):
        Cosmology(1.2, 0.8)
    with pytest.raises(ConfigError, match="sigma8"):
        Cosmology(0.3, 0.0)


# --------------------------------------------------------------------------- initial conditions


def test_initial_field_power_matches_input():
    n, box = 64, 500.0
    noise = torch.from_numpy(np.random.default_rng(1).standard_normal((n, n, n)))
    delta = linear_field(noise, box, lambda k: linear_power(k, COSMO))
    assert delta.dtype == torch.float64 and abs(float(delta.mean())) < 1e-12  # k = 0 mode removed
    k, p, counts = power_spectrum_3d(delta, box)
    ratio = (p / linear_power(k, COSMO)).numpy()
    sigma = 1.0 / np.sqrt(counts.numpy() / 2.0)
    assert np.all(np.abs(ratio - 1) < 4 * sigma)
    assert abs(np.mean((ratio - 1) / sigma)) < 4 / np.sqrt(len(ratio))  # no overall bias


@pytest.fixture(scope="module")
def pm_run():
    """32^3 particles on a 64^3 mesh in 256 Mpc/h, 10 steps from a = 0.1, with its linear field."""
    n, box = 32, 256.0
    noise = torch.from_numpy(np.random.default_rng(7).standard_normal((n, n, n), dtype=np.float32))
    snaps = simulate(noise, box, COSMO, mesh=64, steps=10, a_out=[0.1, 0.2, 0.35, 0.5, 0.75, 1.0])
    return box, linear_field(noise, box, lambda k: linear_power(k, COSMO)), snaps


def _spectra(snap, delta_lin, box):
    """P_pm, P_pm x lin and P_lin on the particle-lattice mesh (cosmic variance cancels in ratios)."""
    n = delta_lin.shape[-1]
    d = cic_paint(snap.pos, n, box) - 1.0
    k, p_auto, _ = power_spectrum_3d(d, box, compensate_cic=True)
    _, p_cross, _ = power_spectrum_3d(d, box, delta_lin, compensate_cic=True)
    _, p_lin, _ = power_spectrum_3d(delta_lin, box)
    return k.numpy(), p_auto.numpy(), p_cross.numpy(), p_lin.numpy()


def test_2lpt_matches_linear_growth_at_a_01(pm_run):
    box, delta_lin, snaps = pm_run
    assert snaps[0].a == pytest.approx(0.1)
    k, p_auto, _, p_lin = _spectra(snaps[0], delta_lin, box)
    d2 = float(growth_factor(0.1, COSMO)) ** 2
    large = k < 0.1
    assert np.all(np.abs(p_auto[large] / (d2 * p_lin[large]) - 1) < 0.05)


def test_pm_growth_follows_linear_theory_on_large_scales(pm_run):
    box, delta_lin, snaps = pm_run
    for s in snaps:
        k, _, p_cross, p_lin = _spectra(s, delta_lin, box)
        ratio = p_cross[0] / p_lin[0] / float(growth_factor(s.a, COSMO))  # k = 2 pi / 256 h/Mpc
        assert abs(ratio - 1) < 0.02, (s.a, ratio)


def test_pm_final_state_is_finite_and_keeps_mass(pm_run):
    """(The power at a = 1 against halofit: test_linear_reference.py.)"""
    box, delta_lin, snaps = pm_run
    final = snaps[-1]
    assert final.a == 1.0 and torch.isfinite(final.pos).all() and torch.isfinite(final.mom).all()
    assert float(final.delta.sum()) == pytest.approx(0.0, abs=1e-2 * final.delta.numel() ** 0.5)  # mass kept


# --------------------------------------------------------------------------- forces


def _ewald_force(r, box, alpha=None):
    """Force at separations r (M, 3) from a unit point mass in a periodic box with a uniform
    neutralising background (Ewald summation), for laplacian(phi) = 4 pi delta_D."""
    alpha = 2.0 / box if alpha is None else alpha
    f = np.zeros_like(r)
    shifts = np.stack(np.meshgrid(*[np.arange(-3, 4)] * 3, indexing="ij"), -1).reshape(-1, 3) * box
    for s in shifts:
        rn = r - s
        d = np.linalg.norm(rn, axis=-1, keepdims=True)
        f -= rn / d**3 * (erfc(alpha * d) + 2 * alpha * d / math.sqrt(math.pi) * np.exp(-(alpha * d) ** 2))
    m = np.stack(np.meshgrid(*[np.arange(-8, 9)] * 3, indexing="ij"), -1).reshape(-1, 3)
    kv = m[np.any(m != 0, axis=1)] * 2 * math.pi / box
    k2 = (kv**2).sum(1)
    f -= 4 * math.pi / box**3 * (np.sin(r @ kv.T) * np.exp(-k2 / (4 * alpha**2)) / k2) @ kv
    return f


def test_single_particle_force_is_radial_inverse_square():
    n = box = 64  # 1 Mpc/h cells
    x0 = torch.tensor([[20.3, 30.6, 40.1]], dtype=torch.float64)
    forces = gravity(cic_paint(x0, n, box, float(n**3)) - 1.0, box)  # delta of one particle, mean 0
    rng = np.random.default_rng(3)
    radii = np.repeat(np.linspace(4.0, 32.0, 15), 10)
    dirs = rng.normal(size=(radii.size, 3))
    r = radii[:, None] * dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    f_pm = cic_readout(forces, x0 + torch.from_numpy(r), box).numpy()
    # laplacian(phi) = delta = V delta_D - 1  ->  G M = V / (4 pi)
    f_ewald = _ewald_force(r, box) * box**3 / (4 * math.pi)
    assert np.all(np.linalg.norm(f_pm - f_ewald, axis=1) / np.linalg.norm(f_ewald, axis=1) < 0.06)
    near = radii <= 8
    radial = -(f_pm * r).sum(1) / radii
    tangential = np.linalg.norm(f_pm + radial[:, None] * r / radii[:, None], axis=1)
    assert np.all(tangential[near] < 0.05 * radial[near])
    assert np.all(np.abs(radial[near] * 4 * math.pi * radii[near] ** 2 / box**3 - 1) < 0.05)


# --------------------------------------------------------------------------- gradients


def test_gradients_match_finite_differences():
    n, box = 16, 128.0
    noise = torch.from_numpy(np.random.default_rng(5).standard_normal((n, n, n)))
    direction = torch.from_numpy(np.random.default_rng(6).standard_normal((n, n, n)))

    def loss(w, om, s8):
        snap = simulate(w, box, Cosmology(om, s8), mesh=32, steps=5, keep_particles=False)[-1]
        return (snap.delta**2).mean()

    w = noise.clone().requires_grad_(True)
    om = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    s8 = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    loss(w, om, s8).backward()
    eps = 1e-4
    fd_w = (loss(noise + eps * direction, 0.3, 0.8) - loss(noise - eps * direction, 0.3, 0.8)) / (2 * eps)
    assert float((w.grad * direction).sum()) == pytest.approx(float(fd_w), rel=0.03)
    eps = 1e-3
    fd_om = (loss(noise, 0.3 + eps, 0.8) - loss(noise, 0.3 - eps, 0.8)) / (2 * eps)
    assert float(om.grad) == pytest.approx(float(fd_om), rel=0.03)
    fd_s8 = (loss(noise, 0.3, 0.8 + eps) - loss(noise, 0.3, 0.8 - eps)) / (2 * eps)
    assert float(s8.grad) == pytest.approx(float(fd_s8), rel=0.03)


def test_simulate_rejects_bad_configuration():
    noise = torch.zeros(8, 8, 8)
    with pytest.raises(ConfigError, match="even"):
        simulate(noise, 100.0, COSMO, mesh=15)
    with pytest.raises(ConfigError, match="steps"):
        simulate(noise, 100.0, COSMO, steps=0)
    with pytest.raises(ConfigError, match="a_init"):
        simulate(noise, 100.0, COSMO, a_out=[0.05])
    with pytest.raises(ConfigError, match="GiB"):
        check_memory(8192, 8192, 1, True)


# --------------------------------------------------------------------------- command line

runner = CliRunner()


def test_cli_sim_and_power(tmp_path):
    sim = tmp_path / "sim.h5"
    res = runner.invoke(app, ["cosmo", "sim", "--mesh", "16", "--box", "128", "--pm-steps", "3", "--omega-m", "0.3",
                              "--sigma8", "0.8", "--seed", "2", "--a-out", "0.5,1", "--out", str(sim), "--no-progress"])
    assert res.exit_code == 0, res.output
    with h5py.File(sim) as f:
        assert f["density"].shape == (2, 16, 16, 16) and list(f["a"][()]) == [0.5, 1.0]
        pos = f["particles/pos"][()]
        assert pos.shape == (16**3, 3) and pos.min() >= 0 and pos.max() < 128
        assert f.attrs["Omega_m"] == 0.3 and f.attrs["seed"] == 2
        assert np.allclose(f["density"][()].mean(axis=(1, 2, 3)), 0, atol=1e-5)
    png = tmp_path / "pk.png"
    assert runner.invoke(app, ["cosmo", "power", str(sim), "--out", str(png)]).exit_code == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(app, ["cosmo", "power", str(sim), "--out", str(png)])
    assert res.exit_code == 1 and "--overwrite" in res.stderr


@pytest.mark.parametrize("args, message", [
    (["--mesh", "31"], "--mesh 31: must be a positive even number"),
    (["--mesh", "0"], "--mesh 0: must be a positive even number"),
    (["--omega-m", "1.3"], "Omega_m = 1.3: must lie in (0, 1)"),
    (["--sigma8", "-0.1"], "sigma8 = -0.1: must be positive"),
    (["--pm-steps", "0"], "--pm-steps 0"),
    (["--mesh", "8192"], "GiB available"),
    (["--a-out", "0.5,x"], "--a-out"),
])
def test_cli_sim_bad_input_is_one_clear_line(args, message, tmp_path):
    out = tmp_path / "sim.h5"
    res = runner.invoke(app, ["cosmo", "sim", "--out", str(out), "--no-progress", *args])
    assert res.exit_code == 1
    err = res.stderr.strip()
    assert err.startswith("error:") and message in err and "\n" not in err and "Traceback" not in res.output
    assert not out.exists()
