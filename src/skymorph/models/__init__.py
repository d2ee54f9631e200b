"""Plain ``nn.Module`` networks: U-Net generator and denoiser, Diffusion Mamba denoiser, PatchGAN
discriminator, CNN compressor."""
from torch import nn

from ..errors import ConfigError
from .compressor import Compressor
from .dim import DiffusionMamba
from .patchgan import PatchGAN
from .unet import UNet

#: Denoiser backbones of the diffusion family (``--backbone``).
BACKBONES = ("unet", "dim")


def denoiser(backbone: str, in_channels: int, out_channels: int, base_channels: int = 32, depth: int = 4,
             dim_width: int = 144, dim_blocks: int = 9, patch_size: int = 4) -> nn.Module:
    """The time-conditioned network ``net(x, t)`` of a diffusion-family method: a U-Net (``base_channels``,
    ``depth``) or a Diffusion Mamba (``dim_width``, ``dim_blocks``, ``patch_size``)."""
    if backbone == "unet":
        return UNet(in_channels, out_channels, base_channels, depth, time_embed=True)
    if backbone == "dim":
        return DiffusionMamba(in_channels, out_channels, dim_width, dim_blocks, patch_size)
    raise ConfigError(f"unknown backbone {backbone!r}; expected one of {', '.join(BACKBONES)}")


__all__ = ["UNet", "DiffusionMamba", "PatchGAN", "Compressor", "BACKBONES", "denoiser"]
