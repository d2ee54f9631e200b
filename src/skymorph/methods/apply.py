"""Apply a trained run to physical maps: normalise, translate, invert to physical units.

Writes predictions to HDF5 (``/pred/<target>`` with the source view indices) or FITS (header kept).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from astropy.io import fits

from ..atomic import atomic_path
from ..data.fits import FITS_UNITS
from ..data.normalise import LogStandardise
from ..atomic import check_output
from ..data.store import MapStore
from ..errors import InputError
from ..provenance import provenance
from .base import TranslationMethod, check_request
from .config import TrainConfig


def translate_maps(cfg: TrainConfig, method: TranslationMethod, source: np.ndarray, steps: int | None = None,
                   seed: int | None = 0, n_samples: int = 1, batch_size: int = 16,
                   progress: bool = False) -> tuple[np.ndarray, float]:
    """Physical source maps (N, C, H, W) -> physical target samples (n_samples, N, H, W), seconds per map
    (batches run on the method's device; ``progress``: a bar over the maps)."""
    from rich.progress import Progress

    check_request(steps, n_samples)
    z = normalised(cfg, source, cfg.source)
    out = []
    start = time.perf_counter()
    with torch.no_grad(), Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"translating {len(z)} maps ({cfg.method})", total=len(z))
        for b in range(0, len(z), batch_size):
            bseed = None if seed is None else seed + b
            pred = method.translate(z[b:b + batch_size].to(method.device), steps, bseed, n_samples)
            out.append(pred[:, :, 0].cpu().numpy())
            bar.advance(task, len(pred[0]))
    seconds = (time.perf_counter() - start) / max(len(z), 1)
    pred = LogStandardise(**cfg.norms[cfg.target]).inverse(np.concatenate(out, axis=1))
    return np.clip(pred, 0.0, None).astype(np.float32), seconds


def normalised(cfg: TrainConfig, maps: np.ndarray, domains: list[str]) -> torch.Tensor:
    """Physical maps (N, C, H, W) of ``domains`` -> the normalised tensor the run's networks see."""
    return torch.from_numpy(np.stack([LogStandardise(**cfg.norms[d]).forward(maps[:, c])
                                      for c, d in enumerate(domains)], 1).astype(np.float32))


def method_metrics(cfg: TrainConfig, method: TranslationMethod, source: np.ndarray, truth: np.ndarray,
                   batch_size: int = 16) -> dict[str, float]:
    """The method's own figures (:meth:`~skymorph.methods.base.TranslationMethod.validation_metrics`,
    e.g. CycleGAN's cycle error) over physical source (N, C, H, W) and target (N, H, W) maps, per view
    (batches run on the method's device)."""
    a, b = normalised(cfg, source, cfg.source), normalised(cfg, truth[:, None], [cfg.target])
    sums: dict[str, float] = {}
    dev = method.device
    with torch.no_grad():
        for i in range(0, len(a), batch_size):
            batch = {"source": a[i:i + batch_size].to(dev), "target": b[i:i + batch_size].to(dev)}
            for k, v in method.validation_metrics(batch).items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(batch["source"])
    return {k: v / len(a) for k, v in sums.items()}


def check_store(cfg: TrainConfig, store: MapStore) -> None:
    """``store`` is the one the run trained on (same galaxies in each split, normalisation, geometry and
    build), wherever it lies now; runs from before fingerprints were recorded are not checked."""
    if cfg.store_fingerprint and store.fingerprint != cfg.store_fingerprint:
        raise InputError(f"{store.path}: store fingerprint {store.fingerprint} is not the run's {cfg.store_fingerprint} "
                         f"(trained on {cfg.data}): its splits, normalisation or build differ, so its test galaxies "
                         f"may have trained or selected the run; use the store the run was trained on")


def store_sources(cfg: TrainConfig, store: MapStore, index: np.ndarray) -> np.ndarray:
    """Source maps (N, C, H, W) of the given views, checked against what the run was trained on."""
    check_store(cfg, store)
    for d in cfg.source:
        if d not in store.domains:
            raise InputError(f"{store.path}: the run translates from {d!r}, which the store does not have "
                             f"(it has {', '.join(store.domains)})")
    if store.npix != cfg.npix:
        raise InputError(f"{store.path}: maps are {store.npix}^2 px, the run was trained on {cfg.npix}^2")
    return np.stack([store.maps(d, np.sort(index)) for d in cfg.source], 1)


def translate_store(cfg: TrainConfig, method: TranslationMethod, store: MapStore, split: str, out: Path,
                    steps: int | None = None, seed: int = 0, n_samples: int = 1, overwrite: bool = False,
                    progress: bool = False) -> Path:
    """Predictions for one split of a store, in physical units, into an HDF5 file."""
    out = check_output(out, overwrite)
    index = np.sort(store.split(split))
    samples, seconds = translate_maps(cfg, method, store_sources(cfg, store, index), steps, seed, n_samples,
                                      progress=progress)
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            ds = f.create_dataset(f"pred/{cfg.target}", data=samples.mean(0), compression="gzip")
            ds.attrs["unit"] = cfg.units[cfg.target]
            if n_samples > 1:
                f.create_dataset(f"std/{cfg.target}", data=samples.std(0), compression="gzip")
                f.create_dataset(f"samples/{cfg.target}", data=samples, compression="gzip")
            f["index"] = index
            f.attrs.update({"method": cfg.method, "source": ",".join(cfg.source), "target": cfg.target,
                            "split": split, "store": str(store.path), "seed": seed, "n_samples": n_samples,
                            "steps": -1 if steps is None else steps, "seconds_per_map": seconds,
                            "store_fingerprint": store.fingerprint, "provenance": json.dumps(provenance())})
    return out


def translate_fits(cfg: TrainConfig, method: TranslationMethod, path: Path, out: Path, steps: int | None = None,
                   seed: int = 0, overwrite: bool = False) -> Path:
    """Translate a one-domain FITS map (as ``skymorph maps fits`` writes it), keeping its header."""
    out = check_output(out, overwrite)
    if len(cfg.source) != 1:
        raise InputError(f"{path}: the run needs {len(cfg.source)} source maps ({', '.join(cfg.source)}); "
                         f"a FITS file holds one")
    try:
        with fits.open(path) as hdul:
            data, header = np.asarray(hdul[0].data, dtype=np.float64), hdul[0].header.copy()
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a readable FITS image: {exc}") from None
    if data.shape != (cfg.npix, cfg.npix):
        raise InputError(f"{path}: image is {data.shape}, the run expects ({cfg.npix}, {cfg.npix})")
    if header.get("DOMAIN", cfg.source[0]) != cfg.source[0]:
        raise InputError(f"{path}: DOMAIN is {header['DOMAIN']!r}, the run translates from {cfg.source[0]!r}")
    if not np.all(np.isfinite(data)):
        raise InputError(f"{path}: image has NaN or infinite pixels")
    pred, _ = translate_maps(cfg, method, data[None, None], steps, seed)

    header["BUNIT"] = FITS_UNITS.get(cfg.units[cfg.target], cfg.units[cfg.target])
    header["DOMAIN"] = cfg.target
    header["HISTORY"] = f"skymorph translate: {cfg.method} {cfg.source[0]} -> {cfg.target}"
    with atomic_path(out) as tmp:
        fits.PrimaryHDU(pred[0, 0], header).writeto(tmp, overwrite=True)
    return out
