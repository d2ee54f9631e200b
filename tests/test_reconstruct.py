"""The PM's numba kernels and reverse-time adjoint, and MAP reconstruction of initial conditions."""
import math
from unittest import mock

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.cosmo import mesh as M
from skymorph.cosmo import reconstruct as rc
from skymorph.cosmo.linear import Cosmology, linear_power
from skymorph.cosmo.nbody import simulate
from skymorph.errors import ConfigError, InputError

runner = CliRunner()


# --------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-6), (torch.float64, 1e-13)])
def test_numba_paint_and_readout_equal_the_scatter_route_and_keep_mass(dtype, tol):
    """Same fields as torch's scatter/gather CIC (kept for other devices) to the dtype's rounding,
    positions anywhere (negative, beyond the box: they wrap), mass conserved to round-off."""
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(4000, 3, generator=g, dtype=dtype) * 300.0 - 100.0
    w = torch.rand(4000, generator=g, dtype=dtype)
    fast, ref = M.cic_paint(pos, 16, 100.0, w), M._scatter_paint(pos, 16, 100.0, w)
    assert float((fast - ref).abs().max()) < tol * float(ref.abs().max())
    assert float(fast.sum()) == pytest.approx(float(w.sum()), rel=10 * tol)
    meshes = torch.randn(3, 16, 16, 16, generator=g, dtype=dtype)
    assert torch.allclose(M.cic_readout(meshes, pos, 100.0), M._gather_readout(meshes, pos, 100.0), atol=tol * 10)
    # a particle on a cell corner puts all its weight there and reads that cell back
    corner = torch.tensor([[12.5, 50.0, 87.5]], dtype=dtype)  # cells of 6.25: (2, 8, 14)
    one = M.cic_paint(corner, 16, 100.0, 1.0)
    assert float(one[2, 8, 14]) == pytest.approx(1.0) and float(one.sum()) == pytest.approx(1.0)
    assert float(M.cic_readout(meshes[0], corner, 100.0)) == pytest.approx(float(meshes[0, 2, 8, 14]))


def test_paint_readout_and_force_backward_passes_are_the_adjoints():
    g = torch.Generator().manual_seed(1)
    pos = (torch.rand(40, 3, generator=g, dtype=torch.float64) * 30.0).requires_grad_(True)
    w = torch.rand(40, generator=g, dtype=torch.float64).requires_grad_(True)
    meshes = torch.randn(2, 8, 8, 8, generator=g, dtype=torch.float64).requires_grad_(True)
    delta = torch.randn(8, 8, 8, generator=g, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, q: M.cic_paint(p, 8, 30.0, q), (pos, w))
    assert torch.autograd.gradcheck(lambda m, p: M.cic_readout(m, p, 30.0), (meshes, pos))
    assert torch.autograd.gradcheck(lambda d: M.gravity(d, 30.0), (delta,))


def test_real_space_force_equals_the_fourier_4th_order_kernel():
    """-D phi in real space is the Fourier kernel -i (8 sin(k d) - sin(2 k d)) / (6 d) of FastPM and
    JaxPM applied to phi, to float64 rounding."""
    n, box = 12, 48.0
    delta = torch.randn(n, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    d = box / n
    ks = M.wavenumbers(n, box, dtype=torch.float64)
    k2 = sum(k**2 for k in ks)
    phi_k = torch.fft.rfftn(delta) * torch.where(k2 > 0, -1.0 / torch.where(k2 > 0, k2, 1.0), 0.0)
    ref = torch.stack([torch.fft.irfftn(phi_k * -1j * (8 * torch.sin(k * d) - torch.sin(2 * k * d)) / (6 * d),
                                        s=(n, n, n)) for k in ks])
    assert torch.allclose(M.gravity(delta, box), ref, atol=1e-12)


# --------------------------------------------------------------------------- adjoint through the steps


def test_adjoint_gradient_with_outputs_between_steps_matches_finite_differences():
    """Outputs at a step edge (0.55) and between edges (0.8) split the run into adjoint segments;
    d/d(noise) and d/d(Omega_m) of a loss on all of them against central differences, float64."""
    n, box = 8, 64.0
    noise = torch.from_numpy(np.random.default_rng(4).standard_normal((n, n, n)))
    direction = torch.from_numpy(np.random.default_rng(5).standard_normal((n, n, n)))

    def loss(w, om):
        snaps = simulate(w, box, Cosmology(om, 0.8), 16, 6, a_out=(0.55, 0.8, 1.0))
        return sum((s.delta**2).mean() + 1e-3 * (s.mom**2).mean() for s in snaps)

    w = noise.clone().requires_grad_(True)
    om = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    loss(w, om).backward()
    eps = 1e-4
    fd = (loss(noise + eps * direction, 0.3) - loss(noise - eps * direction, 0.3)) / (2 * eps)
    assert float((w.grad * direction).sum()) == pytest.approx(float(fd), rel=0.01)
    fd_om = (loss(noise, 0.3 + 1e-4) - loss(noise, 0.3 - 1e-4)) / 2e-4
    assert float(om.grad) == pytest.approx(float(fd_om), rel=0.01)


def test_float32_adjoint_reversal_keeps_the_gradient():
    """The reverse-time integration re-derives every step's state in float32; the gradient stays
    within 1e-3 of the float64 one through 12 steps (measured 4e-5 at 32^3 and 10 steps)."""
    noise = np.random.default_rng(6).standard_normal((12, 12, 12))

    def grad(dtype):
        w = torch.tensor(noise, dtype=dtype, requires_grad=True)
        (simulate(w, 96.0, Cosmology(), 12, 12, keep_particles=False)[-1].delta ** 2).sum().backward()
        return w.grad.double()

    g32, g64 = grad(torch.float32), grad(torch.float64)
    assert float((g32 - g64).norm() / g64.norm()) < 1e-3


# --------------------------------------------------------------------------- reconstruction


@pytest.fixture(scope="module")
def sim16(tmp_path_factory):
    path = tmp_path_factory.mktemp("rc") / "sim.h5"
    res = runner.invoke(app, ["cosmo", "sim", "--out", str(path), "--mesh", "16", "--box", "64", "--pm-steps", "3",
                              "--a-out", "1", "--seed", "7", "--no-progress"])
    assert res.exit_code == 0, res.output
    return path


def test_sim_stores_the_white_noise_and_linear_field_it_started_from(sim16):
    with h5py.File(sim16) as f:
        noise, linear = f["initial/noise"][()], f["initial/linear"][()]
        cosmo = Cosmology(float(f.attrs["Omega_m"]), float(f.attrs["sigma8"]))
    assert np.array_equal(noise, np.random.default_rng(7).standard_normal((16,) * 3, dtype=np.float32))
    ref = M.linear_field(torch.from_numpy(noise), 64.0, lambda k: linear_power(k, cosmo)).numpy()
    assert np.allclose(linear, ref, atol=1e-6)


def test_reconstruction_loss_gradient_matches_finite_differences(sim16):
    """Through the smoothed, masked residual, the PM and the new paint/readout, float64, three directions."""
    obs = rc.read_observation(sim16)
    mask = np.ones((16,) * 3, np.float32)
    mask[:4] = 0
    obs = rc.mock_observation(obs, 0.2, None, mask, seed=1)
    loss = rc.map_objective(obs, 1.0)
    rng = np.random.default_rng(8)
    z0 = torch.from_numpy(rng.standard_normal((16,) * 3))
    z = z0.clone().requires_grad_(True)
    loss(z).backward()
    for _ in range(3):
        v = torch.from_numpy(rng.standard_normal((16,) * 3))
        fd = (loss(z0 + 1e-5 * v) - loss(z0 - 1e-5 * v)) / 2e-5
        assert float((z.grad * v).sum()) == pytest.approx(float(fd), rel=0.02)


def test_reconstruction_recovers_the_large_scales_and_resumes(sim16, tmp_path):
    """Low noise: the initial field's r(k) on the largest scales exceeds 0.95 and the loss falls in
    every stage; a run interrupted after its first stage resumes to the same white noise."""
    obs = rc.mock_observation(rc.read_observation(sim16), 0.05, None, None, seed=0)
    rec = rc.reconstruct(obs, "lbfgs", (1.0, 0.0), 15)
    k, r, t = rc.cross_spectra(rec.linear, obs.truth["linear"], obs.box)
    assert np.all(r[k < 0.3] > 0.95) and np.all(t[k < 0.3] > 0.8)
    h = np.array(rec.history)
    for stage in (0, 1):
        losses = h[h[:, 1] == stage, 3]
        assert losses.min() < 0.5 * losses[0]
    ck = tmp_path / "rec.ckpt.npz"
    real = rc._smoother

    def fail_at_zero(mesh, box, radius):
        if radius == 0:
            raise KeyboardInterrupt
        return real(mesh, box, radius)

    with mock.patch.object(rc, "_smoother", fail_at_zero), pytest.raises(KeyboardInterrupt):
        rc.reconstruct(obs, "lbfgs", (1.0, 0.0), 15, checkpoint=ck)
    resumed = rc.reconstruct(obs, "lbfgs", (1.0, 0.0), 15, checkpoint=ck)
    assert np.array_equal(resumed.noise, rec.noise) and len(resumed.history) == len(rec.history)
    with pytest.raises(ConfigError, match="other settings"):
        rc.reconstruct(obs, "adam", (1.0, 0.0), 15, checkpoint=ck)


def test_tracers_add_shot_noise_to_the_likelihood(sim16):
    obs = rc.read_observation(sim16)
    mocked = rc.mock_observation(obs, 0.1, 0.5, None, seed=3)
    cell = (64.0 / 16) ** 3
    assert mocked.sigma == pytest.approx(math.sqrt(0.1**2 + 1 / (0.5 * cell)))
    assert np.array_equal(mocked.truth["final"], obs.density)
    resid = mocked.density - obs.density
    assert np.std(resid) == pytest.approx(mocked.sigma, rel=0.25)


def test_cli_reconstruct_writes_fields_metrics_and_figure(sim16, tmp_path):
    out = tmp_path / "recon.h5"
    res = runner.invoke(app, ["cosmo", "reconstruct", "--data", str(sim16), "--out", str(out), "--noise", "0.1",
                              "--anneal", "0", "--iterations", "5", "--start", "wiener", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "forward+backward passes" in res.output and "initial r(k)" in res.output
    with h5py.File(out) as f:
        assert f["initial/noise"].shape == (16,) * 3 and f["initial/linear"].shape == (16,) * 3
        assert f["density"].shape == (1, 16, 16, 16) and f.attrs["passes"] == len(f["history/loss"])
        assert np.all(np.diff(f["history/loss"][()][[0, -1]]) < 0)
        assert {"k", "r_initial", "t_initial", "r_final", "t_final"} <= set(f["metrics"])
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert not out.with_name(out.name + ".ckpt.npz").exists()
    res = runner.invoke(app, ["cosmo", "reconstruct", "--data", str(sim16), "--out", str(out), "--no-progress"])
    assert res.exit_code == 1 and "--overwrite" in res.stderr


@pytest.mark.parametrize("args, message", [
    (["--box", "128"], "the observation has box = 64, the requested forward model box = 128"),
    (["--mesh", "32"], "mesh = 16, the requested forward model mesh = 32"),
    (["--omega-m", "0.25"], "Omega_m"),
    (["--tracers", "1", "--no-mock"], "--tracers"),
    (["--optimizer", "sgd"], "sgd"),
    (["--anneal", "1,x"], "--anneal"),
    (["--lr", "0.1"], "applies to --optimizer adam only"),
    (["--no-mock", "--noise", "0"], "noise level must be positive"),
])
def test_cli_reconstruct_bad_input_is_one_clear_line(sim16, tmp_path, args, message):
    out = tmp_path / "r.h5"
    res = runner.invoke(app, ["cosmo", "reconstruct", "--data", str(sim16), "--out", str(out), "--iterations", "1",
                              "--no-progress", *args])
    assert res.exit_code != 0
    assert message in res.output + res.stderr and "Traceback" not in res.output
    assert not out.exists()


def test_bad_observation_files(tmp_path, sim16):
    nan = tmp_path / "nan.h5"
    with h5py.File(sim16) as f, h5py.File(nan, "w") as g:
        d = f["density"][()]
        d[0, 1, 2, 3] = np.nan
        g["density"] = d
        g.attrs.update(dict(f.attrs))
    with pytest.raises(InputError, match=r"nan.h5: /density has 1 NaN"):
        rc.read_observation(nan)
    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as g:
        g["density"] = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(InputError, match="box, particles, steps, a_init, Omega_m, sigma8 are not in"):
        rc.read_observation(bare)
    obs = rc.read_observation(bare, box=50.0, particles=8, steps=2, a_init=0.1, Omega_m=0.3, sigma8=0.8)
    assert obs.mesh == 8 and obs.truth == {}
    with pytest.raises(ConfigError, match="gradient through .* GiB"):
        rc.reconstruct(rc.Observation(bare, obs.density, 1.0, 50.0, 4096, 4096, 2, 0.1, Cosmology(), sigma=0.1))
