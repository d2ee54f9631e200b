"""Attribution of one scalar network output per map to the input pixels: SHAP values (the ``shap``
package's GradientExplainer: expected gradients over a background set), gradient saliency and
integrated gradients (``captum``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

ATTRIBUTIONS = ("shap", "saliency", "integrated_gradients")


class Realness(nn.Module):
    """A PatchGAN's realness score, the mean of its patch logits: (N, C, H, W) -> (N, 1)."""

    def __init__(self, disc: nn.Module):
        super().__init__()
        self.disc = disc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.disc(x).mean(dim=(1, 2, 3)).unsqueeze(1)


class RegionMean(nn.Module):
    """A method's generated map averaged over a pixel box (rows y0:y1, columns x0:x1): (N, C, H, W) -> (N, 1)."""

    def __init__(self, method: nn.Module, box: tuple[int, int, int, int]):
        super().__init__()
        self.method, self.box = method, box

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0, y1, x0, x1 = self.box
        return self.method.generate(x)[:, :, y0:y1, x0:x1].mean(dim=(1, 2, 3)).unsqueeze(1)


@dataclass
class Attribution:
    """Attributions (N, C, H, W) and, per map, the output, the reference it is measured from (the
    expected output over the background for SHAP, the output at the baseline for integrated
    gradients, NaN for saliency), the completeness gap sum(values) - (output - reference) and the
    Monte Carlo standard error of sum(values) (SHAP; 0 for the deterministic methods)."""

    values: np.ndarray
    output: np.ndarray
    reference: np.ndarray
    gap: np.ndarray
    stderr: np.ndarray


SHAP_CHUNKS = 16  # seeded SHAP runs per attribution: their spread is the Monte Carlo standard error


def attribute(model: nn.Module, x: torch.Tensor, how: str, background: torch.Tensor | None = None,
              baseline: torch.Tensor | None = None, nsamples: int = 512, n_steps: int = 64, seed: int = 0,
              chunks: int = SHAP_CHUNKS, advance=None) -> Attribution:
    """Attribute ``model``'s (N, 1) output at inputs ``x`` (N, C, H, W) to the input pixels.

    ``shap``: GradientExplainer with ``background`` (B, C, H, W), ``nsamples`` expected-gradient
    samples per map drawn in ``chunks`` seeded runs whose spread gives the standard error;
    ``saliency``: |d output / d x|; ``integrated_gradients``: from ``baseline`` (1 or N, C, H, W),
    ``n_steps`` Gauss-Legendre points. Inputs on the model's device; results come back as CPU arrays.
    ``advance(n)``, if given, is called as the work goes (``chunks`` steps for SHAP, one otherwise).
    """
    advance = advance or (lambda n: None)
    if how not in ATTRIBUTIONS:
        raise ConfigError(f"unknown attribution method {how!r}; expected one of {', '.join(ATTRIBUTIONS)}")
    model = model.eval()
    with torch.no_grad():
        output = model(x)[:, 0].double().cpu().numpy()
    zero = np.zeros(len(x))
    if how == "saliency":
        from captum.attr import Saliency

        values = Saliency(model).attribute(x.clone().requires_grad_(), target=0, abs=True).detach().double().cpu().numpy()
        advance(1)
        return Attribution(values, output, np.full(len(x), np.nan), np.full(len(x), np.nan), zero)
    if how == "integrated_gradients":
        from captum.attr import IntegratedGradients

        base = baseline.expand_as(x)
        values = IntegratedGradients(model).attribute(x.clone().requires_grad_(), baselines=base, target=0,
                                                      n_steps=n_steps)
        values = values.detach().double().cpu().numpy()
        with torch.no_grad():
            reference = model(base)[:, 0].double().cpu().numpy()
        advance(1)
        return Attribution(values, output, reference, values.reshape(len(x), -1).sum(1) - (output - reference), zero)
    import shap

    explainer = shap.GradientExplainer(model, background, batch_size=64)
    runs = []
    for c in range(chunks):
        runs.append(np.asarray(explainer.shap_values(x, nsamples=max(1, nsamples // chunks), rseed=seed + c))[..., 0])
        advance(1)
    runs = np.stack(runs).astype(np.float64)
    with torch.no_grad():
        reference = np.full(len(x), model(background)[:, 0].double().mean().item())
    sums = runs.reshape(chunks, len(x), -1).sum(-1)
    values = runs.mean(0)
    return Attribution(values, output, reference, sums.mean(0) - (output - reference),
                       sums.std(0, ddof=1) / np.sqrt(chunks))
