"""Finite-ensemble calibration and intervals over independent units (skymorph.stats)."""
import numpy as np
import pytest

from skymorph import stats
from skymorph.errors import InputError

N_PIX = 40_000


def _ensemble(k, spread, seed):
    """K samples and a truth per pixel; calibrated when ``spread`` = 1 (all from N(mu, 1))."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=N_PIX)
    return mu + spread * rng.normal(size=(k, N_PIX)), mu + rng.normal(size=N_PIX)


@pytest.mark.parametrize("k", [4, 8, 16])
@pytest.mark.parametrize("level", [0.68, 0.95])
def test_calibrated_ensemble_covers_at_the_nominal_rate(k, level):
    samples, truth = _ensemble(k, 1.0, seed=k)
    measured, nominal = stats.interval_coverage(samples, truth, level)
    j = stats.order_statistic_index(k, level)
    assert nominal == pytest.approx((k + 1 - 2 * j) / (k + 1))
    assert abs(measured - nominal) < 3 * np.sqrt(nominal * (1 - nominal) / N_PIX)
    counts = stats.rank_histogram(samples, truth)
    assert counts.sum() == N_PIX and len(counts) == k + 1
    assert stats.rank_uniformity(counts)[1] > 0.01


@pytest.mark.parametrize("k", [4, 8, 16])
def test_too_narrow_and_too_wide_ensembles_are_named_so(k):
    for spread, sign in ((0.5, -1), (2.0, +1)):
        samples, truth = _ensemble(k, spread, seed=10 + k)
        for level in (0.68, 0.95):
            measured, nominal = stats.interval_coverage(samples, truth, level)
            mc = 3 * np.sqrt(nominal * (1 - nominal) / N_PIX)
            assert sign * (measured - nominal) > mc
        ratio, calibrated = stats.spread_skill(samples, truth)
        assert sign * (calibrated - ratio) > 0.05  # narrow: error/spread above sqrt(1+1/K); wide: below
        counts = stats.rank_histogram(samples, truth)
        edges, middle = counts[[0, -1]].mean(), counts[1:-1].mean()
        assert (edges > middle) if spread < 1 else (edges < middle)  # U shape / dome
        assert stats.rank_uniformity(counts)[1] < 1e-6


def test_empirical_quantiles_of_eight_samples_miss_the_asymptotic_levels():
    """Why the order-statistic nominal is needed: the 16-84% quantiles of K = 8 calibrated samples
    cover ~0.53, not 0.68 (the old reading), while the order-statistic interval hits its nominal 7/9."""
    samples, truth = _ensemble(8, 1.0, seed=3)
    lo, hi = np.quantile(samples, [0.16, 0.84], axis=0)
    assert np.mean((truth >= lo) & (truth <= hi)) == pytest.approx(0.53, abs=0.02)
    measured, nominal = stats.interval_coverage(samples, truth, 0.68)
    assert nominal == pytest.approx(7 / 9) and measured == pytest.approx(7 / 9, abs=0.01)


def test_spread_skill_of_a_calibrated_ensemble_is_sqrt_one_plus_one_over_k():
    samples, truth = _ensemble(8, 1.0, seed=5)
    ratio, nominal = stats.spread_skill(samples, truth)
    assert nominal == pytest.approx(np.sqrt(9 / 8)) and ratio == pytest.approx(nominal, rel=0.02)


def test_ties_are_broken_at_random_and_axis_gives_per_map_values():
    samples = np.zeros((4, 2, 50, 50))
    truth = np.zeros((2, 50, 50))  # every sample ties the truth: ranks uniform on 0..4
    counts = stats.rank_histogram(samples, truth, seed=1)
    assert stats.rank_uniformity(counts)[1] > 0.01
    measured, nominal = stats.interval_coverage(samples, truth, 0.68, axis=(-2, -1))
    assert measured.shape == (2,) and np.all(measured == 3 / 5) and nominal == 3 / 5  # ranks 1..3 of 0..4


def _inclusive_coverage(samples, truth, j):
    """The definition before 2026-12-04: every tie with X(j) or X(K+1-j) counted inside."""
    srt = np.sort(samples, axis=0)
    return np.mean((truth >= srt[j - 1]) & (truth <= srt[-j]))


def test_coverage_by_hand_with_ties():
    """K = 4, j = 1: truth 0 among samples (0, 0, 1, 2) has 0 below and 2 tied, rank uniform on 0..2,
    inside for ranks 1..3: probability 2/3 (the inclusive count said 1)."""
    samples, truth = np.array([[0.0], [0.0], [1.0], [2.0]]), np.array([0.0])
    assert stats.interval_coverage(samples, truth, 0.68) == (pytest.approx(2 / 3), 0.6)
    assert _inclusive_coverage(samples, truth, 1) == 1.0
    # no ties with the truth: the same as the order-statistic interval, X(1) <= 1.5 <= X(4)
    assert stats.interval_coverage(samples, np.array([1.5]), 0.68)[0] == 1.0
    assert stats.interval_coverage(samples, np.array([2.5]), 0.68)[0] == 0.0


@pytest.mark.parametrize("k", [8, 16])
def test_calibrated_ensemble_with_a_point_mass_covers_at_the_nominal_rate(k):
    """Why ties are broken as in the rank histogram: a log map's empty pixels all sit at the floor.
    Truth and samples drawn alike, half of them exactly at the floor: the ensemble is calibrated,
    and its coverage is nominal; counting ties inside reads it as too wide by a wide margin."""
    rng = np.random.default_rng(k)
    draw = lambda *shape: np.where(rng.random(shape) < 0.5, -10.0, rng.normal(size=shape))  # noqa: E731
    samples, truth = draw(k, N_PIX), draw(N_PIX)
    for level in (0.68, 0.95):
        measured, nominal = stats.interval_coverage(samples, truth, level)
        mc = 3 * np.sqrt(nominal * (1 - nominal) / N_PIX)
        assert abs(measured - nominal) < mc
        j = stats.order_statistic_index(k, level)
        assert _inclusive_coverage(samples, truth, j) - nominal > 0.05
        ranks = stats.rank_histogram(samples, truth, seed=2)  # the same rule, ties drawn: agrees within MC
        assert abs(ranks[j:k - j + 1].sum() / N_PIX - measured) < mc
    # continuous values: the tie-aware coverage is the order-statistic interval's, exactly
    samples, truth = _ensemble(k, 1.0, seed=k)
    j = stats.order_statistic_index(k, 0.68)
    assert stats.interval_coverage(samples, truth, 0.68)[0] == _inclusive_coverage(samples, truth, j)


def test_calibration_rejects_bad_input():
    with pytest.raises(InputError, match="K >= 2"):
        stats.interval_coverage(np.zeros((1, 5)), np.zeros(5))
    with pytest.raises(InputError, match="shape"):
        stats.interval_coverage(np.zeros((4, 5)), np.zeros(6))
    with pytest.raises(InputError, match="NaN"):
        stats.spread_skill(np.full((4, 5), np.nan), np.zeros(5))
    with pytest.raises(InputError, match="level"):
        stats.interval_coverage(np.zeros((4, 5)), np.zeros(5), level=1.5)


def _clustered(rng, galaxies, views, between=1.0, within=0.5):
    """Per-view values of ``galaxies`` galaxies: a galaxy effect shared by its views plus view noise;
    the population median is 0."""
    g = rng.normal(0, between, galaxies)
    return (g[:, None] + rng.normal(0, within, (galaxies, views))).ravel(), np.repeat(np.arange(galaxies), views)


def test_galaxy_bootstrap_covers_the_population_median_at_the_stated_rate():
    rng = np.random.default_rng(0)
    hits, naive = [], []
    for trial in range(200):
        v, units = _clustered(rng, 40, 4)
        iv = stats.bootstrap_interval(v, units, 0.68, n_boot=400, seed=trial)
        hits.append(iv["lo"] <= 0.0 <= iv["hi"])
        assert iv["units"] == 40 and iv["n"] == 160
        per_view = stats.bootstrap_interval(v, np.arange(v.size), 0.68, n_boot=400, seed=trial)
        naive.append(per_view["lo"] <= 0.0 <= per_view["hi"])
    assert 0.58 <= np.mean(hits) <= 0.78  # 0.68 +- 3 binomial standard errors of 200 trials
    assert np.mean(naive) < 0.55  # treating correlated views as independent: intervals too narrow


def test_paired_verdicts():
    rng = np.random.default_rng(1)
    v, units = _clustered(rng, 12, 4)
    same = stats.paired_verdict(v, v.copy(), units)
    assert same["verdict"] == "no significant difference" and same["diff"] == 0.0 and same["units"] == 12
    better = stats.paired_verdict(v - 0.3, v + rng.normal(0, 0.05, v.size), units)  # lower error: better
    assert better["verdict"] == "better" and better["hi"] < 0
    assert stats.paired_verdict(v - 0.3, v, units, higher_is_better=True)["verdict"] == "worse"
    noisy = stats.paired_verdict(v + rng.normal(0, 2.0, v.size), v, units)
    assert noisy["verdict"] == "no significant difference" and noisy["lo"] < 0 < noisy["hi"]
    seeds = stats.paired_verdict(np.stack([v - 0.3, v - 0.2, v - 0.4]), v, units)
    assert seeds["seeds"] == (3, 1) and seeds["diff"] == pytest.approx(-0.3)
    with pytest.raises(InputError, match="not paired"):
        stats.paired_verdict(v, v[:-1], units)


def test_unit_values_are_nan_free_means():
    labels, means = stats.unit_values([1.0, 3.0, np.nan, 5.0], ["a", "a", "b", "b"])
    assert list(labels) == ["a", "b"] and means.tolist() == [2.0, 5.0]
