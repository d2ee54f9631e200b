"""SPH kernel and neighbour-based smoothing at the ground floor (used by sim and maps).

The kernel is the 3D cubic spline (Monaghan & Lattanzio 1985) in the Gadget/Arepo
convention with compact support h: W(r, h) = 8 / (pi h^3) w(r / h),
w(q) = 1 - 6 q^2 + 6 q^3 (q < 1/2), 2 (1 - q)^3 (1/2 <= q < 1), 0 beyond.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

KERNEL_NORM_3D = 8.0 / np.pi


def cubic_spline_w(q: np.ndarray) -> np.ndarray:
    """Dimensionless 3D cubic-spline shape w(q), q = r / h (support q < 1)."""
    q = np.asarray(q, dtype=np.float64)
    w = np.where(q < 0.5, 1.0 - 6.0 * q**2 + 6.0 * q**3, 2.0 * np.clip(1.0 - q, 0.0, None) ** 3)
    return np.where(q < 1.0, w, 0.0)


def cubic_spline_3d(r: np.ndarray, h: np.ndarray) -> np.ndarray:
    """3D kernel W(r, h) [1 / length^3]; integrates to one over its support sphere."""
    h = np.asarray(h, dtype=np.float64)
    return KERNEL_NORM_3D / h**3 * cubic_spline_w(np.asarray(r) / h)


def knn_distance(pos: np.ndarray, k: int) -> np.ndarray:
    """Distance [same unit as pos] from each point to its k-th nearest other point.

    With fewer than k + 1 points, the farthest neighbour is used.
    """
    n = len(pos)
    if n < 2:
        return np.zeros(n)
    kk = min(k + 1, n)  # the point itself is its own nearest neighbour
    d, _ = cKDTree(pos).query(pos, k=kk, workers=-1)
    return d[:, -1]


def kernel_density(pos: np.ndarray, mass: np.ndarray, n_ngb: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """SPH density estimate with a cubic-spline kernel reaching the n_ngb-th neighbour.

    Returns (rho [mass / length^3], h [length]); the point's own mass is included.
    """
    n = len(pos)
    kk = min(n_ngb + 1, n)
    d, idx = cKDTree(pos).query(pos, k=kk, workers=-1)
    h = d[:, -1] * (1.0 + 1e-9) + 1e-300  # the kernel vanishes at q = 1 exactly; nudge out
    w = cubic_spline_3d(d, h[:, None])
    rho = np.sum(w * mass[idx], axis=1)
    return rho, h
