"""Simulations for inference: maps and their parameters from any HDF5 file, the prior box, and the
observation model (shape noise and mask applied afresh).

Files read:
- a galaxy map store (``skymorph maps build``): maps ``/maps/<domain>`` (one channel per domain),
  parameters ``/meta/truth_<name>``, its train/val/test splits; pixel unit: one pixel (galaxies differ
  in kpc per pixel; the map's field of view scales with the galaxy).
- any other file: a map dataset (N, H, W) named by ``maps`` (default ``kappa`` when the file has one),
  parameters ``/params/<name>`` (N,); pixel size from the attribute ``pixel_arcmin`` (converted to
  radians, so wavenumbers are multipoles) or ``pixel_size``. ``kappa.h5`` of ``skymorph lensing
  maps`` is such a file, and with it shape noise: ``noise_std`` per shear component per pixel and
  ``/mask``, observed as ``/gamma_obs``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from ..cosmo.lensing import ARCMIN, ks_forward, ks_inverse
from ..data.store import TRUTH_PREFIX
from ..errors import ConfigError, InputError
from ..hdf5 import open_hdf5

__all__ = ["SimulationSet", "load_simulations", "parse_prior", "prior_box", "NoiseModel"]

@dataclass
class SimulationSet:
    """Maps (N, C, H, W) float32 and their parameters (N, P) float64 (None for an observation file
    without them), with what a run must match: channel names, pixel size and unit, fingerprint."""

    path: Path
    maps: np.ndarray
    theta: np.ndarray | None
    params: list[str]
    channels: list[str]
    pixel_size: float
    pixel_unit: str
    rows: np.ndarray
    noise_std: float = 0.0
    mask: np.ndarray | None = None
    observed: np.ndarray | None = field(default=None, repr=False)  # (N, C, H, W) the file's noisy maps
    fingerprint: str = ""
    groups: np.ndarray | None = None  # (N,) the independent unit of each map: a store's galaxy id, else its row

    @property
    def npix(self) -> int:
        return self.maps.shape[-1]


def _rows(n: int, index, path: Path) -> np.ndarray:
    rows = np.arange(n) if index is None else np.atleast_1d(np.asarray(index, dtype=np.int64))
    if rows.size == 0 or rows.min() < -n or rows.max() >= n:
        raise InputError(f"{path}: map index {index} out of range (the file holds {n} maps)")
    return np.sort(rows % n)


def _finite(arr: np.ndarray, path: Path, name: str, rows: np.ndarray) -> None:
    bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(1)
    if bad.any():
        raise InputError(f"{path}: {name}: map {int(rows[np.flatnonzero(bad)[0]])} holds NaN or infinite values "
                         f"({int(bad.sum())} such maps)")


def _param_names(f: h5py.File, store: bool) -> list[str]:
    if store:
        return sorted(k[len(TRUTH_PREFIX):] for k in f.get("meta", {}) if k.startswith(TRUTH_PREFIX))
    return sorted(f["params"]) if "params" in f else []


def load_simulations(path, params: list[str] | None, maps: str | None = None, domains: list[str] | None = None,
                     split: str | None = None, index=None, observed: bool = False) -> SimulationSet:
    """Read maps and parameters (module docstring). ``params`` None: an observation, parameters read
    when present (all of those the run names are then needed: pass them). ``split`` (train, val, test
    or train+val) selects a map store's views; ``index`` rows of the file. ``observed``: also the
    file's noisy observation (the KS inverse of ``/gamma_obs``), for runs trained with shape noise."""
    path = Path(path)
    with open_hdf5(path) as f:
        store = isinstance(f.get("maps"), h5py.Group) and "meta" in f
        if store:
            if maps is not None:
                raise ConfigError(f"--maps {maps}: {path} is a map store; choose its maps with --domains")
            if not domains:
                raise ConfigError(f"{path} is a map store: name its domains with --domains (it has "
                                  f"{', '.join(f['maps'])})")
            missing = [d for d in domains if d not in f["maps"]]
            if missing:
                raise InputError(f"{path}: no /maps/{missing[0]} (domains: {', '.join(f['maps'])})")
            names = [f"maps/{d}" for d in domains]
            channels = list(domains)
        else:
            if domains:
                raise ConfigError(f"--domains: {path} is not a map store; name its map dataset with --maps")
            name = maps or ("kappa" if "kappa" in f else None)
            if name is None or name not in f or not isinstance(f[name], h5py.Dataset):
                found = [k for k in f if isinstance(f[k], h5py.Dataset) and f[k].ndim == 3]
                raise InputError(f"{path}: no map dataset {name or 'kappa'!r} (name one with --maps; "
                                 f"3-d datasets here: {', '.join(found) or 'none'})")
            names, channels = [name], [name]
        n = f[names[0]].shape[0]
        if any(f[k].ndim != 3 or f[k].shape[1] != f[k].shape[2] for k in names):
            raise InputError(f"{path}: {names[0]}: expected square maps (N, H, H), got {f[names[0]].shape}")
        rows = _rows(n, index, path)
        if split is not None:
            if not store:
                raise ConfigError(f"{path}: splits belong to map stores; this file is used whole")
            in_split = np.concatenate([f[f"splits/{s}"][()] for s in split.split("+")])
            rows = np.intersect1d(rows, in_split)
        arr = np.stack([f[k][rows] for k in names], 1).astype(np.float32)
        for k, a in zip(names, np.moveaxis(arr, 1, 0)):
            _finite(a, path, k, rows)
        available = _param_names(f, store)
        want = params if params is not None else available
        missing = [p for p in want if p not in available]
        if missing and params is not None:
            where = "/meta/truth_<name>" if store else "/params/<name>"
            raise InputError(f"{path}: no parameter {missing[0]!r} ({where}; the file has "
                             f"{', '.join(available) or 'none'})")
        theta = None
        if want and not missing:
            cols = [f[f"meta/{TRUTH_PREFIX}{p}" if store else f"params/{p}"][()][rows] for p in want]
            theta = np.stack(cols, 1).astype(np.float64)
            if not np.isfinite(theta).all():
                raise InputError(f"{path}: parameter {want[int(np.flatnonzero(~np.isfinite(theta).all(0))[0])]!r} "
                                 f"holds NaN or infinite values")
        attrs = dict(f.attrs)
        if store:
            size, unit = 1.0, "pixel"
        elif "pixel_arcmin" in attrs:
            size, unit = float(attrs["pixel_arcmin"]) * ARCMIN, "rad"
        else:
            size, unit = float(attrs.get("pixel_size", 1.0)), str(attrs.get("pixel_unit", "pixel"))
        noise_std = float(attrs.get("noise_std", 0.0))
        mask = f["mask"][()].astype(np.float32) if "mask" in f else None
        groups = f["meta/galaxy_id"][()][rows] if store else rows
        obs = None
        if observed and "gamma_obs" in f and channels == ["kappa"]:
            g = torch.from_numpy(f["gamma_obs"][rows].astype(np.float64))
            obs = ks_inverse(torch.complex(g[:, 0], g[:, 1])).real.numpy().astype(np.float32)[:, None]
    h = hashlib.sha256(arr.tobytes())
    if theta is not None:
        h.update(theta.tobytes())
    return SimulationSet(path, arr, theta, list(want) if theta is not None else [], channels, size, unit, rows,
                         noise_std, mask, obs, h.hexdigest()[:16], groups)


def parse_prior(text: str | None, params: list[str]) -> dict[str, tuple[float, float]]:
    """``'Omega_m=0.2:0.4,sigma8=0.6:1.0'`` -> {name: (lo, hi)}; names must be among ``params``."""
    out: dict[str, tuple[float, float]] = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        name, _, rng = item.partition("=")
        lo, _, hi = rng.partition(":")
        try:
            box = (float(lo), float(hi))
        except ValueError:
            raise ConfigError(f"--prior {item!r}: expected name=lo:hi") from None
        if name not in params:
            raise ConfigError(f"--prior {item!r}: {name!r} is not among --params ({', '.join(params)})")
        if not box[0] < box[1]:
            raise ConfigError(f"--prior {item!r}: need lo < hi")
        out[name] = box
    return out


def prior_box(sims: SimulationSet, given: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """The prior box: ``given`` ranges, the others the range found in the file; every training
    parameter must lie inside it."""
    box = {}
    for j, p in enumerate(sims.params):
        lo, hi = given.get(p, (float(sims.theta[:, j].min()), float(sims.theta[:, j].max())))
        if not lo < hi:
            raise InputError(f"{sims.path}: parameter {p!r} takes one value ({lo:g}); nothing to infer")
        out = (sims.theta[:, j] < lo) | (sims.theta[:, j] > hi)
        if out.any():
            raise ConfigError(f"--prior {p}={lo:g}:{hi:g}: {int(out.sum())} training maps of {sims.path} lie "
                              f"outside it (the file spans {sims.theta[:, j].min():g}:{sims.theta[:, j].max():g})")
        box[p] = (lo, hi)
    return box


@dataclass
class NoiseModel:
    """The observation of a convergence map: shear from Kaiser-Squires, shape noise of ``noise_std``
    per component per pixel, the ``mask``, and the Kaiser-Squires inverse back to a (noisy, masked)
    convergence map; ``none`` leaves maps as they are."""

    kind: str = "none"
    noise_std: float = 0.0
    mask: np.ndarray | None = None

    def __post_init__(self):
        if self.kind not in ("none", "shape"):
            raise ConfigError(f"--noise {self.kind!r}: expected none or shape")
        if self.kind == "shape" and not self.noise_std > 0:
            raise ConfigError("--noise shape: the file has no shape noise (attribute noise_std); use --noise none")

    def __call__(self, maps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noisy maps (N, 1, H, W) float32 from clean ones, noise drawn from ``rng``."""
        if self.kind == "none":
            return maps
        k = torch.from_numpy(np.asarray(maps[:, 0], np.float64))
        g = ks_forward(k)
        n = torch.from_numpy(rng.standard_normal((2, *k.shape))) * self.noise_std
        m = torch.ones(k.shape[-2:], dtype=torch.float64) if self.mask is None else torch.from_numpy(self.mask).double()
        obs = torch.complex((g.real + n[0]) * m, (g.imag + n[1]) * m)
        return ks_inverse(obs).real.numpy().astype(np.float32)[:, None]
