"""Summary statistics of maps for inference: the binned power spectrum (optionally with peak counts).

The summary of a map x is s(x) = log10 of its power in log-spaced |k| bins (and, with peaks, the
number of local maxima of the map per bin of height in units of the training maps' pixel rms). For
inference the summary need not be an unbiased estimator of anything: the same function is applied
to the simulations and to the observation, so no window is applied and no mask is corrected for
(the simulator's mask and noise are in the maps already). A summary is worth what the posterior
it yields is worth: the figure of merit of :mod:`skymorph.infer.validate` measures it.

Learned summaries (a CNN trained by variational mutual-information maximisation) are in
:mod:`skymorph.infer.vmim`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.fft
import scipy.ndimage

from ..errors import ConfigError

__all__ = ["PowerSummary"]


@dataclass
class PowerSummary:
    """log10 of the mean power of the Fourier modes in ``bins`` log-spaced |k| bins from the fundamental
    to Nyquist (bins holding no mode dropped; the lowest hold single rings of modes), of each channel; with ``peaks`` > 0 also the counts of local maxima in ``peaks`` height bins.
    ``pixel_size`` in the file's unit (radians for convergence maps, so that k is the multipole ell)."""

    npix: int
    pixel_size: float
    bins: int = 12
    peaks: int = 0
    peak_rms: float = 0.0  # pixel rms of the training maps: peak heights are counted in its units

    def __post_init__(self):
        if self.bins < 2:
            raise ConfigError(f"--pk-bins {self.bins}: need at least 2 bins")
        if self.peaks < 0:
            raise ConfigError(f"--peaks {self.peaks}: must be 0 (no peak counts) or a number of height bins")
        n, d = self.npix, self.pixel_size
        k = 2 * np.pi * np.hypot(np.fft.fftfreq(n, d)[:, None], np.fft.rfftfreq(n, d)[None, :])
        mult = np.full(k.shape, 2.0)  # an rfft column stands for two modes of the full plane ...
        mult[:, 0] = 1.0  # ... except kx = 0 and, for even n, kx = Nyquist
        if n % 2 == 0:
            mult[:, -1] = 1.0
        kf, kn = 2 * np.pi / (n * d), np.pi / d
        edges = np.geomspace(kf * (1 - 1e-9), kn * (1 + 1e-9), self.bins + 1)
        idx = np.searchsorted(edges, k.ravel(), side="right") - 1
        keep = (idx >= 0) & (idx < self.bins) & (k.ravel() > 0)
        used, idx = np.unique(idx[keep], return_inverse=True)  # bins holding no mode are dropped
        if len(used) < 2:
            raise ConfigError(f"map of {n} pixels: too small for a binned power spectrum")
        self._keep = keep
        weights = np.zeros((int(keep.sum()), len(used)))
        weights[np.arange(len(idx)), idx] = mult.ravel()[keep]
        self._weights = weights / weights.sum(0)  # mean over the full-plane modes of each bin
        self.k_edges = edges[np.r_[used, used[-1] + 1]]

    @property
    def config(self) -> dict:
        return asdict(self)

    def fit(self, maps: np.ndarray) -> "PowerSummary":
        """Set the peak-height unit from training maps (N, C, H, W)."""
        self.peak_rms = float(np.sqrt(np.mean(np.asarray(maps, np.float64) ** 2)))
        return self

    def __call__(self, maps: np.ndarray) -> np.ndarray:
        """Summaries (N, D) float32 of maps (N, C, H, W)."""
        maps = np.asarray(maps, np.float64)
        if maps.ndim != 4 or maps.shape[-1] != self.npix:
            raise ConfigError(f"maps of shape {maps.shape}: expected (N, C, {self.npix}, {self.npix})")
        f = scipy.fft.rfftn(maps - maps.mean(axis=(-2, -1), keepdims=True), axes=(-2, -1))
        power = (f.real**2 + f.imag**2).reshape(*maps.shape[:2], -1)[..., self._keep] * self.pixel_size**2 / self.npix**2
        binned = power @ self._weights  # (N, C, bins), the convention of skymorph.fields
        parts = [np.log10(np.maximum(binned, np.finfo(np.float64).tiny)).reshape(len(maps), -1)]
        if self.peaks:
            parts.append(self._peak_counts(maps))
        return np.concatenate(parts, 1).astype(np.float32)

    def _peak_counts(self, maps: np.ndarray) -> np.ndarray:
        """Local maxima (3 x 3, periodic) per height bin from 0 to 5 pixel rms of the training maps."""
        if self.peak_rms <= 0:
            raise ConfigError("peak counts need the training maps' rms: call fit() first")
        edges = np.linspace(0.0, 5.0, self.peaks + 1) * self.peak_rms
        top = scipy.ndimage.maximum_filter(maps, size=(1, 1, 3, 3), mode="wrap")
        out = np.empty((len(maps), maps.shape[1], self.peaks))
        for i, (m, t) in enumerate(zip(maps, top)):
            for c in range(m.shape[0]):
                heights = m[c][m[c] == t[c]]
                out[i, c] = np.histogram(heights, edges)[0]
        return out.reshape(len(maps), -1)
