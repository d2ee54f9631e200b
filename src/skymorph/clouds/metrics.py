"""Judges of a point cloud against a reference cloud (positions in the same units, weights in Msun).

Distances: Chamfer (mean nearest-neighbour distance both ways, torch ``cdist`` in chunks so memory
stays bounded), the exact earth mover's distance (POT ``emd2``, Euclidean cost: a cloud shifted by d is
d away) and the debiased Sinkhorn divergence (geomloss, p = 1: the EMD's fast approximation). Structure:
radial profiles of point counts and of enclosed mass, the half-mass radius, the axis ratios of the
mass-weighted inertia tensor, the shot-noise-free mass power spectrum in the cube, and for 6D clouds
the velocity-dispersion profile.
"""
from __future__ import annotations

import numpy as np
import torch

#: Radial shells of the profiles (units of the cloud's scale radius, the view's half-width).
SHELLS = np.linspace(0.0, 1.0, 11)


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, np.float32))


def nearest_distances(a, b, chunk: int = 4096) -> np.ndarray:
    """Distance from each point of ``a`` (N, D) to its nearest point of ``b`` (M, D); ``chunk`` rows at a time."""
    a, b = _t(a), _t(b)
    exact = "donot_use_mm_for_euclid_dist"  # the matrix-product form loses ~1e-4 to cancellation in float32
    return torch.cat([torch.cdist(a[i:i + chunk], b, compute_mode=exact).min(1).values
                      for i in range(0, len(a), chunk)]).numpy()


def chamfer(a, b, chunk: int = 4096) -> float:
    """Chamfer distance: mean nearest distance from ``a`` to ``b`` plus from ``b`` to ``a`` (units of the points)."""
    return float(nearest_distances(a, b, chunk).mean() + nearest_distances(b, a, chunk).mean())


def _weights(w, n) -> np.ndarray:
    w = np.full(n, 1.0 / n) if w is None else np.asarray(w, np.float64)
    return w / w.sum()


def emd(a, b, wa=None, wb=None) -> float:
    """Exact earth mover's distance (Wasserstein-1, Euclidean cost) between weighted clouds (POT; a few
    thousand points: the cost matrix is N x M)."""
    import ot

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(ot.emd2(_weights(wa, len(a)), _weights(wb, len(b)), ot.dist(a, b, metric="euclidean"),
                         numItermax=10_000_000))


def sinkhorn(a, b, wa=None, wb=None, blur: float = 0.003) -> float:
    """Debiased Sinkhorn divergence (geomloss, p = 1, ``blur`` in point units): approaches the EMD as blur -> 0."""
    from geomloss import SamplesLoss

    loss = SamplesLoss("sinkhorn", p=1, blur=blur, backend="tensorized", scaling=0.95)
    return float(loss(_t(_weights(wa, len(a))), _t(a), _t(_weights(wb, len(b))), _t(b)))


def radial_profiles(pos, w, shells=SHELLS) -> tuple[np.ndarray, np.ndarray]:
    """(share of points per shell, enclosed mass M(< r) at the outer shell radii [weight units])."""
    r = np.linalg.norm(np.asarray(pos, np.float64)[:, :3], axis=1)
    counts = np.histogram(r, shells)[0]
    mass = np.cumsum(np.histogram(r, shells, weights=np.asarray(w, np.float64))[0])
    return counts / max(counts.sum(), 1), mass


def half_mass_radius(pos, w) -> float:
    """Radius enclosing half of the weight (position units)."""
    r = np.linalg.norm(np.asarray(pos, np.float64)[:, :3], axis=1)
    order = np.argsort(r)
    cum = np.cumsum(np.asarray(w, np.float64)[order])
    return float(r[order][np.searchsorted(cum, 0.5 * cum[-1])])


def axis_ratios(pos, w) -> tuple[float, float]:
    """(b/a, c/a): square roots of the ordered eigenvalues of the weighted second-moment tensor about the
    weighted centre."""
    x = np.asarray(pos, np.float64)[:, :3]
    w = np.asarray(w, np.float64)
    x = x - np.average(x, axis=0, weights=w)
    lam = np.sort(np.linalg.eigvalsh((w[:, None, None] * x[:, :, None] * x[:, None, :]).sum(0) / w.sum()))[::-1]
    return float(np.sqrt(lam[1] / lam[0])), float(np.sqrt(lam[2] / lam[0]))


def mass_power(pos, w, ngrid: int = 32, box: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """(k, P(k)) of the mass overdensity of the cloud in the cube [-box/2, box/2]^3: cloud-in-cell on
    ``ngrid``^3, less the shot noise sum w^2 / (sum w)^2 V as the CIC assignment aliases it (Jing 2005:
    times prod_i (1 - 2/3 sin^2(pi n_i / ngrid)) per mode), the window left in (both clouds of a
    comparison share it); k in radians per position unit."""
    x = (np.asarray(pos, np.float64)[:, :3] / box + 0.5) * ngrid - 0.5
    w = np.asarray(w, np.float64)
    grid = np.zeros((ngrid,) * 3)
    base = np.floor(x).astype(int)
    frac = x - base
    for corner in np.ndindex(2, 2, 2):
        c = np.array(corner)
        np.add.at(grid, tuple(((base + c) % ngrid).T), w * np.prod(np.where(c, frac, 1 - frac), axis=1))
    vol = box**3
    n = [np.fft.fftfreq(ngrid, 1 / ngrid)] * 2 + [np.fft.rfftfreq(ngrid, 1 / ngrid)]
    alias = 1.0
    for i, ni in enumerate(n):
        alias = alias * (1 - 2 / 3 * np.sin(np.pi * ni / ngrid) ** 2).reshape([-1 if j == i else 1 for j in range(3)])
    shot = np.sum(w**2) / np.sum(w) ** 2 * vol
    pk3 = np.abs(np.fft.rfftn(grid / grid.mean() - 1)) ** 2 * vol / ngrid**6 - shot * alias
    kf = 2 * np.pi / box
    kmag = kf * np.sqrt(n[0][:, None, None] ** 2 + n[1][None, :, None] ** 2 + n[2][None, None, :] ** 2)
    edges = kf * np.arange(1, ngrid // 2 + 1)
    idx = np.digitize(kmag.ravel(), edges)
    ok = (idx > 0) & (idx < len(edges))
    counts = np.bincount(idx[ok], minlength=len(edges))[1:]
    pk = np.bincount(idx[ok], pk3.ravel()[ok], len(edges))[1:] / np.maximum(counts, 1)
    return 0.5 * (edges[1:] + edges[:-1]), pk


def dispersion_profile(pos, vel, w, shells=SHELLS) -> np.ndarray:
    """Weighted 1D velocity dispersion sqrt(sum of the three variances / 3) in each radial shell (NaN where empty)."""
    r = np.linalg.norm(np.asarray(pos, np.float64)[:, :3], axis=1)
    vel, w = np.asarray(vel, np.float64), np.asarray(w, np.float64)
    shell = np.digitize(r, shells) - 1
    out = np.full(len(shells) - 1, np.nan)
    for s in range(len(out)):
        sel = shell == s
        if w[sel].sum() > 0 and sel.sum() > 1:
            v = vel[sel] - np.average(vel[sel], axis=0, weights=w[sel])
            out[s] = np.sqrt(np.average(np.sum(v**2, axis=1), weights=w[sel]) / 3)
    return out


def dex_error(a, b, floor: float = 0.0) -> float:
    """Mean |log10(a / b)| over entries where both exceed ``floor`` (NaN if none)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = (a > floor) & (b > floor) & np.isfinite(a) & np.isfinite(b)
    return float(np.mean(np.abs(np.log10(a[ok] / b[ok])))) if ok.any() else float("nan")


def cloud_metrics(gen, w_gen, ref, w_ref, n_emd: int = 2048, seed: int = 0, vel_gen=None, vel_ref=None) -> dict:
    """Every judge of a generated cloud against the reference (positions in half-widths, weights in Msun).

    The exact EMD is taken between ``n_emd``-point mass-weighted subsamples of both (the cost matrix is
    quadratic); Chamfer and the profiles use every point. ``count_profile_tv``: total-variation distance
    of the shares of points per shell; ``mass_profile_dex``: mean |log10| error of M(< r) over the shells."""
    from .sampling import systematic_pps

    rng = np.random.default_rng(seed)
    ga, ra = (p[systematic_pps(w, min(n_emd, len(p)), rng)] for p, w in ((gen, w_gen), (ref, w_ref)))
    cg, mg = radial_profiles(gen, w_gen)
    cr, mr = radial_profiles(ref, w_ref)
    (bg, cgr), (br, crr) = axis_ratios(gen, w_gen), axis_ratios(ref, w_ref)
    _, pg = mass_power(gen, w_gen)
    _, pr = mass_power(ref, w_ref)
    out = {"chamfer": chamfer(gen[:, :3], ref[:, :3]), "emd": emd(ga[:, :3], ra[:, :3]),
           "count_profile_tv": float(0.5 * np.abs(cg - cr).sum()), "mass_profile_dex": dex_error(mg, mr),
           "total_mass_dex": dex_error(np.sum(w_gen), np.sum(w_ref)),
           "half_mass_ratio": half_mass_radius(gen, w_gen) / half_mass_radius(ref, w_ref),
           "b_over_a_err": abs(bg - br), "c_over_a_err": abs(cgr - crr), "pk_err_dex": dex_error(pg, pr)}
    if vel_gen is not None and vel_ref is not None:
        out["sigma_profile_dex"] = dex_error(dispersion_profile(gen, vel_gen, w_gen), dispersion_profile(ref, vel_ref, w_ref))
    return out
