"""The one interface every translation method implements (DESIGN.md section 1).

    method.training_step(batch, step) -> dict of losses   (``step(i, loss)`` optimises with optimiser i)
    method.translate(source, steps=None, seed=None, n_samples=1) -> (n_samples, N, C, H, W) samples
    method.nfe(steps) -> network evaluations one translate call costs per map and sample
    method.sampler, method.samplers  -> the sampler ``translate`` uses, and those that fit the method
    Method.option_defaults()  -> the keyword options its constructor declares (TrainConfig fields)
    method.discriminators(), method.reverse(), method.validation_metrics(batch)  -> optional: the
        PatchGANs ``explain`` inspects, the target -> source method, extra logged/reported figures

Inputs and outputs are normalised maps (the store's invertible transform) on the method's device
(``method.device``); the benchmark runner, the explainer and the CLI never special-case a method.
"""
from __future__ import annotations

import inspect
import itertools
from typing import Callable, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from .baseline import MonotoneBaseline

StepFn = Callable[[int, torch.Tensor], None]


def check_request(steps: int | None, n_samples: int) -> None:
    """Steps and samples of a translate call are positive (None steps: the method's default)."""
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be a positive integer, got {steps}")
    if n_samples < 1:
        raise ConfigError(f"--samples must be a positive integer, got {n_samples}")


#: Iterative samplers' outputs are clamped to this many standard deviations of the normalised
#: train maps: a guard against 10**z overflowing for an unconverged few-step sample (a trained
#: model's samples stay far inside it).
Z_LIMIT = 10.0


class TranslationMethod(nn.Module):
    """Base class: ``net`` is the network ``translate`` evaluates (the one EMA averages)."""

    name: ClassVar[str] = ""
    stochastic: ClassVar[bool] = False
    trainable: ClassVar[bool] = True  # False: fitted in closed form by ``fit`` (no gradient steps)
    samplers: ClassVar[tuple[str, ...]] = ("direct",)  # the first is the default
    default_steps: ClassVar[int] = 1
    paired: ClassVar[bool] = True  # False: trained on unpaired batches (source and target from different galaxies)
    conditional_disc: ClassVar[bool] = False  # discriminators judge the source map stacked before the judged one
    ema_default: ClassVar[bool] = False  # EMA of ``net`` when the config leaves ``ema`` unset
    default_lr: ClassVar[float] = 1e-3  # learning rate when the config leaves ``lr`` unset

    def __init__(self, in_channels: int, out_channels: int = 1, prior: bool = False, sampler: str | None = None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.net: nn.Module = nn.Identity()
        self.prior = MonotoneBaseline(in_channels, out_channels) if prior else None
        self.set_sampler(sampler)

    @classmethod
    def option_defaults(cls) -> dict[str, object]:
        """The keyword options the constructor declares, with their defaults (what ``make_method`` accepts)."""
        params = inspect.signature(cls.__init__).parameters.values()
        return {p.name: p.default for p in params if p.name not in ("self", "in_channels", "out_channels")}

    @property
    def device(self) -> torch.device:
        """Where the method's weights are: ``translate`` takes maps, and draws noise, there."""
        return next(itertools.chain(self.parameters(), self.buffers()), torch.empty(0)).device

    def set_sampler(self, name: str | None) -> None:
        """Choose how ``translate`` samples (None: the method's default); ConfigError if it does not fit."""
        name = name or self.samplers[0]
        if name not in self.samplers:
            from . import METHODS  # the registry imports this module
            known = sorted({s for m in METHODS.values() for s in m.samplers})
            what = "does not fit" if name in known else "is not a sampler;"
            raise ConfigError(f"sampler {name!r} {what} method {self.name!r}: valid samplers for it: "
                              f"{', '.join(self.samplers)} (all samplers: {', '.join(known)})")
        self.sampler = name

    def fit_prior(self, source, target) -> None:
        """Fit the closed-form pixel map the network corrects (train-split maps, normalised)."""
        if self.prior is not None:
            self.prior.fit(source, target)

    def generate(self, source: torch.Tensor) -> torch.Tensor:
        """One network pass; with a prior, the network's output is a correction added to it."""
        out = self.net(source)
        return out + self.prior.apply(source) if self.prior is not None else out

    def make_optimizers(self, lr: float | None) -> list[torch.optim.Optimizer]:
        """Adam on ``net`` at ``lr`` (None: ``default_lr``); methods with discriminators add theirs."""
        return [torch.optim.Adam(self.net.parameters(), lr=lr or self.default_lr)]

    def training_step(self, batch: dict, step: StepFn) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def validation_loss(self, batch: dict) -> torch.Tensor:
        """L1 between one translation and the target (normalised units)."""
        pred = self.translate(batch["source"], seed=0)[0]
        return torch.mean(torch.abs(pred - batch["target"]))

    def validation_metrics(self, batch: dict) -> dict[str, torch.Tensor]:
        """Method-specific figures of a batch (normalised maps): logged as ``val_<name>`` in training,
        reported by ``evaluate``. None by default."""
        return {}

    def discriminators(self) -> dict[str, nn.Module]:
        """PatchGAN discriminators by the side whose maps they judge ('source' or 'target'); none by default."""
        return {}

    def reverse(self) -> "TranslationMethod":
        """The method translating target -> source (two-way methods only)."""
        raise ConfigError(f"method {self.name!r} translates one way only (source -> target); "
                          f"a two-way method such as cyclegan can be reversed")

    @torch.no_grad()
    def translate(self, source: torch.Tensor, steps: int | None = None, seed: int | None = None,
                  n_samples: int = 1) -> torch.Tensor:
        """Deterministic methods: one network pass, repeated ``n_samples`` times."""
        out = self.generate(source)
        return out.unsqueeze(0).expand(n_samples, *out.shape).clone()

    def nfe(self, steps: int | None = None) -> int:
        return 1


class DenoisingMethod(TranslationMethod):
    """The diffusion family: trained on one objective over noised or degraded targets, validated on
    the same objective at fixed (seeded) noise: cheap, and comparable across epochs."""

    stochastic = True
    ema_default = True  # samplers chain many network calls: averaged weights give a smoother score (Song et al. 2021)

    def objective(self, source: torch.Tensor, target: torch.Tensor, gen: torch.Generator | None = None):
        raise NotImplementedError

    def training_step(self, batch: dict, step: StepFn) -> dict[str, torch.Tensor]:
        loss = self.objective(batch["source"], batch["target"])
        step(0, loss)
        return {"loss": loss}

    def validation_loss(self, batch: dict) -> torch.Tensor:
        gen = torch.Generator(batch["source"].device).manual_seed(0)
        return self.objective(batch["source"], batch["target"], gen)

    def chain(self, source: torch.Tensor, steps: int, gen: torch.Generator | None) -> torch.Tensor:
        """One batched sampling chain of ``steps`` steps per source map: (N, C, H, W) normalised maps."""
        raise NotImplementedError

    @torch.no_grad()
    def translate(self, source: torch.Tensor, steps: int | None = None, seed: int | None = None,
                  n_samples: int = 1) -> torch.Tensor:
        """``n_samples`` independent draws (one batched chain over the repeated sources), clamped to +-Z_LIMIT;
        noise comes from a generator on the sources' device seeded with ``seed`` (None: the global one)."""
        gen = torch.Generator(source.device).manual_seed(seed) if seed is not None else None
        x = self.chain(source.repeat(n_samples, 1, 1, 1), steps or self.default_steps, gen)
        return x.clamp(-Z_LIMIT, Z_LIMIT).view(n_samples, len(source), *x.shape[1:])


class BaselineMethod(TranslationMethod):
    """The ``baseline`` method: the monotone pixel map alone (no network, no gradient training)."""

    name = "baseline"
    trainable = False

    def __init__(self, in_channels: int, out_channels: int = 1):
        super().__init__(in_channels, out_channels, prior=True)

    def generate(self, source: torch.Tensor) -> torch.Tensor:
        return self.prior.apply(source)

    def nfe(self, steps=None) -> int:
        return 0
