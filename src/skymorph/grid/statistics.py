"""Statistics of grid runs that tell the CR transport models apart in the gas: the width of the
log-density PDF, the density power spectrum and its slope, the rms Mach number; and the figure that
puts runs side by side (``skymorph grid compare``).

Power spectra are shell averages of |FFT(rho / <rho> - 1)|^2 over integer wavenumbers k (units 2 pi / L,
the box length), for 2D planes or 3D cubes (periodic boxes need no window, unlike the maps of
:func:`skymorph.fields.power_spectrum`, which is 2D only); the slope is the least-squares fit of log P against log k
over ``fit_range``. Values come per snapshot; intervals are 68% percentiles over a run's snapshots
bootstrapped (each snapshot one unit; snapshots a quarter turnover apart are only roughly independent,
stated in the table).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..atomic import check_output, save_png, write_text  # noqa: E402
from ..evaluate.report import md_table  # noqa: E402
from ..stats.bootstrap import bootstrap_interval  # noqa: E402
from .slices import read_run  # noqa: E402

__all__ = ["power_spectrum", "spectral_slope", "run_statistics", "compare_runs"]

FIT_RANGE = (3.0, 12.0)


def power_spectrum(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k, P(k)) of the overdensity of a plane or cube (singleton axes dropped), k = 1 .. n/2."""
    f = np.squeeze(np.asarray(field, np.float64))
    delta = f / f.mean() - 1.0
    power = np.abs(np.fft.fftn(delta)) ** 2 / delta.size ** 2
    grids = np.meshgrid(*[np.fft.fftfreq(n, 1.0 / n) for n in f.shape], indexing="ij")
    kmag = np.sqrt(sum(g ** 2 for g in grids))
    shell = np.rint(kmag).astype(int)
    kmax = min(f.shape) // 2
    sums = np.bincount(shell.ravel(), power.ravel(), minlength=kmax + 1)
    counts = np.bincount(shell.ravel(), minlength=kmax + 1)
    k = np.arange(1, kmax + 1)
    return k.astype(float), sums[1:kmax + 1] / np.maximum(counts[1:kmax + 1], 1)


def spectral_slope(k: np.ndarray, p: np.ndarray, fit_range=FIT_RANGE) -> float:
    """d log P / d log k over k in fit_range."""
    sel = (k >= fit_range[0]) & (k <= fit_range[1]) & (p > 0)
    return float(np.polyfit(np.log(k[sel]), np.log(p[sel]), 1)[0])


def run_statistics(path, fit_range=FIT_RANGE) -> dict:
    """Per-snapshot sigma(ln rho), P(k) slope, rms Mach; the mean spectrum and the pooled ln rho values."""
    run = read_run(path, ["rho", "vx", "vy", "vz"])
    rho = run["fields"]["rho"]
    mach = np.sqrt(sum(run["fields"][v] ** 2 for v in ("vx", "vy", "vz")).mean(axis=(1, 2, 3)))
    spectra = [power_spectrum(r) for r in rho]
    k = spectra[0][0]
    return {"label": run["label"], "seed": run["seed"], "sigma_lnrho": np.log(rho).std(axis=(1, 2, 3)),
            "slope": np.array([spectral_slope(k, p, fit_range) for _, p in spectra]), "mach": mach,
            "k": k, "pk": np.mean([p for _, p in spectra], axis=0), "lnrho": np.log(rho).ravel(),
            "image": rho[-1].squeeze() if rho.shape[1] == 1 else rho[-1][rho.shape[1] // 2]}


def compare_runs(paths, out, overwrite: bool = False, fit_range=FIT_RANGE) -> tuple[Path, Path]:
    """OUT.png (a density image per class, ln rho PDFs, spectra) and OUT.md (the table by class, runs of
    one class pooled: intervals bootstrap whole runs, i.e. realisations, when a class has several)."""
    out = Path(out)
    png, md = (check_output(out.with_suffix(s), overwrite) for s in (".png", ".md"))
    stats = [run_statistics(p, fit_range) for p in paths]
    labels = sorted({s["label"] for s in stats})
    rows, by = [], {}
    for lab in labels:
        group = [s for s in stats if s["label"] == lab]
        by[lab] = group
        unit = np.concatenate([np.full(len(s["slope"]), i) for i, s in enumerate(group)])
        cells = []
        for key in ("sigma_lnrho", "slope", "mach"):
            v = np.concatenate([s[key] for s in group])
            ci = bootstrap_interval(v, unit if len(group) > 1 else np.arange(len(v)), stat=np.mean)
            cells.append(f"{ci['value']:.3f} [{ci['lo']:.3f}, {ci['hi']:.3f}]")
        rows.append([lab, str(len(group)), str(sum(len(s["slope"]) for s in group)), *cells])
    unit_note = ("runs (realisations) when a class has several, else snapshots" if any(len(g) > 1 for g in by.values())
                 else "snapshots")
    lines = ["# Gas statistics by class", "", f"68% bootstrap intervals of the mean over {unit_note}; spectral "
             f"slope fitted over k = {fit_range[0]:g}-{fit_range[1]:g} (2 pi / L).", ""]
    lines += md_table(["class", "runs", "snapshots", "sigma(ln rho)", "P_rho(k) slope", "rms Mach"], rows)
    write_text(md, "\n".join(lines) + "\n")
    _figure(by, labels, png)
    return png, md


def _figure(by: dict, labels: list[str], path: Path) -> None:
    n = len(labels)
    fig = plt.figure(figsize=(2.6 * max(n, 2) + 0.5, 6.2))
    grid = fig.add_gridspec(2, max(n, 2))
    lo, hi = np.inf, -np.inf
    for lab in labels:
        img = np.log10(by[lab][0]["image"])
        lo, hi = min(lo, np.percentile(img, 1)), max(hi, np.percentile(img, 99))
    for j, lab in enumerate(labels):
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(np.log10(by[lab][0]["image"]), origin="lower", cmap="magma", vmin=lo, vmax=hi)
        ax.set_title(f"{lab}: log10 rho", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    half = max(n, 2) // 2
    ax_pdf, ax_pk = fig.add_subplot(grid[1, :half]), fig.add_subplot(grid[1, half:])
    for lab in labels:
        values = np.concatenate([s["lnrho"] for s in by[lab]])
        ax_pdf.hist(values, bins=80, density=True, histtype="step", log=True, label=lab)
        k = by[lab][0]["k"]
        ax_pk.loglog(k, np.mean([s["pk"] for s in by[lab]], axis=0), label=lab)
    ax_pdf.set_xlabel("ln(rho / rho0)")
    ax_pdf.set_ylabel("PDF")
    ax_pk.set_xlabel("k [2 pi / L]")
    ax_pk.set_ylabel("P_rho(k)")
    ax_pk.legend(fontsize=7)
    save_png(fig, path, dpi=110)
