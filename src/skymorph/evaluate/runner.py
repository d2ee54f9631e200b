"""Evaluate a trained run on one split of a map store: metrics on physical values, cost, figures."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.store import MapStore
from ..errors import OutputExistsError
from ..methods.apply import store_sources, translate_maps
from ..methods.config import TrainConfig
from ..methods.training import count_parameters, load_run, train_seconds
from . import plots
from .metrics import map_metrics, summarise


@dataclass
class Evaluation:
    """Physical maps and metrics of one run on one split."""

    cfg: TrainConfig
    index: np.ndarray
    source: np.ndarray  # (N, C, H, W)
    truth: np.ndarray  # (N, H, W)
    pred: np.ndarray  # (N, H, W), the mean over samples
    rows: list[dict]
    summary: dict
    info: dict


def evaluate_run(run: str | Path, data: str | Path, split: str = "test", steps: int | None = None, seed: int = 0,
                 n_samples: int = 1) -> Evaluation:
    """Translate the split, compute every metric per view (physical units) and summarise."""
    cfg, method = load_run(run)
    with MapStore(data) as store:
        index = np.sort(store.split(split))
        source = store_sources(cfg, store, index)
        truth = store.maps(cfg.target, index)
        pixel = store.meta("pixel_kpc", index)
    samples, seconds = translate_maps(cfg, method, source, steps, seed, n_samples)
    pred = samples.mean(0)
    eps = cfg.norms[cfg.target]["eps"]
    nfe = method.nfe(steps) * n_samples
    rows = [{**map_metrics(pred[i], truth[i], float(pixel[i]), eps), "seconds_per_map": seconds, "nfe": nfe}
            for i in range(len(index))]
    info = {"run": str(run), "method": cfg.method, "source": cfg.source, "target": cfg.target, "split": split,
            "n_views": int(len(index)), "steps": steps, "n_samples": n_samples, "seed": seed,
            "parameters": count_parameters(method), "train_minutes": train_seconds(run) / 60.0,
            "seconds_per_map": seconds, "nfe": nfe, "unit": cfg.units[cfg.target], "eps": eps}
    return Evaluation(cfg, index, source, truth, pred, rows, summarise(rows), info)


def write_evaluation(ev: Evaluation, out: str | Path, overwrite: bool = False) -> Path:
    """metrics.json, per-view rows (metrics_per_view.json) and the figures, into folder ``out``."""
    out = Path(out)
    if (out / "metrics.json").exists() and not overwrite:
        raise OutputExistsError(f"{out}/metrics.json: output exists (use --overwrite to replace it)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"info": ev.info, "metrics": ev.summary}, indent=2, default=float))
    (out / "metrics_per_view.json").write_text(json.dumps(
        [{"index": int(i), **r} for i, r in zip(ev.index, ev.rows)], default=float))
    pair = (ev.cfg.source[0], ev.cfg.target)
    name = ev.cfg.method
    plots.examples(out / "examples.png", ev.source[:, 0], ev.truth, {name: ev.pred}, pair,
                   (ev.cfg.units[pair[0]], ev.cfg.units[pair[1]]), ev.info["eps"])
    plots.spectra(out / "spectra.png", ev.truth, {name: ev.pred}, f"{pair[0]} -> {pair[1]}")
    plots.profiles_and_pdfs(out / "profiles_pdf.png", ev.truth, {name: ev.pred}, ev.info["eps"],
                            ev.cfg.units[pair[1]], f"{pair[0]} -> {pair[1]}")
    return out
