"""PatchGAN discriminator (Isola+17): a grid of real/fake logits, one per overlapping input patch."""
from __future__ import annotations

import torch
from torch import nn


class PatchGAN(nn.Module):
    """C64-C128-C256-C512 4x4 convolutions (first three stride 2), then a 1-channel 4x4 conv.

    With ``n_layers=3`` each output logit sees a 70x70 input patch. ``in_channels`` is source plus
    target channels for the conditional discriminator of pix2pix.
    """

    def __init__(self, in_channels: int, base: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        ch = base
        for i in range(1, n_layers + 1):
            nxt = base * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(ch, nxt, 4, stride=stride, padding=1), nn.InstanceNorm2d(nxt, affine=True),
                       nn.LeakyReLU(0.2)]
            ch = nxt
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @staticmethod
    def receptive_field(n_layers: int = 3) -> int:
        """Input pixels seen by one output logit (70 for n_layers = 3): all kernels 4x4."""
        rf = 1
        for stride in reversed([2] * n_layers + [1, 1]):
            rf = (rf - 1) * stride + 4
        return rf
