"""An inference run: summary + density estimator trained on simulations, in a run folder.

The folder holds ``infer.yaml`` (the resolved :class:`InferConfig`: data, fingerprint, parameters,
prior box, summary and estimator settings, map size and pixel scale), ``summary.json`` (the summary's
settings and the training summaries' range), for the ``cnn`` and ``cnn+pk`` summaries the
compressor's weights (``compressor.safetensors``, with its Lightning checkpoints, logs and
``training.json``), and the estimator (``estimator.json`` with ``estimator.safetensors`` or
``estimator.npz``). Everything loads as data; nothing is unpickled.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import yaml
from pydantic import PositiveFloat, PositiveInt

from ..atomic import write_text
from ..errors import ConfigError, InputError, OutputExistsError
from ..training.config import RunConfig
from .data import NoiseModel, SimulationSet, load_simulations, prior_box
from .estimators import load_estimator, make_estimator
from .summaries import PowerSummary

__all__ = ["InferConfig", "InferenceRun", "train_inference", "load_inference"]

CONFIG_NAME = "infer.yaml"


class InferConfig(RunConfig):
    """Everything an inference run needs to be reproduced."""

    data: Path
    params: list[str]
    maps: Optional[str] = None  # map dataset of a plain file (default kappa)
    domains: list[str] = []  # map-store domains, one channel each
    prior: dict[str, tuple[float, float]] = {}  # filled: the box, given or found in the file
    summary: Literal["pk", "cnn", "cnn+pk"] = "pk"
    estimator: Literal["npe", "nle", "gaussian"] = "npe"
    density: Literal["maf", "nsf"] = "nsf"  # a single MAF was over-confident on GRFs (README)
    ensemble: PositiveInt = 1
    noise: Literal["none", "shape"] = "none"
    noise_copies: PositiveInt = 1  # noise realisations per training map for the density estimator
    pk_bins: PositiveInt = 16
    peaks: int = 0
    features: Optional[PositiveInt] = None  # cnn: summaries per map (default: the number of parameters)
    base_channels: PositiveInt = 16  # cnn width
    max_epochs: Optional[PositiveInt] = None  # cnn epochs (None: training.config.epoch_budget)
    max_minutes: Optional[PositiveFloat] = None
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 1e-3
    val_fraction: float = 0.1
    npe_epochs: PositiveInt = 500  # cap on the density estimator's epochs (sbi stops earlier on its validation)
    seed: int = 0
    # filled from the data
    data_fingerprint: str = ""
    npix: int = 0
    pixel_size: float = 0.0
    pixel_unit: str = ""
    channels: list[str] = []
    n_train: int = 0

    @classmethod
    def load(cls, path: Path) -> "InferConfig":
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: unreadable config: {exc}") from None
        return cls.validated(raw, path)


class InferenceRun:
    """A trained run: ``summarise`` maps, ``observe`` a file's maps as the run's data, ``sample``."""

    def __init__(self, folder: Path, cfg: InferConfig, summary, estimator):
        self.folder, self.cfg, self.summary, self.estimator = folder, cfg, summary, estimator
        info = json.loads((folder / "summary.json").read_text())
        self.x_lo, self.x_hi = np.array(info["x_min"]), np.array(info["x_max"])

    @property
    def box(self) -> dict[str, tuple[float, float]]:
        return {k: tuple(v) for k, v in self.cfg.prior.items()}

    def noise_model(self, sims: SimulationSet) -> NoiseModel:
        return NoiseModel(self.cfg.noise, sims.noise_std, sims.mask)

    def check(self, sims: SimulationSet) -> None:
        """The file's maps must be what the run was trained on: channels, size, pixel scale."""
        c = self.cfg
        if sims.channels != c.channels:
            raise InputError(f"{sims.path}: maps {', '.join(sims.channels)}; the run {self.folder} was trained on "
                             f"{', '.join(c.channels)}")
        if sims.npix != c.npix:
            raise InputError(f"{sims.path}: maps of {sims.npix} pixels; the run {self.folder} needs {c.npix}")
        if sims.pixel_unit != c.pixel_unit or not np.isclose(sims.pixel_size, c.pixel_size, rtol=1e-6):
            raise InputError(f"{sims.path}: pixel size {sims.pixel_size:.6g} {sims.pixel_unit}; the run "
                             f"{self.folder} was trained at {c.pixel_size:.6g} {c.pixel_unit}")

    def observe(self, sims: SimulationSet, seed: int) -> np.ndarray:
        """The maps as the run's data: the file's own noisy observation (``/gamma_obs``) with
        ``noise shape``, else noise drawn from ``seed``; the clean maps with ``noise none``."""
        self.check(sims)
        if self.cfg.noise == "shape" and sims.observed is not None:
            return sims.observed
        return self.noise_model(sims)(sims.maps, np.random.default_rng([seed, 3]))

    def summarise(self, maps: np.ndarray) -> np.ndarray:
        return self.summary(maps)

    def outside(self, x: np.ndarray) -> np.ndarray:
        """Features of summaries ``x`` (N, D) outside the training summaries' range, per map (N,)."""
        return np.any((x < self.x_lo) | (x > self.x_hi), axis=1)

    def sample(self, x: np.ndarray, n: int, seed: int, within_prior: bool = True) -> np.ndarray:
        return self.estimator.sample(x, n, seed, within_prior)


def _make_summary(cfg: InferConfig):
    return PowerSummary(cfg.npix, cfg.pixel_size, cfg.pk_bins, cfg.peaks)


def _noisy_copies(maps: np.ndarray, noise: NoiseModel, copies: int, seed: int) -> np.ndarray:
    if noise.kind == "none":
        return maps
    rng = np.random.default_rng([seed, 2])
    return np.concatenate([noise(maps, rng) for _ in range(copies)])


def _prepare_folder(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{out}: run folder exists (use --overwrite to replace it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def train_inference(cfg: InferConfig, out, overwrite: bool = False, progress: bool = True,
                    resume: bool = False) -> Path:
    """Train the run ``cfg`` into folder ``out`` (module docstring). ``resume`` continues an interrupted
    run with its saved settings (the cnn compressor from its last checkpoint; the data given in ``cfg``
    must be the same simulations, wherever they lie now) and the budget given now."""
    out = Path(out)
    if resume:
        if not (out / CONFIG_NAME).exists():
            raise InputError(f"{out}: nothing to resume (no {CONFIG_NAME})")
        saved = InferConfig.load(out / CONFIG_NAME)
        cfg = saved.model_copy(update={"data": Path(cfg.data).resolve(), "max_epochs": cfg.max_epochs,
                                       "max_minutes": cfg.max_minutes, "prior": saved.prior})
    if cfg.noise == "none" and cfg.noise_copies != 1:
        raise ConfigError("--noise-copies: noise realisations need --noise shape")
    if not 0 < cfg.val_fraction < 0.5:
        raise ConfigError(f"--val-fraction {cfg.val_fraction}: expected a fraction in (0, 0.5)")
    # a map store trains on its train and val splits; its test split stays held out
    sims = load_simulations(cfg.data, cfg.params, cfg.maps, cfg.domains or None, "train+val" if cfg.domains else None)
    if resume and sims.fingerprint != cfg.data_fingerprint:
        raise InputError(f"{sims.path}: not the simulations the run {out} started on (fingerprint "
                         f"{sims.fingerprint}, the run's {cfg.data_fingerprint})")
    box = prior_box(sims, {k: tuple(v) for k, v in cfg.prior.items()})
    est = make_estimator(cfg.estimator, box, cfg.density, cfg.ensemble)  # option errors before any work
    cfg = cfg.model_copy(update={"prior": box, "data": Path(cfg.data).resolve(), "data_fingerprint": sims.fingerprint,
                                 "npix": sims.npix, "pixel_size": sims.pixel_size, "pixel_unit": sims.pixel_unit,
                                 "channels": sims.channels, "n_train": len(sims.maps)})
    noise = NoiseModel(cfg.noise, sims.noise_std, sims.mask)
    if not resume:
        _prepare_folder(out, overwrite)
    (out / "summary.json").unlink(missing_ok=True)  # written last: its absence marks an unfinished run
    cfg.save(out / CONFIG_NAME)
    if cfg.summary == "pk":
        summary = _make_summary(cfg).fit(sims.maps)
        summary_state = {"kind": "pk", **summary.config}
    else:
        from .vmim import train_compressor

        pk = _make_summary(cfg).fit(sims.maps) if cfg.summary == "cnn+pk" else None
        summary = train_compressor(cfg, sims, noise, out, progress,
                                   resume and (out / "checkpoints" / "last.ckpt").exists(), pk)
        summary_state = {"kind": cfg.summary, **summary.config}
    x = summary(_noisy_copies(sims.maps, noise, cfg.noise_copies, cfg.seed))
    copies = len(x) // len(sims.theta)
    est.fit(np.tile(sims.theta, (copies, 1)), x, seed=cfg.seed, max_epochs=cfg.npe_epochs, log_dir=out / "logs",
            groups=np.tile(sims.groups, copies))
    est.save(out)
    write_text(out / "summary.json", json.dumps({**summary_state, "x_min": x.min(0).tolist(),
                                                 "x_max": x.max(0).tolist()}, indent=1))
    return out


def load_inference(run) -> InferenceRun:
    """A trained run folder, loaded as data."""
    folder = Path(run)
    if not (folder / CONFIG_NAME).exists():
        raise InputError(f"{folder}: no {CONFIG_NAME} (not a skymorph inference run)")
    cfg = InferConfig.load(folder / CONFIG_NAME)
    if not (folder / "summary.json").exists():
        raise InputError(f"{folder}: no summary.json (training did not finish: rerun infer train with --overwrite)")
    state = json.loads((folder / "summary.json").read_text())
    if state["kind"] == "pk":
        summary = _make_summary(cfg)
        summary.peak_rms = state["peak_rms"]
    else:
        from .vmim import load_compressor

        summary = load_compressor(folder, cfg)
    return InferenceRun(folder, cfg, summary, load_estimator(folder))
