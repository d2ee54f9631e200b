"""Training configuration: a pydantic model, read from YAML and written resolved beside the run."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import PositiveFloat, PositiveInt, field_validator, model_validator

from ..errors import ConfigError
from ..training.config import BackboneConfig
from . import method_class


class TrainConfig(BackboneConfig):
    """Everything a run needs to be reproduced; the normalisation it was trained with included.

    Method options are flat fields; :meth:`method_options` passes each method those its constructor
    declares (:meth:`~skymorph.methods.base.TranslationMethod.option_defaults`, defaults equal to these).
    """

    method: str
    data: Path
    source: list[str]
    target: str
    max_epochs: Optional[PositiveInt] = None  # None: see epoch_budget
    max_minutes: Optional[PositiveFloat] = None
    batch_size: int = 16
    lr: Optional[float] = None  # method default: 1e-3 regression, 2e-4 GANs
    seed: int = 0
    loss: Literal["l1", "l2"] = "l1"
    gan_mode: Literal["vanilla", "lsgan"] = "vanilla"
    lambda_l1: float = 100.0
    prior: bool = True  # networks learn a correction to the monotone pixel map (fitted on the train split)
    spectral_weight: float = 0.3  # weight of the physical-P(k) term added to the pixel loss (0: plain L1/L2)
    d_base: int = 64
    sampler: Optional[str] = None  # diffusion family: how translate samples (None: the method's default)
    indi_eps: float = 0.5  # InDI bridge noise: standard deviation eps sqrt(t (1 - t)) on the path
    p_one: float = 0.2  # InDI: fraction of training times t set to 1 (the start map itself)
    lambda_cycle: float = 10.0  # CycleGAN: weight of the cycle-consistency L1
    lambda_identity: float = 0.5  # CycleGAN: identity L1 weight, in units of lambda_cycle
    pool_size: int = 50  # CycleGAN: past fakes kept per discriminator
    beta_min: float = 0.1  # score_sde: VP-SDE schedule beta(t) = beta_min + t (beta_max - beta_min)
    beta_max: float = 20.0
    p_mean: float = -1.2  # edm: training noise levels ln sigma ~ N(p_mean, p_std^2) (Karras+22's values)
    p_std: float = 1.2
    sigma_min: float = 0.002  # edm sampler: noise levels from sigma_max to sigma_min (normalised map units)
    sigma_max: float = 80.0
    rho: float = 7.0  # edm sampler: the spacing exponent of the noise levels
    churn: float = 0.0  # edm sampler: S_churn, the stochasticity (0: the deterministic Heun ODE sampler)
    ema: Optional[bool] = None  # None: the method's default (on for the diffusion family)
    ema_decay: float = 0.999
    grad_clip: Optional[float] = 1.0
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    augment: bool = True
    devices: int = 1
    strategy: str = "auto"
    accelerator: str = "auto"
    precision: str = "32-true"
    deterministic: bool = True  # deterministic kernels (reproducible on the CPU; some CUDA kernels have none)
    num_workers: int = 0
    npix: int = 0  # filled from the data
    norms: dict[str, dict[str, float]] = {}  # filled from the data: {domain: {eps, mean, std}}
    units: dict[str, str] = {}  # filled from the data
    store_fingerprint: str = ""  # filled from the data: MapStore.fingerprint of the store the run trained on

    @field_validator("source", mode="before")
    @classmethod
    def _split_source(cls, v):
        return [s.strip() for s in v.split(",") if s.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _backbone_fits(self):
        """Only the diffusion family takes another backbone (its options are checked by BackboneConfig)."""
        if self.backbone == "dim" and "backbone" not in method_class(self.method).option_defaults():
            raise ValueError(f"backbone 'dim' fits the diffusion family (score_sde, edm, indi), not {self.method!r}")
        return self

    def method_options(self) -> dict:
        """The keyword options of ``method``'s constructor, from this config (``target_norm``: the target's norm)."""
        return {k: self.norms.get(self.target) if k == "target_norm" else getattr(self, k)
                for k in method_class(self.method).option_defaults()}

    @classmethod
    def load(cls, path: Path, **override) -> "TrainConfig":
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: unreadable config: {exc}") from None
        return cls.build(raw, path, **override)

    @classmethod
    def build(cls, raw: dict, origin="options", **override) -> "TrainConfig":
        return cls.validated({**raw, **{k: v for k, v in override.items() if v is not None}}, origin)
