"""A per-pixel monotone fit of (normalised) log target against log source: the non-deep reference,
and the prior the networks learn a correction to."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from scipy.optimize import isotonic_regression
from scipy.stats import spearmanr



class MonotoneBaseline(nn.Module):
    """Isotonic regression of target on the first source channel over train-split pixels.

    Pixels are binned in ``n_knots`` source quantiles; the bin means of the target are made monotone
    (increasing or decreasing, whichever the Spearman sign says) by scipy's isotonic regression
    weighted by counts; translation interpolates linearly between knots (constant beyond).
    """

    def __init__(self, in_channels: int, out_channels: int = 1, n_knots: int = 256):
        super().__init__()
        self.register_buffer("x_knots", torch.zeros(n_knots, dtype=torch.float64))
        self.register_buffer("y_knots", torch.zeros(n_knots, dtype=torch.float64))

    def fit(self, source: np.ndarray, target: np.ndarray) -> None:
        """source (N, C, H, W), target (N, 1, H, W), normalised train maps."""
        x, y = np.asarray(source)[:, 0].ravel().astype(np.float64), np.asarray(target)[:, 0].ravel().astype(np.float64)
        edges = np.unique(np.quantile(x, np.linspace(0, 1, len(self.x_knots) + 1)))
        which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
        counts = np.bincount(which, minlength=len(edges) - 1).astype(np.float64)
        keep = counts > 0
        xm = np.bincount(which, x, len(counts))[keep] / counts[keep]
        ym = np.bincount(which, y, len(counts))[keep] / counts[keep]
        increasing = bool(spearmanr(x, y).statistic >= 0) if np.ptp(x) > 0 else True
        yfit = isotonic_regression(ym, weights=counts[keep], increasing=increasing).x
        n = len(self.x_knots)
        self.x_knots.copy_(torch.from_numpy(np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(xm)), xm)))
        self.y_knots.copy_(torch.from_numpy(np.interp(self.x_knots.numpy(), xm, yfit)))

    def apply(self, source: torch.Tensor) -> torch.Tensor:
        """The fitted map of the first source channel: (N, C, H, W) -> (N, 1, H, W); piecewise linear,
        so gradients with respect to the source flow through it (attributions of a generator)."""
        x = source[:, :1].double().clamp(self.x_knots[0], self.x_knots[-1])
        i = torch.searchsorted(self.x_knots, x.contiguous()).clamp(1, len(self.x_knots) - 1)
        x0, x1, y0, y1 = self.x_knots[i - 1], self.x_knots[i], self.y_knots[i - 1], self.y_knots[i]
        w = torch.where(x1 > x0, (x - x0) / (x1 - x0).clamp(min=1e-300), torch.zeros_like(x))
        return (y0 + w * (y1 - y0)).to(source.dtype)


