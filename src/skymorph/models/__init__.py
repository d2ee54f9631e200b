"""Plain ``nn.Module`` networks: U-Net generator, PatchGAN discriminator, CNN compressor."""
from .compressor import Compressor
from .patchgan import PatchGAN
from .unet import UNet

__all__ = ["UNet", "PatchGAN", "Compressor"]
