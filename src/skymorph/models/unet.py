"""U-Net (Ronneberger+15) for map-to-map regression and as the pix2pix generator."""
from __future__ import annotations

import torch
from torch import nn


def _norm(ch: int) -> nn.Module:
    return nn.GroupNorm(min(8, ch), ch)


class ConvBlock(nn.Module):
    """Two 3x3 convolutions, each followed by GroupNorm and SiLU; optional dropout in between."""

    def __init__(self, cin: int, cout: int, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), _norm(cout), nn.SiLU(),
                                  nn.Dropout2d(dropout) if dropout else nn.Identity(),
                                  nn.Conv2d(cout, cout, 3, padding=1), _norm(cout), nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UNet(nn.Module):
    """Encoder-decoder with skip connections: ``depth`` stride-2 downsamplings, channels doubling from ``base``.

    Input (N, in_channels, H, W) with H, W divisible by 2**depth; output (N, out_channels, H, W).
    The output convolution starts at zero, so an untrained network adds nothing to the prior it
    corrects (see :meth:`skymorph.methods.base.TranslationMethod.generate`).
    """

    def __init__(self, in_channels: int, out_channels: int, base: int = 32, depth: int = 4, dropout: float = 0.0):
        super().__init__()
        chans = [base * 2 ** min(i, 3) for i in range(depth + 1)]
        self.depth = depth
        self.inc = ConvBlock(in_channels, chans[0])
        self.down = nn.ModuleList(nn.Sequential(nn.Conv2d(chans[i], chans[i], 4, stride=2, padding=1),
                                                ConvBlock(chans[i], chans[i + 1], dropout if i == depth - 1 else 0.0))
                                  for i in range(depth))
        self.up = nn.ModuleList(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False) for _ in range(depth))
        self.dec = nn.ModuleList(ConvBlock(chans[i + 1] + chans[i], chans[i], dropout if i == depth - 1 else 0.0)
                                 for i in range(depth))
        self.out = nn.Conv2d(chans[0], out_channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2**self.depth or x.shape[-2] % 2**self.depth:
            raise ValueError(f"map size {tuple(x.shape[-2:])} not divisible by 2**depth = {2 ** self.depth}")
        skips = [self.inc(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = skips.pop()
        for i in reversed(range(self.depth)):
            h = self.dec[i](torch.cat([self.up[i](h), skips.pop()], dim=1))
        return self.out(h)
