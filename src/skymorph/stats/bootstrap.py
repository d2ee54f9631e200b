"""Intervals over independent units and paired verdicts (DESIGN.md section 12).

The unit is what is independent: a galaxy (its rotated views are correlated), a map, a simulation.
Every resample draws whole units with replacement (a cluster bootstrap: all values of a unit go
together), percentile intervals. Written here rather than through ``scipy.stats.bootstrap`` because
scipy resamples single observations, not clusters of them, and cannot resample training seeds and
galaxies together.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

#: Resamples of every interval (the issue asks for at least 1000).
N_BOOT = 2000


def _units(units, n: int) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(units)
    if u.shape != (n,):
        raise InputError(f"bootstrap: {u.shape[0] if u.ndim else 'no'} unit labels for {n} values")
    labels, inverse = np.unique(u, return_inverse=True)
    return labels, inverse


def unit_values(values, units) -> tuple[np.ndarray, np.ndarray]:
    """(labels, per-unit means): the NaN-free mean of ``values`` over each unit's entries (NaN for a
    unit with none)."""
    v = np.asarray(values, dtype=np.float64)
    labels, inv = _units(units, v.size)
    ok = np.isfinite(v)
    n = np.bincount(inv[ok], minlength=labels.size)
    s = np.bincount(inv[ok], v[ok], minlength=labels.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return labels, np.where(n > 0, s / np.where(n > 0, n, 1), np.nan)


def bootstrap_interval(values, units, level: float = 0.68, stat=np.median, n_boot: int = N_BOOT,
                       seed: int = 0) -> dict:
    """Point value and central ``level`` interval of ``stat`` over the values, resampling units.

    values (n,), units (n,) labels; NaN values are left out. Returns ``{"value", "lo", "hi", "units",
    "n"}``: ``stat`` of all values, the percentile interval of ``stat`` over ``n_boot`` resamples of
    the units (each draw keeps all of a unit's values), the number of units and values used.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    _, inv = _units(units, v.size)
    ok = np.isfinite(v)
    v, inv = v[ok], inv[ok]
    if v.size == 0:
        return {"value": float("nan"), "lo": float("nan"), "hi": float("nan"), "units": 0, "n": 0}
    present, inv = np.unique(inv, return_inverse=True)
    m = present.size
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, m, size=(n_boot, m))
    boot = np.empty(n_boot)
    for b in range(n_boot):
        weight = np.bincount(draws[b], minlength=m)[inv]
        boot[b] = stat(np.repeat(v, weight))
    lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    return {"value": float(stat(v)), "lo": float(lo), "hi": float(hi), "units": int(m), "n": int(v.size)}


def paired_verdict(a, b, units, higher_is_better: bool = False, level: float = 0.95, n_boot: int = N_BOOT,
                   seed: int = 0) -> dict:
    """Does A beat B? Decided on the paired per-unit difference of a metric, over units and seeds.

    a (S_a, n) and b (S_b, n): the metric per value (e.g. per view, in the same order) for each
    training seed of each method (a 1D array is one seed); units (n,) labels. The difference of a unit
    is the mean over its values and over seeds of A minus that of B; the statistic is the mean over
    units. Each resample draws units with replacement and, independently, the seeds of A and of B
    (so the interval carries training noise when there are several seeds). Values NaN in any seed of
    either method are left out. Returns ``{"diff", "lo", "hi", "level", "units", "seeds": (S_a, S_b),
    "verdict"}`` with verdict "better" / "worse" (for A; the interval of the difference excludes 0 on
    the good / bad side) or "no significant difference".
    """
    a2, b2 = np.atleast_2d(np.asarray(a, dtype=np.float64)), np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a2.shape[1] != b2.shape[1]:
        raise InputError(f"paired_verdict: A has {a2.shape[1]} values per seed, B {b2.shape[1]}: not paired")
    labels, inv = _units(units, a2.shape[1])
    ok = np.all(np.isfinite(a2), axis=0) & np.all(np.isfinite(b2), axis=0)
    present = np.unique(inv[ok])
    out = {"level": level, "units": int(present.size), "seeds": (int(a2.shape[0]), int(b2.shape[0]))}
    if present.size == 0:
        return {**out, "diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "verdict": "no data"}
    inv_ok = np.searchsorted(present, inv[ok])
    count = np.bincount(inv_ok, minlength=present.size)

    def per_unit(x):  # (S, units): mean over each unit's values, per seed
        return np.stack([np.bincount(inv_ok, row[ok], minlength=present.size) / count for row in x])

    ga, gb = per_unit(a2), per_unit(b2)
    diff = float(np.mean(ga.mean(0) - gb.mean(0)))
    rng = np.random.default_rng(seed)
    m = present.size
    wu = np.stack([np.bincount(d, minlength=m) for d in rng.integers(0, m, (n_boot, m))]) / m
    wa = np.stack([np.bincount(d, minlength=len(ga)) for d in rng.integers(0, len(ga), (n_boot, len(ga)))]) / len(ga)
    wb = np.stack([np.bincount(d, minlength=len(gb)) for d in rng.integers(0, len(gb), (n_boot, len(gb)))]) / len(gb)
    boot = np.sum(wu * (wa @ ga - wb @ gb), axis=1)
    lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    good, bad = (lo > 0, hi < 0) if higher_is_better else (hi < 0, lo > 0)
    verdict = "better" if good else "worse" if bad else "no significant difference"
    return {**out, "diff": diff, "lo": float(lo), "hi": float(hi), "verdict": verdict}
