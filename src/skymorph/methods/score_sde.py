"""Conditional score-based diffusion (Song+21): a VP-SDE on the target map, conditioned on the
source map by channel concatenation, with the samplers of :mod:`skymorph.methods.samplers`.

Why VP-SDE with noise (epsilon) prediction rather than an EDM parameterisation: its discrete form
is DDPM's linear schedule, so diffusers' DDIM, DPM-Solver++, UniPC and Heun solvers run on the one
trained network unchanged, next to the continuous-time Euler-Maruyama, predictor-corrector and
probability-flow samplers of Song+21. With ``prior``, the diffusion runs on the residual
target - baseline(source), which is smaller and smoother than the map itself.

The network learns the residual to the analytic noise prediction of a Gaussian with the train
maps' mean and variance, sigma (x_t - alpha mu) / (alpha^2 v + sigma^2) (as the score prior of
Remy+23 does): an untrained model is already the Wiener denoiser, right at every noise level, so
few-step samplers stay finite while the network is young (a bare epsilon network is most wrong at
t ~ 1, where x_0 = (x_t - sigma eps) / alpha amplifies its error 150-fold).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import denoiser
from . import samplers as vp
from .base import DenoisingMethod


class ScoreSDE(DenoisingMethod):
    name = "score_sde"
    samplers = ("dpm++", "unipc", "heun", "ddim", "ode", "em", "pc")
    default_steps = 20
    default_lr = 2e-4

    def __init__(self, in_channels: int, out_channels: int = 1, base_channels: int = 32, depth: int = 4,
                 prior: bool = True, sampler: str | None = None, beta_min: float = 0.1, beta_max: float = 20.0,
                 backbone: str = "unet", dim_width: int = 144, dim_blocks: int = 9, patch_size: int = 4):
        super().__init__(in_channels, out_channels, prior, sampler)
        self.schedule = vp.VPSchedule(beta_min, beta_max)
        self.net = denoiser(backbone, in_channels + out_channels, out_channels, base_channels, depth, dim_width,
                            dim_blocks, patch_size)
        self.register_buffer("data_moments", torch.tensor([0.0, 1.0]))  # mean, variance of x_0 (train split)

    def fit_prior(self, source, target) -> None:
        """The baseline (if any), then the mean and variance of what is diffused."""
        super().fit_prior(source, target)
        with torch.no_grad():
            x0 = self._clean(torch.as_tensor(source), torch.as_tensor(target)).double()
            self.data_moments.copy_(torch.stack([x0.mean(), x0.var()]).float())

    def eps(self, x: torch.Tensor, t: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """Predicted noise of x_t (normalised units) at diffusion times t (N,), given the source:
        the Gaussian (Wiener) prediction plus the network's correction."""
        a, s = (v.view(-1, 1, 1, 1) for v in self.schedule.marginal(t))
        mu, var = self.data_moments
        return s * (x - a * mu) / (a**2 * var + s**2) + self.net(torch.cat([x, source], 1), t)

    def _clean(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return target - self.prior.apply(source) if self.prior is not None else target

    def objective(self, source: torch.Tensor, target: torch.Tensor, gen: torch.Generator | None = None):
        """Denoising score matching: E_t,eps |eps_theta(x_t, t) - eps|^2, t ~ U(T_EPS, 1)."""
        x0 = self._clean(source, target)
        t = vp.T_EPS + (1 - vp.T_EPS) * torch.rand(len(x0), generator=gen, device=x0.device, dtype=x0.dtype)
        noise = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        a, s = (v.view(-1, 1, 1, 1) for v in self.schedule.marginal(t))
        return F.mse_loss(self.eps(a * x0 + s * noise, t, source), noise)

    def chain(self, source: torch.Tensor, steps: int, gen: torch.Generator | None) -> torch.Tensor:
        shape = (len(source), self.out_channels, *source.shape[-2:])
        x = vp.sample(lambda x, t: self.eps(x, t, source), shape, self.sampler, steps, gen, source.device,
                      source.dtype, self.schedule)
        return x + self.prior.apply(source) if self.prior is not None else x

    def nfe(self, steps: int | None = None) -> int:
        return vp.nfe(self.sampler, steps or self.default_steps)
