"""U-Net regression (L1 or L2 on normalised log maps, optionally plus the spectral term of
:class:`~skymorph.methods.losses.SpectralLoss`): the baseline every generative method must beat."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import UNet
from .base import StepFn, TranslationMethod
from .losses import spectral_loss


class UNetRegression(TranslationMethod):
    name = "unet"

    def __init__(self, in_channels: int, out_channels: int = 1, base_channels: int = 32, depth: int = 4,
                 loss: str = "l1", spectral_weight: float = 0.3, target_norm: dict | None = None, npix: int = 0,
                 prior: bool = True):
        super().__init__(in_channels, out_channels, prior)
        self.net = UNet(in_channels, out_channels, base_channels, depth)
        self.loss = {"l1": F.l1_loss, "l2": F.mse_loss}[loss]
        self.spectral = spectral_loss(target_norm, npix, spectral_weight)
        self.spectral_weight = spectral_weight

    def losses(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The pixel term, the spectral one (if weighted) and their sum ``loss``."""
        losses = {"pixel": self.loss(pred, target)}
        if self.spectral is not None:
            losses["spectral"] = self.spectral(pred, target)
        return {"loss": losses["pixel"] + self.spectral_weight * losses.get("spectral", 0.0), **losses}

    def training_step(self, batch: dict, step: StepFn) -> dict[str, torch.Tensor]:
        losses = self.losses(self.generate(batch["source"]), batch["target"])
        step(0, losses["loss"])
        return losses
