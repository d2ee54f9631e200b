"""InDI, Inversion by Direct Iteration (Delbracio & Milanfar 2023), for map translation.

Degradation path from the clean target x (t = 0) to the start map y (t = 1):
x_t = (1 - t) x + t y + t eps_t eta, with eps_t = eps sqrt((1 - t) / t), i.e. noise of standard
deviation eps sqrt(t (1 - t)): a Brownian bridge pinned at both ends. The network learns
F(x_t, t) ~ E[x | x_t, source] (L1 or L2), with t drawn from U[0, 1] mixed with a point mass at 1
(weight ``p_one``). Sampling (their Algorithm 1) starts at x_1 = y and steps t -> t - d:

    x_{t-d} = (d / t) F(x_t, t) + (1 - d / t) x_t + eps sqrt(d (t - d) / t) eta',

the added noise being the one eps_t's growth towards small t asks for; the last step lands on
F itself, so one step is plain regression, and more steps trade network evaluations for detail.
y is the normalised source map (DESIGN.md) or, with ``prior``, the baseline's pixel map of the
source: a start already in the target domain, so the path only has to add what a pixel map cannot.
F also sees the source maps (concatenated channels) at every t.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models import denoiser
from .base import DenoisingMethod


class InDI(DenoisingMethod):
    name = "indi"
    samplers = ("indi",)
    default_steps = 10

    def __init__(self, in_channels: int, out_channels: int = 1, base_channels: int = 32, depth: int = 4,
                 loss: str = "l1", indi_eps: float = 0.5, p_one: float = 0.2, prior: bool = True,
                 sampler: str | None = None, backbone: str = "unet", dim_width: int = 144, dim_blocks: int = 9,
                 patch_size: int = 4):
        super().__init__(in_channels, out_channels, prior, sampler)
        self.net = denoiser(backbone, in_channels + out_channels, out_channels, base_channels, depth, dim_width,
                            dim_blocks, patch_size)
        self.loss = {"l1": F.l1_loss, "l2": F.mse_loss}[loss]
        self.eps, self.p_one = indi_eps, p_one

    def start(self, source: torch.Tensor) -> torch.Tensor:
        """y, the map at t = 1."""
        return self.prior.apply(source) if self.prior is not None else source[:, :self.out_channels]

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """F(x_t, t): x_t plus the network's correction (so an untrained F is the identity)."""
        return x_t + self.net(torch.cat([x_t, source], 1), t)

    def objective(self, source: torch.Tensor, target: torch.Tensor, gen: torch.Generator | None = None):
        n = len(target)
        like = dict(generator=gen, device=target.device, dtype=target.dtype)
        t = torch.rand(n, **like)
        t = torch.where(torch.rand(n, **like) < self.p_one, torch.ones_like(t), t)
        tt = t.view(-1, 1, 1, 1)
        noise = torch.randn(target.shape, **like)
        x_t = (1 - tt) * target + tt * self.start(source) + self.eps * torch.sqrt(tt * (1 - tt)) * noise
        return self.loss(self.predict(x_t, t, source), target)

    def chain(self, source: torch.Tensor, steps: int, gen: torch.Generator | None) -> torch.Tensor:
        return iterate(lambda x, t: self.predict(x, t, source), self.start(source), steps, self.eps, gen)

    def nfe(self, steps: int | None = None) -> int:
        return steps or self.default_steps


def iterate(predict, y: torch.Tensor, steps: int, eps: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """InDI's Algorithm 1 with bridge noise: ``steps`` equal steps from x_1 = y to x_0.

    ``predict(x_t, t)`` returns the estimate of the clean map; t is a (N,) tensor. Noise is drawn on
    y's device and in its dtype (``gen`` must live on that device).
    """
    x = y
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    for i in range(steps):
        t, d = float(grid[i]), float(grid[i] - grid[i + 1])
        x_hat = predict(x, torch.full((len(x),), t, dtype=y.dtype, device=y.device))
        x = (d / t) * x_hat + (1 - d / t) * x
        if i < steps - 1 and eps > 0:
            noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            x = x + eps * math.sqrt(d * (t - d) / t) * noise
    return x
