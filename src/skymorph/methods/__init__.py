"""Translation methods behind one interface (see :mod:`skymorph.methods.base`)."""
from __future__ import annotations

from ..errors import ConfigError
from .base import BaselineMethod, TranslationMethod
from .corrdiff import CorrDiff
from .cyclegan import CycleGAN
from .edm import EDM
from .indi import InDI
from .pix2pix import Pix2Pix
from .regression import UNetRegression
from .score_sde import ScoreSDE

METHODS: dict[str, type[TranslationMethod]] = {m.name: m for m in (BaselineMethod, UNetRegression, Pix2Pix,
                                                                  ScoreSDE, EDM, CorrDiff, InDI, CycleGAN)}


def method_class(name: str) -> type[TranslationMethod]:
    """The registered method called ``name``; ConfigError listing the valid ones otherwise."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    return METHODS[name]


def make_method(name: str, in_channels: int, out_channels: int = 1, **options) -> TranslationMethod:
    """Method ``name`` built with ``options``; ConfigError naming an option it does not declare."""
    cls = method_class(name)
    valid = cls.option_defaults()
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise ConfigError(f"method {name!r} has no option {unknown[0]!r}; its options: {', '.join(valid) or 'none'}")
    return cls(in_channels, out_channels, **options)


__all__ = ["TranslationMethod", "METHODS", "method_class", "make_method"]
