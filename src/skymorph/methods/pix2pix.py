"""pix2pix (Isola+17): U-Net generator, conditional PatchGAN discriminator, GAN + lambda_L1 * L1
(optionally L1 + the spectral term of :class:`~skymorph.methods.losses.SpectralLoss`, both weighted by lambda_L1)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import PatchGAN, UNet
from .base import StepFn, TranslationMethod
from .losses import spectral_loss


def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    """'vanilla': binary cross-entropy on logits; 'lsgan': least squares to 1 (real) or 0 (fake)."""
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


class Pix2Pix(TranslationMethod):
    name = "pix2pix"
    conditional_disc = True

    def __init__(self, in_channels: int, out_channels: int = 1, base_channels: int = 32, depth: int = 4,
                 d_base: int = 64, gan_mode: str = "vanilla", lambda_l1: float = 100.0, spectral_weight: float = 0.3,
                 target_norm: dict | None = None, npix: int = 0, prior: bool = True):
        super().__init__(in_channels, out_channels, prior)
        self.spectral = spectral_loss(target_norm, npix, spectral_weight)
        self.spectral_weight = spectral_weight
        self.net = UNet(in_channels, out_channels, base_channels, depth)
        self.disc = PatchGAN(in_channels + out_channels, d_base)
        self.gan_mode, self.lambda_l1 = gan_mode, lambda_l1

    def make_optimizers(self, lr: float | None) -> list[torch.optim.Optimizer]:
        lr = lr or 2e-4
        return [torch.optim.Adam(self.net.parameters(), lr=lr, betas=(0.5, 0.999)),
                torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.5, 0.999))]

    def training_step(self, batch: dict, step: StepFn) -> dict[str, torch.Tensor]:
        src, tgt = batch["source"], batch["target"]
        fake = self.generate(src)
        d_real = self.disc(torch.cat([src, tgt], 1))
        d_fake = self.disc(torch.cat([src, fake.detach()], 1))
        loss_d = 0.5 * (gan_loss(d_real, True, self.gan_mode) + gan_loss(d_fake, False, self.gan_mode))
        step(1, loss_d)
        loss_gan = gan_loss(self.disc(torch.cat([src, fake], 1)), True, self.gan_mode)
        loss_l1 = F.l1_loss(fake, tgt)
        extra = {}
        if self.spectral is not None:
            extra["spectral"] = self.spectral(fake, tgt)
        loss_g = loss_gan + self.lambda_l1 * (loss_l1 + self.spectral_weight * extra.get("spectral", 0.0))
        step(0, loss_g)
        return {"loss": loss_g, "loss_d": loss_d, "loss_gan": loss_gan, "loss_l1": loss_l1, **extra}

    def discriminators(self) -> dict:
        return {"target": self.disc}
