"""Judging a classifier on a split: accuracy, per-class precision and recall with intervals over the
independent units, and the confusion matrix.

The unit is one snapshot of one run (``galaxy_id`` of a grid slices store): its tiles share the same
turbulence, so intervals resample whole units (:func:`skymorph.stats.bootstrap.bootstrap_interval`,
68% percentile intervals of the mean). Several runs (training seeds) are judged on the same images
and reported one by one with their mean.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..atomic import check_output, save_png, write_text  # noqa: E402
from ..data.store import MapStore  # noqa: E402
from ..errors import InputError  # noqa: E402
from ..evaluate.report import md_table  # noqa: E402
from ..stats.bootstrap import bootstrap_interval  # noqa: E402
from .train import load_classifier, load_images  # noqa: E402

__all__ = ["predict", "scores", "evaluate_runs"]


def predict(net, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Class probabilities (N, classes) of normalised images (N, C, H, W)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            out.append(torch.softmax(net(torch.from_numpy(images[i:i + batch])), 1).numpy())
    return np.concatenate(out)


def mean_interval(values, units) -> dict:
    return bootstrap_interval(np.asarray(values, float), units, stat=np.mean)


def scores(labels: np.ndarray, pred: np.ndarray, units: np.ndarray, classes: list[str]) -> dict:
    """Accuracy and per-class recall / precision ({value, lo, hi, units, n}) and the confusion matrix
    (rows: true class, columns: predicted)."""
    correct = labels == pred
    out = {"accuracy": mean_interval(correct, units), "recall": {}, "precision": {},
           "confusion": np.array([[int(((labels == t) & (pred == p)).sum()) for p in range(len(classes))]
                                  for t in range(len(classes))]).tolist()}
    for c, name in enumerate(classes):
        out["recall"][name] = mean_interval(correct[labels == c], units[labels == c])
        out["precision"][name] = mean_interval(correct[pred == c], units[pred == c])
    return out


def interval_text(s: dict) -> str:
    return f"{s['value']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]" if s["n"] else "-"


def evaluate_runs(runs, data=None, split: str = "test", out=None, overwrite: bool = False) -> dict:
    """Score every run on ``split`` of ``data`` (default: the store the first run was trained on); with
    ``out`` write OUT.json, OUT.md and the confusion matrix figure OUT.png."""
    loaded = [load_classifier(r) for r in runs]
    cfg0 = loaded[0][1]
    for (_, cfg), r in zip(loaded, runs):
        if (cfg.input, cfg.classes, cfg.flatten_spectrum) != (cfg0.input, cfg0.classes, cfg0.flatten_spectrum):
            raise InputError(f"{r}: trained on other inputs or classes than {runs[0]}; judge them separately")
    paths = None
    if out is not None:
        out = Path(out)
        paths = [check_output(out.with_suffix(s), overwrite) for s in (".json", ".md", ".png")]
    with MapStore(data or cfg0.data) as store:
        x, y, units, _ = load_images(store, cfg0.input, split, cfg0.flatten_spectrum)
        source = str(store.path)
    if not len(y):
        raise InputError(f"{source}: the {split} split is empty")
    per_run = []
    for (net, _), run in zip(loaded, runs):
        prob = predict(net, x)
        per_run.append({"run": str(run), **scores(y, prob.argmax(1), units, cfg0.classes)})
    result = {"data": source, "split": split, "classes": cfg0.classes, "input": cfg0.input,
              "flatten_spectrum": cfg0.flatten_spectrum, "images": int(len(y)), "units": int(len(np.unique(units))),
              "unit": "one snapshot of one run (its tiles resampled together)", "runs": per_run,
              "mean_accuracy": float(np.mean([r["accuracy"]["value"] for r in per_run]))}
    if paths:
        write_text(paths[0], json.dumps(result, indent=1))
        write_text(paths[1], report(result))
        _figure(result, paths[2])
    return result


def report(result: dict) -> str:
    """Markdown: accuracy per run, recall and precision per class of the first run."""
    lines = [f"# Classification on the {result['split']} split of {result['data']}", "",
             f"{result['images']} images from {result['units']} independent units ({result['unit']}); "
             f"input {', '.join(result['input'])}{' (phase-only)' if result['flatten_spectrum'] else ''}; "
             f"68% bootstrap intervals over units.", ""]
    lines += md_table(["run", "accuracy"], [[r["run"], interval_text(r["accuracy"])] for r in result["runs"]])
    lines += ["", f"mean accuracy over {len(result['runs'])} run(s): {result['mean_accuracy']:.3f}", ""]
    first = result["runs"][0]
    lines += md_table(["class", "recall", "precision"],
                      [[c, interval_text(first["recall"][c]), interval_text(first["precision"][c])] for c in result["classes"]])
    return "\n".join(lines) + "\n"


def _figure(result: dict, path: Path) -> None:
    m = np.asarray(result["runs"][0]["confusion"], float)
    frac = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(result["classes"])
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.1 * n + 2))
    ax.imshow(frac, vmin=0, vmax=1, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{frac[i, j]:.2f}\n({int(m[i, j])})", ha="center", va="center", fontsize=8,
                    color="white" if frac[i, j] > 0.6 else "black")
    ax.set_xticks(range(n), result["classes"], rotation=30, ha="right")
    ax.set_yticks(range(n), result["classes"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = result["runs"][0]["accuracy"]
    ax.set_title(f"accuracy {interval_text(acc)} ({result['split']}, {result['units']} units)", fontsize=9)
    save_png(fig, path, dpi=120)
