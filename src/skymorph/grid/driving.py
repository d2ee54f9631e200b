"""Solenoidal Ornstein-Uhlenbeck driving at large scales, steered to a target rms Mach number.

The acceleration is a sum of Fourier modes with integer wavevectors 1 <= |k| <= 2 (units 2 pi / L) over
the active directions; each mode's complex amplitude follows an Ornstein-Uhlenbeck process with
correlation time ``t_corr`` (default half the turnover time L / (2 M c_s)) and is projected
perpendicular to k (div a = 0: no compressive driving). In 2D the driving lies in the plane. The
field is normalised to unit rms and multiplied by an amplitude that is steered towards the target
rms Mach number, a(t+dt) = a(t) exp((dt / t_corr) (1 - M_pred / M_target)), M_pred = M_rms + t_turn dM/dt
(the trend of M smoothed over t_corr), so every model is run at
the same Mach number (as the turbulence of Bustard & Wu 2024 is characterised); the net force on the
box is removed so momentum stays zero.
"""
from __future__ import annotations

import itertools

import numpy as np

from .mhd import active

__all__ = ["Driver"]


class Driver:
    """The driving field's modes, amplitude and random stream; ``state()`` / ``from_state`` resume it."""

    def __init__(self, shape, mach: float, seed: int, t_corr: float | None = None, cs: float = 1.0):
        self.shape, self.mach, self.cs = tuple(shape), float(mach), float(cs)
        self.t_corr = float(t_corr) if t_corr else 0.5 / (2.0 * self.mach * self.cs)
        on = active(self.shape)
        ranges = [range(-2, 3) if on[d] else range(1) for d in range(3)]
        ks = [k for k in itertools.product(*ranges) if 1 <= np.sqrt(np.dot(k, k)) <= 2]
        # one of each +-k pair: the first non-zero component positive
        self.k = np.array([k for k in ks if next(c for c in k if c != 0) > 0], dtype=float)
        self.proj = np.eye(3)[None] - self.k[:, :, None] * self.k[:, None, :] / (self.k ** 2).sum(1)[:, None, None]
        self.rng = np.random.default_rng([seed, 15])
        self.modes = self._project(self._noise())
        self.amplitude = 0.5 * self.mach ** 2 * self.cs ** 2
        self.mach_smooth = 0.0

    def _noise(self) -> np.ndarray:
        z = self.rng.standard_normal((len(self.k), 3, 2))
        return z[..., 0] + 1j * z[..., 1]

    def _project(self, m: np.ndarray) -> np.ndarray:
        m = np.einsum("kij,kj->ki", self.proj, m)
        m[:, [d for d in range(3) if not active(self.shape)[d]]] = 0.0
        return m

    def field(self) -> np.ndarray:
        """Unit-rms acceleration pattern (3, nz, ny, nx)."""
        nz, ny, nx = self.shape
        spec = np.zeros((3, nz, ny, nx), dtype=complex)
        idx = self.k.astype(int)
        spec[:, idx[:, 2] % nz, idx[:, 1] % ny, idx[:, 0] % nx] = self.modes.T
        f = np.fft.ifftn(spec, axes=(1, 2, 3)).real * (nx * ny * nz)
        return f / np.sqrt((f ** 2).sum(axis=0).mean())

    def advance(self, dt: float, mach_rms: float) -> None:
        """Evolve the modes by the exact OU update over dt and steer the amplitude on the Mach number
        predicted one turnover ahead (the smoothed trend damps the overshoot of a pure integral gain)."""
        decay = np.exp(-dt / self.t_corr)
        self.modes = decay * self.modes + np.sqrt(1 - decay ** 2) * self._project(self._noise())
        smooth = self.mach_smooth + (mach_rms - self.mach_smooth) * min(1.0, dt / self.t_corr)
        predicted = mach_rms + (smooth - self.mach_smooth) / dt / (self.mach * self.cs)
        self.mach_smooth = smooth
        self.amplitude *= np.exp(dt / self.t_corr * (1.0 - predicted / self.mach))

    def kick(self, u: np.ndarray, dt: float) -> np.ndarray:
        """Momentum after dt of driving: rho a with the mass-weighted mean acceleration removed."""
        a = self.amplitude * self.field()
        a -= (u[0] * a).sum(axis=(1, 2, 3))[:, None, None, None] / u[0].sum()
        out = u.copy()
        out[1:4] += dt * u[0] * a
        return out

    def state(self) -> dict:
        return {"modes": self.modes, "amplitude": self.amplitude, "mach_smooth": self.mach_smooth,
                "rng": self.rng.bit_generator.state}

    def restore(self, state: dict) -> None:
        self.modes, self.amplitude = np.asarray(state["modes"]), float(state["amplitude"])
        self.mach_smooth = float(state["mach_smooth"])
        self.rng.bit_generator.state = state["rng"]

