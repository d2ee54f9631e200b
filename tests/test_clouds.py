"""Point clouds: distances with known values, subsampling that keeps the mass, the cloud store, the
conditional flow learning a known mapping, the judge and the commands."""
import json

import numpy as np
import pytest

from skymorph.clouds import metrics as cm
from skymorph.clouds.sampling import farthest_point, subsample
from skymorph.errors import ConfigError, InputError


def _blob(n, seed=0, scale=(0.3, 0.3, 0.3)):
    return np.random.default_rng(seed).normal(size=(n, 3)) * np.asarray(scale)


def test_distances_of_hand_built_clouds():
    a = np.array([[0.0, 0.0, 0.0]])
    b = np.array([[3.0, 4.0, 0.0]])
    assert cm.chamfer(a, b) == pytest.approx(10.0)  # 5 each way
    assert cm.emd(a, b) == pytest.approx(5.0)
    two = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    assert cm.chamfer(two, two[:1]) == pytest.approx(0.5 + 0.0)  # the far point is 1 away, the near one 0
    cloud = _blob(300)
    shift = np.array([0.05, -0.02, 0.01])
    assert cm.emd(cloud, cloud + shift) == pytest.approx(np.linalg.norm(shift), rel=1e-6)  # EMD = the shift
    assert cm.chamfer(cloud, cloud) == 0.0 and cm.emd(cloud, cloud) == pytest.approx(0.0, abs=1e-12)
    other = _blob(250, seed=1, scale=(0.4, 0.2, 0.2))
    assert cm.chamfer(cloud, other) == pytest.approx(cm.chamfer(other, cloud), rel=1e-6)
    assert cm.emd(cloud, other) == pytest.approx(cm.emd(other, cloud), rel=1e-6)


def test_chamfer_in_chunks_is_the_same_and_sinkhorn_approaches_the_exact_emd():
    a, b = _blob(700), _blob(500, seed=2, scale=(0.5, 0.2, 0.3)) + 0.1
    assert cm.chamfer(a, b, chunk=64) == pytest.approx(cm.chamfer(a, b), rel=1e-6)
    exact = cm.emd(a, b)
    assert cm.sinkhorn(a, b) == pytest.approx(exact, rel=0.05)
    assert cm.sinkhorn(a, a) == pytest.approx(0.0, abs=1e-3)


def test_shape_and_structure_of_known_clouds():
    x = _blob(40_000, scale=(1.0, 0.5, 0.25))
    w = np.ones(len(x))
    b, c = cm.axis_ratios(x, w)
    assert b == pytest.approx(0.5, rel=0.03) and c == pytest.approx(0.25, rel=0.03)
    sphere = _blob(40_000, seed=3, scale=(0.2, 0.2, 0.2))
    # Maxwell distribution: the half-mass radius of a 3D Gaussian is 1.5382 sigma
    assert cm.half_mass_radius(sphere, w) == pytest.approx(1.5382 * 0.2, rel=0.02)
    vel = np.random.default_rng(4).normal(size=sphere.shape) * 50.0
    sig = cm.dispersion_profile(sphere, vel, w)
    assert np.nanmax(np.abs(sig[:5] / 50.0 - 1)) < 0.05
    # a Poisson cloud has no clustering: its shot-noise-free P(k) is consistent with zero
    uniform = np.random.default_rng(5).uniform(-1, 1, size=(20_000, 3))
    _, pk = cm.mass_power(uniform, np.ones(len(uniform)))
    shot = 8.0 / len(uniform)
    assert abs(np.mean(pk)) < 0.1 * shot
    _, pk_blob = cm.mass_power(sphere, w)
    assert pk_blob[0] > 100 * shot  # a concentrated cloud is strongly clustered on large scales


def test_mass_sampling_keeps_the_radial_mass_profile_within_sampling_error():
    rng = np.random.default_rng(0)
    x = _blob(50_000, scale=(0.3, 0.3, 0.3))
    m = rng.lognormal(0.0, 1.0, len(x)) * (1 + 3 * (np.linalg.norm(x, axis=1) < 0.2))  # heavier in the centre
    _, full = cm.radial_profiles(x, m)
    for strategy in ("mass", "random", "fps"):
        idx, w = subsample(x, m, 2000, strategy, np.random.default_rng(1))
        assert w.sum() == pytest.approx(m.sum(), rel=0.03 if strategy == "random" else 1e-9)
        _, sub = cm.radial_profiles(x[idx], w)
        inner = full > 0.05 * full[-1]
        err = np.abs(sub[inner] / full[inner] - 1)
        # farthest points spread evenly, so few sit in the dense centre and their cells straddle the
        # first shell: coarse there, close beyond it
        assert (err[1:].max() < 0.05 and err[0] < 0.3) if strategy == "fps" else err.max() < 0.08, strategy
    # and many mass draws are unbiased: the mean profile converges to the full one
    means = np.mean([cm.radial_profiles(x[i], w)[1] for i, w in
                     (subsample(x, m, 500, "mass", np.random.default_rng(s)) for s in range(40))], axis=0)
    assert np.allclose(means[2:], full[2:], rtol=0.02)


def test_farthest_point_coverage_shrinks_as_the_samples_grow():
    x = np.random.default_rng(0).uniform(-1, 1, size=(5000, 3))
    radii = [farthest_point(x, n)[1] for n in (16, 64, 256, 1024)]
    assert all(r1 < r0 for r0, r1 in zip(radii, radii[1:]))
    # in 3D the coverage radius of n well-spread points falls as about n^(-1/3): 4^(1/3) = 1.59 per
    # fourfold n (measured 1.8, the cube's corners filled first steepen it)
    assert all(1.4 < r0 / r1 < 2.2 for r0, r1 in zip(radii, radii[1:]))
    idx, _ = farthest_point(x, 64)
    assert len(set(idx.tolist())) == 64


def test_subsampling_refuses_too_few_particles_and_unknown_strategies():
    x, m = _blob(100), np.ones(100)
    with pytest.raises(InputError, match="galaxy 7 dm: 100 particles, fewer than the 200 asked .*--replace"):
        subsample(x, m, 200, "mass", np.random.default_rng(0), what="galaxy 7 dm")
    with pytest.raises(InputError, match="farthest-point sampling cannot repeat"):
        subsample(x, m, 200, "fps", np.random.default_rng(0), replace=True)
    idx, w = subsample(x, m, 200, "random", np.random.default_rng(0), replace=True)
    assert len(idx) == 200 and w.sum() == pytest.approx(100.0)
    with pytest.raises(ConfigError, match="unknown --sampling 'fsp'"):
        subsample(x, m, 10, "fsp", np.random.default_rng(0))
    with pytest.raises(InputError, match="no particles"):
        subsample(x[:0], m[:0], 10, "mass", np.random.default_rng(0))


def _dilated_pairs(rng, views, n):
    """Source: Gaussian blobs of width s ~ U(0.1, 0.3); target: width 2 s, centred at x = +0.3, with
    s times the source's mass (log10 masses in the cube): the mass ratio is read off the shape."""
    s = rng.uniform(0.1, 0.3, views)
    src = rng.normal(size=(views, n, 3)) * s[:, None, None]
    tgt = rng.normal(size=(views, n, 3)) * 2 * s[:, None, None] + np.array([0.3, 0.0, 0.0])
    log_m = rng.uniform(9, 11, views)
    return s, src.astype(np.float32), tgt.astype(np.float32), log_m, log_m + np.log10(s)


def test_the_flow_learns_a_known_conditional_distribution():
    """Trained on the mapping source -> (2 x dilated, shifted) source, the flow's draws for new blobs sit
    within sampling error of the true target (EMD against fresh true draws, beside the EMD between two
    true draws), far closer than the source itself, and the mass head recovers M_target = s M_source."""
    import torch

    from skymorph.clouds.model import CloudFlow

    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    _, src, tgt, lms, lmt = _dilated_pairs(rng, 256, 256)
    net = CloudFlow(3, 3, width=64, latent=32)
    net.set_moments(src, tgt, lms, lmt)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    gen = torch.Generator().manual_seed(1)
    T = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    for step in range(700):
        rows = torch.randint(0, 256, (32,), generator=gen)
        flow, mass = net.loss(T(src)[rows], T(lms)[rows], T(tgt)[rows], torch.ones(32, 256), T(lmt)[rows], gen)
        opt.zero_grad()
        (flow + 0.1 * mass).backward()
        opt.step()
    s, src_t, tgt_t, lms_t, lmt_t = _dilated_pairs(np.random.default_rng(5), 6, 512)
    pts, log_m = net.sample(T(src_t), T(lms_t), 512, steps=16, gen=gen)
    fresh = _dilated_pairs(np.random.default_rng(6), 6, 512)[2]
    for i in range(6):  # the same widths s in both draws: rescale the fresh target to this view's s
        other = (fresh[i] - [0.3, 0, 0]) / np.std(fresh[i] - [0.3, 0, 0]) * 2 * s[i] + [0.3, 0, 0]
        floor = cm.emd(tgt_t[i], other)
        got = cm.emd(pts[i].numpy(), tgt_t[i])
        assert got < 1.6 * floor + 0.01, (i, got, floor)
        assert got < 0.6 * cm.emd(src_t[i], tgt_t[i])  # the floor of 512-point clouds is most of the EMD
        # the width: 2 s within 30% (700 steps leave draws ~10% too wide, 20% for the narrowest blobs,
        # where the radial stretch compresses their differences); the source's is half of it
        assert np.std(pts[i].numpy()) == pytest.approx(2 * s[i], rel=0.3)
        assert np.mean(pts[i].numpy()[:, 0]) == pytest.approx(0.3, abs=0.06)
    assert np.abs(log_m.numpy() - lmt_t).max() < 0.05


@pytest.fixture(scope="module")
def cloud_store(synth_dir, tmp_path_factory):
    from skymorph.clouds.store import build_clouds
    from skymorph.sim.sources import open_source

    out = tmp_path_factory.mktemp("clouds") / "c.h5"
    return build_clouds(open_source(synth_dir), out, n_in=48, n_out=48, rotations=1, fov=2.0, seed=11,
                        splits=(0.6, 0.2, 0.2), features="pos,vel", progress=False)


def test_cloud_store_keeps_mass_geometry_and_the_map_views(cloud_store, synth_dir):
    from skymorph.clouds.store import CloudStore
    from skymorph.maps.views import view_rotations
    from skymorph.sim.sources import open_source

    with CloudStore(cloud_store) as s:
        assert s.columns == ["x", "y", "z", "vx", "vy", "vz"]
        idx = np.arange(len(s.meta("galaxy_id")))
        src, sw = s.clouds("source", idx)
        tgt, tw = s.clouds("target", idx)
        assert src.shape == (10, 48, 6) and np.abs(src[..., :3]).max() < 1 and np.abs(tgt[..., :3]).max() < 1
        # mass-weighted points each carry M / n: their sum is the unsampled mass in the cube
        assert np.allclose(sw.sum(1), s.meta("mass_in_cube_source"), rtol=1e-9)
        assert np.allclose(tw.sum(1), s.meta("mass_in_cube_target"), rtol=1e-9)
        g, v = int(s.meta("galaxy_id")[3]), int(s.meta("view")[3])
        rots = view_rotations(1, np.random.default_rng([11, g]))
        assert np.allclose(s.meta("rotation")[3], rots[v])  # the rotations maps build draws for this galaxy
        src_g = open_source(synth_dir).load(g, ("dm", "gas"))
        hw = s.meta("half_width_kpc")[3]
        assert hw == pytest.approx(2.0 * src_g.half_mass_radius["gas"])
        inside = np.all(np.abs(src_g.particles["dm"].pos @ rots[v].T) < hw, axis=1)
        assert s.meta("n_in_cube_source")[3] == inside.sum()
        splits = {k: set(s.meta("galaxy_id", s.split(k)).tolist()) for k in ("train", "val", "test")}
        assert not (splits["train"] & splits["test"]) and not (splits["train"] & splits["val"])


def test_cloud_commands_train_translate_evaluate_and_resume(cloud_store, store_path, synth_dir, tmp_path):
    import h5py
    from typer.testing import CliRunner

    from skymorph.cli import app

    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(app, ["clouds", "train", "--data", str(cloud_store), "--out", str(run), "--max-epochs", "1",
                              "--batch-size", "2", "--points-per-step", "32", "--width", "32", "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["clouds", "train", "--out", str(run), "--resume", "--max-epochs", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    record = json.loads((run / "training.json").read_text())
    assert [x["epochs"] for x in record["sessions"]] == [1, 2]  # the second session continued the first
    res = runner.invoke(app, ["clouds", "train", "--data", str(cloud_store), "--out", str(tmp_path / "r2"),
                              "--points-per-step", "49", "--no-progress"])
    assert res.exit_code == 1 and "--points-per-step 49: more than the 48 target points per view" in res.stderr
    res = runner.invoke(app, ["clouds", "train", "--data", str(cloud_store), "--out", str(tmp_path / "r3"),
                              "--points-per-step", "0", "--no-progress"])
    assert res.exit_code == 1 and "--points-per-step 0: must be positive" in res.stderr
    assert not (tmp_path / "r3").exists()
    res = runner.invoke(app, ["clouds", "train", "--out", str(run), "--resume", "--lr", "0.1", "--no-progress"])
    assert res.exit_code == 1 and "give only --max-epochs or --max-minutes (got --lr)" in res.stderr
    gen = tmp_path / "g.h5"
    res = runner.invoke(app, ["clouds", "translate", str(run), "--data", str(cloud_store), "--out", str(gen),
                              "--points", "5000", "--steps", "2"])
    assert res.exit_code == 0, res.output
    with h5py.File(gen) as f:
        assert f["points"].shape[1:] == (5000, 6) and np.isfinite(f["points"][:]).all()
        assert np.allclose(f["weight"][:].sum(1), 10 ** f["log_mass"][:])  # every point carries M / n
    res = runner.invoke(app, ["clouds", "translate", str(run), "--data", str(cloud_store), "--out", str(gen)])
    assert res.exit_code == 1 and "output exists" in res.stderr
    ev = tmp_path / "ev"
    res = runner.invoke(app, ["clouds", "evaluate", str(run), "--data", str(cloud_store), "--out", str(ev),
                              "--steps", "2", "--maps", str(store_path)])
    # the session's map store has other views (seed 11, two rotations, fov 1): refused, naming both
    assert res.exit_code == 1 and "not the cloud store's" in res.stderr
    res = runner.invoke(app, ["clouds", "evaluate", str(run), "--data", str(cloud_store), "--out", str(ev),
                              "--steps", "2"])
    assert res.exit_code == 0, res.output
    md = (ev / "results.md").read_text()
    assert "cloud_flow vs rescaled_source on emd" in md and "sigma_profile_dex" in md
    assert (ev / "clouds.png").exists()
    before = (ev / "metrics.json").read_bytes()
    res = runner.invoke(app, ["clouds", "evaluate", str(run), "--data", str(cloud_store), "--out", str(ev),
                              "--steps", "2", "--no-progress"])
    assert res.exit_code == 1 and "output exists" in res.stderr  # refused before any cloud is drawn
    assert (ev / "metrics.json").read_bytes() == before
    # the map route: a map store of the same views (seed, rotations, cube, splits) and a 2D translator
    maps = tmp_path / "m.h5"
    for args in (["maps", "build", str(synth_dir), "--out", str(maps), "--domains", "dm,gas", "--size", "16",
                  "--rotations", "1", "--fov", "2", "--seed", "11", "--splits", "0.6,0.2,0.2", "--no-progress"],
                 ["train", "--method", "unet", "--data", str(maps), "--source", "dm", "--target", "gas", "--out",
                  str(tmp_path / "unet"), "--max-epochs", "1", "--base-channels", "8", "--no-progress"],
                 ["clouds", "evaluate", str(run), "--data", str(cloud_store), "--out", str(ev), "--steps", "2",
                  "--points", "400", "--maps", str(maps), "--map-run", str(tmp_path / "unet"), "--overwrite"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
    result = json.loads((ev / "metrics.json").read_text())
    assert set(result["maps"]["cells"]) == {"cloud_flow", "rescaled_source", "map_translator"}
    assert result["points"] == 400 and "cloud_flow vs map_translator on mse_log" in (ev / "results.md").read_text()
    (run / "cloudflow.safetensors").write_bytes(b"not weights")  # a damaged run: one line naming the file
    res = runner.invoke(app, ["clouds", "translate", str(run), "--data", str(cloud_store), "--out", str(tmp_path / "x.h5")])
    assert res.exit_code == 1 and "cloudflow.safetensors: unreadable or not this run's weights" in res.stderr


@pytest.mark.parametrize("args, message", [
    (["--features", "vel,pos"], "--features 'vel,pos': expected pos"),
    (["--n-in", "100000"], "fewer than the 100000 asked (use --replace"),
    (["--sampling", "fps", "--n-in", "100000", "--replace"], "farthest-point sampling cannot repeat"),
    (["--from", "bh"], "Invalid value for '--from'"),
])
def test_bad_cloud_builds_are_one_clear_line(synth_dir, tmp_path, args, message):
    from typer.testing import CliRunner

    from skymorph.cli import app

    out = tmp_path / "c.h5"
    res = CliRunner().invoke(app, ["clouds", "build", str(synth_dir), "--out", str(out), "--no-progress", *args])
    assert res.exit_code != 0 and message in res.output + res.stderr
    assert not out.exists() and not (tmp_path / "c.h5.parts").exists()


def test_velocity_features_need_velocities(tmp_path):
    """A source without velocities asked for pos,vel: the reader names the file and the field."""
    import h5py
    from typer.testing import CliRunner

    from skymorph.cli import app
    from skymorph.sim.synth import synthesize

    synthesize(tmp_path / "g", 3, 200, seed=1, progress=False)
    with h5py.File(tmp_path / "g" / "cutout_0.hdf5", "a") as f:
        del f["PartType1/Velocities"]
    res = CliRunner().invoke(app, ["clouds", "build", str(tmp_path / "g"), "--out", str(tmp_path / "c.h5"),
                                   "--features", "pos,vel", "--n-in", "16", "--n-out", "16", "--no-progress"])
    assert res.exit_code == 1 and "cutout_0.hdf5" in res.stderr and "Velocities" in res.stderr


def test_an_interrupted_cloud_build_resumes_from_its_finished_galaxies(synth_dir, tmp_path, monkeypatch):
    import json as js

    from skymorph.clouds import store as cs
    from skymorph.sim.sources import open_source

    source = open_source(synth_dir)
    out = tmp_path / "c.h5"
    kwargs = dict(n_in=16, n_out=16, rotations=1, fov=2.0, seed=2, splits=(0.6, 0.2, 0.2), progress=False)
    cs.build_clouds(source, out, **kwargs)
    with cs.CloudStore(out) as s:
        settings = s.settings
        first = s.clouds("target", np.arange(len(s.meta("galaxy_id"))))[0]
    # a build killed after two galaxies: their part files and the settings are left behind
    parts = tmp_path / "again.h5.parts"
    parts.mkdir()
    (parts / "settings.json").write_text(js.dumps(settings))
    for g in source.ids[:2]:
        cs.write_part(source, g, settings, parts)
    done = []
    real = cs._galaxy_clouds
    monkeypatch.setattr(cs, "_galaxy_clouds", lambda src, g, st: done.append(g) or real(src, g, st))
    cs.build_clouds(source, tmp_path / "again.h5", **kwargs)
    assert done == source.ids[2:] and not parts.exists()  # only the missing galaxies were built
    with cs.CloudStore(tmp_path / "again.h5") as s:
        assert np.array_equal(s.clouds("target", np.arange(len(s.meta("galaxy_id"))))[0], first)  # seeded per galaxy
    with pytest.raises(Exception, match="output exists"):
        cs.build_clouds(source, out, **kwargs)
