"""Physics-aware training losses shared by the translation methods."""
from __future__ import annotations


import torch
from torch import nn


class SpectralLoss(nn.Module):
    """Mean |log10 P_pred(k) - log10 P_true(k)| of the PHYSICAL maps, over azimuthal k bins.

    Maps arrive normalised, z = (log10(x + eps) - mean) / std; they are inverted to physical values,
    mean-subtracted, Hann-windowed and Fourier transformed, and the power is averaged in linear
    |k| bins from the fundamental to Nyquist (the conventions of :func:`skymorph.fields.power_spectrum`).
    L1 on log maps alone fits the conditional median pixel by pixel: it blurs and shrinks the bright
    clumps, which dominate the power of physical maps; this term holds the power at every scale.
    """

    def __init__(self, npix: int, eps: float, mean: float, std: float):
        super().__init__()
        self.eps, self.mean, self.std = eps, mean, std
        win = torch.hann_window(npix, periodic=True, dtype=torch.float64)
        self.register_buffer("window", (win[:, None] * win[None, :]).float(), persistent=False)
        ky = torch.fft.fftfreq(npix) * npix
        kx = torch.fft.rfftfreq(npix) * npix
        kk = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
        nbins = npix // 2
        which = torch.round(kk).long()  # bin b holds |k| in [b - 1/2, b + 1/2) fundamental units
        valid = (which >= 1) & (which <= nbins)
        onehot = torch.zeros(nbins, *kk.shape)
        onehot[which[valid] - 1, valid.nonzero(as_tuple=True)[0], valid.nonzero(as_tuple=True)[1]] = 1.0
        self.register_buffer("bins", onehot / onehot.sum((1, 2), keepdim=True).clamp(min=1), persistent=False)

    def physical(self, z: torch.Tensor) -> torch.Tensor:
        return torch.pow(10.0, z.double() * self.std + self.mean) - self.eps

    def power(self, z: torch.Tensor) -> torch.Tensor:
        x = self.physical(z)[:, 0]
        x = (x - x.mean((-2, -1), keepdim=True)) * self.window
        p = torch.fft.rfft2(x).abs() ** 2
        return torch.einsum("nyx,byx->nb", p, self.bins.double())

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pp, pt = self.power(pred), self.power(target)
        tiny = 1e-30 * pt.amax(-1, keepdim=True) + 1e-300
        return torch.mean(torch.abs(torch.log10(pp + tiny) - torch.log10(pt + tiny))).float()


def spectral_loss(target_norm: dict | None, npix: int, weight: float) -> SpectralLoss | None:
    """The spectral term when a weight and the target's normalisation are given, else None."""
    if not weight or not target_norm or not npix:
        return None
    return SpectralLoss(npix, **target_norm)


__all__ = ["SpectralLoss", "spectral_loss"]
