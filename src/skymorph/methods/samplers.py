"""Samplers of the VP-SDE (Song+21; by default beta_min 0.1, beta_max 20) for a noise-prediction model.

The model is ``eps_fn(x, t) -> eps`` with x (N, C, H, W) and diffusion times t (N,) in (0, 1]; the
forward process is x_t = sqrt(abar(t)) x_0 + sqrt(1 - abar(t)) eps with
abar(t) = exp(-beta_min t - (beta_max - beta_min) t^2 / 2).

Written here, on the continuous time axis, as Song+21 define them: ``em`` (reverse-SDE
Euler-Maruyama), ``pc`` (a Langevin corrector at snr 0.16, then the Euler-Maruyama predictor) and
``ode`` (probability-flow ODE, Euler). From diffusers' schedulers: ``ddim``, ``dpm++`` (DPM-Solver++
2M), ``unipc`` and ``heun``, run on the discrete schedule whose alpha_bar equals abar(t_i) exactly at
t_i = (i + 1) / 1000, so one network trained in continuous time serves every sampler. Noise is drawn
on the device and in the dtype asked of :func:`sample` (with a generator on that device).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError

N_TRAIN = 1000  # discrete timesteps of the diffusers schedules
T_EPS = 1e-3  # smallest diffusion time (Song+21)
SNR = 0.16  # Langevin corrector signal-to-noise ratio (Song+21, VP-SDE)

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class VPSchedule:
    """The linear noise schedule beta(t) = beta_min + t (beta_max - beta_min) of a VP-SDE."""

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self):
        if not 0 <= self.beta_min <= self.beta_max or self.beta_max <= 0:
            raise ConfigError(f"VP-SDE schedule: need 0 <= beta_min <= beta_max, beta_max > 0; got beta_min = "
                              f"{self.beta_min}, beta_max = {self.beta_max}")

    def log_alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """log abar(t) = -int_0^t beta(s) ds."""
        return -(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean coefficient sqrt(abar) and standard deviation sqrt(1 - abar) of x_t given x_0."""
        lab = self.log_alpha_bar(t)
        return torch.exp(0.5 * lab), torch.sqrt(-torch.expm1(lab))

    def discrete_betas(self) -> np.ndarray:
        """beta_i with prod_{j<=i} (1 - beta_j) = abar((i + 1) / N_TRAIN): the VP-SDE on diffusers' grid."""
        lab = self.log_alpha_bar(torch.arange(N_TRAIN + 1, dtype=torch.float64) / N_TRAIN)
        return (-torch.expm1(lab[1:] - lab[:-1])).numpy()


VP = VPSchedule()  # Song+21's schedule, the default
log_alpha_bar, beta, marginal, discrete_betas = VP.log_alpha_bar, VP.beta, VP.marginal, VP.discrete_betas


def _noise(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


def _hand(kind: str):
    def run(eps_fn: EpsFn, x: torch.Tensor, steps: int, gen: torch.Generator | None, vp: VPSchedule) -> torch.Tensor:
        grid = torch.linspace(1.0, T_EPS, steps + 1, dtype=torch.float64)
        n = len(x)
        for i in range(steps):
            t, dt = float(grid[i]), float(grid[i] - grid[i + 1])
            tt = torch.full((n,), t, device=x.device, dtype=x.dtype)
            sigma = vp.marginal(tt)[1].view(-1, 1, 1, 1)
            if kind == "pc":  # Langevin corrector at t (Song+21 Algorithm 5, alpha_i = 1 - beta_i,
                # norms averaged over the batch as in score_sde_pytorch)
                score = -eps_fn(x, tt) / sigma
                z = _noise(x, gen)
                lab = vp.log_alpha_bar(torch.tensor([t, t - 1.0 / N_TRAIN]))
                alpha = math.exp(float(lab[0] - lab[1]))
                ratio = z.flatten(1).norm(dim=1).mean() / score.flatten(1).norm(dim=1).mean().clamp_min(1e-12)
                step = float(2 * alpha * (SNR * ratio) ** 2)
                x = x + step * score + math.sqrt(2 * step) * z
            score = -eps_fn(x, tt) / sigma
            b = float(vp.beta(torch.tensor(t)))
            if kind == "ode":  # dx/dt = -beta/2 (x + score), integrated from t to t - dt
                x = x + 0.5 * b * (x + score) * dt
            else:  # reverse SDE dx = -beta (x/2 + score) dt + sqrt(beta) dW; no noise on the last step
                x = x + b * (0.5 * x + score) * dt
                if i < steps - 1:
                    x = x + math.sqrt(b * dt) * _noise(x, gen)
        return x
    return run


def _diffusers(kind: str):
    def run(eps_fn: EpsFn, x: torch.Tensor, steps: int, gen: torch.Generator | None, vp: VPSchedule) -> torch.Tensor:
        import diffusers  # imported here: a few seconds, needed only by these samplers

        cls = {"ddim": diffusers.DDIMScheduler, "dpm++": diffusers.DPMSolverMultistepScheduler,
               "unipc": diffusers.UniPCMultistepScheduler, "heun": diffusers.HeunDiscreteScheduler}[kind]
        extra = {"ddim": dict(clip_sample=False, set_alpha_to_one=True),
                 "dpm++": dict(algorithm_type="dpmsolver++", solver_order=2)}.get(kind, {})
        sched = cls(num_train_timesteps=N_TRAIN, trained_betas=vp.discrete_betas(), prediction_type="epsilon",
                    timestep_spacing="trailing", **extra)
        sched.set_timesteps(steps, device=x.device)
        x = x * sched.init_noise_sigma
        n = len(x)
        for tau in sched.timesteps:
            t = torch.full((n,), (float(tau) + 1.0) / N_TRAIN, device=x.device, dtype=x.dtype)
            eps = eps_fn(sched.scale_model_input(x, tau), t)
            x = sched.step(eps, tau, x).prev_sample
        return x
    return run


SAMPLERS = {"em": _hand("em"), "pc": _hand("pc"), "ode": _hand("ode"),
            "ddim": _diffusers("ddim"), "dpm++": _diffusers("dpm++"), "unipc": _diffusers("unipc"),
            "heun": _diffusers("heun")}


def nfe(sampler: str, steps: int) -> int:
    """Network evaluations of one sample: 2 per step for pc, 2 per step but the last for heun."""
    return {"pc": 2 * steps, "heun": 2 * steps - 1}.get(sampler, steps)


def sample(eps_fn: EpsFn, shape: tuple[int, ...], sampler: str, steps: int, gen: torch.Generator | None = None,
           device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
           schedule: VPSchedule = VP) -> torch.Tensor:
    """Draw samples of x_0 (``shape``, on ``device`` in ``dtype``; ``gen`` must live on that device) by
    integrating the VP-SDE of ``schedule`` from pure noise at t = 1 with ``steps`` steps."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; valid samplers: {', '.join(SAMPLERS)}")
    if steps < 1:
        raise ConfigError(f"--steps must be a positive integer, got {steps}")
    x = torch.randn(shape, generator=gen, device=device, dtype=dtype)
    return SAMPLERS[sampler](eps_fn, x, steps, gen, schedule)


__all__ = ["SAMPLERS", "VPSchedule", "VP", "sample", "nfe", "marginal", "log_alpha_bar", "beta", "discrete_betas"]
