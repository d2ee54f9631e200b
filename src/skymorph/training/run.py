"""Run mechanics shared by every wing that trains a network (translation methods, the lensing prior,
inference summaries): the run folder, a Lightning fit with checkpoints, resume, logs and a budget in
epochs and/or minutes, the cosine learning-rate schedule, a warm EMA, and ``training.json``, the record
of every training session. Checkpoints are loaded as data (``torch.load(weights_only=True)``).
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

from ..atomic import write_text
from ..errors import ConfigError, InputError, Interrupted, OutputExistsError

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


def save_best_weights(run: Path, net: torch.nn.Module, prefix: str, name: str) -> None:
    """Load submodule ``prefix``'s weights of the run's best checkpoint into ``net`` and write them as
    safetensors to ``run``/``name`` (what the run is applied from, loaded as data)."""
    from safetensors.torch import save_file

    state = checkpoint_state(run, "best")["state_dict"]
    net.load_state_dict({k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")})
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(run / name))


def load_weights(net: torch.nn.Module, path: Path, what: str) -> torch.nn.Module:
    """``net`` with the safetensors weights at ``path``; InputError naming the file when it is missing
    (not a finished ``what`` run) or does not fit ``net``."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path.parent}: no {path.name} (not a finished {what} run)")
    try:
        net.load_state_dict(load_file(str(path)))
    except Exception as exc:  # safetensors and torch raise several types for damaged or foreign files
        raise InputError(f"{path}: unreadable or not this run's weights: {type(exc).__name__}: {exc}") from None
    return net


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
            max_epochs: int, max_minutes: float | None, progress: bool, resume_command: str,
            deterministic: bool = True, callbacks: tuple = (), **trainer_options) -> dict:
    """Fit ``module`` into run folder ``out`` through Lightning: ``checkpoints/last.ckpt`` after every
    epoch (``resume`` continues from it: optimiser state, epoch count, and the time budget already
    spent), ``best.ckpt`` at the lowest ``val_loss``, CSV and TensorBoard logs (a resumed session logs
    to the next version_N), the budget in epochs and/or minutes, ``deterministic`` kernels. The
    session is added to ``training.json`` however it ends; Ctrl-C raises :class:`Interrupted` saying
    what was kept and ``resume_command``, the command that continues it; ``callbacks`` are added (e.g.
    early stopping: its state travels in the checkpoint). Returns the run's training record
    (:func:`training_record`)."""
    ckpt_dir = out / "checkpoints"
    extra = list(callbacks)
    callbacks = [ModelCheckpoint(ckpt_dir, filename="last", save_top_k=1, every_n_epochs=1,
                                 enable_version_counter=False),
                 ModelCheckpoint(ckpt_dir, filename="best", monitor="val_loss", save_top_k=1, every_n_epochs=1,
                                 enable_version_counter=False), *extra]
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
        stop = ("epochs" if trainer.current_epoch >= max_epochs else
                "early stop" if any(getattr(c, "stopped_epoch", 0) for c in extra) else "minutes")
    best = callbacks[1].best_model_score
    record = record_session(out, time.perf_counter() - start, stop, trainer.current_epoch, trainer.global_step,
                            None if best is None else float(best))
    if stop == "interrupted":
        where = f"{out}: training interrupted in epoch {trainer.current_epoch + 1} after {record['seconds']:.0f} s in all"
        if (ckpt_dir / "last.ckpt").exists():
            raise Interrupted(f"{where}; kept checkpoints/last.ckpt after epoch {epochs_done(out)}: resume with "
                              f"{resume_command}")
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
           "closed_form": "fitted in closed form", "interrupted": "interrupted",
           "early stop": "stopped early (no better validation loss in --patience epochs)"}[last["stop"]]
    loss = "" if last["best_val_loss"] is None else f", best validation loss {last['best_val_loss']:.4g}"
    return (f"{last['epochs']} epochs, {last['steps']} steps{loss}; {why} after {rec['seconds'] / 60:.2f} min of "
            f"training over {len(rec['sessions'])} session(s); the run is applied from checkpoints/"
            + ("last.ckpt" if last["stop"] == "closed_form" else "best.ckpt"))


def train_seconds(run: Path) -> float:
    """Wall-clock training seconds of a run, summed over all its sessions, interrupted ones included."""
    return float(training_record(run)["seconds"])


def epochs_done(run: Path) -> int:
    """Completed epochs of a run (from its last checkpoint)."""
    return int(checkpoint_state(Path(run)).get("epoch", -1)) + 1


__all__ = ["budget_progress", "cosine_lr_scale", "warm_ema", "checkpoint_state", "ema_weights", "prepare_run_folder", "fit_run", "record_session", "training_record", "summary_line", "train_seconds", "epochs_done", "TRAINING"]
