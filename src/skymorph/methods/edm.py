"""EDM (Karras+22): conditional diffusion with the denoiser preconditioned by the noise level.

D(x; sigma) = mu + c_skip (x - mu) + c_out F(c_in (x - mu), c_noise), with
c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2),
c_noise = ln(sigma) / 4; mu and sd are the mean and standard deviation of what is diffused (the
train split's target, or its residual to the monotone prior with ``prior``). F also sees the source
maps (concatenated channels). Training draws ln sigma ~ N(p_mean, p_std^2) and weights the squared
error by (sigma^2 + sd^2) / (sigma sd)^2, so every noise level has unit loss scale at the start.
F's last layer starts at zero, so an untrained model is the Wiener denoiser of a Gaussian with the
train moments (as score_sde's residual to the analytic noise prediction).

Sampling: Karras's Algorithm 2, Heun's second-order method on the probability-flow ODE over
sigma_i = (smax^(1/rho) + i / (N - 1) (smin^(1/rho) - smax^(1/rho)))^rho, then 0 (2N - 1 network
calls), with optional stochastic churn (``churn``: S_churn; noise added back to raise sigma by a factor
1 + min(S_churn / N, sqrt(2) - 1) at every step).

Why a method of its own beside score_sde: the network is parameterised on sigma, not on VP time, and its
sampler is EDM's; diffusers' VP solvers of score_sde do not apply to it without a change of variables.
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from ..models import denoiser
from .base import DenoisingMethod


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> torch.Tensor:
    """The N + 1 noise levels of the EDM sampler, sigma_max down to sigma_min, then 0 (float64)."""
    i = torch.arange(steps, dtype=torch.float64)
    inv = 1.0 / rho
    s = (sigma_max**inv + i / max(steps - 1, 1) * (sigma_min**inv - sigma_max**inv)) ** rho
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)])


def edm_sample(denoise, shape, steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
               churn: float = 0.0, gen: torch.Generator | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Karras+22 Algorithm 2 with ``denoise(x, sigma)`` (sigma a (B,) tensor): 2 steps - 1 calls."""
    sig = karras_sigmas(steps, sigma_min, sigma_max, rho)
    like = dict(generator=gen, device=device, dtype=dtype)
    x = torch.randn(shape, **like) * float(sig[0])
    gamma = min(churn / steps, math.sqrt(2.0) - 1.0)
    full = lambda s: torch.full((shape[0],), s, device=device, dtype=dtype)  # noqa: E731
    for i in range(steps):
        s_cur, s_next = float(sig[i]), float(sig[i + 1])
        s_hat = s_cur * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(s_hat**2 - s_cur**2) * torch.randn(shape, **like)
        d = (x - denoise(x, full(s_hat))) / s_hat
        x_next = x + (s_next - s_hat) * d
        if s_next > 0:
            d2 = (x_next - denoise(x_next, full(s_next))) / s_next
            x_next = x + (s_next - s_hat) * 0.5 * (d + d2)
        x = x_next
    return x


class EDM(DenoisingMethod):
    name = "edm"
    samplers = ("edm",)
    default_steps = 18  # 35 network calls, Karras+22's choice (10 steps leave a Gaussian's spread 22% too wide)
    default_lr = 2e-4

    def __init__(self, in_channels: int, out_channels: int = 1, base_channels: int = 32, depth: int = 4,
                 prior: bool = True, sampler: str | None = None, p_mean: float = -1.2, p_std: float = 1.2,
                 sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, churn: float = 0.0,
                 backbone: str = "unet", dim_width: int = 144, dim_blocks: int = 9, patch_size: int = 4):
        super().__init__(in_channels, out_channels, prior, sampler)
        if not 0 < sigma_min < sigma_max or rho <= 0 or p_std <= 0 or churn < 0:
            raise ConfigError(f"edm needs 0 < sigma_min < sigma_max, rho > 0, p_std > 0 and churn >= 0; got "
                              f"sigma_min {sigma_min}, sigma_max {sigma_max}, rho {rho}, p_std {p_std}, churn {churn}")
        self.net = denoiser(backbone, in_channels + out_channels, out_channels, base_channels, depth, dim_width,
                            dim_blocks, patch_size)
        self.p_mean, self.p_std = p_mean, p_std
        self.sigma_min, self.sigma_max, self.rho, self.churn = sigma_min, sigma_max, rho, churn
        self.register_buffer("data_moments", torch.tensor([0.0, 1.0]))  # mean, standard deviation (train split)

    def fit_prior(self, source, target) -> None:
        """The baseline (if any), then the mean and standard deviation of what is diffused."""
        super().fit_prior(source, target)
        with torch.no_grad():
            x0 = self._clean(torch.as_tensor(source), torch.as_tensor(target)).double()
            self.data_moments.copy_(torch.stack([x0.mean(), x0.std().clamp_min(1e-6)]).float())

    def _clean(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return target - self.prior.apply(source) if self.prior is not None else target

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """D(x; sigma): the preconditioned estimate of the clean map from x at noise levels sigma (N,),
        given the conditioning maps ``source``."""
        mu, sd = self.data_moments
        s = sigma.view(-1, 1, 1, 1)
        norm = torch.sqrt(s**2 + sd**2)
        f = self.net(torch.cat([(x - mu) / norm, source], 1), torch.log(sigma) / 4)
        return mu + sd**2 / norm**2 * (x - mu) + s * sd / norm * f

    def objective(self, source: torch.Tensor, target: torch.Tensor, gen: torch.Generator | None = None):
        """E_sigma,n lambda(sigma) |D(x0 + n; sigma) - x0|^2, ln sigma ~ N(p_mean, p_std^2)."""
        return self.weighted_loss(self._clean(source, target), source, gen)

    def weighted_loss(self, x0: torch.Tensor, cond: torch.Tensor, gen: torch.Generator | None = None):
        """The EDM loss of denoising ``x0`` (what is diffused) given the conditioning maps ``cond``."""
        like = dict(generator=gen, device=x0.device, dtype=x0.dtype)
        sigma = torch.exp(self.p_mean + self.p_std * torch.randn(len(x0), **like))
        sd = self.data_moments[1]
        weight = ((sigma**2 + sd**2) / (sigma * sd) ** 2).view(-1, 1, 1, 1)
        noisy = x0 + sigma.view(-1, 1, 1, 1) * torch.randn(x0.shape, **like)
        return torch.mean(weight * (self.denoise(noisy, sigma, cond) - x0) ** 2)

    def chain(self, source: torch.Tensor, steps: int, gen: torch.Generator | None) -> torch.Tensor:
        x = self.sample_clean(source, steps, gen)
        return x + self.prior.apply(source) if self.prior is not None else x

    def sample_clean(self, cond: torch.Tensor, steps: int, gen: torch.Generator | None) -> torch.Tensor:
        """One EDM chain of what is diffused, given the conditioning maps ``cond`` (N, C, H, W)."""
        shape = (len(cond), self.out_channels, *cond.shape[-2:])
        return edm_sample(lambda x, s: self.denoise(x, s, cond), shape, steps, self.sigma_min, self.sigma_max,
                          self.rho, self.churn, gen, cond.device, cond.dtype)

    def nfe(self, steps: int | None = None) -> int:
        return 2 * (steps or self.default_steps) - 1
