"""Gaussian random fields with a power-law spectrum P(k) = A (k / k0)^n: a simulator whose exact
posterior is known, to check the whole inference chain against.

Fields follow :func:`skymorph.fields.gaussian_random_field` (periodic, zero mean, the k = 0 mode
removed). Their DFT coefficients F_k (``numpy.fft.fft2``, unnormalised) are independent up to
Hermitian symmetry with E|F_k|^2 = N_pix P(k) / d^2, so over the full plane without k = 0

    ln L(A, n) = -1/2 sum_k [ |F_k|^2 d^2 / (N_pix P(k)) + ln P(k) ] + const

counts every independent real degree of freedom once (a conjugate pair is two real Gaussians of
variance N_pix P / (2 d^2), a self-conjugate mode one of variance N_pix P / d^2). With a uniform
prior box the exact posterior is this likelihood on a grid.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ..atomic import atomic_path
from ..errors import ConfigError
from ..fields import gaussian_random_field
from ..provenance import provenance

__all__ = ["pivot", "simulate_grf", "write_grf_file", "log_likelihood_grid", "exact_posterior"]

PARAMS = ("A", "n")


def pivot(npix: int, pixel_size: float = 1.0) -> float:
    """The pivot k0 = sqrt(k_fundamental k_Nyquist) in radians per length unit: near the middle of the
    map's range of scales in log k, where A and n are least correlated."""
    return float(np.sqrt(2 * np.pi / (npix * pixel_size) * np.pi / pixel_size))


def simulate_grf(theta, npix: int, seed: int, pixel_size: float = 1.0, k0: float | None = None) -> np.ndarray:
    """``len(theta)`` fields (N, npix, npix) float32 for parameters ``theta`` (N, 2) = (A, n); field i
    is drawn from the generator seeded by ``[seed, i]``, so it does not depend on N."""
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    if theta.shape[1] != 2 or np.any(theta[:, 0] <= 0):
        raise ConfigError(f"GRF parameters must be (N, 2) rows (A > 0, n), got shape {theta.shape}")
    k0 = pivot(npix, pixel_size) if k0 is None else float(k0)
    out = np.empty((len(theta), npix, npix), np.float32)
    for i, (a, n) in enumerate(theta):
        out[i] = gaussian_random_field((npix, npix), lambda k: a * (k / k0) ** n, pixel_size,
                                       np.random.default_rng([seed, i]))
    return out


def write_grf_file(out, n_maps: int, npix: int, prior: dict[str, tuple[float, float]], seed: int,
                   pixel_size: float = 1.0) -> Path:
    """Write ``n_maps`` fields with (A, n) drawn uniformly in the ``prior`` box to an inference file:
    ``/field`` (N, npix, npix), ``/params/A``, ``/params/n``; attributes pixel_size, k0, seed."""
    rng = np.random.default_rng([seed, 1])
    theta = np.stack([rng.uniform(*prior[p], n_maps) for p in PARAMS], 1)
    maps = simulate_grf(theta, npix, seed, pixel_size)
    out = Path(out)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("field", data=maps, chunks=(1, npix, npix))
        for j, p in enumerate(PARAMS):
            f[f"params/{p}"] = theta[:, j]
        f.attrs.update({"pixel_size": pixel_size, "pixel_unit": "length unit", "k0": pivot(npix, pixel_size),
                        "seed": seed, "simulator": "grf power law P(k) = A (k/k0)^n",
                        "provenance": json.dumps(provenance())})
    return out


def _modes(field: np.ndarray, pixel_size: float, k0: float):
    """|F_k|^2 d^2 / N_pix and ln(k / k0) of every mode of the full plane but k = 0."""
    h, w = field.shape
    power = np.abs(np.fft.fft2(field)) ** 2 * pixel_size**2 / (h * w)
    k = 2 * np.pi * np.hypot(np.fft.fftfreq(h, pixel_size)[:, None], np.fft.fftfreq(w, pixel_size)[None, :])
    keep = k > 0
    return power[keep], np.log(k[keep] / k0)


def log_likelihood_grid(field, a_grid, n_grid, pixel_size: float = 1.0, k0: float | None = None) -> np.ndarray:
    """Exact ln L (len(a_grid), len(n_grid)) of one field (module docstring), up to a constant."""
    field = np.asarray(field, dtype=np.float64)
    k0 = pivot(field.shape[-1], pixel_size) if k0 is None else float(k0)
    p, lnk = _modes(field, pixel_size, k0)
    a = np.asarray(a_grid, dtype=np.float64)[:, None]
    n = np.asarray(n_grid, dtype=np.float64)[None, :]
    t = np.exp(-np.asarray(n_grid)[:, None] * lnk[None, :]) @ p  # sum_k p_k (k/k0)^-n, per n
    return -0.5 * (t[None, :] / a + len(p) * np.log(a) + n * lnk.sum())


def exact_posterior(field, prior: dict[str, tuple[float, float]], pixel_size: float = 1.0, k0: float | None = None,
                    grid: int = 400) -> dict[str, np.ndarray]:
    """Exact posterior of (A, n) under the uniform ``prior`` box, on a ``grid`` x ``grid`` mesh of cell
    centres: ``{"mean": (2,), "sd": (2,), "cov": (2, 2), "a": (grid,), "n": (grid,), "density": (grid, grid)}``."""
    (a_lo, a_hi), (n_lo, n_hi) = prior["A"], prior["n"]
    a = a_lo + (np.arange(grid) + 0.5) * (a_hi - a_lo) / grid
    n = n_lo + (np.arange(grid) + 0.5) * (n_hi - n_lo) / grid
    lnl = log_likelihood_grid(field, a, n, pixel_size, k0)
    dens = np.exp(lnl - lnl.max())
    dens /= dens.sum()
    pa, pn = dens.sum(1), dens.sum(0)
    mean = np.array([pa @ a, pn @ n])
    da, dn = a - mean[0], n - mean[1]
    cov = np.array([[pa @ da**2, da @ dens @ dn], [da @ dens @ dn, pn @ dn**2]])
    return {"mean": mean, "sd": np.sqrt(np.diag(cov)), "cov": cov, "a": a, "n": n, "density": dens}
