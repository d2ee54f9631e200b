"""Lagrangian Deep Learning layers: identity, symmetries, gradients, recovery of a known model, the CLI."""
import json

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.cosmo import ldl
from skymorph.cosmo.mesh import cic_paint
from skymorph.errors import ConfigError, InputError

runner = CliRunner()
BOX, MESH = 32.0, 16
LAYER = {"alpha": -0.4, "gamma": 0.8, "k_h": 0.3, "k_l": 1.5, "n": -1.5}


@pytest.fixture(scope="module")
def particles():
    """A clustered set of 16^3 particles: a lattice displaced by a smooth random field."""
    rng = np.random.default_rng(0)
    q = np.stack(np.meshgrid(*[np.arange(16) * 2.0] * 3, indexing="ij"), -1).reshape(-1, 3)
    kx = 2 * np.pi / BOX
    disp = sum(rng.normal(0, 0.8, 3) * np.sin(kx * m * q[:, [j]] + rng.uniform(0, 6.3))
               for m in (1, 2) for j in range(3))
    return (q + disp) % BOX


def test_identity_parameters_return_the_input_exactly(particles):
    model = ldl.LDLModel(MESH, BOX, [dict(LAYER), dict(LAYER)])
    painted = cic_paint(torch.from_numpy(particles), MESH, BOX, MESH**3 / len(particles)) - 1.0
    assert np.array_equal(ldl.apply(model.identity(), particles, BOX), painted.numpy())
    field = ldl.LDLModel(MESH, BOX, [dict(LAYER)], {"b1": 1.0, "mu": 1.0, "b0": 0.0}).identity()
    assert np.allclose(ldl.apply(field, particles, BOX), 1.0 + painted.numpy(), atol=1e-12)


def test_displacement_conserves_mass_and_commutes_with_translations(particles):
    model = ldl.LDLModel(MESH, BOX, [dict(LAYER)])
    out = ldl.apply(model, particles, BOX)
    assert abs(out.mean()) < 1e-12  # particles are moved, never made or lost
    shifted = ldl.apply(model, (particles + np.array([2.0, 4.0, 6.0])) % BOX, BOX)  # 1, 2, 3 cells
    assert np.allclose(shifted, np.roll(out, (1, 2, 3), axis=(0, 1, 2)), atol=1e-10)
    assert not np.allclose(out, ldl.apply(model.identity(), particles, BOX), atol=1e-3)  # it did move them


def test_a_single_plane_wave_is_displaced_as_the_kernel_says():
    """A lattice displaced along x by psi = A sin(k q) has delta = -A k cos(k x) (first order). With
    gamma = 1, n = -2 and cut-offs far out, O * source = laplacian^-1 delta = A cos(k x) / k, so
    S = alpha d/dx of it = -alpha A sin(k x): alpha = 1 moves the particles back onto the lattice."""
    n, box = 32, 32.0
    k = 2 * np.pi / box
    q = np.stack(np.meshgrid(*[np.arange(n) + 0.5] * 3, indexing="ij"), -1).reshape(-1, 3)
    amp = 0.05
    pos = q.copy()
    pos[:, 0] += amp * np.sin(k * q[:, 0])  # Zel'dovich: delta = -amp k cos(k q) to first order
    layer = {"alpha": 1.0, "gamma": 1.0, "k_h": 1e-3, "k_l": 1e3, "n": -2.0}
    moved = ldl.displace(torch.from_numpy(pos), layer, n, box).numpy()
    expected = -amp * np.sin(k * pos[:, 0])
    got = moved[:, 0] - pos[:, 0]
    assert np.corrcoef(got, expected)[0, 1] > 0.999
    assert np.std(got) == pytest.approx(np.std(expected), rel=0.05)  # CIC smoothing at 32 cells per wave
    assert np.allclose(moved[:, 1:], pos[:, 1:], atol=1e-10)


def test_fit_recovers_a_known_layer_and_its_gradient_is_right(particles):
    target = ldl.apply(ldl.LDLModel(MESH, BOX, [dict(LAYER)]), particles, BOX)
    model = ldl.fit(particles, target, BOX, 1, "matter", "l2", 1.0, 200)
    assert model.record["final_loss"] < 1e-3 * model.record["start_loss"]
    train = 1.0 - ldl.held_out_mask(MESH).numpy()
    fitted = ldl.apply(model, particles, BOX)
    held = train == 0  # the test sub-cube never entered the fit and still matches
    assert np.abs(fitted - target)[held].max() < 0.05 * np.abs(target[held]).max()
    # gradient of the fit's objective against central differences, float64
    p = torch.from_numpy(particles)
    t = torch.from_numpy(target)
    filt = ldl._loss_filter(MESH, BOX, 1.0)

    def loss(x):
        layers, _ = ldl.unpack_parameters(x, 1, "matter")
        r = ldl._residual(ldl.forward(p, layers, None, MESH, BOX), t, filt)
        return (r**2).sum()

    x0 = torch.tensor([-0.2, 0.6, 0.2, 2.0, -1.0], dtype=torch.float64, requires_grad=True)
    loss(x0).backward()
    for i in range(5):
        e = torch.zeros(5, dtype=torch.float64)
        e[i] = 1e-6
        fd = (loss(x0.detach() + e) - loss(x0.detach() - e)) / 2e-6
        assert float(x0.grad[i]) == pytest.approx(float(fd), rel=0.02, abs=1e-8)


def _sim(path, particles, box=BOX, mesh=MESH, density=None):
    with h5py.File(path, "w") as f:
        f["particles/pos"] = particles.astype(np.float32)
        f["density"] = (np.zeros((1, mesh, mesh, mesh), np.float32) if density is None else density[None])
        f["a"] = np.array([1.0])
        f.attrs.update({"box": box, "mesh": mesh})
    return path


def test_cli_fit_and_apply(particles, tmp_path):
    target = ldl.apply(ldl.LDLModel(MESH, BOX, [dict(LAYER)]), particles, BOX).astype(np.float32)
    inp = _sim(tmp_path / "coarse.h5", particles)
    tgt = _sim(tmp_path / "fine.h5", particles, density=target)
    out = tmp_path / "ldl"
    res = runner.invoke(app, ["cosmo", "ldl", "fit", "--input", str(inp), "--target", str(tgt), "--out", str(out),
                              "--test-input", str(inp), "--test-target", str(tgt)])
    assert res.exit_code == 0, res.output
    assert "5 parameters" in res.output and "independent seed" in res.output
    metrics = json.loads((out / "metrics.json").read_text())
    ratio = np.array(metrics["independent_seed"]["ldl"]["ratio"])
    assert np.nanmax(np.abs(ratio - 1)) < 0.02
    assert (out / "ldl.png").read_bytes()[:4] == b"\x89PNG"
    painted = tmp_path / "painted.h5"
    res = runner.invoke(app, ["cosmo", "ldl", "apply", str(out), "--input", str(inp), "--out", str(painted)])
    assert res.exit_code == 0, res.output
    with h5py.File(painted) as f:
        stored = ldl.read_particles(inp)[0]  # float32 in the file
        assert np.allclose(f["density"][0], ldl.apply(ldl.LDLModel.load(out), stored, BOX), atol=1e-6)
    res = runner.invoke(app, ["cosmo", "ldl", "apply", str(out), "--input", str(inp), "--out", str(painted)])
    assert res.exit_code == 1 and "--overwrite" in res.stderr


def test_cli_bad_input(particles, tmp_path):
    inp = _sim(tmp_path / "in.h5", particles)
    other_mesh = _sim(tmp_path / "m8.h5", particles, mesh=8)
    other_box = _sim(tmp_path / "b.h5", particles, box=64.0)
    bad = np.zeros((MESH,) * 3, np.float32)
    bad[1, 2, 3] = np.nan
    nan = _sim(tmp_path / "nan.h5", particles, density=bad)

    def run(*args):
        return runner.invoke(app, ["cosmo", "ldl", "fit", "--input", str(inp), "--out", str(tmp_path / "o"), *args])

    for args, message in [(["--target", str(other_mesh), "--mesh", "16"],
                           "m8.h5: /density is 8^3, the LDL mesh is 16^3"),
                          (["--target", str(other_box)], "b.h5: box 64 Mpc/h, the input"),
                          (["--target", str(nan)], "nan.h5: /density has 1 NaN or infinite values"),
                          (["--target", str(tmp_path / "none.h5")], "none.h5: file not found"),
                          (["--target", str(inp), "--test-input", str(inp)], "--test-target go together")]:
        res = run(*args)
        assert res.exit_code == 1 and message in res.stderr, (args, res.output)
        assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="fitted in 32 Mpc/h"):
        ldl.apply(ldl.LDLModel(MESH, BOX, [dict(LAYER)]), particles, 64.0)
    with pytest.raises(InputError, match="no ldl.json"):
        ldl.LDLModel.load(tmp_path)
