"""2LPT initial conditions and the FastPM particle-mesh integrator (Feng et al. 2016), in torch.

Units: comoving positions x in Mpc/h; canonical momenta p = a^2 dx/dt in H0 Mpc/h (the peculiar
velocity is v = 100 p / a km/s); time in 1/H0. Equations of motion:

    dx/da = p / (a^3 E),   dp/da = 3/2 Omega_m F(x) / (a^2 E),   F = -grad laplacian^-1 delta.

FastPM's kick-drift-kick replaces the integrals over a by ratios of growth functions, which makes
every step exact for linear (Zel'dovich) growth whatever the step size:

    drift a0 -> a1 with p at ac:  dx = p (D(a1) - D(a0)) / G_p(ac)
    kick  a0 -> a1 with F at ac:  dp = F (G_p(a1) - G_p(a0)) / D(ac)

with G_p = a^3 E dD/da (so that dG_p/da = 3/2 Omega_m D / (a^2 E); see ``linear.momentum_growth``).
Everything is differentiable with respect to the white noise and the cosmological parameters.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from skymorph.cosmo.linear import (Cosmology, growth_factor, growth_factor_2, growth_rate, growth_rate_2,
                                   hubble_e, linear_power, momentum_growth)
from skymorph.cosmo.mesh import cic_paint, cic_readout, gravity, linear_field, wavenumbers
from skymorph.errors import ConfigError

__all__ = ["Snapshot", "lattice", "lpt", "simulate", "check_memory"]


@dataclass
class Snapshot:
    """State at scale factor ``a``: density contrast on the PM mesh (n,n,n); positions (P,3)
    Mpc/h and momenta p = a^2 dx/dt (P,3) in H0 Mpc/h, or None when particles were not kept."""

    a: float
    delta: torch.Tensor
    pos: torch.Tensor | None
    mom: torch.Tensor | None


def lattice(n: int, box: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Lagrangian positions q (n^3, 3) in Mpc/h: the corners of an n^3 lattice, in C order."""
    i = torch.arange(n, device=device, dtype=dtype) * (box / n)
    g = torch.meshgrid(i, i, i, indexing="ij")
    return torch.stack(g, dim=-1).reshape(-1, 3)


def _lpt_displacements(delta: torch.Tensor, box: float):
    """First- and second-order displacement fields s1, s2 (each (n^3, 3), Mpc/h at D = 1) of a
    linear density mesh: s1 = -grad phi1, laplacian(phi1) = delta; s2 = grad phi2,
    laplacian(phi2) = sum_{i<j} (phi1_ii phi1_jj - phi1_ij^2). Nyquist modes are dropped."""
    n = delta.shape[-1]
    kvec = list(wavenumbers(n, box, delta.device, delta.dtype))
    for j, k in enumerate(kvec):  # drop Nyquist planes so every derivative stays real
        kk = k.clone()
        kk.view(-1)[n // 2] = 0.0
        kvec[j] = kk
    k2 = kvec[0] ** 2 + kvec[1] ** 2 + kvec[2] ** 2
    inv = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, torch.ones_like(k2)), torch.zeros_like(k2))
    dk = torch.fft.rfftn(delta)
    phi_k = -dk * inv  # phi1

    def real(fk):
        return torch.fft.irfftn(fk, s=(n, n, n))

    s1 = torch.stack([real(-1j * k * phi_k) for k in kvec], dim=-1)
    hess = {(i, j): real(-kvec[i] * kvec[j] * phi_k) for i in range(3) for j in range(i, 3)}
    d2 = (hess[0, 0] * hess[1, 1] + hess[0, 0] * hess[2, 2] + hess[1, 1] * hess[2, 2]
          - hess[0, 1] ** 2 - hess[0, 2] ** 2 - hess[1, 2] ** 2)
    phi2_k = -torch.fft.rfftn(d2) * inv
    s2 = torch.stack([real(1j * k * phi2_k) for k in kvec], dim=-1)
    return s1.reshape(-1, 3), s2.reshape(-1, 3)


def lpt(delta: torch.Tensor, box: float, cosmo: Cosmology, a: float, order: int = 2):
    """LPT displacements and momenta of the particles of an n^3 lattice at scale factor ``a``.

    ``delta`` is the linear density field at z = 0 (D = 1) on the particle lattice. Returns
    ``(disp, mom)``, each (n^3, 3): x = q + D s1 + D2 s2, p = a^2 E (D f s1 + D2 f2 s2).
    """
    if order not in (1, 2):
        raise ConfigError(f"LPT order {order}: expected 1 or 2")
    s1, s2 = _lpt_displacements(delta, box)
    dt = delta.dtype
    d1, f1, e = growth_factor(a, cosmo).to(dt), growth_rate(a, cosmo).to(dt), hubble_e(a, cosmo).to(dt)
    disp = d1 * s1
    mom = a * a * e * d1 * f1 * s1
    if order == 2:
        d2, f2 = growth_factor_2(a, cosmo).to(dt), growth_rate_2(a, cosmo).to(dt)
        disp = disp + d2 * s2
        mom = mom + a * a * e * d2 * f2 * s2
    return disp, mom


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(mesh: int, particles: int, n_out: int, keep_particles: bool,
                 itemsize: int = 4, with_grad: bool = False) -> int:
    """Estimated peak bytes of :func:`simulate`; raises ConfigError when it exceeds the available
    memory. With ``with_grad`` the reverse-time adjoint holds one step's force graph and, per
    output, the particle state: the need does not grow with ``steps``."""
    cells, npart = mesh**3, particles**3
    step = cells * itemsize * 12 + npart * itemsize * 24  # FFT buffers, 3 force meshes, particle state
    snap = cells * itemsize + (npart * 6 * itemsize if keep_particles else 0)
    if with_grad:
        snap += npart * 9 * itemsize
    need = step * (2 if with_grad else 1) + snap * n_out
    have = _available_bytes()
    if need > have:
        what = "a gradient through " if with_grad else ""
        raise ConfigError(f"{what}mesh {mesh}^3 with {particles}^3 particles and {n_out} outputs needs "
                          f"~{need / 2**30:.1f} GiB; only {have / 2**30:.1f} GiB available")
    return need


def simulate(noise: torch.Tensor, box: float, cosmo: Cosmology, mesh: int | None = None, steps: int = 10,
             a_init: float = 0.1, a_out=(1.0,), lpt_order: int = 2,
             keep_particles: bool = True, progress: bool = False) -> list[Snapshot]:
    """FastPM N-body run from white noise to the requested scale factors.

    Parameters
    ----------
    noise : (n, n, n) tensor
        Unit white noise on the particle lattice (n^3 particles); its dtype and device are used
        throughout. Differentiable (as are ``cosmo.Omega_m`` and ``cosmo.sigma8``).
    box : float
        Box side in Mpc/h.
    mesh : int
        PM mesh side (default n); must be a positive even number.
    steps : int
        Kick-drift-kick steps, linear in a from ``a_init`` to ``max(a_out)``.
    a_out : sequence of float
        Output scale factors in [a_init, max(a_out)]. Outputs between steps are drifted and
        kicked from the previous step with the same growth-aware factors (exact in linear theory).
    keep_particles : bool
        Store positions and momenta in each snapshot (else only the density mesh).

    Returns
    -------
    list of :class:`Snapshot`, in increasing a.
    """
    n = noise.shape[-1]
    if noise.ndim != 3 or noise.shape != (n, n, n):
        raise ConfigError(f"noise: expected a cube (n, n, n), got shape {tuple(noise.shape)}")
    mesh = n if mesh is None else int(mesh)
    if mesh < 2 or mesh % 2:
        raise ConfigError(f"mesh {mesh}: must be a positive even number")
    if not box > 0:
        raise ConfigError(f"box {box}: must be a positive length in Mpc/h")
    if int(steps) != steps or steps < 1:
        raise ConfigError(f"steps {steps}: must be a positive integer")
    a_out = sorted(float(a) for a in a_out)
    if not a_out or not 0.0 < a_init <= a_out[0]:
        raise ConfigError(f"output scale factors {a_out} must lie in [a_init = {a_init}, 1]")
    if a_out[-1] > 1.0 + 1e-12:
        raise ConfigError(f"output scale factor {a_out[-1]} beyond a = 1")
    grad = torch.is_grad_enabled() and (noise.requires_grad or any(
        isinstance(p, torch.Tensor) and p.requires_grad for p in (cosmo.Omega_m, cosmo.sigma8)))
    check_memory(mesh, n, len(a_out), keep_particles, noise.element_size(), grad)

    dt = noise.dtype
    weight = (mesh / n) ** 3  # mean density 1 on the mesh
    delta_lin = linear_field(noise, box, lambda k: linear_power(k, cosmo))
    disp, p = lpt(delta_lin, box, cosmo, a_init, lpt_order)
    x = lattice(n, box, noise.device, dt) + disp
    pm = _Forces(mesh, float(box), weight)

    def d(a):
        return growth_factor(a, cosmo).to(dt)

    def gp(a):
        return momentum_growth(a, cosmo).to(dt)

    def snap(a, delta, pos, mom):
        return Snapshot(a, delta, pos if keep_particles else None, mom if keep_particles else None)

    edges = torch.linspace(a_init, a_out[-1], steps + 1, dtype=torch.float64).tolist()
    # per step: kick a0 -> ac, drift a0 -> a1, kick ac -> a1 (growth-aware factors, module docstring)
    growth = [(d(a0), gp(a0), gp(0.5 * (a0 + a1)), d(a1), gp(a1)) for a0, a1 in zip(edges[:-1], edges[1:])]
    coefs = torch.stack([torch.stack([(gc - g0) / d0, (d1 - d0) / gc, (g1 - gc) / d1])
                         for d0, g0, gc, d1, g1 in growth])
    # each output's step edge: the last at or before it (the output is at it, or drifted from it)
    stops = [max(i for i, e in enumerate(edges) if e < a or math.isclose(e, a, rel_tol=1e-9)) for a in a_out]
    out = []
    f = pm.force(x)
    done = 0
    for a, j in zip(a_out, stops):
        if j > done:  # integrate to edge j in one adjoint segment (memory independent of the steps)
            x, p, f = _Leapfrog.apply(x, p, f, coefs[done:j], pm, progress)
            done = j
        if math.isclose(a, edges[j], rel_tol=1e-9):
            out.append(snap(a, pm.density(x), x, p))
        else:  # between edges j and j + 1: drift and kick from edge j with the same factors
            d0, g0, gc = growth[j][:3]
            p_half = p + f * coefs[j, 0]
            xo = x + p_half / gc * (d(a) - d0)
            out.append(snap(a, pm.density(xo), xo, p + f * ((gp(a) - g0) / d0)))
    return out


class _Forces:
    """CIC density and PM force at particle positions for one mesh, box and particle weight."""

    def __init__(self, mesh: int, box: float, weight: float):
        self.mesh, self.box, self.weight = mesh, box, weight

    def density(self, pos):
        return cic_paint(pos, self.mesh, self.box, self.weight) - 1.0

    def force(self, pos):
        """F = -grad laplacian^-1 delta at the particles (P, 3), in delta x Mpc/h."""
        return cic_readout(gravity(self.density(pos), self.box), pos, self.box)


class _Leapfrog(torch.autograd.Function):
    """Kick-drift-kick steps (x, p, f) -> (x', p', f') with per-step factors (k1, dr, k2):
    p_h = p + k1 f, x' = x + dr p_h, f' = F(x'), p' = p_h + k2 f'.

    The backward pass is the adjoint integrated backwards in time (pmwd, Li+22): the steps are
    inverted exactly in exact arithmetic (p_h = p' - k2 f', x = x' - dr p_h, p = p_h - k1 F(x)), so
    nothing per step is stored and the memory of a gradient through any number of steps is that
    of one step. Each reverse step costs one force evaluation with its autograd graph (at x, reused
    for the vector-Jacobian product of the previous step) and its backward pass."""

    @staticmethod
    def forward(ctx, x, p, f, coefs, pm, progress):
        from rich.progress import track

        for k1, dr, k2 in track(coefs.detach(), description="PM steps", disable=not progress, transient=True):
            p = p + k1 * f
            x = x + dr * p
            f = pm.force(x)
            p = p + k2 * f
        ctx.save_for_backward(x, p, f, coefs)
        ctx.pm = pm
        return x, p, f

    @staticmethod
    def backward(ctx, gx, gp, gf):
        x, p, f, coefs = ctx.saved_tensors
        pm = ctx.pm
        zero = torch.zeros_like(x)
        gx, gp, gf = (zero if g is None else g for g in (gx, gp, gf))
        g_coefs = torch.zeros_like(coefs)
        cf = coefs.detach()

        def force_graph(pos, graph=True):
            with torch.set_grad_enabled(graph):
                leaf = pos.detach().requires_grad_(graph)
                return leaf, pm.force(leaf)

        leaf, f_graph = force_graph(x)
        for s in range(len(cf) - 1, -1, -1):
            k1, dr, k2 = cf[s]
            # cotangent of F(x') with x' the step's output; p' = p_h + k2 f'
            g_force = gf + k2 * gp
            gx = gx + torch.autograd.grad(f_graph, leaf, g_force)[0]
            p_half = p - k2 * f
            g_half = gp + dr * gx
            g_coefs[s, 2] = (gp * f).sum()
            g_coefs[s, 1] = (gx * p_half).sum()
            # reverse the step: x = x' - dr p_h; f = F(x) (its graph serves the step before); p = p_h - k1 f
            x = x - dr * p_half
            leaf, f_graph = force_graph(x, graph=s > 0)
            f = f_graph.detach()
            p = p_half - k1 * f
            g_coefs[s, 0] = (g_half * f).sum()
            gp, gf = g_half, k1 * g_half
        return gx, gp, gf, g_coefs, None, None
