"""Periodic mesh operations in torch: wavenumbers, CIC paint/readout, gravity, 3D power spectra.

Conventions: a mesh is a real tensor (n, n, n) covering a periodic box of side ``box`` Mpc/h
(cell ``box / n``); positions are (P, 3) in Mpc/h (any real value: they wrap); wavenumbers are in
h/Mpc. Fourier modes use ``torch.fft.rfftn`` (unnormalised), so the power spectrum of a mesh
``delta`` is P(k) = |rfftn(delta)|^2 V / n^6 in (Mpc/h)^3. Everything is differentiable with
respect to the mesh values, the positions and the particle weights.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from skymorph.cosmo import kernels

__all__ = ["wavenumbers", "cic_paint", "cic_readout", "gravity",
           "power_spectrum_3d", "linear_field"]


def wavenumbers(n: int, box: float, device=None, dtype=torch.float32):
    """(kx, ky, kz) in h/Mpc on the rfftn grid of an n^3 mesh, shaped (n,1,1), (1,n,1), (1,1,n//2+1)."""
    kf = 2.0 * math.pi / box
    k = torch.fft.fftfreq(n, 1.0 / n, device=device, dtype=dtype) * kf
    kz = torch.fft.rfftfreq(n, 1.0 / n, device=device, dtype=dtype) * kf
    return k.view(n, 1, 1), k.view(1, n, 1), kz.view(1, 1, -1)


def _cic_stencil(pos: torch.Tensor, n: int, box: float):
    """Flat mesh indices (8, P) and CIC weights (8, P) of the 8 cells around each position (the
    scatter/gather route for devices other than the CPU; corner-major, contiguous (P,) rows)."""
    u = (pos * (n / box)).T.contiguous()  # (3, P) in cell units
    f = torch.floor(u.detach())
    t1 = u - f  # differentiable in pos
    t0 = 1.0 - t1
    i0 = torch.remainder(f, n).long()
    i1 = i0 + 1
    i1[i1 == n] = 0
    strides = (n * n, n, 1)
    ii = [(i0[j] * strides[j], i1[j] * strides[j]) for j in range(3)]
    tt = [(t0[j], t1[j]) for j in range(3)]
    corners = [(cx, cy, cz) for cx in (0, 1) for cy in (0, 1) for cz in (0, 1)]
    flat = torch.stack([ii[0][cx] + ii[1][cy] + ii[2][cz] for cx, cy, cz in corners])
    w = torch.stack([tt[0][cx] * tt[1][cy] * tt[2][cz] for cx, cy, cz in corners])
    return flat, w


def cic_paint(pos: torch.Tensor, n: int, box: float, weight: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Cloud-in-cell assignment of particles (``weight`` each, scalar or (P,)) to an n^3 mesh.
    On the CPU a numba kernel with its adjoint as backward (``kernels.py``), elsewhere torch's scatter."""
    if pos.device.type == "cpu":
        return kernels.paint(pos, n, box, torch.as_tensor(weight, dtype=pos.dtype))
    return _scatter_paint(pos, n, box, weight)


def _scatter_paint(pos, n, box, weight):
    flat, w = _cic_stencil(pos, n, box)
    w = w * weight
    out = torch.zeros(n**3, dtype=w.dtype, device=w.device)
    return out.scatter_add(0, flat.reshape(-1), w.reshape(-1)).view(n, n, n)


def cic_readout(mesh: torch.Tensor, pos: torch.Tensor, box: float) -> torch.Tensor:
    """CIC interpolation of a mesh (n,n,n) -> (P,) or of stacked meshes (C,n,n,n) -> (P, C)."""
    if pos.device.type == "cpu":
        out = kernels.readout(mesh if mesh.ndim == 4 else mesh[None], pos, box)
        return out if mesh.ndim == 4 else out[:, 0]
    return _gather_readout(mesh, pos, box)


def _gather_readout(mesh, pos, box):
    n = mesh.shape[-1]
    flat, w = _cic_stencil(pos, n, box)
    flat_mesh = mesh.reshape(-1, n**3)
    out = torch.stack([(m.index_select(0, flat.reshape(-1)).view(flat.shape) * w).sum(0) for m in flat_mesh], -1)
    return out if mesh.ndim == 4 else out[:, 0]


@lru_cache(maxsize=8)
def _inverse_laplacian(n: int, box: float, device, dtype) -> torch.Tensor:
    """-1/k^2 on the rfftn grid (zero at k = 0)."""
    ks = wavenumbers(n, box, device, dtype)
    k2 = ks[0] ** 2 + ks[1] ** 2 + ks[2] ** 2
    return torch.where(k2 > 0, -1.0 / torch.where(k2 > 0, k2, torch.ones_like(k2)), torch.zeros_like(k2))


def _fd_force_torch(phi: torch.Tensor, box: float) -> torch.Tensor:
    """-grad phi by the 4th-order difference with torch.roll (devices other than the CPU)."""
    c = phi.shape[-1] / (12.0 * box)
    return torch.stack([-c * (8.0 * (phi.roll(-1, j) - phi.roll(1, j)) - (phi.roll(-2, j) - phi.roll(2, j)))
                        for j in range(3)])


def gravity(delta: torch.Tensor, box: float) -> torch.Tensor:
    """Force field F = -grad phi with laplacian(phi) = delta, as meshes (3, n, n, n) in units of
    delta x Mpc/h (multiply by 3/2 Omega_m / a for the comoving peculiar acceleration in
    H0^2 Mpc/h). Exact -1/k^2 Green's function (k = 0 dropped) and FastPM's and JaxPM's 4th-order
    finite-difference gradient, K(k) = (8 sin(k d) - sin(2 k d)) / (6 d) in Fourier space, taken in
    real space (one inverse FFT, ``kernels.py``): with CIC paint and readout a single particle's
    force is within ~5% of the periodic (Ewald) 1/r^2 force from 4 cells out to half the box; the
    exact i k gradient rings (errors up to 100% at some separations) and is not offered."""
    n = delta.shape[-1]
    inv_lap = _inverse_laplacian(n, float(box), delta.device, delta.dtype)
    if delta.device.type == "cpu":
        return kernels.gravity(delta, inv_lap.numpy(), box)
    phi = torch.fft.irfftn(torch.fft.rfftn(delta) * inv_lap, s=(n, n, n))
    return _fd_force_torch(phi, box)


def _cic_window(n: int, box: float, device, dtype) -> torch.Tensor:
    """CIC assignment window prod_j sinc^2(k_j d / 2) on the rfftn grid."""
    d = box / n
    w = 1.0
    for k in wavenumbers(n, box, device, dtype):
        w = w * torch.sinc(k * d / (2.0 * math.pi)) ** 2  # torch.sinc(u) = sin(pi u) / (pi u)
    return w


def power_spectrum_3d(delta: torch.Tensor, box: float, other: torch.Tensor | None = None,
                      nbins: int | None = None, compensate_cic: bool = False):
    """Spherically averaged (cross) power spectrum of n^3 meshes, in (Mpc/h)^3.

    Bins of width k_f = 2 pi / box centred on k_f, 2 k_f, ..., k_N (default ``n // 2`` bins);
    ``compensate_cic`` divides each mesh by the CIC window (use it for particle densities). The
    k = 0 mode is excluded. Returns ``(k, P, counts)``: mean |k| per bin (h/Mpc), P, and the number
    of Fourier modes per bin over the full k space (relative scatter of a Gaussian field's P is
    ~ 1 / sqrt(counts / 2)). Empty bins have counts 0 and k = P = NaN.
    """
    n = delta.shape[-1]
    nb = n // 2 if nbins is None else int(nbins)
    kf = 2.0 * math.pi / box
    fa = torch.fft.rfftn(delta)
    fb = fa if other is None else torch.fft.rfftn(other)
    if compensate_cic:
        w = _cic_window(n, box, delta.device, delta.dtype)
        fa, fb = fa / w, fb / w
    pk = (fa.real * fb.real + fa.imag * fb.imag) * (box**3 / n**6)
    kx, ky, kz = wavenumbers(n, box, delta.device, torch.float64)
    kmag = torch.sqrt(kx * kx + ky * ky + kz * kz)
    mult = torch.full_like(kmag, 2.0)
    mult[..., 0] = 1.0
    if n % 2 == 0:
        mult[..., -1] = 1.0
    idx = torch.floor(kmag / kf - 0.5).long()
    sel = (idx >= 0) & (idx < nb) & (kmag > 0)
    idx, mult, kmag = idx[sel], mult[sel], kmag[sel]
    counts = torch.zeros(nb, dtype=torch.float64, device=delta.device).index_add(0, idx, mult)
    ksum = torch.zeros_like(counts).index_add(0, idx, mult * kmag)
    psum = torch.zeros(nb, dtype=pk.dtype, device=delta.device).index_add(0, idx, mult.to(pk.dtype) * pk[sel])
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=delta.device)
    safe = torch.where(counts > 0, counts, torch.ones_like(counts))
    k = torch.where(counts > 0, ksum / safe, nan)
    p = torch.where(counts > 0, psum / safe.to(pk.dtype), nan.to(pk.dtype))
    return k, p, counts.long()


def linear_field(noise: torch.Tensor, box: float, power) -> torch.Tensor:
    """Gaussian random field with power spectrum ``power(k)`` ((Mpc/h)^3, k in h/Mpc) from white
    noise (n,n,n) of unit variance per cell: delta(k) = sqrt(V P(k)) w(k), where w(k) = rfftn(noise)
    / n^(3/2) has unit variance per mode (Hermitian by construction). The k = 0 mode is zero."""
    n = noise.shape[-1]
    kx, ky, kz = wavenumbers(n, box, noise.device, torch.float64)
    kmag = torch.sqrt(kx * kx + ky * ky + kz * kz)
    kmag[0, 0, 0] = 1.0
    amp = torch.sqrt(power(kmag) * (n**3 / box**3))
    keep = torch.ones_like(amp)
    keep[0, 0, 0] = 0.0
    amp = amp * keep
    return torch.fft.irfftn(torch.fft.rfftn(noise) * amp.to(noise.dtype), s=(n, n, n))
