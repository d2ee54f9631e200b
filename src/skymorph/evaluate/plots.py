"""Figures of the evaluation and benchmark: example panels, P(k) and its ratio, r(k), profiles, PDFs.

Every function takes physical maps and writes a PNG; spectra are averaged over views in units of
the pixel wavenumber (views of different galaxies have different pixel sizes in kpc).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from .. import fields  # noqa: E402
from ..atomic import save_png  # noqa: E402
from .metrics import K_MAX_NYQUIST, log_map  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _save(fig, path: Path) -> Path:
    return save_png(fig, path, dpi=100)


def examples(path: Path, source: np.ndarray, truth: np.ndarray, preds: dict[str, np.ndarray], labels: tuple[str, str],
             units: tuple[str, str], eps: float, rows: int = 4) -> Path:
    """Rows of views: input | truth | each prediction | residual of the last prediction,
    log10(pred + eps) - log10(truth + eps) in dex (eps: the target's normalisation floor)."""
    names = list(preds)
    cols = 2 + len(names) + 1
    rows = min(rows, len(truth))
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.3 * rows), squeeze=False)
    for r in range(rows):
        t = truth[r]
        pos = t[t > 0]
        tnorm = LogNorm(vmin=max(pos.min(), pos.max() * 1e-4), vmax=pos.max()) if pos.size else None
        s = source[r]
        spos = s[s > 0]
        snorm = LogNorm(vmin=max(spos.min(), spos.max() * 1e-4), vmax=spos.max()) if spos.size else None
        panels = [(s, snorm, f"input: {labels[0]}", "viridis")] + [(t, tnorm, f"truth: {labels[1]}", "magma")] + \
                 [(preds[n][r], tnorm, n, "magma") for n in names]
        for c, (img, norm, title, cmap) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(np.where(img > 0, img, np.nan), origin="lower", norm=norm, cmap=cmap)
            ax.set_facecolor("black")
            if r == 0:
                ax.set_title(title, fontsize=9)
        res = log_map(preds[names[-1]][r], eps) - log_map(t, eps)
        im = axes[r, -1].imshow(res, origin="lower", cmap="RdBu_r", vmin=-1, vmax=1)
        if r == 0:
            axes[r, -1].set_title(f"{names[-1]} - truth [dex]", fontsize=9)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes[:, -1].tolist(), fraction=0.05, shrink=0.8).set_label("log10 residual")
    fig.suptitle(f"{labels[0]} -> {labels[1]}  (colour: log scale, {units[1]}; prediction shares the truth's scale)",
                 fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def spectra(path: Path, truth: np.ndarray, preds: dict[str, np.ndarray], label: str, unit: str) -> Path:
    """Median P(k) of truth and predictions (top) and their ratio (bottom); cross-correlation r(k)
    (right). ``unit`` is the map unit; k in rad per pixel, the resolved range of the spectral
    metrics (up to half Nyquist, pi / 2) shaded off beyond it."""
    fig = plt.figure(figsize=(10, 4.2))
    ax1, ax3 = fig.add_subplot(2, 2, 1), fig.add_subplot(1, 2, 2)
    ax2 = fig.add_subplot(2, 2, 3, sharex=ax1)
    k, pt, _ = fields.power_spectrum(truth, 1.0)
    ax1.loglog(k, np.nanmedian(pt, 0), "k-", lw=2, label="truth")
    for i, (name, pred) in enumerate(preds.items()):
        _, pp, _ = fields.power_spectrum(pred, 1.0)
        ax1.loglog(k, np.nanmedian(pp, 0), color=COLORS[i % 10], label=name)
        ax2.semilogx(k, np.nanmedian(pp / pt, 0), color=COLORS[i % 10])
        kr, r = fields.cross_correlation(pred, truth, 1.0)
        ax3.semilogx(kr, np.nanmean(r, 0), color=COLORS[i % 10], label=name)
    for ax in (ax1, ax2, ax3):
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.axvspan(K_MAX_NYQUIST * np.pi, np.pi * 1.05, color="0.9", zorder=0)
    ax1.set_ylabel(f"median P(k) [({unit})^2 px^2]")
    ax1.set_title(f"{label}: power spectrum (Hann, mean-subtracted)", fontsize=9)
    ax1.legend(fontsize=7)
    ax2.axhline(1, color="k", lw=1)
    ax2.set_ylim(0, 2)
    ax2.set_xlabel("k [rad / pixel]")
    ax2.set_ylabel("P_pred / P_true (median)")
    ax3.axhline(1, color="k", lw=1)
    ax3.set_ylim(-0.1, 1.05)
    ax3.set_xlabel("k [rad / pixel]")
    ax3.set_ylabel("r(k) = P_xy / sqrt(P_xx P_yy)")
    ax3.set_title("cross-correlation with the truth", fontsize=9)
    ax3.legend(fontsize=7)
    return _save(fig, path)


def profiles_and_pdfs(path: Path, truth: np.ndarray, preds: dict[str, np.ndarray], eps: float, unit: str,
                      label: str) -> Path:
    """Median radial profile ratio to the truth (left), pixel PDFs of log10 values (right)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    r, pt = fields.radial_profile(truth, 1.0)
    bins = np.linspace(np.log10(eps), log_map(truth, eps).max() + 0.2, 50)
    ax2.hist(log_map(truth, eps).ravel(), bins, histtype="step", color="k", lw=2, density=True, label="truth")
    for i, (name, pred) in enumerate(preds.items()):
        _, pp = fields.radial_profile(pred, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ax1.plot(r, np.nanmedian(pp / pt, 0), color=COLORS[i % 10], label=name)
        ax2.hist(log_map(pred, eps).ravel(), bins, histtype="step", color=COLORS[i % 10], density=True, label=name)
    ax1.axhline(1, color="k", lw=1)
    ax1.set_ylim(0, 2)
    ax1.set_xlabel("radius [pixels]")
    ax1.set_ylabel("profile ratio pred / truth (median)")
    ax1.set_title(f"{label}: radial profiles", fontsize=9)
    ax1.legend(fontsize=7)
    ax2.set_xlabel(f"log10({unit} + eps)")
    ax2.set_ylabel("pixel PDF")
    ax2.set_yscale("log")
    ax2.set_title("pixel distributions", fontsize=9)
    ax2.legend(fontsize=7)
    return _save(fig, path)


SWEEP_PANELS = ("mse_log", "pk_err_dex", "pdf_w1", "ssim")


def quality_vs_cost(path: Path, curves: dict[str, list[dict]], label: str) -> Path:
    """Median metrics against network evaluations per map, one line per method:sampler.

    ``curves[name]`` is a list of sweep points ``{"nfe", "seconds_per_map", "metrics": {name: median}}``;
    single-pass methods (one point) are drawn as dashed horizontal references.
    """
    fig, axes = plt.subplots(1, len(SWEEP_PANELS), figsize=(4 * len(SWEEP_PANELS), 3.6))
    for i, (name, pts) in enumerate(curves.items()):
        pts = sorted(pts, key=lambda p: p["nfe"])
        for ax, metric in zip(axes, SWEEP_PANELS):
            x = [max(p["nfe"], 1) for p in pts]
            y = [p["metrics"][metric] for p in pts]
            if len(pts) == 1:
                ax.axhline(y[0], color=COLORS[i % 10], ls="--", lw=1.2, label=name)
            else:
                ax.plot(x, y, "o-", color=COLORS[i % 10], ms=3, label=name)
    for ax, metric in zip(axes, SWEEP_PANELS):
        ax.set_xscale("log")
        if metric != "ssim":  # errors span decades when few-step samples are still noise
            ax.set_yscale("log")
        ax.set_xlabel("network evaluations per map (NFE)")
        ax.set_title(f"{label}: {metric}", fontsize=9)
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def spread_error(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray, int]], label: str) -> Path:
    """RMS error of the ensemble mean against the ensemble spread (dex), per stochastic method.

    ``curves[name] = (spread, rms_error, K)`` from :func:`~skymorph.evaluate.metrics.spread_error_curve`;
    the calibrated line rms = sqrt(1 + 1/K) spread is drawn for each K.
    """
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    hi = 1e-3
    for i, (name, (spread, rms, k)) in enumerate(curves.items()):
        ok = np.isfinite(spread) & np.isfinite(rms)
        ax.loglog(spread[ok], rms[ok], "o-", color=COLORS[i % 10], ms=3, label=f"{name} (K = {k})")
        hi = max(hi, np.nanmax(spread[ok], initial=hi), np.nanmax(rms[ok], initial=hi))
        lo = np.nanmin(spread[ok], initial=hi)
        line = np.geomspace(lo, hi, 2)
        ax.loglog(line, np.sqrt(1 + 1 / k) * line, ":", color=COLORS[i % 10], lw=1)
    ax.set_xlabel("ensemble spread (std of log10 samples) [dex]")
    ax.set_ylabel("RMS error of the ensemble mean [dex]")
    ax.set_title(f"{label}: spread vs error (dotted: calibrated)", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def rank_histograms(path: Path, ranks: dict[str, dict], label: str) -> Path:
    """Rank of the truth among the K samples over all pixels, one panel per method (flat: calibrated;
    U: too narrow; dome: too wide; sloped: biased). ``ranks[name]`` as from
    :func:`~skymorph.evaluate.metrics.rank_counts`."""
    fig, axes = plt.subplots(1, len(ranks), figsize=(3.6 * len(ranks), 3.2), squeeze=False)
    for ax, (i, (name, r)) in zip(axes[0], enumerate(ranks.items())):
        counts = np.asarray(r["counts"], dtype=float)
        freq = counts / counts.sum()
        ax.bar(np.arange(len(counts)), freq, color=COLORS[i % 10], width=0.85)
        ax.axhline(1 / len(counts), color="k", ls=":", lw=1)
        ax.set_xlabel(f"rank of the truth among K = {len(counts) - 1} samples")
        ax.set_title(f"{label}: {name} (chi2 p = {r['p_value']:.2g})", fontsize=9)
    axes[0][0].set_ylabel("fraction of pixels (dotted: calibrated)")
    return _save(fig, path)
