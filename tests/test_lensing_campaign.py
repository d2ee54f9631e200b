"""Simulation campaigns of 'skymorph lensing maps': the shifted-lognormal simulator, chunked and
resumable writing, workers."""
import math
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import scipy.integrate
import torch
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.cosmo import products
from skymorph.cosmo.lensing import comoving_distance, kappa_power_limber, ks_forward, lensing_weight
from skymorph.cosmo.lightcone import convergence_map
from skymorph.cosmo.linear import Cosmology
from skymorph.cosmo.lognormal import (empty_beam_convergence, grid_ells, hilbert_shift, lognormal_maps,
                                      shift_parameter, target_power)
from skymorph.cosmo.products import make_kappa_maps
from skymorph.errors import Interrupted
from skymorph.fields import power_spectrum

runner = CliRunner()
DATASETS = ("kappa", "gamma", "gamma_obs", "mask", "params/Omega_m", "params/sigma8", "params/seed")
PM = dict(npix=16, mesh=16, box=256.0, steps=2, field_deg=5.0, progress=False)


def _arrays(path, extra=()):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in DATASETS + tuple(extra)}


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k


# ---------------------------------------------------------------------------------------------
# the lognormal simulator


def test_shift_parameter_is_hilbert_at_their_cosmology_and_scales_with_the_empty_beam():
    assert shift_parameter(1.0, 0.25) == pytest.approx(0.008 + 0.029 - 0.0079 + 0.00065, rel=1e-12)
    assert hilbert_shift(2.0) == pytest.approx(0.016 + 0.116 - 0.0632 + 0.0104)
    cosmo = Cosmology(0.3, 0.8)  # the fast empty-beam integral against the Born kernel of lensing.py
    chi_s = float(comoving_distance(1.0, cosmo))
    quad = scipy.integrate.quad(lensing_weight, 0.0, chi_s, args=(chi_s, cosmo), limit=200)[0]
    assert empty_beam_convergence(1.0, 0.3) == pytest.approx(quad, rel=1e-5)
    # lambda grows with Omega_m and z_s and stays inside the physical bound kappa >= kappa_empty
    assert shift_parameter(1.0, 0.2) < shift_parameter(1.0, 0.3) < shift_parameter(1.0, 0.4)
    assert shift_parameter(0.5, 0.3) < shift_parameter(1.0, 0.3) < empty_beam_convergence(1.0, 0.3)


def test_tabulated_spectrum_matches_the_direct_limber_integral():
    """The campaign's C_ell table (Omega_m spline of ln C_ell, sigma8^2 scaling) against
    kappa_power_limber at an Omega_m between nodes: relative error below 1e-5."""
    ell, inv = grid_ells(32, 5.0)
    direct = kappa_power_limber(ell[1:], Cosmology(0.2731, 0.77), 1.0)
    table = target_power(0.2731, 0.77, 1.0, 32, 5.0, omega_m_range=(0.2, 0.4))
    assert table.shape == (32, 17) and table[0, 0] == 0.0
    assert np.allclose(table, np.concatenate([[0.0], direct])[inv], rtol=1e-5, atol=0)


def test_lognormal_maps_have_the_limber_power_zero_mean_and_positive_skewness():
    """400 maps of 64^2 px (5 deg, z_s = 1): (1) the mean measured power (no window) matches the
    target Limber C_ell at the mean ell of each bin within 6% per bin (statistical error ~2% per
    bin beyond the first few) and 1.5% averaged over all bins; (2) <kappa> ~ 0 (within 2% of
    the rms), kappa > -lambda everywhere, positive skewness, equal to the lognormal value
    (y + 3) sqrt(y), y = <kappa^2> / lambda^2, within 10%."""
    n, npix, field = 400, 64, 5.0
    kappa, shift = lognormal_maps(np.full(n, 0.3), np.full(n, 0.8), list(range(n)), 1.0, field, npix)
    assert kappa.shape == (n, npix, npix) and np.all(shift == shift_parameter(1.0, 0.3))
    ell, p, counts = power_spectrum(kappa, math.radians(field) / npix, window=None)
    cl = kappa_power_limber(ell, Cosmology(0.3, 0.8), 1.0)
    ratio = p.mean(axis=0) / cl
    assert np.all(np.abs(ratio - 1) < 0.06), ratio
    assert abs((p.mean(axis=0) * counts).sum() / (cl * counts).sum() - 1) < 0.015
    rms = kappa.std()
    assert abs(kappa.mean()) < 0.02 * rms
    assert kappa.min() > -shift[0]
    y = (kappa**2).mean() / shift[0] ** 2
    skew = ((kappa - kappa.mean()) ** 3).mean() / rms**3
    assert skew > 0.3 and skew == pytest.approx((y + 3) * math.sqrt(y), rel=0.1), (skew, y)


def test_lognormal_skewness_agrees_with_the_pm():
    """Reduced skewness S3 = <kappa^3> / <kappa^2>^2 (nearly independent of the map's resolution,
    ~3 / lambda for a lognormal) of lognormal maps against 4 PM maps (32^3 mesh in a 128 Mpc/h box,
    10 steps, 32^2 px over 5 deg, z_s = 1) of the same cosmology. Measured: PM ~76 (single maps
    53-89; a 64^3 mesh gives ~98), lognormal ~91. Tolerance: a factor 1.5 either way (the PM maps
    scatter by ~15% each and the coarse mesh misses some nonlinearity); a shift off by a factor 2
    fails it."""
    cosmo, box, mesh, npix, field = Cosmology(0.3, 0.8), 128.0, 32, 32, 5.0
    pm = []
    for i in range(4):
        r = np.random.default_rng(i)
        noise = torch.from_numpy(r.standard_normal((mesh,) * 3, dtype=np.float32))
        with torch.no_grad():
            pm.append(convergence_map(cosmo, noise, box, mesh, 10, 1.0, field, npix, r, thickness_cells=mesh).numpy())
    ln, _ = lognormal_maps(np.full(200, 0.3), np.full(200, 0.8), list(range(200)), 1.0, field, npix)

    def s3(k):
        k = np.asarray(k, dtype=float)
        k = k - k.mean(axis=(-2, -1), keepdims=True)
        return (k**3).mean() / (k**2).mean() ** 2

    ratio = s3(ln) / s3(pm)
    assert 1 / 1.5 < ratio < 1.5, (s3(ln), s3(pm))


def test_lognormal_map_depends_only_on_its_own_seed():
    a, _ = lognormal_maps([0.25, 0.3, 0.35], [0.7, 0.8, 0.9], [5, 6, 7], 1.0, 5.0, 16, omega_m_range=(0.2, 0.4))
    b, _ = lognormal_maps([0.3], [0.8], [6], 1.0, 5.0, 16, omega_m_range=(0.2, 0.4))
    assert a[1].tobytes() == b[0].tobytes()


# ---------------------------------------------------------------------------------------------
# the command and its files


def test_cli_lensing_maps_lognormal_layout(tmp_path):
    mask = np.ones((32, 32))
    mask[:, :5] = 0
    np.save(tmp_path / "mask.npy", mask)
    out = tmp_path / "ln.h5"
    res = runner.invoke(app, ["lensing", "maps", "--simulator", "lognormal", "--omega-m", "0.25:0.35", "--sigma8",
                              "0.7:0.9", "--n-maps", "300", "--npix", "32", "--field-deg", "4", "--seed", "3",
                              "--mask", str(tmp_path / "mask.npy"), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "ln.h5.parts").exists()
    with h5py.File(out) as f:
        kappa, gamma, obs = f["kappa"][()], f["gamma"][()], f["gamma_obs"][()]
        assert kappa.shape == (300, 32, 32) and gamma.shape == obs.shape == (300, 2, 32, 32)
        assert kappa.dtype == gamma.dtype == np.float32
        om, s8, shift = f["params/Omega_m"][()], f["params/sigma8"][()], f["params/shift"][()]
        assert np.all((om >= 0.25) & (om <= 0.35)) and np.all((s8 >= 0.7) & (s8 <= 0.9))
        assert np.allclose(shift, [shift_parameter(1.0, o) for o in om], rtol=1e-12)
        assert f.attrs["simulator"] == "lognormal" and "Hilbert" in f.attrs["shift_model"]
        assert f.attrs["shift_min"] == shift.min() and f.attrs["shift_max"] == shift.max()
        assert np.all(kappa.min(axis=(1, 2)) > -shift)
        assert np.all(obs[:, :, :, :5] == 0) and np.array_equal(f["mask"][()], mask)
        assert (obs - gamma)[:, :, :, 5:].std() == pytest.approx(f.attrs["noise_std"], rel=0.02)
        g = ks_forward(torch.from_numpy(kappa.astype(np.float64)))
        assert np.allclose(gamma[:, 1], g.imag.numpy(), atol=1e-7)
    # the same maps from the library function (parameters and seeds drawn as by the command)
    rng = np.random.default_rng(3)
    seeds = rng.integers(2**31, size=300)
    k5, _ = lognormal_maps(om[5:6], s8[5:6], seeds[5:6], 1.0, 4.0, 32, omega_m_range=(0.25, 0.35))
    assert np.array_equal(k5[0].astype(np.float32), kappa[5])


def test_cli_lensing_maps_pm_records_the_simulator(tmp_path):
    out = tmp_path / "pm.h5"
    res = runner.invoke(app, ["lensing", "maps", "--n-maps", "2", "--npix", "16", "--mesh", "16", "--pm-steps", "2",
                              "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    with h5py.File(out) as f:
        assert f.attrs["simulator"] == "pm" and f.attrs["mesh"] == 16 and "params/shift" not in f


def _interrupt_after(monkeypatch, k):
    """Make the writer stop (as on Ctrl-C) when chunk k + 1 is about to be made."""
    calls = []
    real = products._make_chunk

    def stopping(*args):
        if len(calls) == k:
            raise KeyboardInterrupt
        calls.append(args[1])
        return real(*args)

    monkeypatch.setattr(products, "_make_chunk", stopping)
    return calls


@pytest.mark.parametrize("simulator, n_maps, extra", [("pm", 4, {}), ("lognormal", 600, {})])
def test_interrupted_run_resumes_bit_identically(simulator, n_maps, extra, tmp_path, monkeypatch):
    args = dict(omega_m="0.25:0.35", sigma8="0.7:0.9", n_maps=n_maps, seed=11, simulator=simulator, **PM)
    ref = make_kappa_maps(tmp_path / "ref.h5", **args)
    out = tmp_path / "k.h5"
    calls = _interrupt_after(monkeypatch, 2)
    with pytest.raises(Interrupted, match="rerun the same command to resume"):
        make_kappa_maps(out, **args)
    parts = tmp_path / "k.h5.parts"
    assert not out.exists() and sorted(p.name for p in parts.glob("chunk_*.h5")) == ["chunk_000000.h5",
                                                                                  "chunk_000001.h5"]
    monkeypatch.undo()
    make_kappa_maps(out, **args)
    assert not parts.exists() and len(calls) == 2
    extra = ("params/shift",) if simulator == "lognormal" else ()
    _assert_identical(_arrays(ref, extra), _arrays(out, extra))


def test_killed_command_resumes_bit_identically(tmp_path):
    """SIGKILL (no clean-up at all) part-way through a lognormal campaign of 12 chunks, then the
    same command again: the result equals an uninterrupted run byte for byte."""
    args = dict(omega_m="0.25:0.35", sigma8="0.6:1.0", n_maps=3072, npix=16, seed=5, simulator="lognormal",
                progress=False)
    ref = make_kappa_maps(tmp_path / "ref.h5", **args)
    cmd = ["lensing", "maps", "--simulator", "lognormal", "--n-maps", "3072", "--npix", "16", "--omega-m",
           "0.25:0.35", "--sigma8", "0.6:1.0", "--seed", "5", "--no-progress", "--out", str(tmp_path / "k.h5")]
    code = "import sys; from skymorph.cli import app; app(sys.argv[1:])"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code, *cmd], env=env)
    parts = tmp_path / "k.h5.parts"
    deadline = time.monotonic() + 120
    while len(list(parts.glob("chunk_*.h5"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("chunk_*.h5")))
    assert not (tmp_path / "k.h5").exists() and 2 <= done < 12, done
    res = subprocess.run([sys.executable, "-c", code, *cmd], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert not parts.exists()
    _assert_identical(_arrays(ref, ("params/shift",)), _arrays(tmp_path / "k.h5", ("params/shift",)))


def test_workers_do_not_change_the_output(tmp_path):
    """W = 1 and W = 2 (spawned processes) write byte-equal arrays, PM (one map per chunk) and
    lognormal (three chunks)."""
    for simulator, n_maps in (("pm", 4), ("lognormal", 600)):
        args = dict(omega_m="0.25:0.35", sigma8="0.8", n_maps=n_maps, seed=2, simulator=simulator, **PM)
        one = make_kappa_maps(tmp_path / f"{simulator}1.h5", workers=1, **args)
        two = make_kappa_maps(tmp_path / f"{simulator}2.h5", workers=2, **args)
        _assert_identical(_arrays(one), _arrays(two))


def test_other_settings_are_refused_unless_overwrite(tmp_path, monkeypatch):
    out = tmp_path / "k.h5"
    base = ["lensing", "maps", "--simulator", "lognormal", "--n-maps", "600", "--npix", "16", "--out", str(out),
            "--no-progress"]
    _interrupt_after(monkeypatch, 1)
    res = runner.invoke(app, [*base, "--seed", "1"])
    assert res.exit_code == 130 and "rerun the same command" in res.stderr
    monkeypatch.undo()
    res = runner.invoke(app, [*base, "--seed", "2", "--sigma8", "0.7"])
    err = res.stderr.strip()
    assert res.exit_code == 1 and err.startswith("error:") and "\n" not in err
    assert "k.h5.parts" in err and "--seed" in err and "--sigma8" in err and "--overwrite" in err
    assert not out.exists() and (tmp_path / "k.h5.parts" / "chunk_000000.h5").exists()
    res = runner.invoke(app, [*base, "--seed", "2", "--sigma8", "0.7", "--overwrite"])
    assert res.exit_code == 0, res.output
    fresh = tmp_path / "fresh.h5"
    assert runner.invoke(app, [*base[:-3], "--seed", "2", "--sigma8", "0.7", "--out", str(fresh),
                               "--no-progress"]).exit_code == 0
    _assert_identical(_arrays(fresh), _arrays(out))


def test_existing_output_is_kept_without_overwrite(tmp_path):
    out = tmp_path / "k.h5"
    out.write_bytes(b"keep")
    res = runner.invoke(app, ["lensing", "maps", "--simulator", "lognormal", "--npix", "16", "--out", str(out),
                              "--no-progress"])
    assert res.exit_code == 1 and "--overwrite" in res.stderr and out.read_bytes() == b"keep"
    assert not (tmp_path / "k.h5.parts").exists()
    res = runner.invoke(app, ["lensing", "maps", "--simulator", "lognormal", "--npix", "16", "--out", str(out),
                              "--overwrite", "--no-progress"])
    assert res.exit_code == 0 and h5py.is_hdf5(out)


@pytest.mark.parametrize("args, message", [
    (["--simulator", "nbody"], "nbody"),
    (["--workers", "0", "--mesh", "16"], "--workers 0: must be at least 1"),
    (["--simulator", "lognormal", "--z-source", "0"], "--z-source 0: must be positive"),
    (["--simulator", "lognormal", "--z-source", "25"], "redshift outside"),
    (["--simulator", "lognormal", "--mesh", "16", "--pm-steps", "3"], "--mesh, --pm-steps: PM options"),
])
def test_bad_campaign_options_are_one_clear_line(args, message, tmp_path):
    out = tmp_path / "k.h5"
    res = runner.invoke(app, ["lensing", "maps", "--out", str(out), "--npix", "16", "--no-progress", *args])
    assert res.exit_code != 0 and message in res.output + res.stderr
    assert not out.exists() and not (tmp_path / "k.h5.parts").exists()
