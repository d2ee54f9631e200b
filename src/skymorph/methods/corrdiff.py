"""CorrDiff (Mardani+25, residual corrective diffusion): a U-Net regression predicts the conditional
mean, and EDM diffusion (:mod:`skymorph.methods.edm`) generates what it leaves, target - mean(source).

A regression trained on L1 fits the conditional median and blurs what the source does not fix;
a diffusion model on the whole map must learn the large scales the regression already gets right.
Splitting the two gives the diffusion a small, nearly zero-mean residual to model and leaves the
mean to the network that learns it fastest.

Training: both networks from the start, on every batch, within one budget (Mardani+25 train the
regression first and then the diffusion on its frozen output; training both at once spends the
budget on neither alone and needs no split of it). The mean is the ``unet`` method itself (its
loss, spectral term and monotone prior); the denoiser sees the source maps and the mean (detached:
the diffusion loss does not move the regression). Its ``sigma_data`` is the standard deviation of
target - mean at the start, where the mean is the monotone prior (fixed thereafter: EDM's
preconditioning needs a constant, and the residual only shrinks from there).

Sampling: mean(source) + one EDM chain of the residual: 2N - 1 calls of the denoiser and one of the
regression.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import StepFn
from .edm import EDM
from .regression import UNetRegression


class CorrDiff(EDM):
    name = "corrdiff"

    def __init__(self, in_channels: int, out_channels: int = 1, base_channels: int = 32, depth: int = 4,
                 prior: bool = True, sampler: str | None = None, p_mean: float = -1.2, p_std: float = 1.2,
                 sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, churn: float = 0.0,
                 backbone: str = "unet", dim_width: int = 144, dim_blocks: int = 9, patch_size: int = 4,
                 loss: str = "l1", spectral_weight: float = 0.3, target_norm: dict | None = None, npix: int = 0):
        # the denoiser's conditioning is the source and the mean: in_channels + out_channels maps
        super().__init__(in_channels + out_channels, out_channels, base_channels, depth, False, sampler, p_mean,
                         p_std, sigma_min, sigma_max, rho, churn, backbone, dim_width, dim_blocks, patch_size)
        self.in_channels = in_channels
        self.regression = UNetRegression(in_channels, out_channels, base_channels, depth, loss, spectral_weight,
                                         target_norm, npix, prior)

    def _clean(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """What is diffused: the residual to the regression mean."""
        return target - self.regression.generate(source).detach()

    def fit_prior(self, source, target) -> None:
        """The regression's monotone prior, then (edm's) the moments of the residual to the untrained mean
        (= that prior)."""
        self.regression.fit_prior(source, target)
        super().fit_prior(source, target)

    def make_optimizers(self, lr: float | None) -> list[torch.optim.Optimizer]:
        """Adam on the denoiser (index 0, lr or edm's 2e-4) and on the mean (1, lr or unet's 1e-3)."""
        return [*super().make_optimizers(lr), *self.regression.make_optimizers(lr)]

    @staticmethod
    def _condition(source: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        return torch.cat([source, mean], 1)

    def _residual_loss(self, source: torch.Tensor, target: torch.Tensor, mean: torch.Tensor,
                       gen: torch.Generator | None = None) -> torch.Tensor:
        """EDM's weighted loss on target - mean, the mean held fixed (detached)."""
        mean = mean.detach()
        return self.weighted_loss(target - mean, self._condition(source, mean), gen)

    def objective(self, source: torch.Tensor, target: torch.Tensor, gen: torch.Generator | None = None):
        """EDM's weighted loss on target - mean(source), the mean fixed."""
        return self._residual_loss(source, target, self.regression.generate(source), gen)

    def training_step(self, batch: dict, step: StepFn) -> dict[str, torch.Tensor]:
        """One step of the mean on its own loss, then one of the denoiser on the residual to that mean."""
        source, target = batch["source"], batch["target"]
        pred = self.regression.generate(source)
        reg = self.regression.losses(pred, target)
        step(1, reg["loss"])
        loss = self._residual_loss(source, target, pred)
        step(0, loss)
        return {"loss": loss, **{f"mean_{k}": v for k, v in reg.items()}}

    def validation_metrics(self, batch: dict) -> dict[str, torch.Tensor]:
        """``mean_l1``: L1 of the regression mean against the target (normalised units)."""
        return {"mean_l1": F.l1_loss(self.regression.generate(batch["source"]), batch["target"])}

    def chain(self, source: torch.Tensor, steps: int, gen: torch.Generator | None) -> torch.Tensor:
        mean = self.regression.generate(source)
        return mean + self.sample_clean(self._condition(source, mean), steps, gen)

    def nfe(self, steps: int | None = None) -> int:
        return super().nfe(steps) + 1
