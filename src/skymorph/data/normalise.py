"""Invertible per-domain normalisation: z = (log10(x + eps) - mean) / std (DESIGN.md section 6)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


DYNAMIC_RANGE = 1e-4


@dataclass(frozen=True)
class LogStandardise:
    """log10(x + eps), standardised with train-split statistics; ``inverse`` returns physical values."""

    eps: float
    mean: float
    std: float

    @classmethod
    def fit(cls, maps: np.ndarray) -> "LogStandardise":
        """Statistics from maps of one domain.

        eps = 1e-4 × the 99.9th percentile of positive pixels: models and log metrics resolve the
        top four decades of a map, not the (unobservable) far tails of halo HI or stellar light.
        """
        x = np.asarray(maps, dtype=np.float64)
        pos = x[x > 0]
        eps = DYNAMIC_RANGE * float(np.percentile(pos, 99.9)) if pos.size else 1.0
        z = np.log10(x + eps)
        std = float(z.std())
        return cls(eps, float(z.mean()), std if std > 0 else 1.0)

    def forward(self, x):
        return (np.log10(np.asarray(x, dtype=np.float64) + self.eps) - self.mean) / self.std

    def inverse(self, z):
        return 10.0 ** (np.asarray(z, dtype=np.float64) * self.std + self.mean) - self.eps

    def as_attrs(self) -> dict:
        return {"norm_eps": self.eps, "norm_mean": self.mean, "norm_std": self.std,
                "norm_transform": "z = (log10(x + eps) - mean) / std"}

    @classmethod
    def from_attrs(cls, attrs) -> "LogStandardise":
        return cls(float(attrs["norm_eps"]), float(attrs["norm_mean"]), float(attrs["norm_std"]))
