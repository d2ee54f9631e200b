"""Training the image classifier on a map store with class labels (``grid slices`` output).

Images are the store's normalised fields (log10 + train-split standardisation), optionally phase-only
(``flatten_spectrum``); training draws each image under one of the 8 symmetries of the square (the
turbulence has no preferred orientation in the plane; with a mean field along x this is an
augmentation, stated). AdamW, cross-entropy, early stopping on the validation loss (``patience``
epochs), the shared run mechanics (checkpoints, resume, logs, budget in epochs or minutes). The run
folder holds ``config.yaml`` and ``classifier.safetensors`` (the best validation checkpoint).
"""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from ..data.dataset import dihedral
from ..data.store import MapStore
from ..errors import ConfigError, InputError
from ..training.config import RunConfig, epoch_budget
from ..training.run import fit_run, load_weights, prepare_run_folder, save_best_weights
from .network import Classifier, flatten_spectrum

__all__ = ["ClassifyConfig", "load_images", "train_classifier", "load_classifier"]


class ClassifyConfig(RunConfig):
    data: str
    input: list[str] = ["rho"]
    classes: list[str] = []
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    dropout: float = 0.2
    width: int = 8
    patience: int = 5
    max_epochs: int | None = None
    max_minutes: float | None = None
    flatten_spectrum: bool = False
    seed: int = 0
    data_fingerprint: str = ""


def load_images(store: MapStore, fields: list[str], split: str, flatten: bool = False):
    """(images (N, C, H, W) float32 normalised, labels (N,), units (N,), indices) of one split."""
    idx = store.split(split)
    if "classes" not in store.attrs:
        raise InputError(f"{store.path}: no class labels (the classes attribute and /meta/label): "
                         f"make the store with skymorph grid slices")
    x = np.stack([store.norm(f).forward(store.maps(f, idx)) for f in fields], axis=1).astype(np.float32)
    if flatten:
        x = flatten_spectrum(x)
    return x, store.meta("label", idx).astype(np.int64), store.meta("galaxy_id", idx), idx


class ClassifierModule(L.LightningModule):
    def __init__(self, net: Classifier, cfg: ClassifyConfig):
        super().__init__()
        self.net, self.cfg = net, cfg

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def training_step(self, batch, batch_idx):
        x, y = batch
        seed = int(np.random.default_rng([self.cfg.seed, self.current_epoch, batch_idx]).integers(2**31))
        gen = torch.Generator().manual_seed(seed)
        k = torch.randint(0, 8, (len(x),), generator=gen)
        x = torch.stack([dihedral(xi, int(ki)) for xi, ki in zip(x, k)])
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False, batch_size=len(x))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True, batch_size=len(x))
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True, batch_size=len(x))


def train_classifier(data, out, input_fields=("rho",), resume: bool = False, overwrite: bool = False,
                     progress: bool = False, **options) -> Path:
    """Train (or ``resume``) a classifier of ``data``'s classes from ``input_fields`` into run folder ``out``."""
    out = Path(out)
    prepare_run_folder(out, resume, overwrite)
    if resume:
        cfg = ClassifyConfig.validated(yaml.safe_load((out / "config.yaml").read_text()), out / "config.yaml")
        if options or data is not None and Path(data).resolve() != Path(cfg.data):
            raise ConfigError(f"{out}: --resume continues the saved configuration; give no other options")
    else:
        cfg = ClassifyConfig.validated({"data": str(Path(data).resolve()), "input": list(input_fields), **options})
    with MapStore(cfg.data) as store:
        for f in cfg.input:
            store.unit(f)  # names the missing field
        classes = json.loads(store.attrs.get("classes", "[]"))
        if cfg.data_fingerprint and store.fingerprint != cfg.data_fingerprint:
            raise InputError(f"{cfg.data}: not the store the run was trained on (fingerprint changed)")
        cfg = cfg.model_copy(update={"classes": classes, "data_fingerprint": store.fingerprint})
        x, y, _, _ = load_images(store, cfg.input, "train", cfg.flatten_spectrum)
        xv, yv, _, _ = load_images(store, cfg.input, "val", cfg.flatten_spectrum)
    if len(classes) < 2:
        raise InputError(f"{cfg.data}: {len(classes)} class; a classifier needs at least two")
    if len(x) < cfg.batch_size or not len(xv):
        raise InputError(f"{cfg.data}: {len(x)} train and {len(xv)} val images; need a batch "
                         f"(--batch-size {cfg.batch_size}) and a validation set")
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.yaml")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    net = Classifier(len(classes), len(cfg.input), cfg.width, cfg.dropout)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), cfg.batch_size, shuffle=True,
                        drop_last=True)
    val_loader = DataLoader(TensorDataset(torch.from_numpy(xv), torch.from_numpy(yv)), 256)
    fit_run(out, ClassifierModule(net, cfg), loader, val_loader, resume, epoch_budget(cfg.max_epochs, cfg.max_minutes),
            cfg.max_minutes, progress, f"skymorph classify train --out {out} --resume",
            callbacks=(EarlyStopping("val_loss", patience=cfg.patience),), accelerator="cpu", devices=1)
    save_best_weights(out, net, "net", "classifier.safetensors")
    return out


def load_classifier(run) -> tuple[Classifier, ClassifyConfig]:
    """The trained network (eval mode) and its configuration, loaded as data."""
    run = Path(run)
    if not (run / "classifier.safetensors").exists():
        raise InputError(f"{run}: no classifier.safetensors (not a finished classify run)")
    cfg = ClassifyConfig.validated(yaml.safe_load((run / "config.yaml").read_text()), run / "config.yaml")
    net = Classifier(len(cfg.classes), len(cfg.input), cfg.width, cfg.dropout)
    return load_weights(net, run / "classifier.safetensors", "classify").eval(), cfg
