"""Calibration of a finite ensemble of K samples against the truth (DESIGN.md section 12).

For K exchangeable samples and a truth drawn from the same distribution, the rank of the truth
among the samples is uniform on 0..K, so the order-statistic interval [X(j), X(K+1-j)] covers the
truth with probability exactly (K+1-2j)/(K+1), whatever the distribution. Empirical quantiles of a
small ensemble are not the asymptotic ones: the 16th-84th percentile interval of K = 8 samples
covers only ~0.53 of a calibrated truth. Every coverage here is therefore reported beside the
nominal coverage of the very interval it measures.

Shapes: ``samples`` (K, ...) and ``truth`` (...) with the same trailing shape; every element of the
trailing shape (a pixel, a parameter of one simulation) is one truth value.
"""
from __future__ import annotations

import numpy as np
import scipy.stats

from ..errors import InputError


def _ensemble(samples, truth) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(samples, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if s.ndim < 1 or s.shape[1:] != t.shape or s.shape[0] < 2:
        raise InputError(f"calibration: samples {s.shape} must be (K >= 2, ...) with the truth's shape "
                         f"{t.shape} after K")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(t))):
        raise InputError("calibration: samples or truth hold NaN or infinite values")
    return s, t


def order_statistic_index(k: int, level: float) -> int:
    """j of the central order-statistic interval [X(j), X(K+1-j)] of K samples for a wanted level.

    The nominal coverage (K+1-2j)/(K+1) is linear in j, so the j nearest to (K+1)(1-level)/2 gives
    the interval whose nominal coverage is closest to ``level``; clamped to 1 <= j <= K // 2 (with
    K = 8, both 0.68 and 0.95 give j = 1, nominal 7/9: eight samples cannot make a 95% interval).
    """
    if k < 2:
        raise InputError(f"calibration needs K >= 2 samples, got {k}")
    if not 0.0 < level < 1.0:
        raise InputError(f"interval level must be in (0, 1), got {level}")
    return int(min(max(round((k + 1) * (1.0 - level) / 2.0), 1), k // 2))


def nominal_coverage(k: int, level: float) -> float:
    """(K+1-2j)/(K+1): the exact coverage, for a calibrated ensemble of K members, of the central
    order-statistic interval chosen for ``level`` (:func:`order_statistic_index`)."""
    return (k + 1 - 2 * order_statistic_index(k, level)) / (k + 1)


def nominal_spread_skill(k: int) -> float:
    """sqrt(1 + 1/K): the spread-skill ratio of a calibrated ensemble of K members."""
    return float(np.sqrt(1.0 + 1.0 / k))


def _below_and_tied(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per truth value, how many of the K samples lie below it and how many equal it: its rank is
    uniform on below..below + tied (the one tie rule of coverage and rank histogram)."""
    return (s < t).sum(axis=0), (s == t).sum(axis=0)


def interval_coverage(samples, truth, level: float = 0.68, axis=None) -> tuple[np.ndarray | float, float]:
    """(measured, nominal) coverage of the truth by the central order-statistic interval of K samples.

    measured: mean over truth values of the probability that the truth's rank r (samples below it,
    ties with it broken uniformly at random, as in :func:`rank_histogram`) lies in j <= r <= K - j,
    i.e. X(j) < truth < X(K+1-j) for distinct values (j from :func:`order_statistic_index`). With b
    samples below and m tied, r is uniform on b..b+m, so the probability is computed exactly, not
    drawn: #({b..b+m} and {j..K-j}) / (m + 1). Counting every tie as inside (as before 2026-12-04)
    inflates the coverage of an ensemble with a point mass, e.g. log maps at the floor of an empty
    pixel: a calibrated ensemble whose truth and samples all sit at the floor covers (K+1-2j)/(K+1)
    of such pixels, not all. Over all trailing elements (``axis=None``, a float) or the given
    trailing axes (an array); nominal: (K+1-2j)/(K+1), the exact expected coverage for a calibrated
    ensemble. measured < nominal: under-dispersed (too narrow); > nominal: over-dispersed (too wide).
    """
    s, t = _ensemble(samples, truth)
    k = s.shape[0]
    j = order_statistic_index(k, level)
    below, ties = _below_and_tied(s, t)
    inside = np.clip(np.minimum(below + ties, k - j) - np.maximum(below, j) + 1, 0, None) / (ties + 1)
    measured = inside.mean() if axis is None else inside.mean(axis=axis)
    return (float(measured) if axis is None else measured), nominal_coverage(k, level)


def rank_histogram(samples, truth, seed: int = 0) -> np.ndarray:
    """Counts (K + 1,) of the rank of the truth among the K samples (Talagrand / PIT histogram).

    rank = number of samples below the truth, ties broken uniformly at random (``seed``). Uniform for
    a calibrated ensemble; U-shaped: under-dispersed; dome: over-dispersed; sloped: biased.
    """
    s, t = _ensemble(samples, truth)
    below, ties = _below_and_tied(s, t)
    rng = np.random.default_rng(seed)
    ranks = below + np.floor(rng.random(t.shape) * (ties + 1)).astype(np.int64)
    return np.bincount(ranks.ravel(), minlength=s.shape[0] + 1)


def rank_uniformity(counts) -> tuple[float, float]:
    """(chi^2, p-value) of rank-histogram ``counts`` against the uniform distribution.

    The test assumes independent truth values: pixels of one map are correlated, so for maps read the
    p-value as a measure of how far from flat, not as a calibrated test (the histogram shows how).
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size < 2 or c.sum() <= 0:
        raise InputError(f"rank_uniformity: expected counts of K + 1 >= 3 ranks, got {c.shape}")
    res = scipy.stats.chisquare(c)
    return float(res.statistic), float(res.pvalue)


def spread_skill(samples, truth, axis=None) -> tuple[np.ndarray | float, float]:
    """(measured, nominal): RMS error of the ensemble mean over the RMS ensemble spread.

    Spread: standard deviation over the K samples (ddof 1); RMS over the trailing elements
    (``axis=None``) or the given trailing axes. Nominal sqrt(1 + 1/K), the ratio of a calibrated
    ensemble of K members (the mean of K draws misses a new draw by sigma^2 (1 + 1/K) on average).
    Above nominal: under-dispersed; below: over-dispersed. +inf where the spread is zero.
    """
    s, t = _ensemble(samples, truth)
    err2 = (s.mean(0) - t) ** 2
    var = s.var(0, ddof=1)
    e, v = (err2.mean(), var.mean()) if axis is None else (err2.mean(axis=axis), var.mean(axis=axis))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(v > 0, np.sqrt(e / np.where(v > 0, v, 1.0)), np.inf)
    return (float(ratio) if axis is None else ratio), nominal_spread_skill(s.shape[0])
