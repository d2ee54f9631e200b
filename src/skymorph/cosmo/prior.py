"""A learned score prior for convergence maps (Remy, Lanusse et al. 2023), trained by denoising
score matching through PyTorch Lightning.

The score of the prior smoothed to noise level sigma (kappa units) is

    s(x, sigma) = -eps(x, sigma) / sigma,   eps = sigma (C + sigma^2)^-1 (x - mu) + D r_theta(x, sigma),

the analytic noise prediction of the Gaussian prior with the training maps' power spectrum
(:class:`skymorph.cosmo.massmap.GaussianPrior`) plus a U-Net residual fed the standardised map,
scaled to unit variance, and the normalised log sigma as its time. The U-Net's last layer starts
at zero, so an untrained prior is the Gaussian one (its posterior mean is the Wiener filter).

D is diagonal in Fourier space; a fixed residual r moves a mode's equilibrium under the score by
(C + sigma^2) D r / sigma. ``residual: wiener`` (the default) takes D = sigma^2 / (C + sigma^2), the
Wiener filter's noise fraction: sigma r in kappa, which vanishes against the width in the
signal-dominated modes (C >> sigma^2), where the denoising loss hardly sees r. ``damped`` takes
D = sigma / sqrt(C + sigma^2): r widths sqrt(C + sigma^2) of the mode, at every sigma (at 0.94'
pixels its chains are stable but its posterior mean is 1.7x Wiener's RMSE: README). ``white`` (D = 1, the
runs made before the option, which load as such) moves it by r sqrt(C + sigma^2) / sigma widths: at
0.94' pixels the signal-dominated modes amplify the residual's small errors until the annealed chains
run away below sigma ~ 0.01 (README).

A run folder holds ``prior.yaml`` (the resolved :class:`PriorConfig`: geometry, spectrum, the KS
smoothing chosen on the training maps), ``train_seeds.npy`` (PM seeds of the training maps, so a
benchmark can refuse them), ``checkpoints/last.ckpt`` (every epoch) and ``best.ckpt`` (lowest
validation loss), ``logs/csv`` and ``logs/tb``. Checkpoints are loaded as data (weights_only).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Optional

import lightning as L
import numpy as np
import torch
import yaml
from pydantic import PositiveFloat, PositiveInt
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from skymorph.cosmo.massmap import LensingData, _fourier, choose_smoothing, mode_power, read_lensing_file, ring_spectrum
from skymorph.devices import resolve_device
from skymorph.errors import ConfigError, InputError, SkymorphError
from skymorph.training.config import BackboneConfig, epoch_budget
from skymorph.training.run import (checkpoint_state, cosine_lr_scale, ema_weights, fit_run, prepare_run_folder,
                                   training_record, warm_ema)
from skymorph.models import denoiser
from skymorph.models.dim import check_dim_shape

__all__ = ["PriorConfig", "ScoreNet", "denoising_loss", "train_prior", "load_prior", "check_geometry", "gain_line"]

CONFIG_NAME = "prior.yaml"
SEEDS_NAME = "train_seeds.npy"


class PriorConfig(BackboneConfig):
    """Everything a prior run needs to be rebuilt. Lengths in arcmin, kappa dimensionless,
    ell in rad^-1, C_ell in rad^2; the fields after ``val_fraction`` are filled from the data."""

    data: Path
    max_epochs: Optional[PositiveInt] = None  # None: skymorph.methods.config.epoch_budget
    max_minutes: Optional[PositiveFloat] = None
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    base_channels: int = 16
    depth: int = 3
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    deterministic: bool = True  # deterministic kernels (some CUDA kernels have none: False to train there)
    sigma_min: float = 1e-3
    sigma_max_factor: float = 5.0  # sigma_max = factor x the pixel standard deviation of the maps
    val_fraction: float = 0.1
    npix: int = 0
    pixel_arcmin: float = 0.0
    noise_std: float = 0.0
    kappa_mean: float = 0.0
    kappa_std: float = 1.0
    sigma_max: float = 0.0
    ks_smoothing_arcmin: float = 0.0
    ell: list[float] = []
    cl: list[float] = []
    data_fingerprint: str = ""  # LensingData.fingerprint of the training maps
    gaussian_val_loss: Optional[float] = None  # the Gaussian start's validation loss: what training has to beat
    residual: Literal["damped", "wiener", "white"] = "wiener"  # the residual's per-mode scale D (module docstring)

    @classmethod
    def load(cls, path: Path) -> "PriorConfig":
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"{path}: unreadable prior config ({exc}); "
                             f"not a 'skymorph lensing train-prior' run?") from None
        if isinstance(raw, dict):
            raw.setdefault("residual", "white")  # runs from before the option were trained white
        return cls.validated(raw, path)


class ScoreNet(nn.Module):
    """Score of the smoothed convergence prior (module docstring); maps (B, H, W) in kappa units."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.net = denoiser(cfg.backbone, 1, 1, **cfg.denoiser_options())
        self.register_buffer("power", mode_power(cfg.ell, cfg.cl, cfg.npix, cfg.pixel_arcmin).float())
        self.register_buffer("moments", torch.tensor([cfg.kappa_mean, cfg.kappa_std]))
        self.register_buffer("log_sigma", torch.tensor([math.log(cfg.sigma_min), math.log(cfg.sigma_max)]))
        self.damping = {"white": 0, "damped": 1, "wiener": 2}[cfg.residual]  # D = (sigma^2 / (C + sigma^2))^(p/2)

    @property
    def mean(self) -> float:
        return float(self.moments[0])

    def gaussian_eps(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The Gaussian prior's noise prediction (the network's starting point), sigma (B,) in kappa units."""
        s = sigma.view(-1, 1, 1)
        return s * _fourier(x - self.moments[0], 1.0 / (self.power + s**2))

    def eps(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Predicted unit noise of x = kappa + sigma z, sigma (B,) in kappa units."""
        mu, std = self.moments
        s = sigma.view(-1, 1, 1)
        t = (torch.log(sigma) - self.log_sigma[0]) / (self.log_sigma[1] - self.log_sigma[0])
        z = (x - mu) / std / torch.sqrt(1 + (s / std) ** 2)
        r = self.net(z[:, None], t)[:, 0]
        if self.damping:
            r = _fourier(r, (s**2 / (self.power + s**2)) ** (self.damping / 2))
        return self.gaussian_eps(x, sigma) + r

    def score(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """grad log p_sigma(x) (1 / kappa units)."""
        return -self.eps(x, torch.full((len(x),), sigma, dtype=x.dtype, device=x.device)) / sigma


def _dihedral(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """One random symmetry of the square (flip, then 0-3 quarter turns) per batch: kappa statistics are isotropic."""
    k, flip = torch.randint(0, 4, (2,), generator=gen).tolist()
    x = x.flip(-1) if flip % 2 else x
    return torch.rot90(x, k, dims=(-2, -1))


def denoising_loss(net: ScoreNet, kappa: torch.Tensor, gen: torch.Generator | None = None,
                   gaussian: bool = False) -> torch.Tensor:
    """E |eps(kappa + sigma z, sigma) - z|^2 of ``net`` (``gaussian``: of its Gaussian start), log sigma
    uniform in the net's range, sigma and z drawn from ``gen``."""
    lo, hi = net.log_sigma
    sigma = torch.exp(lo + (hi - lo) * torch.rand(len(kappa), generator=gen, device=kappa.device))
    z = torch.randn(kappa.shape, generator=gen, device=kappa.device, dtype=kappa.dtype)
    eps = net.gaussian_eps if gaussian else net.eps
    return torch.mean((eps(kappa + sigma.view(-1, 1, 1) * z, sigma) - z) ** 2)


def _validation_loss(net: ScoreNet, loader: DataLoader, gaussian: bool) -> float:
    """The validation loss as validation_step logs it (batch i noised from seed i; batch-weighted mean)."""
    total = n = 0
    with torch.no_grad():
        for i, (kappa,) in enumerate(loader):
            total += float(denoising_loss(net, kappa, torch.Generator().manual_seed(i), gaussian)) * len(kappa)
            n += len(kappa)
    return total / max(n, 1)


class PriorModule(L.LightningModule):
    """Denoising score matching, E |eps(kappa + sigma z, sigma) - z|^2 with log sigma uniform in
    [log sigma_min, log sigma_max]; Adam, cosine decay over the budget, gradient clipping, EMA
    (warmed up) of the weights, which validate and are loaded."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        self.score = ScoreNet(cfg)
        self.ema = warm_ema(self.score, cfg.ema_decay)

    def configure_optimizers(self):
        return torch.optim.Adam(self.score.net.parameters(), lr=self.cfg.lr)

    def on_train_batch_start(self, batch, batch_idx):
        """Cosine learning-rate decay over the budget (epochs or minutes, whichever ends first), to 5%."""
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = self.cfg.lr * cosine_lr_scale(self.trainer)

    def training_step(self, batch, batch_idx):
        loss = denoising_loss(self.score, _dihedral(batch[0]))
        if not torch.isfinite(loss):
            raise SkymorphError(f"training loss became {loss.item()} at step {self.global_step}; the last good "
                                f"checkpoint is kept in {Path(self.trainer.default_root_dir) / 'checkpoints'}")
        self.log("train_loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=True, batch_size=len(batch[0]))
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.ema.update_parameters(self.score)

    def validation_step(self, batch, batch_idx):
        """The EMA network's loss at seeded noise levels and noise, comparable across epochs, beside the
        Gaussian prior's on the same draws (``val_loss_gaussian``: what the network has to beat)."""
        losses = {}
        for name, gaussian in (("val_loss", False), ("val_loss_gaussian", True)):
            gen = torch.Generator(batch[0].device).manual_seed(batch_idx)
            losses[name] = denoising_loss(self.ema.module, batch[0], gen, gaussian)
        self.log_dict(losses, prog_bar=True, batch_size=len(batch[0]))


def _split(n: int, val_fraction: float) -> tuple[slice, slice]:
    n_val = max(1, int(round(n * val_fraction))) if n > 1 else 0
    return slice(0, n - n_val), slice(n - n_val, n)


def _fill(cfg: PriorConfig, data: LensingData) -> PriorConfig:
    """Geometry, moments, ring power spectrum and KS smoothing from the training part of ``data``."""
    if cfg.backbone == "dim":
        check_dim_shape((data.npix, data.npix), cfg.patch_size, f"{data.path}: ")
    elif data.npix % 2**cfg.depth:
        raise ConfigError(f"{data.path}: map size {data.npix} not divisible by 2**depth = {2 ** cfg.depth}")
    if len(data.kappa) < 2:
        raise InputError(f"{data.path}: {len(data.kappa)} map(s); training a prior needs at least 2")
    train, _ = _split(len(data.kappa), cfg.val_fraction)
    kappa = data.kappa[train].astype(np.float64)
    ell, cl = ring_spectrum(kappa, data.pixel_arcmin)
    pick = slice(0, min(len(kappa), 256))
    scale_px, _ = choose_smoothing(kappa[pick], data.gamma[train][pick], data.mask)
    std = float(kappa.std())
    return cfg.model_copy(update={"data": Path(data.path).resolve(), "data_fingerprint": data.fingerprint,
                                  "npix": data.npix, "pixel_arcmin": data.pixel_arcmin, "noise_std": data.noise_std,
                                  "kappa_mean": float(kappa.mean()), "kappa_std": std,
                                  "sigma_max": cfg.sigma_max_factor * std, "ks_smoothing_arcmin": scale_px * data.pixel_arcmin,
                                  "ell": ell.tolist(), "cl": cl.tolist()})


def train_prior(data, out, max_epochs: int | None = None, max_minutes: float | None = None, resume: bool = False,
                overwrite: bool = False, progress: bool = True, device: str = "cpu", **options) -> Path:
    """Train the score prior on the convergence maps of ``data`` (a kappa.h5) into run folder ``out``
    on ``device`` (auto, cpu, cuda, cuda:N); the last ``val_fraction`` of the maps validate. ``resume``
    continues a killed or finished run (``max_epochs`` / ``max_minutes`` may be raised), reading its maps
    from ``data`` when given (a moved file, checked by fingerprint) or from where they were."""
    out = Path(out)
    dev = resolve_device(device)
    budget = {k: v for k, v in (("max_epochs", max_epochs), ("max_minutes", max_minutes)) if v is not None}
    prepare_run_folder(out, resume, overwrite)
    if resume:
        cfg = PriorConfig.load(out / CONFIG_NAME).model_copy(update=budget)
        lens = read_lensing_file(data or cfg.data, need_kappa=True)
        check_geometry(cfg, lens)
        if cfg.data_fingerprint and lens.fingerprint != cfg.data_fingerprint:
            raise InputError(f"{lens.path}: maps fingerprint {lens.fingerprint} is not the prior's training maps' "
                             f"{cfg.data_fingerprint} ({cfg.data}): resume on the maps it was trained on")
        cfg = cfg.model_copy(update={"data": Path(lens.path).resolve()})
    else:
        cfg = PriorConfig.validated({"data": Path(data).resolve(), **options, **budget}, "train-prior")
        lens = read_lensing_file(data, need_kappa=True)
        cfg = _fill(cfg, lens)
        out.mkdir(parents=True, exist_ok=True)
        if lens.seeds is not None:
            np.save(out / SEEDS_NAME, np.asarray(lens.seeds, dtype=np.int64))
    train, val = _split(len(lens.kappa), cfg.val_fraction)
    kappa = torch.from_numpy(lens.kappa.astype(np.float32))
    loader = DataLoader(TensorDataset(kappa[train]), cfg.batch_size, shuffle=True, drop_last=train.stop > cfg.batch_size)
    val_loader = DataLoader(TensorDataset(kappa[val]), cfg.batch_size)
    if cfg.gaussian_val_loss is None:  # before seeding: the network's initialisation is not disturbed
        cfg = cfg.model_copy(update={"gaussian_val_loss": _validation_loss(ScoreNet(cfg), val_loader, gaussian=True)})
    cfg.save(out / CONFIG_NAME)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    fit_run(out, PriorModule(cfg), loader, val_loader, resume, epoch_budget(cfg.max_epochs, cfg.max_minutes),
            cfg.max_minutes, progress, f"skymorph lensing train-prior --out {out} --resume",
            cfg.deterministic, accelerator=dev.type, devices=[dev.index or 0] if dev.type == "cuda" else 1,
            gradient_clip_val=cfg.grad_clip)
    return out


def gain_line(run) -> str:
    """How far training took the prior past its Gaussian start, on the validation maps: one line."""
    cfg = PriorConfig.load(Path(run) / CONFIG_NAME)
    sessions = training_record(run)["sessions"]
    best = sessions[-1]["best_val_loss"] if sessions else None
    if best is None or cfg.gaussian_val_loss is None:
        return "no validation loss recorded"
    gain = 1 - best / cfg.gaussian_val_loss
    return (f"best validation loss {best:.4g} against the Gaussian prior's {cfg.gaussian_val_loss:.4g} on the same "
            f"draws: {100 * abs(gain):.1f}% {'lower' if gain >= 0 else 'higher'}")


def load_prior(run, which: str = "best", device: str = "cpu") -> tuple[PriorConfig, ScoreNet]:
    """The config and the EMA score network of a prior run (checkpoint ``which``: best or last), on
    ``device`` (auto, cpu, cuda, cuda:N)."""
    run = Path(run)
    dev = resolve_device(device)
    if not (run / CONFIG_NAME).exists():
        raise InputError(f"{run}: no {CONFIG_NAME} (not a 'skymorph lensing train-prior' run folder)")
    cfg = PriorConfig.load(run / CONFIG_NAME)
    state = checkpoint_state(run, which)["state_dict"]
    net = ScoreNet(cfg)
    try:
        net.load_state_dict(ema_weights(state))
    except RuntimeError as exc:
        raise InputError(f"{run}/checkpoints: weights do not fit the network of {run / CONFIG_NAME}: "
                         f"{str(exc).splitlines()[0]}") from None
    return cfg, net.to(dev).eval()


def check_geometry(cfg: PriorConfig, data: LensingData) -> None:
    """ConfigError unless ``data`` has the map size and pixel scale the prior was trained on."""
    if data.npix != cfg.npix or not math.isclose(data.pixel_arcmin, cfg.pixel_arcmin, rel_tol=1e-6):
        raise ConfigError(f"{data.path}: {data.npix}^2 maps of {data.pixel_arcmin:.4g} arcmin pixels, but the prior was "
                          f"trained on {cfg.npix}^2 maps of {cfg.pixel_arcmin:.4g} arcmin pixels ({cfg.data})")
