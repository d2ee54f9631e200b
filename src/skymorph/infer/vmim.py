"""A learned summary: a CNN compressor trained by variational mutual-information maximisation
(VMIM; Jeffrey, Alsing & Lanusse 2021).

The compressor f maps a map to ``features`` numbers; a conditional density q(theta | f(x)) (a zuko
neural spline flow, a Gaussian mixture for one parameter) is trained with it to maximise
E[log q(theta | f(x))], a lower bound on the mutual information between theta and f(x). The summary
is f(x); the posterior is then estimated on it like any other summary (second stage). Training goes
through the project's run mechanics (:mod:`skymorph.training.run`): checkpoints, resume, budget.
Each batch gets fresh shape noise (``--noise shape``) and a random symmetry of the square (rotations
by 90 degrees and flips: the statistics of the fields are isotropic).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
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

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        if self.log:
            x = torch.log10(x.clamp_min(0) + self.floor)
        return (x - torch.tensor(self.mean)[:, None, None]) / torch.tensor(self.std)[:, None, None]

    def theta(self, t: torch.Tensor) -> torch.Tensor:
        return (t - torch.tensor(self.centre)) / torch.tensor(self.half)


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
    def __init__(self, compressor: Compressor, head, scaling: Scaling, noise, lr: float, seed: int):
        super().__init__()
        self.compressor, self.head = compressor, head
        self.scaling, self.noise, self.lr, self.seed = scaling, noise, lr, seed

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=1e-5)

    def _loss(self, maps: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        f = self.compressor(self.scaling.maps(maps))
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
    """f(x) of a trained compressor, evaluated in batches without gradients."""

    def __init__(self, net: Compressor, scaling: Scaling, features: int):
        self.net, self.scaling, self.features = net.eval(), scaling, features

    @property
    def config(self) -> dict:
        return {"features": self.features, "scaling": asdict(self.scaling)}

    def __call__(self, maps: np.ndarray, batch: int = 256) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(maps), batch):
                x = torch.from_numpy(np.ascontiguousarray(maps[i:i + batch], np.float32))
                out.append(self.net(self.scaling.maps(x)).numpy())
        return np.concatenate(out).astype(np.float32)


def _scaling(cfg, sims) -> Scaling:
    maps = sims.maps.astype(np.float64)
    log = bool(cfg.domains) and bool(np.all(maps >= 0))
    floor = float(np.percentile(maps[maps > 0], 1)) if log else 0.0
    x = np.log10(maps + floor) if log else maps
    lo, hi = np.array(list(cfg.prior.values()), dtype=np.float64).T
    return Scaling(log, floor, x.mean(axis=(0, 2, 3)).tolist(), (x.std(axis=(0, 2, 3)) + 1e-12).tolist(),
                   ((lo + hi) / 2).tolist(), ((hi - lo) / 2).tolist())


def _nets(cfg, scaling_features: int):
    torch.manual_seed(cfg.seed)
    return (Compressor(len(cfg.channels), scaling_features, cfg.npix, cfg.base_channels),
            _head(len(cfg.params), scaling_features))


def train_compressor(cfg, sims, noise, out: Path, progress: bool, resume: bool = False) -> CNNSummary:
    """Train the compressor on ``sims``; a val_fraction of its groups (maps, or a store's galaxies with all
    their views) held out to choose the best checkpoint."""
    features = cfg.features or len(cfg.params)
    scaling = _scaling(cfg, sims)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    net, head = _nets(cfg, features)
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
    module = VMIMModule(net, head, scaling, noise, cfg.lr, cfg.seed)
    fit_run(out, module, loader, val_loader, resume, epoch_budget(cfg.max_epochs, cfg.max_minutes), cfg.max_minutes,
            progress, f"skymorph infer train --out {out} --resume", deterministic=True, accelerator="cpu", devices=1)
    save_best_weights(out, net, "compressor", "compressor.safetensors")
    return CNNSummary(net, scaling, features)


def load_compressor(folder: Path, cfg) -> CNNSummary:
    import json

    state = json.loads((folder / "summary.json").read_text())
    scaling = Scaling(**state["scaling"])
    net, _ = _nets(cfg, state["features"])
    load_weights(net, folder / "compressor.safetensors", "infer train")
    return CNNSummary(net, scaling, state["features"])
