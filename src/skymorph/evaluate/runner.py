"""Evaluate a trained run on one split of a map store: metrics on physical values, cost, figures."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..data.store import MapStore
from ..errors import OutputExistsError
from ..methods.apply import method_metrics, store_sources, translate_maps
from ..methods.config import TrainConfig
from ..methods.training import count_parameters, load_run
from ..training.run import train_seconds
from ..provenance import provenance
from . import plots
from .metrics import calibration, calibration_nominal, map_metrics, rank_counts, spread_error_curve, summarise


@dataclass
class Evaluation:
    """Physical maps and metrics of one run on one split."""

    cfg: TrainConfig
    index: np.ndarray
    source: np.ndarray  # (N, C, H, W)
    truth: np.ndarray  # (N, H, W)
    galaxy: np.ndarray  # (N,) galaxy id of each view: the independent unit of every interval
    pred: np.ndarray  # (N, H, W), the mean over samples
    samples: np.ndarray  # (K, N, H, W)
    rows: list[dict]
    summary: dict
    info: dict


def read_views(cfg: TrainConfig, data: str | Path, split: str, views: int | None = None):
    """(index, source (N, C, H, W), truth (N, H, W), pixel_kpc (N,), galaxy_id (N,)) of the run's domains
    on ``split`` of the store, in physical units; ``views`` keeps that many evenly spaced views (default all)."""
    with MapStore(data) as store:
        index = np.sort(store.split(split))
        if views is not None and views < len(index):
            index = index[np.unique(np.linspace(0, len(index) - 1, max(views, 1)).round().astype(int))]
        return (index, store_sources(cfg, store, index), store.maps(cfg.target, index),
                store.meta("pixel_kpc", index), store.meta("galaxy_id", index))


def evaluate_run(run: str | Path, data: str | Path, split: str = "test", steps: int | None = None, seed: int = 0,
                 n_samples: int = 1, sampler: str | None = None, reverse: bool = False,
                 views: int | None = None, device: str = "cpu", progress: bool = False) -> Evaluation:
    """Translate the split, compute every metric per view (physical units) and summarise.

    Metrics are of the mean over ``n_samples`` samples; with two or more, the calibration of the
    samples joins them: per view the coverages and spread-skill of
    :func:`~skymorph.evaluate.metrics.calibration`, in ``info["calibration"]`` their nominal values at
    this K and the rank histogram over all pixels.
    Seconds and NFE are per map for all samples together. ``views`` keeps that many evenly spaced
    views of the split (a cheaper evaluation, e.g. for a sweep over sampler steps).
    """
    cfg, method = load_run(run, reverse=reverse, device=device)
    method.set_sampler(sampler or cfg.sampler)
    index, source, truth, pixel, galaxy = read_views(cfg, data, split, views)
    samples, seconds = translate_maps(cfg, method, source, steps, seed, n_samples, progress=progress)
    pred = samples.mean(0)
    eps = cfg.norms[cfg.target]["eps"]
    nfe = method.nfe(steps) * n_samples
    calib = calibration(samples, truth, eps) if n_samples > 1 else {}
    rows = [{**map_metrics(pred[i], truth[i], float(pixel[i]), eps), **{k: float(v[i]) for k, v in calib.items()},
             "seconds_per_map": seconds, "nfe": nfe} for i in range(len(index))]
    info = {"run": str(run), "method": cfg.method, "source": cfg.source, "target": cfg.target, "split": split,
            "n_views": int(len(index)), "sampler": method.sampler, "steps": steps or method.default_steps,
            "n_samples": n_samples, "seed": seed, "parameters": count_parameters(method),
            "train_minutes": train_seconds(run) / 60.0, "seconds_per_map": seconds, "nfe": nfe,
            "unit": cfg.units[cfg.target], "eps": eps, "n_galaxies": int(len(np.unique(galaxy)))}
    if n_samples > 1:
        info["calibration"] = {"nominal": calibration_nominal(n_samples), "rank": rank_counts(samples, truth, eps, seed)}
    info.update(method_metrics(cfg, method, source, truth))  # e.g. cyclegan's cycle_error
    return Evaluation(cfg, index, source, truth, galaxy, pred, samples, rows, summarise(rows), info)


def write_evaluation(ev: Evaluation, out: str | Path, overwrite: bool = False) -> Path:
    """metrics.json (with its provenance: command, version, date, the store's fingerprint), per-view
    rows (metrics_per_view.json) and the figures, written atomically into folder ``out``."""
    out = Path(out)
    if (out / "metrics.json").exists() and not overwrite:
        raise OutputExistsError(f"{out}/metrics.json: output exists (use --overwrite to replace it)")
    out.mkdir(parents=True, exist_ok=True)
    pair = (ev.cfg.source[0], ev.cfg.target)
    name, label, unit = ev.cfg.method, f"{pair[0]} -> {pair[1]}", ev.cfg.units[pair[1]]
    plots.examples(out / "examples.png", ev.source[:, 0], ev.truth, {name: ev.pred}, pair,
                   (ev.cfg.units[pair[0]], unit), ev.info["eps"])
    plots.spectra(out / "spectra.png", ev.truth, {name: ev.pred}, label, unit)
    plots.profiles_and_pdfs(out / "profiles_pdf.png", ev.truth, {name: ev.pred}, ev.info["eps"], unit, label)
    if len(ev.samples) > 1:
        spread, rms, _ = spread_error_curve(ev.samples, ev.truth, ev.info["eps"])
        plots.spread_error(out / "spread_error.png", {name: (spread, rms, len(ev.samples))}, label)
        plots.rank_histograms(out / "rank_histogram.png", {name: ev.info["calibration"]["rank"]}, label)
    write_text(out / "metrics_per_view.json", json.dumps(
        [{"index": int(i), "galaxy_id": int(g), **r} for i, g, r in zip(ev.index, ev.galaxy, ev.rows)], default=float))
    write_text(out / "metrics.json", json.dumps({"provenance": provenance(store_fingerprint=ev.cfg.store_fingerprint),
                                                 "info": ev.info,
                                                 "metrics": ev.summary}, indent=2, default=float))
    return out
