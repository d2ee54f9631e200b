"""What a classifier looks at: per-class attributions of one image, and accuracy under degraded inputs.

- ``explain``: gradient saliency |d logit_c / d x| and integrated gradients of each class logit from a
  zero baseline (the train-split mean image in normalised units) through captum
  (:func:`skymorph.explain.attribution.attribute`); integrated gradients are complete: their sum equals
  logit_c(x) - logit_c(baseline) up to the quadrature error, reported as the gap.
- ``probe``: accuracy as the physical input is Gaussian-smoothed (``blur``, sigma in px) or its log
  map's Fourier amplitudes are flattened (``phase``, alpha = 1 phase-only), the perturbations of
  :func:`skymorph.explain.probe.perturb` (level 0 is the input itself), then normalised as in training;
  intervals over the independent units as in :mod:`skymorph.classify.evaluate`.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from ..atomic import check_output, save_png, write_text  # noqa: E402
from ..data.store import MapStore  # noqa: E402
from ..errors import ConfigError, InputError  # noqa: E402
from ..evaluate.report import md_table  # noqa: E402
from ..explain.attribution import attribute  # noqa: E402
from ..explain.probe import PROBES, check_levels, perturb  # noqa: E402
from .evaluate import interval_text, mean_interval, predict  # noqa: E402
from .network import flatten_spectrum  # noqa: E402
from .train import load_classifier, load_images  # noqa: E402

__all__ = ["ClassLogit", "explain_image", "probe_classifier", "CLASSIFY_PROBES"]

CLASSIFY_PROBES = {"blur": (0.0, 1.0, 2.0, 4.0, 8.0), "phase": (0.0, 0.25, 0.5, 0.75, 1.0)}


class ClassLogit(nn.Module):
    """One class's logit: (N, C, H, W) -> (N, 1)."""

    def __init__(self, net: nn.Module, c: int):
        super().__init__()
        self.net, self.c = net, c

    def forward(self, x):
        return self.net(x)[:, self.c:self.c + 1]


def explain_image(run, data=None, index: int = 0, split: str = "test", out=None, overwrite: bool = False,
                  n_steps: int = 64) -> dict:
    """Saliency and integrated gradients of every class logit for image ``index`` of ``split``; with
    ``out`` the figure OUT.png and OUT.json (per class: logit, IG sum, completeness gap, saliency sum)."""
    net, cfg = load_classifier(run)
    if cfg.flatten_spectrum:
        raise ConfigError(f"{run}: trained on phase-only images; attributions on them do not map to the gas")
    paths = [check_output(Path(out).with_suffix(s), overwrite) for s in (".png", ".json")] if out else None
    with MapStore(data or cfg.data) as store:
        x, y, _, idx = load_images(store, cfg.input, split)
    if not 0 <= index < len(x):
        raise ConfigError(f"--index {index}: the {split} split has {len(x)} images")
    xi = torch.from_numpy(x[index:index + 1])
    base = torch.zeros_like(xi)
    prob = predict(net, x[index:index + 1])[0]
    per_class, maps = {}, {}
    for c, name in enumerate(cfg.classes):
        model = ClassLogit(net, c)
        sal = attribute(model, xi, "saliency")
        ig = attribute(model, xi, "integrated_gradients", baseline=base, n_steps=n_steps)
        maps[name] = (sal.values[0].sum(0), ig.values[0].sum(0))
        per_class[name] = {"probability": float(prob[c]), "logit": float(ig.output[0]),
                           "baseline_logit": float(ig.reference[0]), "ig_sum": float(ig.values.sum()),
                           "completeness_gap": float(ig.gap[0]), "saliency_sum": float(sal.values.sum())}
    result = {"run": str(run), "split": split, "index": int(index), "store_index": int(idx[index]),
              "true": cfg.classes[int(y[index])], "predicted": cfg.classes[int(prob.argmax())], "classes": per_class}
    if paths:
        _explain_figure(x[index, 0], maps, result, paths[0])
        write_text(paths[1], json.dumps(result, indent=1))
    return result


def _explain_figure(image, maps, result, path) -> None:
    n = len(maps)
    fig, axes = plt.subplots(2, n + 1, figsize=(2.6 * (n + 1), 5.2))
    for row in range(2):
        axes[row, 0].imshow(image, origin="lower", cmap="magma")
        axes[row, 0].set_title(f"input (true {result['true']})", fontsize=8)
    for j, (name, (sal, ig)) in enumerate(maps.items(), start=1):
        c = result["classes"][name]
        axes[0, j].imshow(sal, origin="lower", cmap="viridis")
        axes[0, j].set_title(f"saliency {name}\np = {c['probability']:.2f}", fontsize=8)
        lim = np.abs(ig).max() or 1.0
        axes[1, j].imshow(ig, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[1, j].set_title(f"IG {name}: sum {c['ig_sum']:.2f}\ngap {c['completeness_gap']:.1e}", fontsize=8)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    save_png(fig, path, dpi=110)


def probe_classifier(run, probe: str, data=None, levels=None, split: str = "test", out=None,
                     overwrite: bool = False) -> dict:
    """Accuracy (with intervals over units) of ``run`` at each level of ``probe`` (blur or phase)."""
    if probe not in CLASSIFY_PROBES:
        raise ConfigError(f"--probe {probe!r}: expected one of {', '.join(CLASSIFY_PROBES)}")
    levels = check_levels(probe, CLASSIFY_PROBES[probe] if levels is None else levels)
    net, cfg = load_classifier(run)
    paths = [check_output(Path(out).with_suffix(s), overwrite) for s in (".json", ".md", ".png")] if out else None
    with MapStore(data or cfg.data) as store:
        idx = store.split(split)
        if not len(idx):
            raise InputError(f"{store.path}: the {split} split is empty")
        phys = np.stack([store.maps(f, idx) for f in cfg.input], axis=1)
        norms = [store.norm(f) for f in cfg.input]
        _, y, units, _ = load_images(store, cfg.input[:1], split)
    rows = []
    for level in levels:
        degraded = perturb(phys, probe, level, [n.eps for n in norms])
        x = np.stack([n.forward(degraded[:, i]) for i, n in enumerate(norms)], axis=1).astype(np.float32)
        if cfg.flatten_spectrum:
            x = flatten_spectrum(x)
        pred = predict(net, x).argmax(1)
        rows.append({"level": float(level), "accuracy": mean_interval(pred == y, units)})
    result = {"run": str(run), "probe": probe, "level_name": PROBES[probe][0], "meaning": PROBES[probe][2],
              "split": split, "images": int(len(y)), "units": int(len(np.unique(units))), "levels": rows,
              "chance": 1.0 / len(cfg.classes)}
    if paths:
        write_text(paths[0], json.dumps(result, indent=1))
        lines = [f"# {probe} probe of {run} ({split}: {result['images']} images, {result['units']} units)", "",
                 f"{result['level_name']}: {result['meaning']}; 68% intervals over units; chance "
                 f"{result['chance']:.2f}.", ""]
        lines += md_table([result["level_name"], "accuracy"], [[f"{r['level']:g}", interval_text(r["accuracy"])]
                                                              for r in rows])
        write_text(paths[1], "\n".join(lines) + "\n")
        _probe_figure(result, paths[2])
    return result


def _probe_figure(result, path) -> None:
    lv = [r["level"] for r in result["levels"]]
    acc = np.array([[r["accuracy"]["value"], r["accuracy"]["lo"], r["accuracy"]["hi"]] for r in result["levels"]])
    fig, ax = plt.subplots(figsize=(4.5, 3.3))
    ax.errorbar(lv, acc[:, 0], yerr=[acc[:, 0] - acc[:, 1], acc[:, 2] - acc[:, 0]], marker="o", capsize=3)
    ax.axhline(result["chance"], color="0.6", ls="--", label="chance")
    ax.set_xlabel(result["level_name"])
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title(f"{result['probe']} probe ({result['units']} units)", fontsize=9)
    save_png(fig, path, dpi=120)
