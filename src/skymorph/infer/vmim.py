"""A learned summary: a CNN compressor trained by variational mutual-information maximisation
(VMIM; Jeffrey, Alsing & Lanusse 2021).

The compressor f maps a map to ``features`` numbers (``cnn+pk``: from the map and, beside the pooled
convolution features, its standardised binned power spectrum, so that f starts from what the
spectrum knows and the convolutions need only learn what it lacks; Jeffrey+24 combine the two); a
conditional density q(theta | f(x)) (a zuko neural spline flow, a Gaussian mixture for one
parameter) is trained with it to maximise
E[log q(theta | f(x))], a lower bound on the mutual information between theta and f(x). The summary
is f(x); the posterior is then estimated on it like any other summary (second stage). Training goes
through the project's run mechanics (:mod:`skymorph.training.run`): checkpoints, resume, budget.
Each batch gets fresh shape noise (``--noise shape``) and a random symmetry of the square (rotations
by 90 degrees and flips: the statistics of the fields are isotropic).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..errors import InputError
from ..models import Compressor
from ..training.config import epoch_budget
from ..training.run import cosine_lr_scale, fit_run, load_weights, save_best_weights

__all__ = ["CNNSummary", "train_compressor", "load_compressor"]


@dataclass
class Scaling:
    """Map and parameter scaling of the compressor's input and the density head's output."""

    log: bool  # maps enter as log10(x + floor) (surface densities), else linearly
    floor: float
    mean: list[float]
    std: list[float]
    centre: list[float]
    half: list[float]
    pk_mean: list[float] = field(default_factory=list)  # cnn+pk: standardisation of the spectrum input
    pk_std: list[float] = field(default_factory=list)

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        if self.log:
            x = torch.log10(x.clamp_min(0) + self.floor)
        return (x - torch.tensor(self.mean)[:, None, None]) / torch.tensor(self.std)[:, None, None]

    def theta(self, t: torch.Tensor) -> torch.Tensor:
        return (t - torch.tensor(self.centre)) / torch.tensor(self.half)

    def spectrum(self, s: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((s - np.array(self.pk_mean)) / np.array(self.pk_std)).astype(np.float32))


def _summaries(net: Compressor, scaling: Scaling, pk, maps: torch.Tensor) -> torch.Tensor:
    """f(x) of raw maps (B, C, H, W): the compressor on the scaled maps, for cnn+pk with the maps'
    standardised power spectrum (``pk``, a PowerSummary) beside the convolutions."""
    extra = None if pk is None else scaling.spectrum(pk(maps.numpy()))
    return net(scaling.maps(maps), extra)


def _head(n_params: int, features: int):
    import zuko

    if n_params == 1:
        return zuko.flows.GMM(features=1, context=features, components=8)
    return zuko.flows.NSF(features=n_params, context=features, transforms=3, hidden_features=[64, 64])


def _symmetry(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each map of the batch under one of the 8 symmetries of the square."""
    k = torch.randint(0, 4, (len(x),), generator=gen)
    flip = torch.randint(0, 2, (len(x),), generator=gen).bool()
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return torch.stack([torch.rot90(xi, int(ki), dims=(-2, -1)) for xi, ki in zip(x, k)])


class VMIMModule(L.LightningModule):
    def __init__(self, compressor: Compressor, head, scaling: Scaling, noise, lr: float, seed: int, pk=None):
        super().__init__()
        self.compressor, self.head = compressor, head
        self.scaling, self.noise, self.lr, self.seed, self.pk = scaling, noise, lr, seed, pk

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=1e-5)

    def _loss(self, maps: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        f = _summaries(self.compressor, self.scaling, self.pk, maps)
        return -self.head(f).log_prob(self.scaling.theta(theta)).mean()

    def training_step(self, batch, batch_idx):
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = self.lr * cosine_lr_scale(self.trainer)
        maps, theta = batch
        step = [self.seed, self.current_epoch, batch_idx]
        rng = np.random.default_rng(step)
        maps = torch.from_numpy(self.noise(maps.numpy(), rng))  # fresh noise at every step
        maps = _symmetry(maps, torch.Generator().manual_seed(int(rng.integers(2**31))))
        loss = self._loss(maps, theta)
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, batch_size=len(maps))
        return loss

    def validation_step(self, batch, batch_idx):
        maps, theta = batch
        self.log("val_loss", self._loss(maps, theta), prog_bar=True, batch_size=len(maps))


class CNNSummary:
    """f(x) of a trained compressor (with its power-spectrum input ``pk`` for cnn+pk), evaluated in
    batches without gradients."""

    def __init__(self, net: Compressor, scaling: Scaling, features: int, pk=None):
        self.net, self.scaling, self.features, self.pk = net.eval(), scaling, features, pk

    @property
    def config(self) -> dict:
        return {"features": self.features, "scaling": asdict(self.scaling),
                "pk": None if self.pk is None else self.pk.config}

    def __call__(self, maps: np.ndarray, batch: int = 256) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(maps), batch):
                x = torch.from_numpy(np.ascontiguousarray(maps[i:i + batch], np.float32))
                out.append(_summaries(self.net, self.scaling, self.pk, x).numpy())
        return np.concatenate(out).astype(np.float32)


def _scaling(cfg, sims, noise, pk) -> Scaling:
    maps = sims.maps.astype(np.float64)
    log = bool(cfg.domains) and bool(np.all(maps >= 0))
    floor = float(np.percentile(maps[maps > 0], 1)) if log else 0.0
    x = np.log10(maps + floor) if log else maps
    lo, hi = np.array(list(cfg.prior.values()), dtype=np.float64).T
    spec = {}
    if pk is not None:  # the spectrum of the maps as the compressor sees them: noisy when trained with noise
        s = pk(noise(sims.maps, np.random.default_rng([cfg.seed, 6]))).astype(np.float64)
        spec = {"pk_mean": s.mean(0).tolist(), "pk_std": (s.std(0) + 1e-12).tolist()}
    return Scaling(log, floor, x.mean(axis=(0, 2, 3)).tolist(), (x.std(axis=(0, 2, 3)) + 1e-12).tolist(),
                   ((lo + hi) / 2).tolist(), ((hi - lo) / 2).tolist(), **spec)


def _nets(cfg, scaling_features: int, extra: int):
    torch.manual_seed(cfg.seed)
    return (Compressor(len(cfg.channels), scaling_features, cfg.npix, cfg.base_channels, extra),
            _head(len(cfg.params), scaling_features))


def train_compressor(cfg, sims, noise, out: Path, progress: bool, resume: bool = False, pk=None) -> CNNSummary:
    """Train the compressor on ``sims`` (with the power-spectrum input ``pk``, a fitted PowerSummary, for
    cnn+pk); a val_fraction of its groups (maps, or a store's galaxies with all their views) held out to
    choose the best checkpoint."""
    features = cfg.features or len(cfg.params)
    scaling = _scaling(cfg, sims, noise, pk)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    net, head = _nets(cfg, features, len(scaling.pk_mean))
    labels = np.random.default_rng([cfg.seed, 4]).permutation(np.unique(sims.groups))
    is_val = np.isin(sims.groups, labels[:max(1, int(round(cfg.val_fraction * len(labels))))])  # whole galaxies
    val, train = np.flatnonzero(is_val), np.flatnonzero(~is_val)
    if len(train) < cfg.batch_size:
        raise InputError(f"{sims.path}: {len(train)} training maps after the validation split; the cnn summary "
                         f"needs at least one batch (--batch-size {cfg.batch_size})")
    maps = torch.from_numpy(sims.maps)
    theta = torch.from_numpy(sims.theta.astype(np.float32))
    val_maps = torch.from_numpy(noise(sims.maps[val], np.random.default_rng([cfg.seed, 5])))
    loader = DataLoader(TensorDataset(maps[train], theta[train]), cfg.batch_size, shuffle=True, drop_last=True)
    val_loader = DataLoader(TensorDataset(val_maps, theta[val]), 256)
    module = VMIMModule(net, head, scaling, noise, cfg.lr, cfg.seed, pk)
    fit_run(out, module, loader, val_loader, resume, epoch_budget(cfg.max_epochs, cfg.max_minutes), cfg.max_minutes,
            progress, f"skymorph infer train --out {out} --resume", deterministic=True, accelerator="cpu", devices=1)
    save_best_weights(out, net, "compressor", "compressor.safetensors")
    return CNNSummary(net, scaling, features, pk)


def load_compressor(folder: Path, cfg) -> CNNSummary:
    import json

    from .summaries import PowerSummary

    state = json.loads((folder / "summary.json").read_text())
    scaling = Scaling(**state["scaling"])
    net, _ = _nets(cfg, state["features"], len(scaling.pk_mean))
    load_weights(net, folder / "compressor.safetensors", "infer train")
    pk = PowerSummary(**state["pk"]) if state.get("pk") else None
    return CNNSummary(net, scaling, state["features"], pk)
