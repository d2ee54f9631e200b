"""Weak-lensing mass mapping: Kaiser-Squires, the Wiener filter, and posterior sampling with a score prior.

Data model (flat sky, periodic FFTs, conventions of :mod:`skymorph.cosmo.lensing`): observed shear
d = M (A kappa) + n, with A the Kaiser-Squires forward operator, M the 0/1 mask and n white shape
noise of ``noise_std`` per component per observed pixel. Maps are (..., H, W); kappa is
dimensionless, shear complex gamma1 + i gamma2.

The Gaussian prior is kappa ~ N(mu, C) with C diagonal in Fourier space: with the unitary DFT U,
C = U^H diag(S) U, where S (H, W) is the per-mode variance, S = C_ell / A_pix (A_pix in rad^2), so
that the pixel variance is mean(S). Posterior sampling anneals over a noise level sigma: the
prior is smoothed, p_sigma = p * N(0, sigma^2), and the likelihood takes noise_std^2 + sigma^2
(exact for kappa + sigma z without a mask; Remy+23), so at sigma -> 0 the chain samples the
posterior itself.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse.linalg
import scipy.stats
import torch

from skymorph import stats
from skymorph.cosmo.lensing import ARCMIN, ks_forward, ks_inverse
from skymorph.errors import ConfigError
from skymorph.devices import resolve_device

__all__ = ["LensingData", "read_lensing_file", "ring_spectrum", "mode_power", "GaussianPrior", "ks_map", "sample_mean_rmse",
           "choose_smoothing", "wiener", "Schedule", "sample_posterior", "completed_ks_maps", "tweedie_denoise",
           "tweedie_variance", "tweedie_of_completions", "tweedie_posterior", "tweedie_moments", "masked_rmse",
           "masked_pearson", "coverage", "gaussian_coverage"]


def _frequency(h: int, w: int) -> np.ndarray:
    """|f| of every DFT mode (H, W) of an H x W map, in cycles per pixel."""
    return np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])


def _rings(h: int, w: int) -> np.ndarray:
    """Ring index round(|k| / k_f) of every DFT mode (H, W), k_f the fundamental of the shorter side."""
    return np.rint(_frequency(h, w) * min(h, w)).astype(int)


def ring_spectrum(kappa: np.ndarray, pixel_arcmin: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean convergence power C_ell (rad^2) of maps (N, H, W) in rings of one fundamental
    (ell_f = 2 pi / side in rad^-1), corners included; ring 0 is the variance of the map means
    about their average (k = 0) times A_pix. Returns (ell, C_ell), ell = ring x ell_f."""
    kappa = np.asarray(kappa, dtype=np.float64)
    kappa = kappa - kappa.mean()
    h, w = kappa.shape[-2:]
    ring = _rings(h, w).ravel()
    s = (np.abs(np.fft.fft2(kappa, norm="ortho")) ** 2).reshape(-1, h * w).mean(0)
    cl = np.bincount(ring, s) / np.bincount(ring) * (pixel_arcmin * ARCMIN) ** 2
    ell = np.arange(len(cl)) * 2 * math.pi / (min(h, w) * pixel_arcmin * ARCMIN)
    return ell, cl


def mode_power(ell, cl, npix: int, pixel_arcmin: float) -> torch.Tensor:
    """Per-mode variance S = C(|ell|) / A_pix (npix, npix) of the unitary DFT, C interpolated in
    log-log between the given rings (ring 0 taken as is)."""
    ell, cl = np.asarray(ell, float), np.asarray(cl, float)
    lk = 2 * math.pi * _frequency(npix, npix) / (pixel_arcmin * ARCMIN)
    s = np.empty_like(lk)
    pos = lk > 0
    s[pos] = np.exp(np.interp(np.log(lk[pos]), np.log(ell[1:]), np.log(cl[1:])))
    s[~pos] = cl[0]
    return torch.from_numpy(s / (pixel_arcmin * ARCMIN) ** 2)


def _fourier(x: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
    """U^H diag U x for a real map x and a real, even per-mode diagonal (a real symmetric operator)."""
    return torch.fft.ifft2(torch.fft.fft2(x) * diag).real


class Prior(Protocol):
    """What the sampler needs from a prior: the Gaussian part (per-mode variance S and mean, used to
    precondition) and the score of the prior smoothed to noise level sigma."""

    power: torch.Tensor
    mean: float

    def score(self, x: torch.Tensor, sigma: float) -> torch.Tensor: ...


@dataclass
class GaussianPrior:
    """kappa ~ N(mean, U^H diag(power) U); ``score`` is the exact score of the smoothed prior."""

    power: torch.Tensor
    mean: float

    def score(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """-(C + sigma^2)^-1 (x - mean), per map of x (..., H, W)."""
        return -_fourier(x - self.mean, 1.0 / (self.power.to(x) + sigma**2))


def _smoothing_kernel(h: int, w: int, scale_px: float) -> torch.Tensor:
    """Fourier transform of a unit Gaussian of standard deviation ``scale_px`` pixels."""
    return torch.exp(-2 * math.pi**2 * scale_px**2 * torch.from_numpy(_frequency(h, w)) ** 2)


def ks_map(gamma: torch.Tensor, smoothing_px: float = 0.0) -> torch.Tensor:
    """Kaiser-Squires E-mode convergence (..., H, W) of shear (complex), zero mean, smoothed with a
    Gaussian of standard deviation ``smoothing_px`` pixels (0: none)."""
    kappa_e = ks_inverse(gamma).real
    if smoothing_px <= 0:
        return kappa_e
    return _fourier(kappa_e, _smoothing_kernel(*kappa_e.shape[-2:], smoothing_px).to(kappa_e))


def masked_rmse(est: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RMS of (est - truth) inside the mask after subtracting each map's masked mean, per map (N,)."""
    m = np.asarray(mask, bool)
    e, t = np.asarray(est, np.float64)[..., m], np.asarray(truth, np.float64)[..., m]
    d = (e - e.mean(-1, keepdims=True)) - (t - t.mean(-1, keepdims=True))
    return np.sqrt((d**2).mean(-1))


def sample_mean_rmse(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The :func:`masked_rmse` of the posterior mean itself, estimated from K samples (N, K, H, W) (N,).

    The mean of K samples carries 1/K of the posterior covariance as extra error: E |P(xbar - t)|^2 =
    |P(mu - t)|^2 + tr(P Sigma P) / K (P: the masked mean removed), and sum_k |P(x_k - xbar)|^2 / (K - 1)
    is an unbiased estimate of tr(P Sigma P); the estimate of the squared error is clipped at 0."""
    k = samples.shape[1]
    if k < 2:
        raise ConfigError("the sampling error of a posterior mean needs at least 2 samples per map")
    samples = np.asarray(samples, np.float64)
    x = samples[..., np.asarray(mask, bool)]
    dev = x - x.mean(1, keepdims=True)
    dev -= dev.mean(-1, keepdims=True)
    spread = (dev**2).mean(-1).sum(1) / (k - 1)  # tr(P Sigma P) / n_pixels
    mse = masked_rmse(samples.mean(1), truth, mask) ** 2
    return np.sqrt(np.clip(mse - spread / k, 0.0, None))


def masked_pearson(est: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pearson correlation of est and truth over the masked pixels, per map (N,)."""
    m = np.asarray(mask, bool)
    e, t = np.asarray(est, np.float64)[..., m], np.asarray(truth, np.float64)[..., m]
    e, t = e - e.mean(-1, keepdims=True), t - t.mean(-1, keepdims=True)
    return (e * t).sum(-1) / np.sqrt((e**2).sum(-1) * (t**2).sum(-1))


def choose_smoothing(kappa: np.ndarray, gamma: np.ndarray, mask: np.ndarray,
                     scales_px=np.arange(0.0, 8.01, 0.25)) -> tuple[float, np.ndarray]:
    """The Gaussian KS smoothing (pixels) minimising the mean masked RMSE over maps (N, H, W) of
    true convergence and observed shear (complex); also returns the mean RMSE per scale."""
    ke = ks_map(torch.as_tensor(gamma))
    err = np.array([masked_rmse(_fourier(ke, _smoothing_kernel(*ke.shape[-2:], s).to(ke)).numpy(), kappa, mask).mean()
                    for s in scales_px])
    return float(scales_px[int(np.argmin(err))]), err


def _likelihood_score(x: torch.Tensor, gamma: torch.Tensor, mask: torch.Tensor, var: float) -> torch.Tensor:
    """Re A^H M (gamma - A x) / var: the gradient in x of -|M (gamma - A x)|^2 / (2 var)."""
    return ks_inverse(mask * (gamma - ks_forward(x))).real / var


def _posterior_precond(power: torch.Tensor, noise_var: float) -> torch.Tensor:
    """Per-mode posterior variance of the unmasked Gaussian problem: 1 / (1/S + 1/noise_var), k = 0 from the prior."""
    data = torch.full_like(power, 1.0 / noise_var)
    data[0, 0] = 0.0
    return 1.0 / (1.0 / power + data)


def wiener(gamma: torch.Tensor, mask: torch.Tensor, noise_std: float, prior: GaussianPrior,
           rtol: float = 1e-8) -> torch.Tensor:
    """Wiener filter (posterior mean of the Gaussian prior) of each shear map (N, H, W) with mask
    (H, W): solves (C^-1 + A^H M A / noise_std^2) kappa = A^H M gamma / noise_std^2 + C^-1 mean by
    conjugate gradients (``scipy.sparse.linalg.cg``), preconditioned by the unmasked solution's
    Fourier-diagonal inverse (exact without a mask: one iteration)."""
    h, w = mask.shape
    s = prior.power.to(torch.float64)
    m = mask.to(torch.float64)
    var = noise_std**2
    pre = _posterior_precond(s, var)

    def as_map(v):
        return torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)).view(h, w)

    no_data = torch.zeros(h, w, dtype=torch.complex128)

    def apply_q(v):  # C^-1 x + Re A^H M A x / var
        x = as_map(v)
        return (_fourier(x, 1.0 / s) - _likelihood_score(x, no_data, m, var)).ravel().numpy()

    q = scipy.sparse.linalg.LinearOperator((h * w, h * w), matvec=apply_q, dtype=np.float64)
    precond = scipy.sparse.linalg.LinearOperator((h * w, h * w), dtype=np.float64,
                                                 matvec=lambda v: _fourier(as_map(v), pre).ravel().numpy())
    prior_term = _fourier(torch.full((h, w), float(prior.mean), dtype=torch.float64), 1.0 / s)
    out = []
    for g in gamma.to(torch.complex128):
        b = _likelihood_score(torch.zeros(h, w, dtype=torch.float64), g, m, var) + prior_term
        x0 = prior.mean + _fourier(b - prior_term, pre)  # the unmasked solution: exact without a mask
        sol, info = scipy.sparse.linalg.cg(q, b.ravel().numpy(), x0=x0.ravel().numpy(), rtol=rtol, maxiter=2000,
                                           M=precond)
        if info:
            raise ConfigError(f"Wiener filter: conjugate gradients did not converge in {info} iterations")
        out.append(as_map(sol))
    return torch.stack(out)


@dataclass(frozen=True)
class Schedule:
    """Annealed Langevin schedule: ``levels`` noise levels from ``sigma_max`` down to ``sigma_min``
    (geometric, kappa units), ``steps`` Langevin steps at each, step persistence ``rho`` in (0, 1)
    (smaller moves further per step). Score evaluations per chain: levels x steps."""

    sigma_max: float = 0.05
    sigma_min: float = 1e-3
    levels: int = 30
    steps: int = 3
    rho: float = 0.8

    def __post_init__(self):
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"sampler: need 0 < sigma_min ({self.sigma_min}) < sigma_max ({self.sigma_max})")
        if self.levels < 1 or self.steps < 1:
            raise ConfigError(f"sampler: --noise-levels ({self.levels}) and --langevin-steps ({self.steps}) must be positive")
        if not 0 < self.rho < 1:
            raise ConfigError(f"sampler: rho = {self.rho} must lie in (0, 1)")

    def sigmas(self) -> np.ndarray:
        return np.geomspace(self.sigma_max, self.sigma_min, self.levels)

    @property
    def evaluations(self) -> int:
        return self.levels * self.steps


@torch.no_grad()
def sample_posterior(gamma: torch.Tensor, mask: torch.Tensor, noise_std: float, prior: Prior, n_samples: int,
                     schedule: Schedule = Schedule(), seed: int = 0, chains: int = 64, progress=None,
                     device: str | None = None) -> torch.Tensor:
    """``n_samples`` posterior draws (N, n_samples, H, W) for shear maps (N, H, W) with mask (H, W).

    Annealed, preconditioned Langevin dynamics on p_sigma(kappa | gamma) (module docstring), with
    posterior score s = likelihood score + prior score, run in batches of up to ``chains`` chains.
    Each step is the exponential (Crank-Nicolson-type) discretisation

        g = x + P s(x),   x <- rho x + (1 - rho) g + sqrt(1 - rho^2) P^(1/2) xi,

    with P the unmasked Gaussian posterior covariance at the current sigma (Fourier-diagonal), which
    leaves a Gaussian target with covariance P exactly invariant: no step-size bias for the Gaussian
    part; the rest (mask, learned prior) relaxes at rate 1 - rho per step, with a small
    under-dispersion of masked modes that vanishes as rho -> 1. Chains start from the prior
    smoothed to sigma_max. ``progress(n)`` is called after every n chain-steps. Chains run on ``device``
    (auto, cpu, cuda, cuda:N; None: where the prior's ``power`` is, e.g. a network from
    ``load_prior(device=...)``) with a seeded generator there; the draws come back on the CPU."""
    if n_samples < 1:
        raise ConfigError(f"--samples must be a positive integer, got {n_samples}")
    n, h, w = gamma.shape
    dev = prior.power.device if device is None else resolve_device(device)
    power = prior.power.to(dev)
    dtype = power.dtype
    gen = torch.Generator(dev).manual_seed(seed)
    jobs = [(i, j) for i in range(n) for j in range(n_samples)]
    out = torch.empty(n, n_samples, h, w, dtype=dtype)
    cgamma = gamma.to(dev, torch.complex128 if dtype == torch.float64 else torch.complex64)
    mask = mask.to(dev, dtype)
    sigmas = schedule.sigmas()
    for start in range(0, len(jobs), chains):
        batch = jobs[start:start + chains]
        g = cgamma[[i for i, _ in batch]]
        x = prior.mean + _fourier(torch.randn(len(batch), h, w, generator=gen, dtype=dtype, device=dev),
                                  torch.sqrt(power + sigmas[0] ** 2))
        for sigma in sigmas:
            var = noise_std**2 + sigma**2
            pre = _posterior_precond(power + sigma**2, var)
            # the step x <- rho x + (1 - rho)(x + P s) + sqrt(1 - rho^2) P^(1/2) xi, in one inverse FFT
            drift, kick = (1 - schedule.rho) * pre, math.sqrt(1 - schedule.rho**2) * torch.sqrt(pre)
            for _ in range(schedule.steps):
                s = _likelihood_score(x, g, mask, var) + prior.score(x, float(sigma))
                xi = torch.randn(x.shape, generator=gen, dtype=dtype, device=dev)
                x = x + torch.fft.ifft2(torch.fft.fft2(s) * drift + torch.fft.fft2(xi) * kick).real
                if progress is not None:
                    progress(len(batch))
        for (i, j), xb in zip(batch, x):
            out[i, j] = xb
    return out


@torch.no_grad()
def tweedie_denoise(prior: Prior, y: torch.Tensor, sigma: float, chains: int = 64) -> torch.Tensor:
    """Tweedie's formula E[kappa | y] = y + sigma^2 score(y, sigma) for maps y = kappa + sigma z
    (..., H, W) in kappa units: float64 on the CPU, in batches of ``chains`` maps on the prior's device."""
    flat = y.reshape(-1, *y.shape[-2:])
    est = torch.empty(flat.shape, dtype=torch.float64)
    for start in range(0, len(flat), chains):
        yb = flat[start:start + chains].to(prior.power.device, prior.power.dtype)
        est[start:start + chains] = (yb + sigma**2 * prior.score(yb, sigma)).to("cpu", torch.float64)
    return est.reshape(y.shape)


@torch.no_grad()
def completed_ks_maps(gamma: torch.Tensor, mask: torch.Tensor, noise_std: float, gauss: GaussianPrior, draws: int,
                      schedule: Schedule = Schedule(), seed: int = 0, chains: int = 64) -> torch.Tensor:
    """KS E-mode maps (N, draws, H, W) of the shear, its masked pixels completed from the Gaussian prior's
    posterior predictive (A kappa_G + n, kappa_G a Gaussian-posterior sample from :func:`sample_posterior`
    with ``schedule``), the unconstrained mean mode set to the prior's: kappa + white noise of
    ``noise_std`` per pixel (A is unitary mode by mode), what :func:`tweedie_denoise` takes."""
    if draws < 1:
        raise ConfigError(f"--samples must be a positive integer, got {draws}")
    obs, m = gamma.to(torch.complex128), mask.to(torch.float64)
    kappa_g = sample_posterior(obs, m, noise_std, gauss, draws, schedule, seed, chains, device="cpu")
    gen = torch.Generator().manual_seed(seed + 1)
    noise = torch.complex(*torch.randn((2,) + kappa_g.shape, generator=gen, dtype=torch.float64))
    full = m * obs[:, None] + (1 - m) * (ks_forward(kappa_g) + noise_std * noise)
    return ks_inverse(full).real + gauss.mean


def tweedie_variance(prior: Prior, y: torch.Tensor, sigma: float, probes: int = 4, seed: int = 0,
                     chains: int = 64) -> torch.Tensor:
    """Per-pixel posterior variance by Tweedie's second-order formula, Var[kappa_i | y] = sigma^2 (1 + sigma^2
    J_ii), J = d score / d y, for maps y = kappa + sigma z (..., H, W): float64 on the CPU.

    J = J_G + J_R. The Gaussian part of the prior (its power S and mean) has J_G = -(C + sigma^2)^-1, whose
    diagonal is exactly -mean over modes of 1 / (S + sigma^2) at every pixel; the diagonal of the rest (the
    learned residual; zero for the Gaussian prior) is Hutchinson's estimate mean_p v_p (v_p^T J_R) over
    ``probes`` Rademacher vectors (one vector-Jacobian product each; exact for a diagonal J_R). The Gaussian
    part taken out exactly leaves the probes only the residual's small off-diagonal terms to average.
    Negative values (probe noise, or a network whose Jacobian is not a covariance) are clipped to 0."""
    if probes < 1:
        raise ConfigError(f"Tweedie variance needs at least one probe, got {probes}")
    diag_g = -float(torch.mean(1.0 / (prior.power.to(torch.float64) + sigma**2)))
    gauss = GaussianPrior(prior.power, prior.mean)
    gen = torch.Generator().manual_seed(seed)
    flat = y.reshape(-1, *y.shape[-2:])
    diag = torch.zeros(flat.shape, dtype=torch.float64)
    if not isinstance(prior, GaussianPrior):
        for start in range(0, len(flat), chains):
            yb = flat[start:start + chains].to(prior.power.device, prior.power.dtype)
            for _ in range(probes):
                v = (2 * torch.randint(0, 2, yb.shape, generator=gen) - 1).to(yb)
                with torch.enable_grad():
                    x = yb.detach().requires_grad_(True)
                    (vjp,) = torch.autograd.grad(prior.score(x, sigma) - gauss.score(x, sigma), x, grad_outputs=v)
                diag[start:start + chains] += (v * vjp).to("cpu", torch.float64) / probes
    return (sigma**2 * (1 + sigma**2 * (diag_g + diag))).clamp_min(0).reshape(y.shape)


def tweedie_of_completions(prior: Prior, y: torch.Tensor, noise_std: float, probes: int = 4, seed: int = 0,
                           chains: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Tweedie's posterior mean and variance (:func:`tweedie_denoise`, :func:`tweedie_variance`) of each
    completed KS map y (..., H, W) of :func:`completed_ks_maps`. The mean mode (k = 0) is not in the
    shear: y holds the prior's mean there, so its posterior variance is the prior's S_0, not the
    S_0 sigma^2 / (S_0 + sigma^2) Tweedie reads for a noisy mode; the difference, S_0^2 / (S_0 + sigma^2)
    over the number of pixels, is added to every pixel's variance."""
    s0 = float(prior.power[0, 0])
    unconstrained = s0**2 / (s0 + noise_std**2) / prior.power.numel()
    return (tweedie_denoise(prior, y, noise_std, chains),
            tweedie_variance(prior, y, noise_std, probes, seed, chains) + unconstrained)


def tweedie_posterior(gamma: torch.Tensor, mask: torch.Tensor, noise_std: float, prior: Prior, gauss: GaussianPrior,
                      draws: int, schedule: Schedule = Schedule(), seed: int = 0, chains: int = 64,
                      probes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior mean and variance of kappa under ``prior`` by Tweedie's formulas, one of each per completion
    of the masked shear: (N, draws, H, W) twice; :func:`tweedie_moments` combines them.

    Unmasked, d = A kappa + n is y = KS(d) = kappa + n_E with n_E white of ``noise_std`` per pixel, so
    E[kappa | d] = y + noise_std^2 score(y, noise_std) exactly: one score evaluation, at the noise level
    where a learned network carries what it knows (the annealed sampler ends at sigma -> 0), and the
    variance by :func:`tweedie_variance`. Masked, the unobserved shear is completed
    (:func:`completed_ks_maps`): E[kappa | d] = E[E[kappa | d, d_masked] | d], exact but for the Gaussian
    predictive (exact for the Gaussian prior, whose mean over draws tends to the Wiener filter); where
    noise_std exceeds the shear, the predictive is mostly shape noise."""
    y = completed_ks_maps(gamma, mask, noise_std, gauss, draws, schedule, seed, chains)
    return tweedie_of_completions(prior, y, noise_std, probes, seed, chains)


def tweedie_moments(means: torch.Tensor, variances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and variance (N, H, W) from the per-completion ones (N, draws, H, W), by the law of total
    variance: the mean of the variances plus the variance of the means over completions (unbiased; none
    from a single completion)."""
    spread = means.var(1, unbiased=True) if means.shape[1] > 1 else torch.zeros_like(means[:, 0])
    return means.mean(1), variances.mean(1) + spread


def gaussian_coverage(mean: np.ndarray, std: np.ndarray, truth: np.ndarray, mask: np.ndarray,
                      levels=(0.68, 0.95)) -> dict[float, np.ndarray]:
    """Per level: the per-map fraction of observed true pixels within mean +- z std, z the two-sided normal
    quantile of the level (the nominal coverage of a Gaussian posterior is the level itself)."""
    m = np.asarray(mask, bool)
    z = np.abs(np.asarray(truth) - np.asarray(mean))[..., m] / np.maximum(np.asarray(std)[..., m], 1e-300)
    return {lv: (z <= scipy.stats.norm.ppf(0.5 + lv / 2)).mean(-1) for lv in levels}


def coverage(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray,
             levels=(0.68, 0.95)) -> dict[float, tuple[np.ndarray, float]]:
    """Per level: (per-map fraction of the observed true pixels inside the central order-statistic
    interval of the K posterior samples (N, K, H, W), that interval's exact nominal coverage at this K)
    — :func:`skymorph.stats.interval_coverage`, the one meaning of coverage in the project."""
    if samples.shape[1] < 2:
        raise ConfigError("coverage needs at least 2 posterior samples per map")
    m = np.asarray(mask, bool)
    s, t = np.moveaxis(np.asarray(samples), 1, 0)[..., m], np.asarray(truth)[..., m]
    return {lv: stats.interval_coverage(s, t, lv, axis=-1) for lv in levels}


@dataclass
class LensingData:
    """A shear file read into memory: observed shear (N, H, W) complex, mask (H, W) (1 = observed),
    noise per component per pixel, pixel side in arcmin; the true convergence (N, H, W) and the
    per-map PM seeds when the file has them (``kappa.h5`` of ``skymorph lensing maps``)."""

    path: str
    gamma: np.ndarray
    mask: np.ndarray
    noise_std: float
    pixel_arcmin: float
    kappa: np.ndarray | None = None
    seeds: np.ndarray | None = None

    @property
    def npix(self) -> int:
        return self.mask.shape[-1]

    @property
    def fingerprint(self) -> str:
        """16 hex digits identifying the maps (convergence, observed shear, mask, noise, pixel scale),
        wherever the file lies."""
        h = hashlib.sha256()
        for a in (self.kappa, self.gamma, self.mask, np.array([self.noise_std, self.pixel_arcmin])):
            if a is not None:
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def read_lensing_file(path, need_kappa: bool = False) -> LensingData:
    """Read a shear file: ``/gamma_obs`` (N, 2, H, W) shear (gamma1, gamma2), already masked;
    ``/mask`` (H, W); attributes ``noise_std`` (per component per pixel) and ``pixel_arcmin``;
    optional ``/kappa`` (N, H, W) truth and ``/params/seed`` (N,). The ``kappa.h5`` written by
    ``skymorph lensing maps`` is such a file."""
    import h5py

    from skymorph.errors import InputError

    path = str(path)
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        for name in ("gamma_obs", "mask") + (("kappa",) if need_kappa else ()):
            if name not in f:
                raise InputError(f"{path}: no /{name} dataset (expected a kappa.h5 from 'skymorph lensing maps')")
        for name in ("noise_std", "pixel_arcmin"):
            if name not in f.attrs:
                raise InputError(f"{path}: attribute {name!r} missing")
        g, mask = f["gamma_obs"], f["mask"]
        if g.ndim != 4 or g.shape[1] != 2 or g.shape[2] != g.shape[3]:
            raise InputError(f"{path}: /gamma_obs has shape {g.shape}, expected (N, 2, npix, npix)")
        if mask.shape != g.shape[2:]:
            raise InputError(f"{path}: shear maps {g.shape[2:]} and /mask {mask.shape} have different shapes")
        kappa = f["kappa"][()] if "kappa" in f else None
        if kappa is not None and kappa.shape != (g.shape[0],) + g.shape[2:]:
            raise InputError(f"{path}: /kappa has shape {kappa.shape}, expected {(g.shape[0],) + g.shape[2:]}")
        gam = g[()]
        return LensingData(path, (gam[:, 0] + 1j * gam[:, 1]).astype(np.complex128), (mask[()] != 0).astype(np.float64),
                           float(f.attrs["noise_std"]), float(f.attrs["pixel_arcmin"]), kappa,
                           f["params/seed"][()] if "params/seed" in f else None)
