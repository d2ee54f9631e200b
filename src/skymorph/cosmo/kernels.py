"""The PM's CPU kernels in numba, wrapped in ``torch.autograd.Function``: cloud-in-cell paint and
readout, and the 4th-order finite-difference force of a potential mesh.

Each particle's eight trilinear weights are computed in registers as it is visited, so no (8, P)
index or weight arrays are built (the torch scatter/gather route in ``mesh.py``, kept for other
devices, allocates 96 bytes per particle and pass). The backward passes are the adjoints:

* paint  m[c] = sum_i w_i W_c(x_i):     dL/dw_i = sum_c g[c] W_c(x_i)   (a readout of g),
                                        dL/dx_i = w_i sum_c g[c] grad W_c(x_i);
* readout v_i = sum_c m[c] W_c(x_i):    dL/dm = paint of the cotangents dL/dv_i,
                                        dL/dx_i = dL/dv_i sum_c m[c] grad W_c(x_i).

The force F_j = -D_j phi, laplacian(phi) = delta (scipy's real FFTs, faster than torch's on
the CPU, with the -1/k^2 Green's function) uses FastPM's 4th-order difference D f = (8 (f[+1] - f[-1]) - (f[+2] -
f[-2])) / (12 d) in real space: its Fourier transform is i (8 sin(k d) - sin(2 k d)) / (6 d), the
kernel FastPM and JaxPM multiply by, so the field is the same while one inverse FFT replaces three.
D is antisymmetric, so the adjoint of phi -> -D_j phi is g_j -> D_j g_j.

Written by hand because the project's PM needs the adjoints of its own conventions (cell corners
at integer multiples of box / n, periodic wrap); first derivatives only (``once_differentiable``).
Positions are in Mpc/h, any real value (they wrap); the mesh covers [0, box)^3.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.fft
import torch
from numba import njit
from torch.autograd.function import once_differentiable

__all__ = ["paint", "readout", "gravity"]


@njit(cache=True, fastmath=True)
def _corner(u, n):
    """Lower cell index (wrapped into 0..n-1), upper index and the upper weight of one coordinate."""
    f = math.floor(u)
    i0 = int(f) % n
    i1 = i0 + 1
    if i1 == n:
        i1 = 0
    return i0, i1, u - f


@njit(cache=True, fastmath=True)
def _paint(pos, w, scale, n, out):
    """out (n^3,) += CIC deposit of weights w (P,) at pos (P, 3) (scale = n / box)."""
    nn = n * n
    for i in range(pos.shape[0]):
        x0, x1, tx = _corner(pos[i, 0] * scale, n)
        y0, y1, ty = _corner(pos[i, 1] * scale, n)
        z0, z1, tz = _corner(pos[i, 2] * scale, n)
        wi = w[i]
        for cx in range(2):
            ix = (x1 if cx else x0) * nn
            wx = wi * (tx if cx else 1.0 - tx)
            for cy in range(2):
                iy = ix + (y1 if cy else y0) * n
                wy = wx * (ty if cy else 1.0 - ty)
                out[iy + z0] += wy * (1.0 - tz)
                out[iy + z1] += wy * tz


@njit(cache=True, fastmath=True)
def _read(mesh, pos, scale, n, coef, values, grad):
    """For each particle i and channel c of mesh (C, n^3): values[i, c] = m_c(x_i) and, when coef
    (P, C) is non-empty, grad[i] += sum_c coef[i, c] d m_c(x_i) / d x_i."""
    nn = n * n
    n_ch = mesh.shape[0]
    with_grad = coef.shape[0] > 0
    for i in range(pos.shape[0]):
        x0, x1, tx = _corner(pos[i, 0] * scale, n)
        y0, y1, ty = _corner(pos[i, 1] * scale, n)
        z0, z1, tz = _corner(pos[i, 2] * scale, n)
        gx = 0.0
        gy = 0.0
        gz = 0.0
        for c in range(n_ch):
            m = mesh[c]
            v000 = m[x0 * nn + y0 * n + z0]
            v001 = m[x0 * nn + y0 * n + z1]
            v010 = m[x0 * nn + y1 * n + z0]
            v011 = m[x0 * nn + y1 * n + z1]
            v100 = m[x1 * nn + y0 * n + z0]
            v101 = m[x1 * nn + y0 * n + z1]
            v110 = m[x1 * nn + y1 * n + z0]
            v111 = m[x1 * nn + y1 * n + z1]
            # trilinear interpolation, z first
            a00 = v000 + tz * (v001 - v000)
            a01 = v010 + tz * (v011 - v010)
            a10 = v100 + tz * (v101 - v100)
            a11 = v110 + tz * (v111 - v110)
            b0 = a00 + ty * (a01 - a00)
            b1 = a10 + ty * (a11 - a10)
            values[i, c] = b0 + tx * (b1 - b0)
            if with_grad:
                k = coef[i, c]
                gx += k * (b1 - b0)
                gy += k * ((a01 - a00) + tx * ((a11 - a10) - (a01 - a00)))
                dz0 = (v001 - v000) + ty * ((v011 - v010) - (v001 - v000))
                dz1 = (v101 - v100) + ty * ((v111 - v110) - (v101 - v100))
                gz += k * (dz0 + tx * (dz1 - dz0))
        if with_grad:
            grad[i, 0] += gx * scale
            grad[i, 1] += gy * scale
            grad[i, 2] += gz * scale


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _paint_np(pos: np.ndarray, w: np.ndarray, n: int, box: float) -> np.ndarray:
    out = np.zeros(n**3, dtype=pos.dtype)
    _paint(pos, w, pos.dtype.type(n / box), n, out)
    return out


def _read_np(mesh: np.ndarray, pos: np.ndarray, box: float, coef: np.ndarray | None):
    """Values (P, C) of the meshes (C, n^3) at pos, and sum_c coef[:, c] grad m_c (P, 3) (zeros if no coef)."""
    n = round(mesh.shape[1] ** (1 / 3))
    values = np.empty((pos.shape[0], mesh.shape[0]), dtype=pos.dtype)
    grad = np.zeros((pos.shape[0] if coef is not None else 0, 3), dtype=pos.dtype)
    coef = np.zeros((0, mesh.shape[0]), dtype=pos.dtype) if coef is None else coef
    _read(mesh, pos, pos.dtype.type(n / box), n, coef, values, grad)
    return values, grad


class _Paint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos, weight, n, box):
        ctx.save_for_backward(pos, weight)
        ctx.box = box
        return torch.from_numpy(_paint_np(_np(pos), _np(weight), n, box)).view(n, n, n)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        pos, weight = ctx.saved_tensors
        want_pos = ctx.needs_input_grad[0]
        w = _np(weight)
        values, grad = _read_np(_np(g).reshape(1, -1), _np(pos), ctx.box, w[:, None] if want_pos else None)
        g_pos = torch.from_numpy(grad) if want_pos else None
        g_w = torch.from_numpy(values[:, 0]) if ctx.needs_input_grad[1] else None
        return g_pos, g_w, None, None


class _Readout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mesh, pos, box):
        ctx.save_for_backward(mesh, pos)
        ctx.box = box
        values, _ = _read_np(_np(mesh).reshape(mesh.shape[0], -1), _np(pos), box, None)
        return torch.from_numpy(values)

    @staticmethod
    @once_differentiable
    def backward(ctx, gv):
        mesh, pos = ctx.saved_tensors
        n = mesh.shape[-1]
        p, gv = _np(pos), _np(gv)
        g_mesh = g_pos = None
        if ctx.needs_input_grad[0]:
            g_mesh = torch.from_numpy(np.stack([_paint_np(p, np.ascontiguousarray(gv[:, c]), n, ctx.box)
                                                for c in range(gv.shape[1])])).view(mesh.shape)
        if ctx.needs_input_grad[1]:
            g_pos = torch.from_numpy(_read_np(_np(mesh).reshape(mesh.shape[0], -1), p, ctx.box, gv)[1])
        return g_mesh, g_pos, None


def paint(pos: torch.Tensor, n: int, box: float, weight: torch.Tensor) -> torch.Tensor:
    """CIC mesh (n, n, n) of particles at pos (P, 3) with weights (P,); differentiable in both."""
    return _Paint.apply(pos, weight.to(pos.dtype).expand(pos.shape[0]).contiguous(), int(n), float(box))


def readout(mesh: torch.Tensor, pos: torch.Tensor, box: float) -> torch.Tensor:
    """CIC interpolation of meshes (C, n, n, n) at pos (P, 3) -> (P, C); differentiable in both."""
    return _Readout.apply(mesh.to(pos.dtype), pos, float(box))


@njit(cache=True, fastmath=True)
def _fd(src, out, c, sign):
    """Gradient (src (1, n, n, n) -> out (3, n, n, n)) or divergence (src (3, n, n, n) -> out
    (n, n, n)) by the 4th-order difference along each axis, times sign c (c = 1 / (12 d))."""
    n = out.shape[-1]
    grad = out.ndim == 4
    a = src[0]
    b = src[0] if grad else src[1]
    e = src[0] if grad else src[2]
    up1 = np.empty(n, np.int64)
    dn1 = np.empty(n, np.int64)
    up2 = np.empty(n, np.int64)
    dn2 = np.empty(n, np.int64)
    for i in range(n):
        up1[i], dn1[i], up2[i], dn2[i] = (i + 1) % n, (i - 1) % n, (i + 2) % n, (i - 2) % n
    for i in range(n):
        ap1, am1, ap2, am2 = a[up1[i]], a[dn1[i]], a[up2[i]], a[dn2[i]]
        for j in range(n):
            bi = b[i]
            ei = e[i, j]
            jp1, jm1, jp2, jm2 = up1[j], dn1[j], up2[j], dn2[j]
            for k in range(n):
                dx = 8.0 * (ap1[j, k] - am1[j, k]) - (ap2[j, k] - am2[j, k])
                dy = 8.0 * (bi[jp1, k] - bi[jm1, k]) - (bi[jp2, k] - bi[jm2, k])
                dz = 8.0 * (ei[up1[k]] - ei[dn1[k]]) - (ei[up2[k]] - ei[dn2[k]])
                if grad:
                    out[0, i, j, k] = sign * c * dx
                    out[1, i, j, k] = sign * c * dy
                    out[2, i, j, k] = sign * c * dz
                else:
                    out[i, j, k] = sign * c * (dx + dy + dz)


def _fd_np(src: np.ndarray, box: float, sign: float) -> np.ndarray:
    n = src.shape[-1]
    out = np.empty((3, n, n, n) if src.shape[0] == 1 else (n, n, n), dtype=src.dtype)
    _fd(src, out, src.dtype.type(n / (12.0 * box)), src.dtype.type(sign))
    return out


def _poisson_np(delta: np.ndarray, inv_lap: np.ndarray) -> np.ndarray:
    """phi with laplacian(phi) = delta (k = 0 dropped) by scipy's real FFTs (torch's threads)."""
    workers = torch.get_num_threads()
    fk = scipy.fft.rfftn(delta, workers=workers)
    np.multiply(fk, inv_lap, out=fk)
    return scipy.fft.irfftn(fk, s=delta.shape, workers=workers, overwrite_x=True).astype(delta.dtype, copy=False)


class _Gravity(torch.autograd.Function):
    """delta (n, n, n) -> F = -D laplacian^-1 delta (3, n, n, n). Linear; the Poisson solve with a
    real even kernel is self-adjoint, so the backward is laplacian^-1 (sum_j D_j g_j)."""

    @staticmethod
    def forward(ctx, delta, inv_lap, box):
        ctx.inv_lap, ctx.box = inv_lap, box
        return torch.from_numpy(_fd_np(_poisson_np(_np(delta), inv_lap)[None], box, -1.0))

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        return torch.from_numpy(_poisson_np(_fd_np(_np(g), ctx.box, 1.0), ctx.inv_lap)), None, None


def gravity(delta: torch.Tensor, inv_lap: np.ndarray, box: float) -> torch.Tensor:
    """Force meshes (3, n, n, n) of a density mesh, given -1/k^2 on the rfftn grid (n, n, n//2+1)."""
    return _Gravity.apply(delta, inv_lap, float(box))
