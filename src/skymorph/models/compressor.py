"""A CNN compressor: maps (B, C, H, W) -> a few summaries (B, F), for learned inference summaries."""
from __future__ import annotations

import torch
from torch import nn


class Compressor(nn.Module):
    """Strided 3x3 convolutions (circular padding: translation-equivariant on periodic maps) halving the
    map down to 4x4 pixels, global mean pooling, and a two-layer MLP to ``features`` outputs."""

    def __init__(self, in_channels: int, features: int, npix: int, base: int = 16):
        super().__init__()
        layers, ch, size = [], in_channels, npix
        width = base
        while size > 4:
            layers += [nn.Conv2d(ch, width, 3, padding=1, padding_mode="circular"), nn.GELU(),
                       nn.Conv2d(width, width, 3, stride=2, padding=1, padding_mode="circular"), nn.GELU()]
            ch, size, width = width, (size + 1) // 2, min(width * 2, base * 8)
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(ch, 128), nn.GELU(), nn.Linear(128, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(-2, -1)))
