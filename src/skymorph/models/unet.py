"""U-Net (Ronneberger+15) for map-to-map regression, as the pix2pix generator and, with a time
embedding, as the denoiser of the diffusion-family methods."""
from __future__ import annotations

import math

import torch
from torch import nn


def _norm(ch: int) -> nn.Module:
    return nn.GroupNorm(min(8, ch), ch)


class ConvBlock(nn.Module):
    """Two 3x3 convolutions, each followed by GroupNorm and SiLU; optional dropout in between.

    With ``emb_dim``, the output is modulated by the time embedding (FiLM: h (1 + scale) + shift,
    starting as the identity)."""

    def __init__(self, cin: int, cout: int, dropout: float = 0.0, emb_dim: int = 0):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), _norm(cout), nn.SiLU(),
                                  nn.Dropout2d(dropout) if dropout else nn.Identity(),
                                  nn.Conv2d(cout, cout, 3, padding=1), _norm(cout), nn.SiLU())
        self.film = nn.Linear(emb_dim, 2 * cout) if emb_dim else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(x)
        if self.film is None:
            return h
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        return h * (1 + scale) + shift


def time_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features (N, dim) of times t in [0, 1] (scaled by 1000, as in DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    arg = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class UNet(nn.Module):
    """Encoder-decoder with skip connections: ``depth`` stride-2 downsamplings, channels doubling from ``base``.

    Input (N, in_channels, H, W) with H, W divisible by 2**depth; output (N, out_channels, H, W).
    The output convolution starts at zero, so an untrained network adds nothing to the prior it
    corrects (see :meth:`skymorph.methods.base.TranslationMethod.generate`). With ``time_embed``,
    ``forward(x, t)`` also takes times t (N,) in [0, 1] (diffusion time or InDI degradation level).
    """

    def __init__(self, in_channels: int, out_channels: int, base: int = 32, depth: int = 4, dropout: float = 0.0,
                 time_embed: bool = False):
        super().__init__()
        chans = [base * 2 ** min(i, 3) for i in range(depth + 1)]
        self.depth = depth
        emb = 4 * base if time_embed else 0
        self.time_mlp = (nn.Sequential(nn.Linear(base, emb), nn.SiLU(), nn.Linear(emb, emb))
                         if time_embed else None)
        self.inc = ConvBlock(in_channels, chans[0], emb_dim=emb)
        self.down = nn.ModuleList(nn.Sequential(nn.Conv2d(chans[i], chans[i], 4, stride=2, padding=1),
                                                ConvBlock(chans[i], chans[i + 1], dropout if i == depth - 1 else 0.0,
                                                          emb))
                                  for i in range(depth))
        self.up = nn.ModuleList(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False) for _ in range(depth))
        self.dec = nn.ModuleList(ConvBlock(chans[i + 1] + chans[i], chans[i], dropout if i == depth - 1 else 0.0, emb)
                                 for i in range(depth))
        self.out = nn.Conv2d(chans[0], out_channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[-1] % 2**self.depth or x.shape[-2] % 2**self.depth:
            raise ValueError(f"map size {tuple(x.shape[-2:])} not divisible by 2**depth = {2 ** self.depth}")
        if (t is None) != (self.time_mlp is None):
            raise ValueError("a time-embedded U-Net needs times t, a plain one takes none")
        emb = None if t is None else self.time_mlp(time_features(t.expand(len(x)), self.time_mlp[0].in_features))
        skips = [self.inc(x, emb)]
        for pool, block in self.down:
            skips.append(block(pool(skips[-1]), emb))
        h = skips.pop()
        for i in reversed(range(self.depth)):
            h = self.dec[i](torch.cat([self.up[i](h), skips.pop()], dim=1), emb)
        return self.out(h)
