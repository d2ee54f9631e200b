"""Training through PyTorch Lightning, and loading a trained run for translation.

A run folder holds ``config.yaml`` (resolved), ``checkpoints/last.ckpt`` (every epoch) and
``checkpoints/best.ckpt`` (lowest validation loss: L1 of one translation, for the diffusion family
its training loss at fixed noise, for an unpaired method its cycle error on unpaired validation
batches), ``logs/csv`` and ``logs/tb``. Checkpoints are loaded as data
(``torch.load(weights_only=True)``), never as code.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from ..data.dataset import PairedMaps, check_pair
from ..data.normalise import LogStandardise
from ..data.store import MapStore
from ..devices import resolve_device
from ..models.dim import check_dim_shape
from ..errors import ConfigError, InputError, SkymorphError
from ..training.config import epoch_budget
from ..training.run import (checkpoint_state, cosine_lr_scale, ema_weights, fit_run, prepare_run_folder,
                            record_session, warm_ema)
from . import make_method, method_class
from .apply import check_store
from .base import TranslationMethod
from .config import TrainConfig

CONFIG_NAME = "config.yaml"


class TranslationModule(L.LightningModule):
    """Wraps a :class:`TranslationMethod`: manual optimisation, gradient clipping, EMA, NaN guard."""

    def __init__(self, method: TranslationMethod, cfg: TrainConfig):
        super().__init__()
        self.method, self.cfg = method, cfg
        self.automatic_optimization = False
        self.ema = warm_ema(method.net, cfg.ema_decay) if cfg.ema else None

    def configure_optimizers(self):
        return self.method.make_optimizers(self.cfg.lr)

    def on_train_batch_start(self, batch, batch_idx):
        """Cosine learning-rate decay over the budget (:func:`cosine_lr_scale`)."""
        if self.cfg.lr_schedule != "cosine":
            return
        scale = cosine_lr_scale(self.trainer)
        opts = self.optimizers()
        for opt in opts if isinstance(opts, list) else [opts]:
            for group in opt.optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * scale

    def _step(self, i: int, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise SkymorphError(f"training loss became {loss.item()} at step {self.global_step} "
                                f"(epoch {self.current_epoch}); the last good checkpoint is kept in "
                                f"{Path(self.trainer.default_root_dir) / 'checkpoints'}")
        opts = self.optimizers()
        opt = opts[i] if isinstance(opts, list) else opts
        opt.zero_grad()
        self.manual_backward(loss)
        if self.cfg.grad_clip:
            self.clip_gradients(opt, gradient_clip_val=self.cfg.grad_clip, gradient_clip_algorithm="norm")
        opt.step()

    def training_step(self, batch, batch_idx):
        losses = self.method.training_step(batch, self._step)
        if self.ema is not None:
            self.ema.update_parameters(self.method.net)
        self.log_dict({f"train_{k}": v.detach() for k, v in losses.items()}, prog_bar=True, on_step=True, on_epoch=True,
                      batch_size=len(batch["source"]), sync_dist=True)

    def validation_step(self, batch, batch_idx):
        loss = self.method.validation_loss(batch)
        self.log("val_loss", loss, prog_bar=True, batch_size=len(batch["source"]), sync_dist=True)
        self.log_dict({f"val_{k}": v for k, v in self.method.validation_metrics(batch).items()},
                      batch_size=len(batch["source"]), sync_dist=True)


def fill_from_data(cfg: TrainConfig) -> TrainConfig:
    """The config completed with the store's absolute path and fingerprint, normalisation, units, map
    size (pair checked) and the method's EMA default."""
    ema_default = method_class(cfg.method).ema_default
    with MapStore(cfg.data) as store:
        check_pair(store, cfg.source, cfg.target)
        norms = {d: vars(store.norm(d)) for d in [*cfg.source, cfg.target]}
        units = {d: store.unit(d) for d in [*cfg.source, cfg.target]}
        npix, fingerprint = store.npix, store.fingerprint
    if cfg.backbone == "dim":
        check_dim_shape((npix, npix), cfg.patch_size, f"{cfg.data}: ")
    elif npix % 2**cfg.depth:
        raise ConfigError(f"{cfg.data}: map size {npix} not divisible by 2**depth = {2 ** cfg.depth}")
    ema = ema_default if cfg.ema is None else cfg.ema
    return cfg.model_copy(update={"norms": norms, "units": units, "npix": npix, "ema": ema,
                                  "data": Path(cfg.data).resolve(), "store_fingerprint": fingerprint})


def _norms(cfg: TrainConfig) -> dict[str, LogStandardise]:
    return {d: LogStandardise(**v) for d, v in cfg.norms.items()}


def train(cfg: TrainConfig, out: Path, resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    """Train ``cfg.method`` into the run folder ``out``; ``resume`` continues a killed run."""
    out = Path(out)
    if resume:
        prepare_run_folder(out, resume, overwrite)
        saved = TrainConfig.load(out / CONFIG_NAME)
        with MapStore(cfg.data) as store:  # the store given now (moved, or as saved), checked to be the run's
            check_store(saved, store)
        cfg = saved.model_copy(update={"max_epochs": cfg.max_epochs, "max_minutes": cfg.max_minutes,
                                       "data": Path(cfg.data).resolve()})
    else:
        cfg = fill_from_data(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    method = make_method(cfg.method, len(cfg.source), 1, **cfg.method_options())  # options refused before any write
    if not resume:
        prepare_run_folder(out, resume, overwrite)  # an existing run is cleared (--overwrite) only now
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / CONFIG_NAME)
    norms = _norms(cfg)
    train_ds = PairedMaps(cfg.data, cfg.source, cfg.target, "train", cfg.augment, norms, paired=method.paired)
    val_ds = _validation_maps(cfg, norms, method.paired)
    start = time.perf_counter()
    method.fit_prior(*_train_arrays(train_ds))
    if not method.trainable:
        return _save_closed_form(method, out, time.perf_counter() - start)
    module = TranslationModule(method, cfg)
    loader = DataLoader(train_ds, cfg.batch_size, shuffle=True, num_workers=cfg.num_workers, drop_last=len(train_ds) > cfg.batch_size,
                        persistent_workers=cfg.num_workers > 0)
    val_loader = DataLoader(val_ds, cfg.batch_size, num_workers=cfg.num_workers)
    fit_run(out, module, loader, val_loader, resume, epoch_budget(cfg.max_epochs, cfg.max_minutes), cfg.max_minutes,
            progress, f"skymorph train --out {out} --resume", cfg.deterministic,
            accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy, precision=cfg.precision)
    return out


def _validation_maps(cfg: TrainConfig, norms: dict[str, LogStandardise], paired: bool) -> PairedMaps:
    """The val split; for an unpaired method, unpaired (each view's target from another galaxy, drawn
    once) and, when the val split holds a single galaxy, with target views from the train split."""
    if paired:
        return PairedMaps(cfg.data, cfg.source, cfg.target, "val", False, norms)
    with MapStore(cfg.data) as store:
        one_galaxy = len(store.galaxies("val")) < 2
    if one_galaxy:
        warnings.warn(f"{cfg.data}: the val split holds one galaxy; unpaired validation takes its target views "
                      f"from the train split", stacklevel=3)
    return PairedMaps(cfg.data, cfg.source, cfg.target, "val", False, norms, paired=False,
                      target_split="train" if one_galaxy else "val", seed=cfg.seed)


def _train_arrays(ds: PairedMaps, max_maps: int = 512):
    """(source, target) normalised arrays of up to ``max_maps`` evenly spaced train views."""
    pick = range(0, len(ds), max(1, len(ds) // max_maps))
    items = [ds[i] for i in pick]
    return (torch.stack([b["source"] for b in items]).numpy(), torch.stack([b["target"] for b in items]).numpy())


def _save_closed_form(method: TranslationMethod, out: Path, seconds: float) -> Path:
    (out / "checkpoints").mkdir(exist_ok=True)
    state = {"state_dict": {f"method.{k}": v for k, v in method.state_dict().items()}, "epoch": 0, "global_step": 0}
    torch.save(state, out / "checkpoints" / "last.ckpt")
    record_session(out, seconds, "closed_form", 0, 0, None)
    return out


def load_run(run: str | Path, ema: bool = True, which: str = "best", reverse: bool = False,
             device: str = "cpu") -> tuple[TrainConfig, TranslationMethod]:
    """The config and the trained method of a run folder, on ``device`` (auto, cpu, cuda, cuda:N):
    the checkpoint with the lowest validation loss ('best', the default) or the last one (a
    closed-form method has only that one fit); EMA weights for ``net`` when trained with EMA.
    ``reverse``: a two-way method (cyclegan) translating target -> source, with the config to match."""
    run = Path(run)
    dev = resolve_device(device)
    if not (run / CONFIG_NAME).exists():
        raise InputError(f"{run}: no {CONFIG_NAME} (not a skymorph run folder)")
    cfg = TrainConfig.load(run / CONFIG_NAME)
    method = make_method(cfg.method, len(cfg.source), 1, **cfg.method_options())
    state = checkpoint_state(run, which if method.trainable else "last").get("state_dict", {})
    own = {k[len("method."):]: v for k, v in state.items() if k.startswith("method.")}
    try:
        method.load_state_dict(own)
    except RuntimeError as exc:
        raise InputError(f"{run}/checkpoints: weights do not fit a {cfg.method!r} model with "
                         f"{len(cfg.source)} source channel(s) (checkpoint from another method or domains?): "
                         f"{str(exc).splitlines()[0]}") from None
    if ema and cfg.ema:
        method.net.load_state_dict(ema_weights(state))
    if reverse:
        method = method.reverse()
        if len(cfg.source) != 1:
            raise ConfigError(f"{run}: reversing needs one source domain, the run has {', '.join(cfg.source)}")
        cfg = cfg.model_copy(update={"source": [cfg.target], "target": cfg.source[0]})
    return cfg, method.to(dev).eval()


def count_parameters(method: TranslationMethod) -> int:
    """Parameters of the networks ``translate`` evaluates: ``net``, and that of a method it holds (corrdiff's mean)."""
    held = [m for m in method.modules() if isinstance(m, TranslationMethod)]
    return sum(p.numel() for m in held for p in m.net.parameters())


__all__ = ["train", "load_run", "TrainConfig", "count_parameters"]
