"""Field statistics: recovered spectra of Gaussian random fields, white noise, Parseval, r(k), profiles."""
import numpy as np
import pytest

from skymorph.errors import InputError
from skymorph.fields import (cross_correlation, cross_spectrum, gaussian_random_field, power_spectrum,
                             radial_profile)


def mode_averaged(power_fn, shape, d, nbins=None):
    """Expected binned spectrum: mean of power_fn over the full-plane modes of each bin (by hand)."""
    h, w = shape
    ky = 2 * np.pi * np.fft.fftfreq(h, d)
    kx = 2 * np.pi * np.fft.fftfreq(w, d)
    k = np.hypot(ky[:, None], kx[None, :]).ravel()
    kf, kn = 2 * np.pi / (min(shape) * d), np.pi / d
    nb = nbins or min(shape) // 2
    edges = np.linspace(kf / 2, kn + kf / 2, nb + 1)
    out = np.empty(nb)
    for i in range(nb):
        m = (k >= edges[i]) & (k < edges[i + 1]) & (k > 0)
        out[i] = power_fn(k[m]).mean()
    return out


@pytest.mark.parametrize("shape", [(64, 64), (48, 64)])
def test_grf_power_law_recovered_within_sampling_error(shape):
    d, amp, nreal = 0.5, 3.0, 24
    power_fn = lambda k: amp * k**-2.0  # noqa: E731
    f = gaussian_random_field((nreal,) + shape, power_fn, pixel_size=d, seed=7)
    k, p, counts = power_spectrum(f, d, window=None, subtract_mean=False)
    expected = mode_averaged(power_fn, shape, d)
    # Bin mean over counts/2 independent complex modes per realisation -> relative scatter.
    sigma = expected / np.sqrt(nreal * counts / 2)
    z = (p.mean(axis=0) - expected) / sigma
    assert np.all(np.abs(z) < 4.5), z
    assert 0.4 < np.mean(z**2) < 1.8  # chi^2 per bin ~ 1
    # The returned k is the mean |k| of the bin's modes, from the fundamental to Nyquist.
    kf = 2 * np.pi / (min(shape) * d)
    assert k[0] == pytest.approx(kf, rel=0.3) and k[-1] == pytest.approx(np.pi / d, rel=0.05)
    assert np.all(np.diff(k) > 0)


def test_grf_white_spectrum_is_flat_and_variance_matches():
    d, level, nreal = 2.0, 5.0, 16
    f = gaussian_random_field((nreal, 64, 64), lambda k: np.full_like(k, level), pixel_size=d, seed=1)
    _, p, counts = power_spectrum(f, d, window=None, subtract_mean=False)
    sigma = level / np.sqrt(nreal * counts / 2)
    assert np.all(np.abs(p.mean(axis=0) - level) < 4.5 * sigma)
    # Flat P = s^2 d^2 <=> pixel variance s^2 = level / d^2 (the k = 0 mode is zero: zero mean).
    assert f.var() == pytest.approx(level / d**2, rel=0.02)
    assert np.abs(f.mean(axis=(-2, -1))).max() < 1e-12


@pytest.mark.parametrize("n", [32, 96])
def test_white_noise_flat_at_variance_times_pixel_area(n):
    rng = np.random.default_rng(3)
    s, d, nreal = 1.7, 0.3, 40
    x = rng.normal(0.0, s, size=(nreal, n, n))
    level = s**2 * d**2
    _, p0, counts = power_spectrum(x, d, window=None)
    sig = level / np.sqrt(nreal * counts / 2)
    assert np.all(np.abs(p0.mean(0) - level) < 4.5 * sig)
    assert p0.mean() == pytest.approx(level, rel=0.02)  # independent of map size n
    # Hann: the window correlates neighbouring modes but the compensated level is still s^2 d^2.
    _, ph, _ = power_spectrum(x, d, window="hann")
    assert ph.mean() == pytest.approx(level, rel=0.03)
    assert np.all(np.abs(ph.mean(0) / level - 1) < 0.25)
    # Without compensation the level would be lower by <w^2> = (3/8)^2: make sure it is compensated.
    assert ph.mean() > 2 * (3 / 8) ** 2 * level


def test_parseval_band_limited_field_variance_equals_sum_over_modes():
    d = 0.7
    kn = np.pi / d
    f = gaussian_random_field((64, 64), lambda k: np.where(k < 0.9 * kn, k**-1.5, 0.0), d, seed=5)
    _, p, counts = power_spectrum(f, d, window=None, subtract_mean=True)
    # Every non-zero mode lies in a bin: var(f) = sum_k P / (N d^2) exactly.
    assert np.sum(p * counts) / (f.size * d**2) == pytest.approx(f.var(), rel=1e-10)


def test_cross_correlation_self_one_and_independent_zero():
    d = 1.0
    a = gaussian_random_field((64, 64), lambda k: k**-2.0, d, seed=11)
    b = gaussian_random_field((64, 64), lambda k: k**-2.0, d, seed=12)
    k, r = cross_correlation(a, a, d)
    assert np.max(np.abs(r - 1.0)) < 1e-12
    _, r2 = cross_correlation(a, 3.0 * a + 1.0, d)  # proportional (up to the mean) -> 1
    assert np.max(np.abs(r2 - 1.0)) < 1e-12
    _, r3 = cross_correlation(a, -a, d)
    assert np.max(np.abs(r3 + 1.0)) < 1e-12
    _, rind = cross_correlation(a, b, d, window=None)
    _, _, counts = power_spectrum(a, d, window=None)
    modes = counts.sum() / 2  # independent complex modes
    assert abs(np.sum(rind * counts) / counts.sum()) < 3 / np.sqrt(modes)
    assert np.all(np.abs(rind) <= 1 + 1e-12)
    # cross_spectrum(a, a) is the power spectrum
    _, pab, _ = cross_spectrum(a, a, d)
    _, paa, _ = power_spectrum(a, d)
    np.testing.assert_allclose(pab, paa, rtol=1e-12)


def test_batch_equals_single_maps():
    rng = np.random.default_rng(2)
    x = rng.random((3, 40, 56))
    k, pb, _ = power_spectrum(x, 0.5)
    for i in range(3):
        _, pi, _ = power_spectrum(x[i], 0.5)
        np.testing.assert_allclose(pb[i], pi, rtol=1e-12)
    _, prof = radial_profile(x, 0.5)
    _, prof1 = radial_profile(x[1], 0.5)
    np.testing.assert_allclose(prof[1], prof1, rtol=1e-12)


def test_more_bins_than_modes_gives_nan_bins_with_zero_counts():
    x = np.random.default_rng(0).random((16, 16))
    k, p, counts = power_spectrum(x, 1.0, nbins=64)
    empty = counts == 0
    assert empty.any() and np.all(np.isnan(p[empty])) and np.all(np.isfinite(p[~empty]))


@pytest.mark.parametrize("centre", [None, (50.3, 70.6)])
def test_radial_profile_exponential_disk(centre):
    n, d, rd_kpc, sigma0 = 128, 0.25, 2.0, 1e8
    cy, cx = ((n - 1) / 2, (n - 1) / 2) if centre is None else centre
    y, x = np.mgrid[:n, :n]
    r = np.hypot(y - cy, x - cx) * d
    img = sigma0 * np.exp(-r / rd_kpc)
    rr, prof = radial_profile(img, d, nbins=40, rmax=10.0, centre=centre)
    far = rr > 2 * d
    np.testing.assert_allclose(prof[far], sigma0 * np.exp(-rr[far] / rd_kpc), rtol=0.01)
    assert rr[0] < 2 * d and rr[-1] == pytest.approx(10.0 - 0.125, abs=0.05)


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError, match="expected a map"):
        power_spectrum(np.zeros(10))
    with pytest.raises(InputError, match="window"):
        power_spectrum(np.zeros((8, 8)), window="blackman")
    with pytest.raises(InputError, match="same shape"):
        cross_correlation(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(InputError, match="power_fn"):
        gaussian_random_field((8, 8), lambda k: -k)
    with pytest.raises(InputError, match="pixel_size"):
        radial_profile(np.zeros((8, 8)), pixel_size=0.0)
