"""CycleGAN (Zhu+17): unpaired translation with two U-Net generators (A -> B, B -> A), two PatchGAN
discriminators, LSGAN losses, cycle consistency (weight ``lambda_cycle``, 10), identity loss
(``lambda_identity`` x the cycle weight, 0.5, when both domains have the same number of channels) and a
pool of ``pool_size`` (50) past fakes per discriminator.

Training and validation batches are unpaired (``paired = False``: source and target views of different
galaxies), and the validation loss that chooses ``best.ckpt`` is the cycle error, which needs no pairs.
The generators learn from scratch, without the monotone pixel prior: that map is fitted on paired
pixels, and an unpaired method must not see the pairing. ``translate`` runs A -> B; :meth:`reverse`
gives the same trained model running B -> A.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ..models import PatchGAN, UNet
from .base import StepFn, TranslationMethod
from .pix2pix import gan_loss


class ImagePool:
    """The last ``size`` fakes: a query returns, per image, the new fake or (with probability 1/2
    once the pool is full) a stored older one, which the new fake replaces (Shrivastava+17)."""

    def __init__(self, size: int = 50):
        self.size, self.images = size, []

    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        out = []
        for img in fakes.detach():
            if len(self.images) < self.size:
                self.images.append(img)
                out.append(img)
            elif torch.rand(()) < 0.5:
                i = int(torch.randint(self.size, ()))
                out.append(self.images[i])
                self.images[i] = img
            else:
                out.append(img)
        return torch.stack(out)


class CycleGAN(TranslationMethod):
    name = "cyclegan"
    paired = False

    def __init__(self, in_channels: int, out_channels: int = 1, base_channels: int = 32, depth: int = 4,
                 d_base: int = 64, lambda_cycle: float = 10.0, lambda_identity: float = 0.5, pool_size: int = 50):
        super().__init__(in_channels, out_channels, prior=False)
        self.net = UNet(in_channels, out_channels, base_channels, depth)  # A -> B, the one translate uses
        self.net_ba = UNet(out_channels, in_channels, base_channels, depth)
        for gen in (self.net, self.net_ba):  # no prior to start from: the default init, not the U-Net's zeros
            gen.out.reset_parameters()
        self.disc_a, self.disc_b = PatchGAN(in_channels, d_base), PatchGAN(out_channels, d_base)
        self.lambda_cycle = lambda_cycle
        self.lambda_identity = lambda_identity if in_channels == out_channels else 0.0  # G_AB(b) needs A's channels
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)

    def make_optimizers(self, lr: float | None) -> list[torch.optim.Optimizer]:
        lr = lr or 2e-4
        gens = [*self.net.parameters(), *self.net_ba.parameters()]
        discs = [*self.disc_a.parameters(), *self.disc_b.parameters()]
        return [torch.optim.Adam(gens, lr=lr, betas=(0.5, 0.999)), torch.optim.Adam(discs, lr=lr, betas=(0.5, 0.999))]

    def training_step(self, batch: dict, step: StepFn) -> dict[str, torch.Tensor]:
        a, b = batch["source"], batch["target"]
        fake_b, fake_a = self.net(a), self.net_ba(b)
        loss_gan = gan_loss(self.disc_b(fake_b), True, "lsgan") + gan_loss(self.disc_a(fake_a), True, "lsgan")
        loss_cycle = F.l1_loss(self.net_ba(fake_b), a) + F.l1_loss(self.net(fake_a), b)
        loss_g = loss_gan + self.lambda_cycle * loss_cycle
        losses = {"loss_gan": loss_gan, "loss_cycle": loss_cycle}
        if self.lambda_identity:
            losses["loss_identity"] = F.l1_loss(self.net(b), b) + F.l1_loss(self.net_ba(a), a)
            loss_g = loss_g + self.lambda_cycle * self.lambda_identity * losses["loss_identity"]
        step(0, loss_g)
        loss_d = 0.0
        for disc, real, pool, fake in ((self.disc_a, a, self.pool_a, fake_a), (self.disc_b, b, self.pool_b, fake_b)):
            loss_d = loss_d + 0.5 * (gan_loss(disc(real), True, "lsgan")
                                     + gan_loss(disc(pool.query(fake)), False, "lsgan"))
        step(1, loss_d)
        return {"loss": loss_g, "loss_d": loss_d, **losses}

    def validation_loss(self, batch: dict) -> torch.Tensor:
        """The cycle error (:meth:`validation_metrics`): an unpaired signal, unlike the L1 to a target."""
        return self.validation_metrics(batch)["cycle_error"]

    @torch.no_grad()
    def validation_metrics(self, batch: dict) -> dict[str, torch.Tensor]:
        """``cycle_error``: mean L1 (normalised log units) of A -> B -> A and B -> A -> B reconstructions."""
        a, b = batch["source"], batch["target"]
        rec_a, rec_b = self.net_ba(self.net(a)), self.net(self.net_ba(b))
        return {"cycle_error": 0.5 * (torch.mean(torch.abs(rec_a - a)) + torch.mean(torch.abs(rec_b - b)))}

    def discriminators(self) -> dict:
        return {"source": self.disc_a, "target": self.disc_b}

    def reverse(self) -> "CycleGAN":
        """The same trained model translating B -> A (generators and discriminators swap roles)."""
        rev = copy.deepcopy(self)
        rev.net, rev.net_ba, rev.disc_a, rev.disc_b = rev.net_ba, rev.net, rev.disc_b, rev.disc_a
        rev.in_channels, rev.out_channels = self.out_channels, self.in_channels
        rev.pool_a, rev.pool_b = rev.pool_b, rev.pool_a
        return rev
