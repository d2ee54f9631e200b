"""Training through PyTorch Lightning, and loading a trained run for translation.

A run folder holds ``config.yaml`` (resolved), ``checkpoints/last.ckpt`` (every epoch) and
``checkpoints/best.ckpt`` (lowest validation loss: L1 of one translation, for the diffusion family
its training loss at fixed noise, for an unpaired method its cycle error on unpaired validation
batches), ``logs/csv`` and ``logs/tb``. Checkpoints are loaded as data
(``torch.load(weights_only=True)``), never as code.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import time
import warnings
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, Timer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from ..data.dataset import PairedMaps, check_pair
from ..data.normalise import LogStandardise
from ..data.store import MapStore
from ..atomic import write_text
from ..devices import resolve_device
from ..errors import ConfigError, InputError, Interrupted, OutputExistsError, SkymorphError
from . import make_method, method_class
from .apply import check_store
from .base import TranslationMethod
from .config import TrainConfig, epoch_budget

CONFIG_NAME = "config.yaml"
TRAINING = "training.json"  # every training session of the run: seconds, how it stopped, epochs


def budget_progress(trainer: L.Trainer) -> float:
    """Fraction of the training budget used: the larger of the batch and the wall-clock fractions
    (batches, not optimiser steps: a GAN steps twice per batch)."""
    batches = trainer.fit_loop.epoch_loop.total_batch_idx + 1
    frac = batches / max(1.0, float(trainer.estimated_stepping_batches))
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is not None and timer._duration:
        frac = max(frac, timer.time_elapsed("train") / timer._duration)
    return min(frac, 1.0)


def cosine_lr_scale(trainer: L.Trainer) -> float:
    """Factor on the initial learning rate: cosine decay over the budget (epochs or minutes, whichever
    ends first) from 1 down to 0.05, so the last weights are averaged by the small steps."""
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * budget_progress(trainer)))


def warm_ema(net: torch.nn.Module, decay: float) -> AveragedModel:
    """Exponential moving average of ``net``'s weights with warm-up: decay min(decay, (1 + n) / (10 + n))
    after n updates, so that a few hundred CPU steps already average recent weights, not the initial ones
    (a fixed 0.999 keeps 37% of the initial weights after 1000 steps)."""
    def avg(avg_p: torch.Tensor, new_p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
        return d * avg_p + (1.0 - d) * new_p
    return AveragedModel(net, avg_fn=avg)


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
    if npix % 2**cfg.depth:
        raise ConfigError(f"{cfg.data}: map size {npix} not divisible by 2**depth = {2 ** cfg.depth}")
    ema = ema_default if cfg.ema is None else cfg.ema
    return cfg.model_copy(update={"norms": norms, "units": units, "npix": npix, "ema": ema,
                                  "data": Path(cfg.data).resolve(), "store_fingerprint": fingerprint})


def _norms(cfg: TrainConfig) -> dict[str, LogStandardise]:
    return {d: LogStandardise(**v) for d, v in cfg.norms.items()}


def checkpoint_state(run: Path, which: str = "last") -> dict:
    """The checkpoint ``which`` ('last' or 'best') of a run, loaded as data; InputError if it is missing."""
    if which not in ("last", "best"):
        raise ConfigError(f"checkpoint {which!r}: expected 'best' or 'last'")
    ckpt = run / "checkpoints" / f"{which}.ckpt"
    if not ckpt.exists():
        why = "not a trained run" if which == "last" else "no validation epoch finished: ask for the last one"
        raise InputError(f"{run}: no checkpoints/{which}.ckpt ({why})")
    try:
        return torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged files
        raise InputError(f"{ckpt}: corrupt or unreadable checkpoint: {type(exc).__name__}: {exc}") from None


def ema_weights(state: dict) -> dict:
    """The EMA network's weights in a Lightning ``state_dict`` (keys of the ``ema`` AveragedModel)."""
    return {k[len("ema.module."):]: v for k, v in state.items() if k.startswith("ema.module.")}


def prepare_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Check a run folder before training: ``resume`` needs its last checkpoint; a fresh run needs an
    empty folder, or ``overwrite`` (which clears it)."""
    if resume:
        if not (out / "checkpoints" / "last.ckpt").exists():
            raise InputError(f"{out}: nothing to resume (no checkpoints/last.ckpt)")
    elif out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{out}: run folder exists (use --resume to continue it or --overwrite)")
        shutil.rmtree(out)


def fit_run(out: Path, module: L.LightningModule, loader: DataLoader, val_loader: DataLoader, resume: bool,
            max_epochs: int, max_minutes: float | None, progress: bool, deterministic: bool = True,
            **trainer_options) -> dict:
    """Fit ``module`` into run folder ``out`` through Lightning: ``checkpoints/last.ckpt`` after every
    epoch (``resume`` continues from it: optimiser state, epoch count, and the time budget already
    spent), ``best.ckpt`` at the lowest ``val_loss``, CSV and TensorBoard logs (a resumed session logs
    to the next version_N), the budget in epochs and/or minutes, ``deterministic`` kernels. The
    session is added to ``training.json`` however it ends; Ctrl-C raises :class:`Interrupted` saying
    what was kept. Returns the run's training record (:func:`training_record`)."""
    ckpt_dir = out / "checkpoints"
    callbacks = [ModelCheckpoint(ckpt_dir, filename="last", save_top_k=1, every_n_epochs=1,
                                 enable_version_counter=False),
                 ModelCheckpoint(ckpt_dir, filename="best", monitor="val_loss", save_top_k=1, every_n_epochs=1,
                                 enable_version_counter=False)]
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no GPU/TPU banners and tips
    trainer = L.Trainer(default_root_dir=out, max_epochs=max_epochs,
                        max_time=timedelta(minutes=max_minutes) if max_minutes else None,
                        callbacks=callbacks, deterministic=deterministic,
                        logger=[CSVLogger(out / "logs", name="csv"), TensorBoardLogger(out / "logs", name="tb")],
                        enable_progress_bar=progress, enable_model_summary=False, log_every_n_steps=5,
                        num_sanity_val_steps=0, **trainer_options)
    start, stop = time.perf_counter(), None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(does not have many workers|LeafSpec|to be deterministic|"
                                                      "logging interval|exists and is not empty).*")
            trainer.fit(module, loader, val_loader, ckpt_path=str(ckpt_dir / "last.ckpt") if resume else None)
    except SystemExit:  # Lightning turns Ctrl-C into a graceful shutdown and sys.exit(1)
        if not trainer.interrupted:
            raise
        stop = "interrupted"
    if stop is None:
        stop = "epochs" if trainer.current_epoch >= max_epochs else "minutes"
    best = callbacks[1].best_model_score
    record = record_session(out, time.perf_counter() - start, stop, trainer.current_epoch, trainer.global_step,
                            None if best is None else float(best))
    if stop == "interrupted":
        where = f"{out}: training interrupted in epoch {trainer.current_epoch + 1} after {record['seconds']:.0f} s in all"
        if (ckpt_dir / "last.ckpt").exists():
            raise Interrupted(f"{where}; kept checkpoints/last.ckpt after epoch {epochs_done(out)}: resume with "
                              f"skymorph train --out {out} --resume")
        raise Interrupted(f"{where}; no epoch finished, so nothing was kept to resume: rerun with --overwrite")
    return record


def record_session(out: Path, seconds: float, stop: str, epochs: int, steps: int, best_val_loss: float | None) -> dict:
    """Append one training session to ``training.json`` (atomically) and return the whole record."""
    rec = training_record(out)
    rec["sessions"].append({"seconds": seconds, "stop": stop, "epochs": epochs, "steps": steps,
                            "best_val_loss": best_val_loss})
    rec.update(seconds=sum(s["seconds"] for s in rec["sessions"]), finished=stop != "interrupted")
    write_text(out / TRAINING, json.dumps(rec, indent=1))
    return rec


def training_record(run: Path) -> dict:
    """``{"seconds": total over sessions, "finished": whether the last session ended by its budget,
    "sessions": [{"seconds", "stop" (epochs, minutes, interrupted or closed_form), "epochs", "steps",
    "best_val_loss"}]}`` of a run folder (empty before any session)."""
    f = Path(run) / TRAINING
    if not f.exists():
        return {"seconds": 0.0, "finished": False, "sessions": []}
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{f}: unreadable training record: {exc}") from None


def summary_line(rec: dict) -> str:
    """One line on how the run's training ended."""
    last = rec["sessions"][-1]
    why = {"epochs": "reached --max-epochs", "minutes": "used its --max-minutes budget",
           "closed_form": "fitted in closed form", "interrupted": "interrupted"}[last["stop"]]
    loss = "" if last["best_val_loss"] is None else f", best validation loss {last['best_val_loss']:.4g}"
    return (f"{last['epochs']} epochs, {last['steps']} steps{loss}; {why} after {rec['seconds'] / 60:.2f} min of "
            f"training over {len(rec['sessions'])} session(s); translation uses checkpoints/"
            + ("last.ckpt" if last["stop"] == "closed_form" else "best.ckpt"))


def train(cfg: TrainConfig, out: Path, resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    """Train ``cfg.method`` into the run folder ``out``; ``resume`` continues a killed run."""
    out = Path(out)
    prepare_run_folder(out, resume, overwrite)
    if resume:
        saved = TrainConfig.load(out / CONFIG_NAME)
        with MapStore(cfg.data) as store:  # the store given now (moved, or as saved), checked to be the run's
            check_store(saved, store)
        cfg = saved.model_copy(update={"max_epochs": cfg.max_epochs, "max_minutes": cfg.max_minutes,
                                       "data": Path(cfg.data).resolve()})
    else:
        cfg = fill_from_data(cfg)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / CONFIG_NAME)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    method = make_method(cfg.method, len(cfg.source), 1, **cfg.method_options())
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
            progress, cfg.deterministic,
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


def train_seconds(run: Path) -> float:
    """Wall-clock training seconds of a run, summed over all its sessions, interrupted ones included."""
    return float(training_record(run)["seconds"])


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


def epochs_done(run: Path) -> int:
    """Completed epochs of a run (from its last checkpoint)."""
    return int(checkpoint_state(Path(run)).get("epoch", -1)) + 1


def count_parameters(method: TranslationMethod) -> int:
    return sum(p.numel() for p in method.net.parameters())


__all__ = ["train", "load_run", "TrainConfig", "epochs_done", "count_parameters"]
