"""Robustness probes: the metrics of a run as its input maps are degraded step by step, so a user
sees which information the model relies on.

- ``blur``: a Gaussian PSF of width sigma [px] on the physical map (mass-conserving, reflecting edges).
- ``phase``: the Fourier amplitudes of the log map (the representation the networks see) are pulled
  towards a flat spectrum, |F|^(1 - alpha) c^alpha with c^2 the map's mean power; phases and the mean
  are kept. alpha = 0 is the input itself, alpha = 1 the phase-only map.
- ``noise``: white Gaussian noise of rms = level x the map's peak added to the physical map, clipped
  at zero (maps are non-negative; the networks see log10(x + eps)).

Each perturbation is written as the input plus a change that is exactly zero at level 0, so the
first level reproduces the unprobed metrics bit for bit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..atomic import check_output  # noqa: E402
from ..errors import ConfigError  # noqa: E402
from ..evaluate.metrics import METRIC_NAMES, map_metrics, summarise  # noqa: E402
from ..evaluate.report import md_table  # noqa: E402
from ..evaluate.runner import read_views  # noqa: E402
from ..methods.apply import translate_maps  # noqa: E402
from ..methods.training import load_run  # noqa: E402
from ..provenance import provenance  # noqa: E402

#: probe -> (name of its level, default levels, what a level means)
PROBES = {
    "blur": ("sigma_px", (0.0, 0.5, 1.0, 2.0, 4.0), "Gaussian PSF sigma [px] on the physical input map"),
    "phase": ("alpha", (0.0, 0.25, 0.5, 0.75, 1.0), "fraction of the log map's Fourier amplitude flattened "
                                                    "(phases kept; 1 = phase-only)"),
    "noise": ("rms_over_peak", (0.0, 1e-4, 1e-3, 1e-2, 1e-1), "white noise rms / map peak, added to the physical map"),
}


def check_levels(probe: str, levels) -> tuple[float, ...]:
    if probe not in PROBES:
        raise ConfigError(f"unknown probe {probe!r}; expected one of {', '.join(PROBES)}")
    levels = tuple(float(v) for v in (PROBES[probe][1] if levels is None else levels))
    if not levels or min(levels) < 0 or (probe == "phase" and max(levels) > 1):
        raise ConfigError(f"{probe} probe levels {list(levels)}: need at least one, all >= 0"
                          + (" and <= 1" if probe == "phase" else ""))
    return levels


def perturb(maps: np.ndarray, probe: str, level: float, eps: list[float], seed: int = 0) -> np.ndarray:
    """Physical maps (N, C, H, W) degraded by ``probe`` at ``level``; ``eps``: each channel's log floor."""
    check_levels(probe, [level])
    x = np.asarray(maps)
    if probe == "blur":
        return gaussian_filter(x, sigma=(0, 0, level, level), mode="reflect")
    if probe == "noise":
        rng = np.random.default_rng(seed)
        peak = x.max(axis=(-2, -1), keepdims=True)
        return np.clip(x + level * peak * rng.standard_normal(x.shape), 0.0, None).astype(x.dtype)
    e = np.asarray(eps, dtype=np.float64)[None, :, None, None]
    f = np.fft.rfft2(np.log10(x.astype(np.float64) + e))
    amp = np.abs(f)
    power = amp**2
    flat = np.sqrt((power.sum(axis=(-2, -1), keepdims=True) - power[..., :1, :1]) / (power[0, 0].size - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(amp > 0, amp ** (1.0 - level) * flat**level / amp, 1.0)
    ratio[..., 0, 0] = 1.0
    dlog = np.fft.irfft2(f * (ratio - 1.0), s=x.shape[-2:])
    return np.clip(x + (x + e) * (10.0**dlog - 1.0), 0.0, None).astype(x.dtype)


@dataclass
class ProbeResult:
    probe: str
    parameter: str
    levels: tuple[float, ...]
    summaries: list[dict]  # per level: {metric: {mean, median, p16, p84, n}}
    info: dict


def probe_run(run: str | Path, data: str | Path, probe: str, split: str = "test", levels=None, seed: int = 0,
              steps: int | None = None, n_samples: int = 1, reverse: bool = False, device: str = "cpu",
              progress: bool = False) -> ProbeResult:
    """Metrics (physical units, against the untouched truth) of the run on the probed inputs of ``split``."""
    levels = check_levels(probe, levels)
    cfg, method = load_run(run, reverse=reverse, device=device)
    index, source, truth, pixel, _ = read_views(cfg, data, split)
    eps = [cfg.norms[d]["eps"] for d in cfg.source]
    summaries = []
    for level in levels:
        samples, _ = translate_maps(cfg, method, perturb(source, probe, level, eps, seed), steps, seed, n_samples,
                                    progress=progress)
        pred = samples.mean(0)
        summaries.append(summarise([map_metrics(pred[i], truth[i], float(pixel[i]), cfg.norms[cfg.target]["eps"])
                                    for i in range(len(index))]))
    info = {"run": str(run), "method": cfg.method, "source": cfg.source, "target": cfg.target, "split": split,
            "n_views": int(len(index)), "seed": seed, "meaning": PROBES[probe][2]}
    return ProbeResult(probe, PROBES[probe][0], levels, summaries, info)


def write_probe(res: ProbeResult, out: str | Path, overwrite: bool = False) -> list[Path]:
    """``probe_<name>.json`` (every statistic), ``.md`` (medians) and ``.png`` (a curve per metric)."""
    out = Path(out)
    paths = [check_output(out / f"probe_{res.probe}.{ext}", overwrite) for ext in ("json", "md", "png")]
    with atomic_path(paths[0]) as tmp:
        tmp.write_text(json.dumps({"provenance": provenance(), "probe": res.probe, "parameter": res.parameter,
                                   "info": res.info,
                                   "levels": [{res.parameter: lv, "metrics": s} for lv, s in zip(res.levels, res.summaries)]},
                                  indent=2, default=float))
    rows = [[f"{lv:g}", *(f"{s[m]['median']:.3g}" for m in METRIC_NAMES)] for lv, s in zip(res.levels, res.summaries)]
    lines = [f"# {res.probe} probe: {res.info['method']} {'+'.join(res.info['source'])} -> {res.info['target']}", "",
             f"{res.parameter}: {res.info['meaning']}. Medians over {res.info['n_views']} {res.info['split']} views.",
             "", *md_table([res.parameter, *METRIC_NAMES], rows)]
    with atomic_path(paths[1]) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(paths[2]) as tmp:
        _figure(res).savefig(tmp, format="png", dpi=90)
    plt.close("all")
    return paths


def _figure(res: ProbeResult) -> plt.Figure:
    """One panel per metric: median and 16-84th percentile band against the probe level."""
    ncol = 5
    nrow = -(-len(METRIC_NAMES) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol, 2.4 * nrow), squeeze=False)
    lv = np.array(res.levels)
    positive = lv[lv > 0]
    for ax, m in zip(axes.ravel(), METRIC_NAMES):
        med, lo, hi = (np.array([s[m][k] for s in res.summaries]) for k in ("median", "p16", "p84"))
        ax.fill_between(lv, lo, hi, alpha=0.3)
        ax.plot(lv, med, "o-")
        if positive.size and positive.max() / positive.min() > 10:
            ax.set_xscale("symlog", linthresh=positive.min())
        ax.set_title(m, fontsize=9)
        ax.set_xlabel(res.parameter, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(METRIC_NAMES):]:
        ax.axis("off")
    fig.suptitle(f"{res.probe} probe, {res.info['method']} {'+'.join(res.info['source'])} -> {res.info['target']} "
                 f"({res.info['split']}, median and 16-84%): {res.info['meaning']}", fontsize=9)
    fig.tight_layout()
    return fig
