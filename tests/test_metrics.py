"""Map metrics on physical values: reference implementations, exact cases, analytic morphology."""
import numpy as np
import pytest
import scipy.stats
from scipy.integrate import quad
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from skymorph.errors import InputError
from skymorph.evaluate import metrics as M


def radius(n, cy=None, cx=None):
    cy = (n - 1) / 2 if cy is None else cy
    cx = (n - 1) / 2 if cx is None else cx
    y, x = np.mgrid[:n, :n]
    return np.hypot(y - cy, x - cx)


def galaxy_pair(n=64, seed=0):
    """A disk with noise-like structure and a 'prediction' with multiplicative errors and zeros."""
    rng = np.random.default_rng(seed)
    truth = 1e7 * np.exp(-radius(n) / (n / 10)) * rng.lognormal(0, 0.2, (n, n))
    pred = truth * rng.lognormal(0.05, 0.3, (n, n))
    truth[:3, :5] = 0.0  # empty pixels: the eps floor matters
    pred[-2:, -4:] = 0.0
    return pred, truth


def test_psnr_and_ssim_equal_skimage_on_log_maps():
    eps = 123.0
    for seed in range(3):
        pred, truth = galaxy_pair(48, seed)
        lt, lp = np.log10(truth + eps), np.log10(pred + eps)
        dr = lt.max() - lt.min()
        ref_psnr = peak_signal_noise_ratio(lt, lp, data_range=dr)
        ref_ssim = structural_similarity(lt, lp, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=dr)
        assert M.psnr(pred, truth, eps) == pytest.approx(ref_psnr, abs=1e-4)
        assert M.ssim(pred, truth, eps) == pytest.approx(ref_ssim, abs=1e-4)
        assert M.mse_log(pred, truth, eps) == pytest.approx(np.mean((lp - lt) ** 2), rel=1e-12)
        assert M.mae_log(pred, truth, eps) == pytest.approx(np.mean(np.abs(lp - lt)), rel=1e-12)
    assert 0.0 < ref_ssim < 1.0


def test_log_errors_exact_cases():
    pred, truth = galaxy_pair(32)
    truth = truth + 1.0  # strictly positive for eps = 0
    assert M.mse_log(truth, truth, 0.0) == 0.0
    assert M.mae_log(truth, truth, 0.0) == 0.0
    assert M.mse_log(10 * truth, truth, 0.0) == pytest.approx(1.0, abs=1e-12)
    assert M.mae_log(truth, 10 * truth, 0.0) == pytest.approx(1.0, abs=1e-12)
    assert M.psnr(truth, truth, 0.0) == np.inf
    assert M.ssim(truth, truth, 0.0) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(InputError, match="eps"):
        M.mse_log(pred, truth - 1.0, 0.0)  # zeros and no floor


def test_batch_gives_per_map_values():
    pairs = [galaxy_pair(32, s) for s in range(3)]
    pred = np.stack([p for p, _ in pairs])
    truth = np.stack([t for _, t in pairs])
    v = M.ssim(pred, truth, 10.0)
    assert v.shape == (3,)
    for i in range(3):
        assert v[i] == pytest.approx(M.ssim(pred[i], truth[i], 10.0), abs=1e-12)
    rows = M.map_metrics_batch(pred, truth, 0.5, 10.0)
    single = M.map_metrics(pred[1], truth[1], 0.5, 10.0)
    assert rows[1] == pytest.approx(single, rel=1e-10)


def test_centre_offset_of_rolled_blob():
    n, d = 64, 0.37
    blob = np.exp(-radius(n, 30.2, 33.7) ** 2 / (2 * 2.5**2))
    assert M.center_offset(np.roll(blob, 3, axis=1), blob, d) == pytest.approx(3 * d, abs=1e-6)
    assert M.center_offset(np.roll(blob, (3, -4), axis=(0, 1)), blob, d) == pytest.approx(5 * d, abs=1e-6)
    np.testing.assert_allclose(M.centroid(blob), [30.2, 33.7], atol=1e-9)


def test_mass_and_profile_errors_of_scaled_map():
    _, truth = galaxy_pair(64)
    assert M.mass_rel_err(1.1 * truth, truth) == pytest.approx(0.1, rel=1e-12)
    assert M.mass_rel_err(0.7 * truth, truth) == pytest.approx(0.3, rel=1e-12)
    assert M.profile_rel_err(1.1 * truth, truth, 0.5) == pytest.approx(0.1, rel=1e-10)
    assert M.profile_rel_err(truth, truth, 0.5) == 0.0
    r, pp, pt = M.profile_curves(1.1 * truth, truth, 0.5)
    assert r.shape == pp.shape == pt.shape == (32,) and r[-1] < 16.0


def test_power_spectrum_metrics_exact_cases():
    pred, truth = galaxy_pair(64)
    d = 0.5
    assert M.pk_err_dex(truth, truth, d) == 0.0
    # P scales as the square of the amplitude: a map 2x too bright has P_pred / P_truth = 4.
    assert M.pk_err_dex(2 * truth, truth, d) == pytest.approx(np.log10(4.0), rel=1e-10)
    # r(k) is amplitude- and offset-invariant: 1 for a rescaled map, ~0 for an unrelated one.
    assert M.rk(2 * truth + 5.0, truth, d) == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(4)  # unrelated maps: zero on average (the few-mode low-k bins scatter)
    assert abs(np.mean(M.rk(rng.random((40, 64, 64)), rng.random((40, 64, 64)), d))) < 0.05
    k, pp, pt = M.pk_curves(2 * truth, truth, d)
    np.testing.assert_allclose(pp / pt, 4.0, rtol=1e-10)
    assert k[0] == pytest.approx(2 * np.pi / (64 * d), rel=0.3)  # rad/kpc
    _, r = M.rk_curve(pred, truth, d)
    assert np.all(np.abs(r) <= 1 + 1e-12) and r.shape == k.shape


def test_spectral_error_is_symmetric_in_excess_and_deficit():
    """Twice and half the true power are the same error, log10 2 dex. The old figure, the mean over
    ln k of |P_pred / P_true - 1|, gave 1.0 for the excess and 0.5 for the deficit, and could never
    exceed 1 for any deficit: a map with almost no power scored better than one with 2x too much."""
    _, truth = galaxy_pair(64)
    twice, half = np.sqrt(2.0) * truth, truth / np.sqrt(2.0)
    for pred in (twice, half):
        assert M.pk_err_dex(pred, truth, 0.5) == pytest.approx(np.log10(2.0), rel=1e-10)
    k, pp2, pt = M.pk_curves(twice, truth, 0.5)
    _, pph, _ = M.pk_curves(half, truth, 0.5)
    old = [np.sum(np.abs(pp / pt - 1.0) / k) / np.sum(1.0 / k) for pp in (pp2, pph)]
    assert old == pytest.approx([1.0, 0.5], rel=1e-10)
    assert M.pk_err_dex(1e-6 * truth, truth, 0.5) == pytest.approx(12.0, rel=1e-10)  # no cap for a deficit


def test_spectral_summaries_are_means_over_ln_k_up_to_half_nyquist():
    """Each linear k bin weighs dk / k (each octave counts equally), over the bins centred at or below
    half the Nyquist wavenumber (the range set by the map geometry, not by results)."""
    from scipy.ndimage import gaussian_filter
    pred, truth = galaxy_pair(64)
    d = 0.5
    blurred = gaussian_filter(truth, 1.5, mode="wrap")
    k, pp, pt = M.pk_curves(blurred, truth, d)
    keep = k <= 0.5 * np.pi / d + 0.5 * (k[1] - k[0])
    assert keep.sum() == 16  # bins k_f .. 16 k_f of a 64^2 map
    dex = np.abs(np.log10(pp / pt))
    by_hand = np.sum(dex[keep] / k[keep]) / np.sum(1.0 / k[keep])
    assert M.pk_err_dex(blurred, truth, d) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand < dex.mean()  # the deficit grows with k: the full linear-bin mean is larger
    assert M.map_metrics(blurred, truth, d, 1e-3)["pk_err_dex"] == pytest.approx(by_hand, rel=1e-10)
    _, r = M.rk_curve(pred, truth, d)
    r_hand = np.sum(r[keep] / k[keep]) / np.sum(1.0 / k[keep])
    assert M.rk(pred, truth, d) == pytest.approx(r_hand, rel=1e-12)
    assert M.map_metrics(pred, truth, d, 1e-3)["rk"] == pytest.approx(r_hand, rel=1e-10)


def test_asymmetry_symmetric_zero_one_sided_large():
    n = 64
    rng = np.random.default_rng(1)
    g = np.exp(-radius(n) ** 2 / (2 * 6.0**2))
    noise = rng.random((n, n))
    sym = g * (noise + noise[::-1, ::-1])  # point-symmetric about the map centre
    assert M.asymmetry(sym) < 1e-10
    one_sided = np.where(np.arange(n)[None, :] > (n - 1) / 2, g, 0.0)  # half a disk
    assert M.asymmetry(one_sided) > 0.5
    lopsided = g + 0.5 * np.exp(-radius(n, 31.5, 41.5) ** 2 / 8.0)
    assert 0.05 < M.asymmetry(lopsided) < M.asymmetry(one_sided)
    assert M.asymmetry_err(one_sided, sym) == pytest.approx(M.asymmetry(one_sided), abs=1e-10)


@pytest.mark.parametrize("cy,cx", [(63.5, 63.5), (60.3, 66.8)])
def test_concentration_of_analytic_profiles(cy, cx):
    r = radius(128, cy, cx)
    # Exponential disk: r20 = 0.8244 Rd, r80 = 2.9943 Rd -> C = 2.798.
    c_exp = 5 * np.log10(2.9943 / 0.8244)
    assert M.concentration(np.exp(-r / 6.0)) == pytest.approx(c_exp, abs=0.02)
    assert M.concentration(3e9 * np.exp(-r / 6.0)) == pytest.approx(c_exp, abs=0.02)  # amplitude-free
    # Gaussian: L(<r) = 1 - exp(-r^2 / 2 s^2) -> C = 5 log10(sqrt(ln 5 / ln 1.25)) = 2.145.
    c_gauss = 5 * np.log10(np.sqrt(np.log(5.0) / np.log(1.25)))
    assert M.concentration(np.exp(-r**2 / (2 * 6.0**2))) == pytest.approx(c_gauss, abs=0.02)
    assert M.concentration_err(np.exp(-r / 6.0), np.exp(-r**2 / 72.0)) == pytest.approx(c_exp - c_gauss, abs=0.03)


def test_clumpiness_smooth_gaussian_analytic_and_grows_with_clumps():
    n, s = 64, 6.0
    r = radius(n)
    g = np.exp(-r**2 / (2 * s**2))
    # Analytic S of a Gaussian (sigma s) smoothed by a Gaussian of 0.25 r50, r50 = s sqrt(2 ln 2).
    r50 = s * np.sqrt(2 * np.log(2))
    s2 = s**2 + (0.25 * r50) ** 2
    prof = lambda x: np.exp(-x**2 / (2 * s**2))  # noqa: E731
    resid = lambda x: max(prof(x) - s**2 / s2 * np.exp(-x**2 / (2 * s2)), 0.0) * x  # noqa: E731
    lo, hi = 0.25 * r50, 1.5 * r50
    s_exact = quad(resid, lo, hi, limit=200)[0] / quad(lambda x: prof(x) * x, lo, hi)[0]
    assert M.clumpiness(g) == pytest.approx(s_exact, abs=0.004)
    assert s_exact < 0.05
    rng = np.random.default_rng(0)
    ang, rad = rng.uniform(0, 2 * np.pi, 8), rng.uniform(3, 8, 8)
    y, x = np.mgrid[:n, :n]
    clumps = sum(np.exp(-((y - 31.5 - q * np.sin(a)) ** 2 + (x - 31.5 - q * np.cos(a)) ** 2) / (2 * 0.8**2))
                 for a, q in zip(ang, rad))
    svals = [M.clumpiness(g + amp * clumps) for amp in (0.0, 0.3, 1.0)]
    assert svals[0] < svals[1] < svals[2] and svals[2] > svals[0] + 0.03


def test_pixel_pdf_distances():
    pred, truth = galaxy_pair(48)
    truth = truth + 1.0
    assert M.pdf_w1(truth, truth, 0.0) == 0.0 and M.pdf_ks(truth, truth, 0.0) == 0.0
    assert M.pdf_w1(10 * truth, truth, 0.0) == pytest.approx(1.0, abs=1e-10)  # log PDF shifted by 1 dex
    eps = 50.0
    lp, lt = np.log10(pred + eps).ravel(), np.log10(truth + eps).ravel()
    assert M.pdf_w1(pred, truth, eps) == pytest.approx(scipy.stats.wasserstein_distance(lp, lt), rel=1e-10)
    assert M.pdf_ks(pred, truth, eps) == pytest.approx(scipy.stats.ks_2samp(lp, lt).statistic, abs=1e-12)


def test_map_metrics_keys_and_perfect_prediction():
    pred, truth = galaxy_pair(64)
    m = M.map_metrics(pred, truth, 0.5, 10.0)
    assert list(m) == ["mse_log", "mae_log", "psnr", "ssim", "pk_err_dex", "rk", "profile_rel_err",
                       "mass_rel_err", "center_offset", "asymmetry_err", "clumpiness_err",
                       "concentration_err", "pdf_w1", "pdf_ks"]
    assert all(isinstance(v, float) and np.isfinite(v) for v in m.values())
    assert m["ssim"] == pytest.approx(M.ssim(pred, truth, 10.0), abs=1e-12)
    assert m["rk"] == pytest.approx(M.rk(pred, truth, 0.5), abs=1e-12)
    assert m["concentration_err"] == pytest.approx(M.concentration_err(pred, truth), abs=1e-12)
    perfect = M.map_metrics(truth, truth, 0.5, 10.0)
    for name, v in perfect.items():
        if name == "psnr":
            assert v == np.inf
        elif name in M.HIGHER_IS_BETTER:
            assert v == pytest.approx(1.0, abs=1e-12)
        else:
            assert v == pytest.approx(0.0, abs=1e-12), name
    assert M.HIGHER_IS_BETTER == {"psnr", "ssim", "rk"}
    with pytest.raises(InputError, match="map_metrics_batch"):
        M.map_metrics(truth[None], truth[None], 0.5, 10.0)
    with pytest.raises(InputError, match="same shape"):
        M.map_metrics(pred, truth[:, :-1], 0.5, 10.0)


def test_summarise_known_list():
    rows = [{"a": float(v), "b": 2.0 * v} for v in range(101)] + [{"a": np.nan, "b": 0.0}]
    s = M.summarise(rows)
    assert s["a"] == {"mean": 50.0, "median": 50.0, "p16": 16.0, "p84": 84.0, "n": 101}
    assert s["b"]["n"] == 102 and s["b"]["p84"] == pytest.approx(np.percentile(2.0 * np.r_[np.arange(101), 0], 84))


def test_profile_error_ignores_annuli_below_the_log_floor():
    """Outskirts where the truth vanishes (no HI) must not dominate the profile error."""
    from skymorph.evaluate.metrics import map_metrics, profile_rel_err

    yy, xx = np.mgrid[:32, :32] - 15.5
    r = np.hypot(xx, yy)
    truth = np.where(r < 10, 1e3 * np.exp(-r / 3), 1e-9)
    pred = np.where(r < 10, 1.1e3 * np.exp(-r / 3), 1e-6)  # 10% high in the disk, tiny outside
    assert profile_rel_err(pred, truth, 1.0) > 100  # every outer annulus is off by 1e3
    assert map_metrics(pred, truth, 1.0, eps=1e-2)["profile_rel_err"] == pytest.approx(0.1, rel=1e-6)
