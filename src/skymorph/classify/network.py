"""The image classifier of Bustard & Wu (2024): four [3x3 convolution stride 2, batch norm, SiLU] blocks
(8, 16, 32, 64 channels), global average pooling, dropout and a linear head giving class logits."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["Classifier", "flatten_spectrum"]


class Classifier(nn.Module):
    def __init__(self, n_classes: int, channels: int = 1, width: int = 8, dropout: float = 0.2):
        super().__init__()
        blocks, c_in = [], channels
        for i in range(4):
            c_out = width * 2 ** i
            blocks += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.SiLU()]
            c_in = c_out
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_in, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) of normalised images (N, C, H, W)."""
        return self.head(self.features(x))


def flatten_spectrum(x: np.ndarray) -> np.ndarray:
    """Phase-only images: each (..., H, W) image's Fourier transform divided by its modulus, transformed
    back and standardised per image (the experiment of Bustard & Wu: only the phases remain)."""
    f = np.fft.fft2(np.asarray(x, np.float64))
    out = np.fft.ifft2(f / np.maximum(np.abs(f), 1e-300)).real
    out -= out.mean(axis=(-2, -1), keepdims=True)
    return (out / np.maximum(out.std(axis=(-2, -1), keepdims=True), 1e-300)).astype(np.float32)
