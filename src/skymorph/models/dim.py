"""Diffusion Mamba (DiM, Teng+24) as a denoiser backbone: patch tokens mixed by Mamba blocks.

Mamba is a causal 1D scan, so a map's token grid is read as a sequence in four raster orders cycled
over the blocks (row forward, row backward, column forward, column backward); a learnable pad token
ends every row (column) of a row (column) scan, so the scan knows where a line of the map ends. A
depth-wise 3x3 convolution before and after the blocks adds the locality a scan lacks, and the
blocks are joined by U-ViT's long skips (in-block i feeds out-block i through a linear fusion).
Time conditioning: the time embedding is added to every token and also leads each scanned sequence
as a token of its own (as U-ViT's time token), so every causal scan sees it first.

The blocks are :mod:`mambapy`'s (pure PyTorch, runs on the CPU); where ``mamba_ssm`` is installed,
its CUDA selective scan runs instead on CUDA tensors with the same weights.
"""
from __future__ import annotations

import importlib.util
import math

import torch
from torch import nn

from ..errors import ConfigError
from .unet import time_features

#: The scan orders cycled over the blocks, in DiM's order.
SCANS = ("row forward", "row backward", "column forward", "column backward")


def scan(grid: torch.Tensor, order: int, pads: torch.Tensor) -> torch.Tensor:
    """Tokens (B, H, W, D) read as a sequence (B, L, D) in scan ``order`` (index into :data:`SCANS`):
    rows (columns for orders 2, 3) each followed by their pad token ``pads[order // 2]`` (D,), the
    whole sequence reversed for the backward orders. L = H (W + 1) for row scans, W (H + 1) for columns."""
    x = grid.transpose(1, 2) if order >= 2 else grid
    b, lines, length, d = x.shape
    x = torch.cat([x, pads[order // 2].expand(b, lines, 1, d)], dim=2).reshape(b, lines * (length + 1), d)
    return x.flip(1) if order % 2 else x


def unscan(seq: torch.Tensor, order: int, h: int, w: int) -> torch.Tensor:
    """The inverse of :func:`scan`: a sequence (B, L, D) back on the (B, H, W, D) grid, pads dropped."""
    x = seq.flip(1) if order % 2 else seq
    lines, length = (w, h) if order >= 2 else (h, w)
    x = x.reshape(len(seq), lines, length + 1, -1)[:, :, :length]
    return x.transpose(1, 2) if order >= 2 else x


def sincos_2d(h: int, w: int, dim: int) -> torch.Tensor:
    """Fixed 2D sine-cosine position embedding (H * W, dim): half the channels code the row, half the column."""
    quarter = dim // 4
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(quarter, dtype=torch.float32) / quarter)
    rows = torch.arange(h, dtype=torch.float32)[:, None] * freqs
    cols = torch.arange(w, dtype=torch.float32)[:, None] * freqs
    emb = torch.cat([torch.sin(rows)[:, None].expand(h, w, quarter), torch.cos(rows)[:, None].expand(h, w, quarter),
                     torch.sin(cols)[None].expand(h, w, quarter), torch.cos(cols)[None].expand(h, w, quarter)], -1)
    return torch.nn.functional.pad(emb, (0, dim - 4 * quarter)).reshape(h * w, dim)


def check_dim_shape(size: tuple[int, int], patch: int, where: str = "") -> None:
    """ConfigError (prefixed by ``where``) unless ``patch`` divides both map sides."""
    if size[0] % patch or size[1] % patch:
        raise ConfigError(f"{where}--patch-size {patch} does not divide the map size {size[0]}x{size[1]} "
                          f"(DiM cuts the map into patch x patch tokens)")


def _mambapy():
    try:
        from mambapy.mamba import MambaConfig, ResidualBlock
    except ImportError:
        raise ConfigError("backbone 'dim' needs mambapy (pure-PyTorch Mamba): pip install mambapy") from None
    return MambaConfig, ResidualBlock


class DiffusionMamba(nn.Module):
    """DiM denoiser: input (N, in_channels, H, W), times t (N,) in [0, 1]; output (N, out_channels, H, W).

    ``width``: token dimension; ``blocks``: Mamba blocks (odd: ``blocks // 2`` in, one middle, ``blocks // 2``
    out, joined by long skips); ``patch``: pixels per token side (must divide H and W). The last
    convolution starts at zero, so an untrained network adds nothing (as the U-Net's output layer).
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 144, blocks: int = 9, patch: int = 4,
                 d_state: int = 16):
        super().__init__()
        if blocks < 1 or blocks % 2 == 0:
            raise ConfigError(f"--dim-blocks must be odd and positive (in, middle, out blocks), got {blocks}")
        if patch < 1 or width < 8:
            raise ConfigError(f"DiM needs patch >= 1 and width >= 8, got patch {patch}, width {width}")
        MambaConfig, ResidualBlock = _mambapy()
        cuda_scan = importlib.util.find_spec("mamba_ssm") is not None and torch.cuda.is_available()
        self.config = MambaConfig(d_model=width, n_layers=1, d_state=d_state, use_cuda=cuda_scan)
        self.cuda_scan = self.config.use_cuda  # mambapy falls back if mamba_ssm fails to import
        self.patch, self.width, self.out_channels = patch, width, out_channels
        self.embed = nn.Conv2d(in_channels, width, patch, stride=patch)
        self.local_in = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.local_out = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.pads = nn.Parameter(0.02 * torch.randn(2, width))  # row end, column end
        self.time_mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.SiLU(), nn.Linear(4 * width, width))
        self.blocks = nn.ModuleList(ResidualBlock(self.config) for _ in range(blocks))
        self.fuse = nn.ModuleList(nn.Linear(2 * width, width) for _ in range(blocks // 2))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, patch * patch * out_channels)
        self.final = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.final.weight)
        nn.init.zeros_(self.final.bias)

    def _block(self, i: int, grid: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        order = i % len(SCANS)
        h, w = grid.shape[1:3]
        seq = torch.cat([temb[:, None], scan(grid, order, self.pads)], dim=1)
        return unscan(self.blocks[i](seq)[:, 1:], order, h, w)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        check_dim_shape(tuple(x.shape[-2:]), self.patch)
        self.config.use_cuda = self.cuda_scan and x.is_cuda  # CUDA scan on CUDA tensors only (same weights)
        temb = self.time_mlp(time_features(t.expand(len(x)), self.width))
        tokens = self.local_in(self.embed(x))  # (N, D, h, w)
        n, d, h, w = tokens.shape
        grid = tokens.permute(0, 2, 3, 1) + sincos_2d(h, w, d).to(x).view(1, h, w, d) + temb[:, None, None]
        half = len(self.blocks) // 2
        skips = []
        for i in range(half):
            grid = self._block(i, grid, temb)
            skips.append(grid)
        grid = self._block(half, grid, temb)
        for j in range(half):
            grid = self.fuse[j](torch.cat([grid, skips.pop()], dim=-1))
            grid = self._block(half + 1 + j, grid, temb)
        grid = self.local_out(grid.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        out = self.head(self.norm(grid)).view(n, h, w, self.out_channels, self.patch, self.patch)
        out = out.permute(0, 3, 1, 4, 2, 5).reshape(n, self.out_channels, h * self.patch, w * self.patch)
        return self.final(out)
