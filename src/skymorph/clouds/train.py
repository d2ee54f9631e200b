"""Training the cloud flow on a cloud store, through the shared run mechanics (checkpoints every
epoch, --resume, logs, budget in epochs or minutes). Each step draws ``points_per_step`` target points
of every view in the batch; with ``augment`` source and target clouds are turned together by a random
rotation (a galaxy's dark matter -> gas mapping has no preferred orientation). The run folder holds
``config.yaml`` and ``cloudflow.safetensors`` (the best validation checkpoint)."""
from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

from ..errors import ConfigError, InputError
from ..training.config import RunConfig, epoch_budget
from ..training.run import fit_run, load_weights, prepare_run_folder, save_best_weights
from .model import CloudFlow, random_rotations, rotate
from .store import CloudStore

__all__ = ["CloudConfig", "train_cloud_flow", "load_cloud_flow", "split_arrays"]


class CloudConfig(RunConfig):
    data: str
    batch_size: int = 8
    points_per_step: int | None = None  # target points per view and step (None: 1024, or n_out if fewer)
    lr: float = 1e-3
    width: int = 128
    latent: int = 128
    mass_weight: float = 0.1  # weight of the log-mass head's loss beside the flow's
    augment: bool = True
    steps: int = 32  # Heun steps of the sampler (translate / evaluate default)
    max_epochs: int | None = None
    max_minutes: float | None = None
    seed: int = 0
    columns: list[str] = []  # filled from the data
    data_fingerprint: str = ""


def split_arrays(store: CloudStore, split: str) -> dict[str, torch.Tensor]:
    """The tensors of one split: source/target points and weights, log10 masses in the cube, view indices."""
    idx = np.sort(store.split(split))
    src, _ = store.clouds("source", idx)
    tgt, w = store.clouds("target", idx)
    return {"source": torch.from_numpy(src), "target": torch.from_numpy(tgt), "weight": torch.from_numpy(w).float(),
            "log_m_src": torch.from_numpy(np.log10(store.meta("mass_in_cube_source", idx))).float(),
            "log_m_tgt": torch.from_numpy(np.log10(store.meta("mass_in_cube_target", idx))).float(),
            "index": torch.from_numpy(idx)}


def vector_blocks(columns: list[str]) -> int:
    """How many 3-vectors (positions, velocities) lead the feature columns."""
    return 1 + ("vx" in columns)


class CloudModule(L.LightningModule):
    def __init__(self, net: CloudFlow, cfg: CloudConfig, train: dict, val: dict):
        super().__init__()
        self.net, self.cfg, self.train_arrays, self.val_arrays = net, cfg, train, val
        self.blocks = vector_blocks(cfg.columns)

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr)

    def _batch(self, arrays: dict, rows: torch.Tensor, gen: torch.Generator, augment: bool):
        n_out = arrays["target"].shape[1]
        pick = torch.stack([torch.randperm(n_out, generator=gen)[:self.cfg.points_per_step] for _ in rows])
        tgt = torch.gather(arrays["target"][rows], 1, pick[..., None].expand(-1, -1, arrays["target"].shape[2]))
        w = torch.gather(arrays["weight"][rows], 1, pick)
        src = arrays["source"][rows]
        if augment:
            rot = random_rotations(len(rows), gen)
            src, tgt = rotate(src, rot, self.blocks), rotate(tgt, rot, self.blocks)
        return src, arrays["log_m_src"][rows], tgt, w, arrays["log_m_tgt"][rows]

    def training_step(self, batch, batch_idx):
        (rows,) = batch
        gen = torch.Generator().manual_seed(int(np.random.default_rng(
            [self.cfg.seed, self.current_epoch, batch_idx]).integers(2**31)))
        flow, mass = self.net.loss(*self._batch(self.train_arrays, rows, gen, self.cfg.augment), gen=gen)
        loss = flow + self.cfg.mass_weight * mass
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False, batch_size=len(rows))
        return loss

    def validation_step(self, batch, batch_idx):
        (rows,) = batch
        gen = torch.Generator().manual_seed(batch_idx)  # the same noise every epoch: comparable losses
        flow, mass = self.net.loss(*self._batch(self.val_arrays, rows, gen, False), gen=gen)
        self.log("val_loss", flow + self.cfg.mass_weight * mass, prog_bar=True, batch_size=len(rows))
        self.log("val_mass_dex", torch.sqrt(mass) * self.net.mass_moments[3], batch_size=len(rows))


def _build(cfg: CloudConfig, in_features: int, out_features: int) -> CloudFlow:
    return CloudFlow(in_features, out_features, cfg.width, cfg.latent)


def train_cloud_flow(data, out, resume: bool = False, overwrite: bool = False, progress: bool = False,
                     **options) -> Path:
    """Train (or ``resume``) the cloud flow on cloud store ``data`` into run folder ``out``."""
    out = Path(out)
    prepare_run_folder(out, resume, overwrite)
    if resume:
        cfg = CloudConfig.validated(yaml.safe_load((out / "config.yaml").read_text()), out / "config.yaml")
        other = [k for k in options if k not in ("max_epochs", "max_minutes")]
        if other or data is not None and Path(data).resolve() != Path(cfg.data):
            raise ConfigError(f"{out}: --resume continues the saved configuration; give only --max-epochs or "
                              f"--max-minutes (got --{(other or ['data'])[0].replace('_', '-')})")
        cfg = cfg.model_copy(update=options)
    else:
        cfg = CloudConfig.validated({"data": str(Path(data).resolve()), **options})
    for flag, value in (("--batch-size", cfg.batch_size), ("--points-per-step", cfg.points_per_step),
                        ("--steps", cfg.steps), ("--width", cfg.width), ("--latent", cfg.latent)):
        if value is not None and value < 1:  # points_per_step None: chosen from the store below
            raise ConfigError(f"{flag} {value}: must be positive")
    with CloudStore(cfg.data) as store:
        if cfg.data_fingerprint and store.fingerprint != cfg.data_fingerprint:
            raise InputError(f"{cfg.data}: not the store the run was trained on (fingerprint changed)")
        cfg = cfg.model_copy(update={"columns": store.columns, "data_fingerprint": store.fingerprint})
        train, val = split_arrays(store, "train"), split_arrays(store, "val")
    if cfg.points_per_step is None:
        cfg = cfg.model_copy(update={"points_per_step": min(1024, train["target"].shape[1])})
    if cfg.points_per_step > train["target"].shape[1]:
        raise ConfigError(f"--points-per-step {cfg.points_per_step}: more than the {train['target'].shape[1]} target "
                          f"points per view of {cfg.data}")
    if len(train["index"]) < cfg.batch_size or not len(val["index"]):
        raise InputError(f"{cfg.data}: {len(train['index'])} train and {len(val['index'])} val views; need a batch "
                         f"(--batch-size {cfg.batch_size}) and a validation set")
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.yaml")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    net = _build(cfg, train["source"].shape[2], train["target"].shape[2])
    net.set_moments(train["source"], train["target"], train["log_m_src"], train["log_m_tgt"])
    rows = lambda a: TensorDataset(torch.arange(len(a["index"])))  # noqa: E731
    loader = DataLoader(rows(train), cfg.batch_size, shuffle=True, drop_last=True)
    fit_run(out, CloudModule(net, cfg, train, val), loader, DataLoader(rows(val), cfg.batch_size), resume,
            epoch_budget(cfg.max_epochs, cfg.max_minutes), cfg.max_minutes, progress,
            f"skymorph clouds train --out {out} --resume", accelerator="cpu", devices=1)
    save_best_weights(out, net, "net", "cloudflow.safetensors")
    return out


def load_cloud_flow(run) -> tuple[CloudFlow, CloudConfig]:
    """The trained flow (eval mode) and its configuration, loaded as data."""
    run = Path(run)
    if not (run / "cloudflow.safetensors").exists():
        raise InputError(f"{run}: no cloudflow.safetensors (not a finished clouds train run)")
    cfg = CloudConfig.validated(yaml.safe_load((run / "config.yaml").read_text()), run / "config.yaml")
    net = _build(cfg, len(cfg.columns), len(cfg.columns))  # both sides have the store's columns
    return load_weights(net, run / "cloudflow.safetensors", "clouds train").eval(), cfg
