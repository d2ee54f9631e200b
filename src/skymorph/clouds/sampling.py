"""Subsampling a galaxy's particles into a cloud of n points, with the mass each point stands for.

random: uniform draw, weight m_i N / n (Horvitz-Thompson: sums over the cloud are unbiased);
mass: systematic probability-proportional-to-mass draw, weight M / n each (equal-weight points whose
    density is the mass density; unbiased, and lower variance than independent draws);
fps: farthest-point sampling (even coverage, deterministic given the start), weight = the mass of the
    particles nearest to each chosen point (sums exactly M).
"""
from __future__ import annotations

import numba
import numpy as np
from scipy.spatial import cKDTree

from ..errors import ConfigError, InputError

SAMPLINGS = ("random", "fps", "mass")


@numba.njit(cache=True)
def _farthest(pos, n, start):
    m = len(pos)
    idx = np.empty(n, np.int64)
    d = np.full(m, np.inf)
    cur, best = start, 0.0
    for k in range(n):
        idx[k] = cur
        best, nxt = -1.0, 0
        for i in range(m):
            dd = (pos[i, 0] - pos[cur, 0]) ** 2 + (pos[i, 1] - pos[cur, 1]) ** 2 + (pos[i, 2] - pos[cur, 2]) ** 2
            if dd < d[i]:
                d[i] = dd
            if d[i] > best:
                best, nxt = d[i], i
        cur = nxt
    return idx, np.sqrt(best)


def farthest_point(pos: np.ndarray, n: int, start: int = 0) -> tuple[np.ndarray, float]:
    """Indices of ``n`` farthest-point samples of ``pos`` (N, 3) from ``start``, and the coverage radius
    (the largest distance from any point to its nearest sample, in ``pos`` units)."""
    return _farthest(np.ascontiguousarray(pos, dtype=np.float64), int(n), int(start))


def systematic_pps(mass: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices drawn with probability proportional to ``mass`` by systematic sampling over a random
    order: particle i is drawn floor or ceil of n m_i / M times."""
    order = rng.permutation(len(mass))
    cum = np.cumsum(np.asarray(mass, np.float64)[order])
    step = cum[-1] / n
    return order[np.minimum(np.searchsorted(cum, rng.uniform(0, step) + step * np.arange(n), side="right"),
                            len(mass) - 1)]


def subsample(pos: np.ndarray, mass: np.ndarray, n: int, strategy: str, rng: np.random.Generator,
              replace: bool = False, what: str = "cloud") -> tuple[np.ndarray, np.ndarray]:
    """(indices (n,), weights (n,) Msun) of a ``strategy`` subsample of particles at ``pos`` with ``mass``.

    Fewer than ``n`` particles: InputError naming ``what``, unless ``replace`` (random and mass draws
    may then repeat particles; farthest-point sampling never can)."""
    if strategy not in SAMPLINGS:
        raise ConfigError(f"unknown --sampling {strategy!r}; expected one of {', '.join(SAMPLINGS)}")
    total = len(mass)
    if total == 0:
        raise InputError(f"{what}: no particles")
    if total < n and (not replace or strategy == "fps"):
        hint = ("farthest-point sampling cannot repeat points" if strategy == "fps" else
                "use --replace to sample with replacement")
        raise InputError(f"{what}: {total} particles, fewer than the {n} asked ({hint})")
    mass = np.asarray(mass, np.float64)
    if strategy == "random":
        idx = rng.choice(total, n, replace=total < n)
        return idx, mass[idx] * total / n
    if strategy == "mass":
        return systematic_pps(mass, n, rng), np.full(n, mass.sum() / n)
    idx, _ = farthest_point(pos, n, int(rng.integers(total)))
    nearest = cKDTree(pos[idx]).query(pos)[1]
    return idx, np.bincount(nearest, weights=mass, minlength=n)
