"""The one interface every translation method implements (DESIGN.md section 1).

    method.training_step(batch, step) -> dict of losses   (``step(i, loss)`` optimises with optimiser i)
    method.translate(source, steps=None, seed=None, n_samples=1) -> (n_samples, N, C, H, W) samples
    method.nfe(steps) -> network evaluations one translate call costs per map and sample

Inputs and outputs are normalised maps (the store's invertible transform); the benchmark runner,
the explainer and the CLI never special-case a method.
"""
from __future__ import annotations

from typing import Callable, ClassVar

import torch
from torch import nn

from .baseline import MonotoneBaseline

StepFn = Callable[[int, torch.Tensor], None]


class TranslationMethod(nn.Module):
    """Base class: ``net`` is the network ``translate`` evaluates (the one EMA averages)."""

    name: ClassVar[str] = ""
    stochastic: ClassVar[bool] = False
    trainable: ClassVar[bool] = True  # False: fitted in closed form by ``fit`` (no gradient steps)

    def __init__(self, in_channels: int, out_channels: int = 1, prior: bool = False):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.net: nn.Module = nn.Identity()
        self.prior = MonotoneBaseline(in_channels, out_channels) if prior else None

    def fit_prior(self, source, target) -> None:
        """Fit the closed-form pixel map the network corrects (train-split maps, normalised)."""
        if self.prior is not None:
            self.prior.fit(source, target)

    def generate(self, source: torch.Tensor) -> torch.Tensor:
        """One network pass; with a prior, the network's output is a correction added to it."""
        out = self.net(source)
        return out + self.prior.apply(source) if self.prior is not None else out

    def make_optimizers(self, lr: float | None) -> list[torch.optim.Optimizer]:
        raise NotImplementedError

    def training_step(self, batch: dict, step: StepFn) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def validation_loss(self, batch: dict) -> torch.Tensor:
        """L1 between one translation and the target (normalised units)."""
        pred = self.translate(batch["source"], seed=0)[0]
        return torch.mean(torch.abs(pred - batch["target"]))

    @torch.no_grad()
    def translate(self, source: torch.Tensor, steps: int | None = None, seed: int | None = None,
                  n_samples: int = 1) -> torch.Tensor:
        """Deterministic methods: one network pass, repeated ``n_samples`` times."""
        out = self.generate(source)
        return out.unsqueeze(0).expand(n_samples, *out.shape).clone()

    def nfe(self, steps: int | None = None) -> int:
        return 1


class BaselineMethod(TranslationMethod):
    """The ``baseline`` method: the monotone pixel map alone (no network, no gradient training)."""

    name = "baseline"
    trainable = False

    def __init__(self, in_channels: int, out_channels: int = 1, **_):
        super().__init__(in_channels, out_channels, prior=True)

    def generate(self, source: torch.Tensor) -> torch.Tensor:
        return self.prior.apply(source)

    def nfe(self, steps=None) -> int:
        return 0
