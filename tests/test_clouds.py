"""Point clouds: distances with known values, subsampling that keeps the mass, the cloud store, the
conditional flow learning a known mapping, the judge and the commands."""
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
