"""Born convergence maps from the density planes of PM runs.

Geometry (flat sky, comoving Mpc/h): the line of sight from the observer to the source distance
chi_s is cut into slabs of ``thickness_cells`` mesh cells; slab i, [chi_i, chi_i+1], takes the
density snapshot at a(chi at its centre) of the PM run. Box replication: each slab is cut from the
periodic box after an independent random symmetry of the cube (which axis is the line of sight and
the signs of the axes: 48 choices), a random start cell along the line of sight and a random
transverse offset, so that consecutive slabs do not repeat structures. The slab's mean density
contrast is sampled (bilinear, periodic) at the comoving transverse positions chi_c theta of the
pixel centres, and

    kappa(theta) = sum_i W_i delta_i(chi_c,i theta),   W_i = int_slab q(chi) dchi,

with the Born kernel q of :func:`skymorph.cosmo.lensing.lensing_weight`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.integrate
import torch

from skymorph.cosmo.lensing import comoving_distance, lensing_weight, redshift_at_distance
from skymorph.cosmo.linear import Cosmology
from skymorph.cosmo.nbody import Snapshot, simulate
from skymorph.errors import ConfigError

__all__ = ["LensPlanes", "lens_planes", "born_convergence", "convergence_map"]


@dataclass(frozen=True)
class LensPlanes:
    """Slab edges and centres (Mpc/h), the scale factor of each slab's snapshot, the Born weights
    W_i (dimensionless per unit delta), the source distance, and the slab thickness in cells."""

    edges: np.ndarray
    centres: np.ndarray
    a: np.ndarray
    weights: np.ndarray
    chi_source: float
    cells: int


def lens_planes(cosmo: Cosmology, z_source: float, box: float, mesh: int, thickness_cells: int,
                a_init: float = 0.1) -> LensPlanes:
    """Slabs of ``thickness_cells`` cells of the ``mesh`` covering 0 < chi < chi(z_source)."""
    if not z_source > 0:
        raise ConfigError(f"source redshift {z_source}: must be positive")
    if z_source > 1.0 / a_init - 1.0:
        raise ConfigError(f"source redshift {z_source} is beyond the simulated planes "
                          f"(the runs start at a = {a_init}, z = {1.0 / a_init - 1.0:g})")
    if not 1 <= thickness_cells <= mesh:
        raise ConfigError(f"plane thickness {thickness_cells} cells: must be between 1 and the mesh ({mesh})")
    chi_s = float(comoving_distance(z_source, cosmo))
    dchi = thickness_cells * box / mesh
    n = math.ceil(chi_s / dchi - 1e-9)
    edges = np.minimum(np.arange(n + 1) * dchi, chi_s)
    centres = 0.5 * (edges[1:] + edges[:-1])
    a = 1.0 / (1.0 + redshift_at_distance(centres, cosmo))
    weights = np.array([scipy.integrate.quad(lensing_weight, lo, hi, args=(chi_s, cosmo))[0]
                        for lo, hi in zip(edges[:-1], edges[1:])])
    return LensPlanes(edges, centres, a, weights, chi_s, thickness_cells)


def _fourier_sample(img: torch.Tensor, uy: torch.Tensor, ux: torch.Tensor, compensate_cic: bool) -> torch.Tensor:
    """Band-limited (Fourier series) interpolation of a periodic map (n, n) on the separable grid
    of cell coordinates uy (H,) x ux (W,): exact for the mesh's modes, with no interpolation
    smoothing; ``compensate_cic`` first divides by the 2D CIC assignment window."""
    n = img.shape[-1]
    freq = torch.fft.fftfreq(n, 1.0 / n, dtype=uy.dtype, device=img.device)
    fk = torch.fft.fft2(img.to(uy.dtype)) / n**2
    if compensate_cic:
        w = torch.sinc(freq / n) ** 2
        fk = fk / (w[:, None] * w[None, :])
    ey = torch.exp(2j * math.pi * uy[:, None] * freq[None, :] / n)
    ex = torch.exp(2j * math.pi * ux[:, None] * freq[None, :] / n)
    return (ey @ fk @ ex.T).real.to(img.dtype)


def born_convergence(deltas: list[torch.Tensor], planes: LensPlanes, box: float, field_deg: float,
                     npix: int, rng: np.random.Generator, compensate_cic: bool = True) -> torch.Tensor:
    """Convergence map (npix, npix) from one density mesh per slab (in the order of ``planes``),
    each randomly rotated and shifted (module docstring). ``field_deg`` is the side in degrees;
    ``compensate_cic`` undoes the CIC window of particle densities (False for smooth fields)."""
    if len(deltas) != len(planes.centres):
        raise ConfigError(f"{len(deltas)} density meshes for {len(planes.centres)} lens planes")
    n = deltas[0].shape[-1]
    cell = box / n
    theta = (torch.arange(npix, dtype=torch.float64, device=deltas[0].device) + 0.5 - 0.5 * npix)
    theta = theta * math.radians(field_deg) / npix
    kappa = torch.zeros(npix, npix, dtype=deltas[0].dtype, device=deltas[0].device)
    for delta, chi, w in zip(deltas, planes.centres, planes.weights):
        axes = rng.permutation(3).tolist()  # axes[2] is the line of sight
        start = int(rng.integers(n))
        los = torch.remainder(torch.arange(start, start + planes.cells, device=delta.device), n)
        slab = delta.permute(*axes).index_select(2, los).mean(dim=2)
        flips = [d for d in (0, 1) if rng.random() < 0.5]
        if flips:
            slab = slab.flip(flips)
        off = rng.random(2) * n
        u = chi * theta / cell
        kappa = kappa + float(w) * _fourier_sample(slab, u + off[0], u + off[1], compensate_cic)
    return kappa


def convergence_map(cosmo: Cosmology, noise: torch.Tensor, box: float, mesh: int, steps: int,
                    z_source: float, field_deg: float, npix: int, rng: np.random.Generator,
                    thickness_cells: int | None = None, a_init: float = 0.1) -> torch.Tensor:
    """One Born convergence map from a PM run of the white ``noise`` (n^3 particles) with density
    snapshots at every lens plane. ``thickness_cells`` defaults to a quarter of the mesh."""
    cells = max(mesh // 4, 1) if thickness_cells is None else int(thickness_cells)
    planes = lens_planes(cosmo, z_source, box, mesh, cells, a_init)
    width = math.radians(field_deg) * 0.5 * planes.chi_source
    if width > box:
        raise ConfigError(f"a {field_deg} deg field is {width:.0f} Mpc/h wide half-way to the source, more than "
                          f"the {box:g} Mpc/h box: use a larger --box or a smaller field")
    snaps: list[Snapshot] = simulate(noise, box, cosmo, mesh, steps, a_init, planes.a, keep_particles=False)
    # planes run away from the observer (decreasing a); simulate returns increasing a
    return born_convergence([s.delta for s in reversed(snaps)], planes, box, field_deg, npix, rng)
