"""Linear theory for flat LCDM in torch: Eisenstein & Hu (1998) P(k), growth D(a), f(a), D2(a).

Units: wavenumbers k in h/Mpc, lengths in Mpc/h, P(k) in (Mpc/h)^3, time in units of 1/H0.
Every function takes a :class:`Cosmology` whose ``Omega_m`` and ``sigma8`` may be torch tensors
(requiring grad): the results are differentiable with respect to them. Computations run in
float64 on the device of ``k`` / ``a``; radiation is neglected in E(a) (as in FastPM and JaxPM).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from skymorph.errors import ConfigError

__all__ = ["Cosmology", "hubble_e", "omega_m_a", "transfer_eh98", "linear_power", "sigma_r",
           "growth_factor", "growth_rate", "growth_factor_2", "growth_rate_2", "momentum_growth"]

# 64-point Gauss-Legendre nodes on [0, 1]: the growth integrand below is analytic there, so the
# rule is exact to ~1e-15 (checked against an ODE solution in the tests).
_GL_X, _GL_W = np.polynomial.legendre.leggauss(64)
_GL_X, _GL_W = 0.5 * (_GL_X + 1.0), 0.5 * _GL_W
# log-k grid for sigma_R: 1e-5 .. 1e3 h/Mpc, Simpson weights in ln k
_LNK = np.linspace(math.log(1e-5), math.log(1e3), 4097)
_SIMPSON = np.ones_like(_LNK)
_SIMPSON[1:-1:2], _SIMPSON[2:-1:2] = 4.0, 2.0
_SIMPSON *= (_LNK[1] - _LNK[0]) / 3.0


def _scalar(x) -> float:
    return float(x.detach()) if isinstance(x, torch.Tensor) else float(x)


@dataclass(frozen=True)
class Cosmology:
    """Flat LCDM. ``Omega_m`` (total matter, baryons included) and ``sigma8`` may be tensors.

    Defaults are Planck 2015 (the IllustrisTNG cosmology). ``T_cmb`` in K, ``h`` = H0 / 100 km/s/Mpc.
    """

    Omega_m: float | torch.Tensor = 0.3089
    sigma8: float | torch.Tensor = 0.8159
    Omega_b: float = 0.0486
    h: float = 0.6774
    n_s: float = 0.9667
    T_cmb: float = 2.7255

    def __post_init__(self):
        om, s8 = _scalar(self.Omega_m), _scalar(self.sigma8)
        if not 0.0 < om < 1.0:
            raise ConfigError(f"Omega_m = {om:g}: must lie in (0, 1)")
        if not (s8 > 0.0 and math.isfinite(s8)):
            raise ConfigError(f"sigma8 = {s8:g}: must be positive")
        if not 0.0 < self.Omega_b < om:
            raise ConfigError(f"Omega_b = {self.Omega_b:g}: must lie in (0, Omega_m = {om:g})")
        if not (self.h > 0 and self.T_cmb > 0 and math.isfinite(self.n_s)):
            raise ConfigError(f"h = {self.h:g}, T_cmb = {self.T_cmb:g}: must be positive")

    def params(self) -> dict[str, float]:
        """Plain floats, for storing with outputs."""
        return {"Omega_m": _scalar(self.Omega_m), "sigma8": _scalar(self.sigma8), "Omega_b": self.Omega_b,
                "h": self.h, "n_s": self.n_s, "T_cmb": self.T_cmb}


def _as(x, ref: torch.Tensor | None = None) -> torch.Tensor:
    device = ref.device if isinstance(ref, torch.Tensor) else None
    return torch.as_tensor(x, dtype=torch.float64, device=device)


def hubble_e(a, cosmo: Cosmology) -> torch.Tensor:
    """E(a) = H(a) / H0 = sqrt(Omega_m a^-3 + 1 - Omega_m)."""
    a = _as(a)
    om = _as(cosmo.Omega_m, a)
    return torch.sqrt(om * a**-3 + (1.0 - om))


def omega_m_a(a, cosmo: Cosmology) -> torch.Tensor:
    """Omega_m(a) = Omega_m a^-3 / E(a)^2."""
    a = _as(a)
    return _as(cosmo.Omega_m, a) * a**-3 / hubble_e(a, cosmo) ** 2


# ---------------------------------------------------------------------------------------------
# Eisenstein & Hu 1998 (ApJ 496, 605): equation numbers in the comments


def _t0_tilde(q, alpha_c, beta_c):
    """Eq. 19-20: the CDM-like transfer function shape."""
    c = 14.2 / alpha_c + 386.0 / (1.0 + 69.9 * q**1.08)
    ln = torch.log(math.e + 1.8 * beta_c * q)
    return ln / (ln + c * q * q)


def transfer_eh98(k, cosmo: Cosmology, wiggles: bool = True) -> torch.Tensor:
    """Matter transfer function T(k) of Eisenstein & Hu (1998), k in h/Mpc (T -> 1 as k -> 0).

    ``wiggles=True``: the full fit with baryon acoustic oscillations (their eq. 16-24);
    ``wiggles=False``: the no-wiggle ("zero-baryon") shape fit (their eq. 26-31).
    """
    k = _as(k)
    om = _as(cosmo.Omega_m, k)
    h = cosmo.h
    theta = cosmo.T_cmb / 2.7
    wm = om * h * h
    wb = cosmo.Omega_b * h * h
    fb = cosmo.Omega_b / om
    kmpc = k * h  # 1/Mpc
    if not wiggles:
        alpha_g = 1.0 - 0.328 * torch.log(431.0 * wm) * fb + 0.38 * torch.log(22.3 * wm) * fb * fb  # eq. 31
        s = 44.5 * torch.log(9.83 / wm) / math.sqrt(1.0 + 10.0 * wb**0.75)  # eq. 26, Mpc
        gamma_eff = om * h * (alpha_g + (1.0 - alpha_g) / (1.0 + (0.43 * kmpc * s) ** 4))  # eq. 30
        q = k * theta**2 / gamma_eff  # eq. 28
        l0 = torch.log(2.0 * math.e + 1.8 * q)
        c0 = 14.2 + 731.0 / (1.0 + 62.5 * q)
        return l0 / (l0 + c0 * q * q)  # eq. 29

    fc = 1.0 - fb
    z_eq = 2.50e4 * wm * theta**-4  # eq. 2
    k_eq = 7.46e-2 * wm * theta**-2  # eq. 3, 1/Mpc
    b1 = 0.313 * wm**-0.419 * (1.0 + 0.607 * wm**0.674)  # eq. 4
    b2 = 0.238 * wm**0.223
    z_d = 1291.0 * wm**0.251 / (1.0 + 0.659 * wm**0.828) * (1.0 + b1 * wb**b2)
    r_d = 31.5 * wb * theta**-4 * (1e3 / z_d)  # eq. 5
    r_eq = 31.5 * wb * theta**-4 * (1e3 / z_eq)
    s = (2.0 / (3.0 * k_eq) * torch.sqrt(6.0 / r_eq)  # eq. 6, Mpc
         * torch.log((torch.sqrt(1.0 + r_d) + torch.sqrt(r_d + r_eq)) / (1.0 + torch.sqrt(r_eq))))
    k_silk = 1.6 * wb**0.52 * wm**0.73 * (1.0 + (10.4 * wm) ** -0.95)  # eq. 7, 1/Mpc
    q = kmpc / (13.41 * k_eq)  # eq. 10
    a1 = (46.9 * wm) ** 0.670 * (1.0 + (32.1 * wm) ** -0.532)  # eq. 11
    a2 = (12.0 * wm) ** 0.424 * (1.0 + (45.0 * wm) ** -0.582)
    alpha_c = a1**-fb * a2 ** (-fb**3)
    bb1 = 0.944 / (1.0 + (458.0 * wm) ** -0.708)  # eq. 12
    bb2 = (0.395 * wm) ** -0.0266
    beta_c = 1.0 / (1.0 + bb1 * (fc**bb2 - 1.0))
    ks = kmpc * s
    f = 1.0 / (1.0 + (ks / 5.4) ** 4)  # eq. 18
    t_c = f * _t0_tilde(q, 1.0, beta_c) + (1.0 - f) * _t0_tilde(q, alpha_c, beta_c)  # eq. 17
    y = (1.0 + z_eq) / (1.0 + z_d)  # eq. 15
    sy = torch.sqrt(1.0 + y)
    g = y * (-6.0 * sy + (2.0 + 3.0 * y) * torch.log((sy + 1.0) / (sy - 1.0)))
    alpha_b = 2.07 * k_eq * s * (1.0 + r_d) ** -0.75 * g  # eq. 14
    beta_node = 8.41 * wm**0.435  # eq. 23
    beta_b = 0.5 + fb + (3.0 - 2.0 * fb) * torch.sqrt((17.2 * wm) ** 2 + 1.0)  # eq. 24
    s_tilde = s / (1.0 + (beta_node / ks) ** 3) ** (1.0 / 3.0)  # eq. 22
    x = kmpc * s_tilde
    j0 = torch.where(x > 1e-8, torch.sin(x) / torch.where(x > 1e-8, x, 1.0), 1.0 - x * x / 6.0)
    t_b = (_t0_tilde(q, 1.0, 1.0) / (1.0 + (ks / 5.2) ** 2)  # eq. 21
           + alpha_b / (1.0 + (beta_b / ks) ** 3) * torch.exp(-((kmpc / k_silk) ** 1.4))) * j0
    return fb * t_b + fc * t_c  # eq. 16


def _tophat(x: torch.Tensor) -> torch.Tensor:
    """Fourier transform of a spherical top hat, 3 (sin x - x cos x) / x^3."""
    return 3.0 * (torch.sin(x) - x * torch.cos(x)) / x**3


def _unnormalised_power(k, cosmo, wiggles):
    return k**cosmo.n_s * transfer_eh98(k, cosmo, wiggles) ** 2


def sigma_r(r: float, cosmo: Cosmology, wiggles: bool = True, power=None) -> torch.Tensor:
    """rms linear density contrast in spheres of radius ``r`` Mpc/h at z = 0.

    sigma^2 = 1/(2 pi^2) int k^3 P(k) W^2(k r) dln k (Simpson on 4097 points, 1e-5 < k < 1e3 h/Mpc);
    ``power`` defaults to :func:`linear_power` of ``cosmo``.
    """
    k = torch.exp(_as(_LNK))
    p = linear_power(k, cosmo, wiggles) if power is None else power(k)
    integrand = k**3 * p * _tophat(k * r) ** 2 / (2.0 * math.pi**2)
    return torch.sqrt(torch.sum(_as(_SIMPSON) * integrand))


def linear_power(k, cosmo: Cosmology, wiggles: bool = True) -> torch.Tensor:
    """Linear matter power spectrum P(k) at z = 0 in (Mpc/h)^3, k in h/Mpc, normalised to sigma8.

    P(k) = A k^n_s T(k)^2 with T from :func:`transfer_eh98` and A such that sigma(8 Mpc/h) = sigma8.
    """
    k = _as(k)
    s8_unit = sigma_r(8.0, cosmo, wiggles, power=lambda kk: _unnormalised_power(kk, cosmo, wiggles))
    amp = (_as(cosmo.sigma8, k) / s8_unit.to(k.device)) ** 2
    return amp * _unnormalised_power(k, cosmo, wiggles)


# ---------------------------------------------------------------------------------------------
# growth


def _growth_integral(a: torch.Tensor, cosmo: Cosmology) -> torch.Tensor:
    """I(a) = int_0^a da' / (a' E(a'))^3 = 2 a^2.5 int_0^1 u^4 (Om + OL a^3 u^6)^-1.5 du (a' = a u^2)."""
    om = _as(cosmo.Omega_m, a)
    u = _as(_GL_X, a)
    w = _as(_GL_W, a)
    a3 = a.unsqueeze(-1) ** 3
    integrand = u**4 * (om + (1.0 - om) * a3 * u**6) ** -1.5
    return 2.0 * a**2.5 * torch.sum(w * integrand, dim=-1)


def _growth_unnormalised(a: torch.Tensor, cosmo: Cosmology) -> torch.Tensor:
    """D(a) = 5/2 Omega_m E(a) I(a) (= a in matter domination)."""
    return 2.5 * _as(cosmo.Omega_m, a) * hubble_e(a, cosmo) * _growth_integral(a, cosmo)


def growth_factor(a, cosmo: Cosmology) -> torch.Tensor:
    """Linear growth factor D(a) of flat LCDM, normalised to D(1) = 1 (the integral solution)."""
    a = _as(a)
    return _growth_unnormalised(a, cosmo) / _growth_unnormalised(_as(1.0, a), cosmo)


def growth_rate(a, cosmo: Cosmology) -> torch.Tensor:
    """f(a) = dln D / dln a = dln E / dln a + 1 / (a^2 E^3 I(a)), exact for the integral solution."""
    a = _as(a)
    e = hubble_e(a, cosmo)
    dlne = -1.5 * _as(cosmo.Omega_m, a) * a**-3 / e**2
    return dlne + 1.0 / (a * a * e**3 * _growth_integral(a, cosmo))


def growth_factor_2(a, cosmo: Cosmology) -> torch.Tensor:
    """Second-order growth D2(a) = -3/7 D(a)^2 Omega_m(a)^(-1/143) (Bouchet et al. 1995), in the
    convention x = q + D s1 + D2 s2 with div s2 = sum_{i<j} (phi_ii phi_jj - phi_ij^2)."""
    return -3.0 / 7.0 * growth_factor(a, cosmo) ** 2 * omega_m_a(a, cosmo) ** (-1.0 / 143.0)


def growth_rate_2(a, cosmo: Cosmology) -> torch.Tensor:
    """f2(a) = dln D2 / dln a ~= 2 Omega_m(a)^(6/11) (Bouchet et al. 1995)."""
    return 2.0 * omega_m_a(a, cosmo) ** (6.0 / 11.0)


def momentum_growth(a, cosmo: Cosmology) -> torch.Tensor:
    """G_p(a) = a^3 E(a) dD/da = a^2 E D f: the canonical momentum p = a^2 dx/dt (units H0 Mpc/h)
    of a linear displacement s is G_p(a) s. Its derivative is dG_p/da = 3/2 Omega_m D / (a^2 E)
    (the growth equation), which FastPM's kick uses."""
    a = _as(a)
    return a * a * hubble_e(a, cosmo) * growth_factor(a, cosmo) * growth_rate(a, cosmo)
