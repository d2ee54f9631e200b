"""U-Net regression (L1 or L2): the baseline every generative method must beat on pixel metrics."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import UNet
from .base import StepFn, TranslationMethod


class UNetRegression(TranslationMethod):
    name = "unet"

    def __init__(self, in_channels: int, out_channels: int = 1, base_channels: int = 32, depth: int = 4,
                 loss: str = "l1", **_):
        super().__init__(in_channels, out_channels)
        self.net = UNet(in_channels, out_channels, base_channels, depth)
        self.loss = {"l1": F.l1_loss, "l2": F.mse_loss}[loss]

    def make_optimizers(self, lr: float | None) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.net.parameters(), lr=lr or 1e-3)]

    def training_step(self, batch: dict, step: StepFn) -> dict[str, torch.Tensor]:
        loss = self.loss(self.net(batch["source"]), batch["target"])
        step(0, loss)
        return {"loss": loss}
