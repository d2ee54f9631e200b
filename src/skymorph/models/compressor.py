"""A CNN compressor: maps (B, C, H, W) -> a few summaries (B, F), for learned inference summaries."""
from __future__ import annotations

import torch
from torch import nn


class Compressor(nn.Module):
    """Strided 3x3 convolutions (circular padding: translation-equivariant on periodic maps) halving the
    map down to 4x4 pixels, global mean pooling, and a two-layer MLP to ``features`` outputs. With
    ``extra`` > 0 the MLP also takes ``extra`` given numbers per map (e.g. the map's power spectrum)
    beside the pooled features."""

    def __init__(self, in_channels: int, features: int, npix: int, base: int = 16, extra: int = 0):
        super().__init__()
        layers, ch, size = [], in_channels, npix
        width = base
        while size > 4:
            layers += [nn.Conv2d(ch, width, 3, padding=1, padding_mode="circular"), nn.GELU(),
                       nn.Conv2d(width, width, 3, stride=2, padding=1, padding_mode="circular"), nn.GELU()]
            ch, size, width = width, (size + 1) // 2, min(width * 2, base * 8)
        self.conv = nn.Sequential(*layers)
        self.extra = extra
        self.head = nn.Sequential(nn.Linear(ch + extra, 128), nn.GELU(), nn.Linear(128, features))

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv(x).mean(dim=(-2, -1))
        if self.extra:
            if extra is None or extra.shape != (len(x), self.extra):
                raise ValueError(f"compressor built for {self.extra} extra inputs per map; got "
                                 f"{None if extra is None else tuple(extra.shape)}")
            h = torch.cat([h, extra], 1)
        return self.head(h)
