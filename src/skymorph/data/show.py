"""Summaries of a map store: ``info`` text and ``show`` panels of all domains of one view."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..atomic import check_output
from .store import SPLITS, MapStore


def store_info(store: MapStore) -> str:
    """Counts, domains with units and value ranges, splits, settings, truth columns with units and
    ranges (over galaxies), as text."""
    s = store.settings
    lines = [f"{store.path}: {store.n} views of {store.attrs['n_galaxies']} galaxies, {store.npix}x{store.npix} px",
             f"source: {s['source']}",
             f"views per galaxy: 1 + {s['rotations']} random rotations{' + face-on, edge-on' if s['face_edge'] else ''};"
             f" fov half-width = {s['fov']} x r_half({s['fov_ref']}); seed {s['seed']}; HI model: {s['hi_model']}",
             "splits (by galaxy): " + ", ".join(f"{k} {len(store.split(k))}" for k in SPLITS),
             f"{'domain':8s} {'unit':11s} {'min>0':>10s} {'median':>10s} {'max':>10s} {'zero px':>8s}"]
    step = max(1, store.n // 256)
    for d in store.domains:
        x = store.maps(d, slice(None, None, step))
        pos = x[x > 0]
        lo, med, hi = (pos.min(), np.median(pos), pos.max()) if pos.size else (0, 0, 0)
        lines.append(f"{d:8s} {store.unit(d):11s} {lo:10.3g} {med:10.3g} {hi:10.3g} {np.mean(x <= 0):8.1%}")
    names = store.truth_names()
    if names:
        width = max(len("truth"), *map(len, names))
        lines.append(f"{'truth':{width}s} {'unit':11s} {'min':>10s} {'median':>10s} {'max':>10s}  (per galaxy)")
        first = np.unique(store.meta("galaxy_id"), return_index=True)[1]  # one view per galaxy
        for name in names:
            v = store.truth(name)[np.sort(first)]
            lines.append(f"{name:{width}s} {store.truth_unit(name) or '-':11s} {v.min():10.4g} {np.median(v):10.4g} "
                         f"{v.max():10.4g}")
    else:
        lines.append("truth: none (the catalogue has no truth fields)")
    return "\n".join(lines)


def show_view(store: MapStore, index: int, out: str | Path, overwrite: bool = False) -> Path:
    """PNG of all domains of view ``index``: log colour scales, colour bars with units, a kpc scale bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    out = check_output(out, overwrite)
    store.check_index(index)
    hw = float(store.meta("half_width_kpc", index))
    n = len(store.domains)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), squeeze=False)
    cmaps = {"dm": "magma", "star": "bone", "gas": "viridis", "hi": "cividis", "h2": "plasma", "hi21": "inferno",
             "temp": "coolwarm", "bfield": "plasma"}
    bar_kpc = float(f"{0.5 * hw:.1g}")
    for ax, d in zip(axes[0], store.domains):
        img = store.maps(d, index)
        pos = img[img > 0]
        norm = LogNorm(vmin=max(pos.min(), pos.max() * 1e-5), vmax=pos.max()) if pos.size else None
        im = ax.imshow(np.where(img > 0, img, np.nan), origin="lower", extent=(-hw, hw, -hw, hw),
                       cmap=cmaps.get(d, "viridis"), norm=norm)
        ax.set_facecolor("black")
        ax.set_title(d)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.add_artist(AnchoredSizeBar(ax.transData, bar_kpc, f"{bar_kpc:g} kpc", "lower left", color="white",
                                      frameon=False, size_vertical=hw / 100))
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label(store.unit(d))
    gid, view = int(store.meta("galaxy_id", index)), int(store.meta("view", index))
    fig.suptitle(f"{store.path.name}: view {index} (galaxy {gid}, rotation {view}), width {2 * hw:.1f} kpc")
    fig.tight_layout()
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return out
