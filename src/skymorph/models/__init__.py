"""Plain ``nn.Module`` networks: U-Net generator, PatchGAN discriminator."""
from .patchgan import PatchGAN
from .unet import UNet

__all__ = ["UNet", "PatchGAN"]
