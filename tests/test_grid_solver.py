"""The built-in MHD + cosmic-ray solver against analytic answers, conservation laws and bad input."""
import h5py
import numpy as np
import pytest

from skymorph.errors import ConfigError, Interrupted, OutputExistsError
from skymorph.grid import cosmic_rays, mhd
from skymorph.grid import simulate as sim
from skymorph.grid.driving import Driver


def _uniform(shape, b0=(1.0, 0.0, 0.0), pc=0.0):
    u = np.zeros((5, *shape))
    u[0] = 1.0
    u[4] = pc ** 0.75
    b = np.zeros((3, *shape))
    for d in range(3):
        b[d] = b0[d]
    return u, b


def _run(state, t_end, cfl=0.4, kernel="numba"):
    while state.t < t_end - 1e-12:
        state = mhd.rk2_step(state, min(mhd.time_step(state, cfl), t_end - state.t), kernel=kernel)
    return state


def _wave_error(n, kind, pc=0.0, amp=1e-6):
    """L1 error (relative to the amplitude) of a linear wave after one period along x."""
    x = (np.arange(n) + 0.5) / n
    u, b = _uniform((1, 1, n), pc=pc)
    s = np.sin(2 * np.pi * x)
    if kind == "sound":  # isothermal sound with the CR pressure's gamma_c p_c
        c = np.sqrt(1.0 + mhd.GAMMA_CR * pc)
        u[0] *= 1 + amp * s
        u[1] = u[0] * amp * c * s
        u[4] = (pc * u[0] ** mhd.GAMMA_CR) ** 0.75  # adiabatic CRs: p_c ~ rho^gamma_c
        var = 0
    else:  # Alfven wave along B0 = x-hat: v_A = 1, dB_y = -dv_y sqrt(rho)
        c = 1.0
        u[2] = amp * s
        b[1] = -amp * s
        var = 2
    state = mhd.State(u.copy(), b, 1.0 / n)
    out = _run(state, 1.0 / c)
    return np.abs(out.u[var] - u[var]).mean() / amp


@pytest.mark.parametrize("kind,pc", [("sound", 0.0), ("sound", 1.0), ("alfven", 0.0)])
def test_linear_waves_converge_at_second_order(kind, pc):
    errors = [_wave_error(n, kind, pc) for n in (32, 64, 128)]
    assert errors[-1] < 5e-3  # the right speed: a wrong one leaves an O(1) phase error
    assert errors[0] / errors[1] > 3.0 and errors[1] / errors[2] > 3.4


def _turbulent_state(shape, seed=0, pc=0.5):
    """Random velocities, a random solenoidal perturbation of B from a vector potential, CRs."""
    rng = np.random.default_rng(seed)
    u, b = _uniform(shape, pc=pc)
    n = shape[-1]
    u[0] = np.exp(0.2 * rng.standard_normal(shape))
    u[1:4] = u[0] * 0.5 * rng.standard_normal((3, *shape))
    if shape[0] == 1:
        u[3] = 0.0
    az = 0.05 * rng.standard_normal(shape)
    b[0] += (np.roll(az, -1, 1) - az) * n
    b[1] += -(np.roll(az, -1, 2) - az) * n
    u[4] = (pc * u[0] ** mhd.GAMMA_CR) ** 0.75
    return mhd.State(u, b, 1.0 / n)


@pytest.mark.parametrize("shape", [(1, 24, 24), (8, 8, 8)])
def test_mass_momentum_conserved_and_div_b_zero(shape):
    state = _turbulent_state(shape)
    assert np.abs(mhd.divergence(state.b, state.dx)).max() < 1e-10
    before = mhd.total(state)
    for _ in range(15):
        state = mhd.rk2_step(state, mhd.time_step(state, 0.3))
    after = mhd.total(state)
    assert abs(after["mass"] - before["mass"]) < 1e-13 * before["mass"]
    assert np.abs(after["momentum"] - before["momentum"]).max() < 1e-13
    assert abs(after["cr_entropy"] - before["cr_entropy"]) < 1e-13 * before["cr_entropy"]
    assert np.abs(mhd.divergence(state.b, state.dx)).max() * state.dx < 1e-12
    assert np.abs(state.u[1:4]).max() > 0.1  # it moved


def test_numba_and_numpy_sweeps_agree():
    state = _turbulent_state((1, 16, 16), seed=3)
    for a, b in zip(mhd.rhs(state, kernel="numba"), mhd.rhs(state, kernel="numpy")):
        assert np.abs(a - b).max() < 1e-10 * np.abs(b).max()


def _gaussian(n, shape):
    x = (np.arange(n) + 0.5) / n - 0.5
    grids = np.meshgrid(*([x] * len(shape)), indexing="ij")
    return x, 1e-3 + np.exp(-sum(g ** 2 for g in grids) / (2 * 0.05 ** 2)).reshape((1,) * (3 - len(shape)) + shape)


def _variance(p, x, axis):
    w = p.sum(axis=tuple(a for a in range(3) if a != axis))
    return (w * x ** 2).sum() / w.sum()


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_cr_pulse_diffuses_along_b_only(kernel):
    n, kappa, t = 96, 0.01, 0.05
    x, ec = _gaussian(n, (n, n))
    bc = np.zeros((3, *ec.shape))
    bc[0] = 1.0  # B along x: variance grows as 2 kappa t along x, not at all along y
    out, steps = cosmic_rays.transport(ec, bc, np.ones_like(ec), t, 1.0 / n, kappa=kappa, kernel=kernel)
    assert steps > 1
    assert _variance(out - 1e-3, x, 2) - _variance(ec - 1e-3, x, 2) == pytest.approx(2 * kappa * t, rel=1e-6)
    assert abs(_variance(out - 1e-3, x, 1) - _variance(ec - 1e-3, x, 1)) < 1e-12
    assert out.sum() == pytest.approx(ec.sum(), rel=1e-13)


def test_rkl2_stage_count_covers_the_step():
    for ratio in (1.01, 3.0, 15.0, 400.0):
        s = cosmic_rays.rkl2_stages(ratio)
        assert (s * s + s - 2) / 4 >= ratio > ((s - 1) ** 2 + (s - 1) - 2) / 4 or s == 2


def test_oblique_diffusion_conserves_and_creates_no_extrema():
    rng = np.random.default_rng(1)
    ec = 1.0 + rng.random((1, 32, 32))
    bc = rng.standard_normal((3, 1, 32, 32))
    out, _ = cosmic_rays.transport(ec, bc, np.ones_like(ec), 0.01, 1 / 32, kappa=0.05)
    assert out.sum() == pytest.approx(ec.sum(), rel=1e-12)
    assert ec.min() <= out.min() and out.max() <= ec.max() + 1e-12


def test_streaming_carries_the_flanks_away_at_the_alfven_speed():
    """In a uniform medium streaming obeys d e_c/dt + v_st . grad e_c = 0 on each flank: the profile moves
    down the gradient at v_A (Sharma+09's test); the regularised scheme approaches it for large h."""
    n, t = 256, 0.1
    x, ec = _gaussian(n, (n,))
    bc = np.zeros((3, *ec.shape))
    bc[0] = 1.0  # v_A = 1 at rho = 1
    out, steps = ec, 50  # MHD-like steps, dt = 0.5 dx / v_A, each one RKL2 super-step
    for _ in range(steps):
        out, stages = cosmic_rays.transport(out, bc, np.ones_like(ec), t / steps, 1.0 / n, stream=True,
                                            smoothing=32)
    assert stages > 2
    ref = 1e-3 + np.exp(-(np.abs(x) - t) ** 2 / (2 * 0.05 ** 2))
    flank = (np.abs(x) > 0.22) & (np.abs(x) < 0.35)
    assert np.abs(out[0, 0] - ref)[flank].max() < 0.05 * ref[flank].max()
    assert out.sum() < ec.sum()  # energy lost to the gas


def test_driving_is_solenoidal_and_reaches_the_target_mach():
    d = Driver((1, 32, 32), mach=1.0, seed=0)
    f = d.field()
    fk = np.fft.fft2(f[:2, 0])
    ky, kx = np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(32), indexing="ij")
    assert np.abs(kx * fk[0] + ky * fk[1]).max() < 1e-10 * np.abs(fk).max()
    assert np.abs(f[2]).max() == 0.0
    cfg = sim.SimConfig(model="mhd", n=32, mach=1.0, seed=2)
    state = sim.initial_state(cfg)
    driver = Driver(cfg.shape, cfg.mach, cfg.seed)
    machs = []
    while state.t < 3.0:
        state = sim.advance(state, mhd.time_step(state, 0.3), cfg, driver)
        machs.append((state.t, sim.mach_rms(state)))
    late = [m for t, m in machs if t > 2.0]
    assert 0.8 < np.mean(late) < 1.2
    assert np.abs(mhd.total(state)["momentum"]).max() < 1e-12


def test_3d_driving_is_solenoidal_and_keeps_div_b_and_momentum():
    d = Driver((12, 12, 12), mach=1.0, seed=1)
    f = np.fft.fftn(d.field(), axes=(1, 2, 3))
    k = np.fft.fftfreq(12, 1 / 12)
    kz, ky, kx = np.meshgrid(k, k, k, indexing="ij")
    assert np.abs(kx * f[0] + ky * f[1] + kz * f[2]).max() < 1e-10 * np.abs(f).max()
    assert len(d.k) == 16  # one of each +-k pair: 6 + 12 + 8 + 6 lattice vectors with |k|^2 = 1, 2, 3, 4
    cfg = sim.SimConfig(model="cr_stream", n=12, dim=3, seed=1)
    state = sim.initial_state(cfg)
    for _ in range(10):
        state = sim.advance(state, mhd.time_step(state, 0.3), cfg, d)
    assert np.abs(mhd.divergence(state.b, state.dx)).max() * state.dx < 1e-12
    assert np.abs(mhd.total(state)["momentum"]).max() < 1e-12
    assert np.abs(state.u[3]).max() > 0  # the z direction is driven in 3D


def test_simulate_resumes_to_the_same_file(tmp_path, monkeypatch):
    cfg = sim.SimConfig(model="cr_advect", n=16, mach=1.0, snapshots=2, spinup=0.2, every=0.2, seed=4)
    ref = sim.simulate(cfg, tmp_path / "ref.h5")
    calls = {"n": 0}
    real = sim.advance

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 20:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(sim, "advance", interrupted)
    with pytest.raises(Interrupted, match="--resume"):
        sim.simulate(cfg, tmp_path / "run.h5")
    assert sim.checkpoint_path(tmp_path / "run.h5").exists() and not (tmp_path / "run.h5").exists()
    with pytest.raises(ConfigError, match="--resume"):
        sim.simulate(cfg, tmp_path / "run.h5")
    other = sim.SimConfig(**{**cfg.__dict__, "mach": 2.0})
    with pytest.raises(ConfigError, match="other settings"):
        sim.simulate(other, tmp_path / "run.h5", resume=True)
    monkeypatch.setattr(sim, "advance", real)
    out = sim.simulate(cfg, tmp_path / "run.h5", resume=True)
    assert not sim.checkpoint_path(out).exists()
    with h5py.File(ref) as a, h5py.File(out) as b:
        assert a.attrs["label"] == "cr_advect"
        for k in ("rho", "ec", "eb", "vx"):
            np.testing.assert_array_equal(a[f"snapshots/{k}"][()], b[f"snapshots/{k}"][()])
        assert a["snapshots/rho"].shape == (2, 1, 16, 16)
        assert a["history/divb"][()].max() < 1e-12
    with pytest.raises(OutputExistsError):
        sim.simulate(cfg, tmp_path / "ref.h5")


@pytest.mark.parametrize("change,match", [({"cfl": 0.9}, "CFL"), ({"model": "mhd", "kappa": 1.0}, "kappa"),
                                          ({"model": "cr_diffuse"}, "kappa"), ({"model": "cr_fast"}, "model"),
                                          ({"dim": 1}, "dim"), ({"kernel": "cuda"}, "kernel")])
def test_bad_settings_are_refused(change, match):
    with pytest.raises(ConfigError, match=match):
        sim.SimConfig(**{"model": "mhd", **change}).check()


def test_supersonic_density_spectrum_is_steeper_than_k_minus_1():
    """Driven Mach-2 turbulence: density power falls faster than k^-1 (slope about -2.5 to -3 at 32^2)."""
    from skymorph.grid.statistics import power_spectrum, spectral_slope

    cfg = sim.SimConfig(model="mhd", n=32, mach=2.0, seed=3)
    state, driver = sim.initial_state(cfg), Driver(cfg.shape, cfg.mach, cfg.seed)
    slopes = []
    while state.t < 1.5:
        state = sim.advance(state, mhd.time_step(state, 0.3), cfg, driver)
        if state.t > 1.0 and len(slopes) < 1 + int((state.t - 1.0) / 0.1):
            slopes.append(spectral_slope(*power_spectrum(state.u[0]), (2, 8)))
    assert np.mean(slopes) < -1.5
    assert 1.5 < sim.mach_rms(state) < 2.5
