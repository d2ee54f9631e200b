"""The posterior of one observation: samples (HDF5), a table (mean, sd, 16/50/84%) and a corner plot."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ..atomic import atomic_path, check_output, write_text
from ..errors import ConfigError, InputError
from ..provenance import provenance
from .data import load_simulations
from .run import InferenceRun, load_inference

__all__ = ["posterior", "summary_rows", "corner_plot"]


def summary_rows(samples: np.ndarray, params: list[str], truth: np.ndarray | None = None) -> list[dict]:
    """Per parameter: mean, sd, 16/50/84% quantiles of the samples, and the truth when known."""
    q = np.percentile(samples, [16, 50, 84], axis=0)
    rows = []
    for j, p in enumerate(params):
        row = {"param": p, "mean": float(samples[:, j].mean()), "sd": float(samples[:, j].std(ddof=1)),
               "q16": float(q[0, j]), "q50": float(q[1, j]), "q84": float(q[2, j])}
        if truth is not None:
            row["truth"] = float(truth[j])
        rows.append(row)
    return rows


def corner_plot(path: Path, samples: np.ndarray, params: list[str], box: dict | None, truth=None,
                title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import corner
    import matplotlib.pyplot as plt

    fig = corner.corner(samples, labels=params, truths=None if truth is None else list(truth), truth_color="C3",
                        range=None if box is None else [tuple(box[p]) for p in params], quantiles=[0.16, 0.5, 0.84], show_titles=True,
                        title_fmt=".3g", smooth=1.0, plot_datapoints=False)
    if title:
        fig.suptitle(title, fontsize=10, y=1.02)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _outputs(out: Path, overwrite: bool) -> dict[str, Path]:
    return {k: check_output(out / name, overwrite) for k, name in (("samples", "samples.h5"), ("table", "posterior.md"),
                                                                   ("json", "posterior.json"), ("corner", "corner.png"))}


def posterior(run, obs, index: int, n_samples: int = 10_000, out=None, seed: int = 0, overwrite: bool = False,
              allow_outside_prior: bool = False) -> dict:
    """Sample the posterior of map ``index`` of file ``obs`` and write samples, table and corner plot
    into folder ``out``. Refuses an observation whose summary lies outside the range of the training
    simulations' summaries (it is outside the prior's predictive range) unless ``allow_outside_prior``."""
    if n_samples < 2:
        raise ConfigError(f"--samples {n_samples}: need at least 2")
    r: InferenceRun = load_inference(run) if not isinstance(run, InferenceRun) else run
    sims = load_simulations(obs, None, r.cfg.maps, r.cfg.domains or None, index=[index],
                            observed=r.cfg.noise == "shape")
    truth = None
    if sims.theta is not None and all(p in sims.params for p in r.cfg.params):
        truth = sims.theta[0, [sims.params.index(p) for p in r.cfg.params]]
    x = r.summarise(r.observe(sims, seed))
    notes = []
    if truth is not None:
        off = [p for p, t in zip(r.cfg.params, truth) if not r.box[p][0] <= t <= r.box[p][1]]
        if off:
            notes.append(f"the file's true {', '.join(off)} lie outside the prior box")
    if r.outside(x)[0]:
        notes.append("its summary lies outside the range of the training simulations' summaries")
    if notes and not allow_outside_prior:
        raise InputError(f"{sims.path}: map {index}: {'; '.join(notes)}; the posterior would extrapolate "
                         f"(use --allow-outside-prior to sample anyway)")
    paths = _outputs(Path(out), overwrite) if out is not None else None
    if notes:  # allowed outside the prior: rejection inside the box would find no mass
        notes.append("samples drawn without the prior box (npe) or confined to it (nle, gaussian: MCMC in "
                     "the box)")
    samples = r.sample(x[0], n_samples, seed, within_prior=not notes)
    rows = summary_rows(samples, r.cfg.params, truth)
    result = {"run": str(r.folder), "obs": str(sims.path), "index": int(index), "samples": int(n_samples),
              "seed": seed, "outside_prior": notes, "table": rows, "provenance": provenance()}
    if paths is None:
        return result
    with atomic_path(paths["samples"]) as tmp, h5py.File(tmp, "w") as f:
        f["samples"] = samples
        f["samples"].attrs["params"] = json.dumps(r.cfg.params)
        f.attrs.update({"run": str(r.folder), "obs": str(sims.path), "index": int(index), "seed": seed})
    write_text(paths["json"], json.dumps(result, indent=1))
    cols = ["param", "mean", "sd", "q16", "q50", "q84"] + (["truth"] if truth is not None else [])
    lines = [f"# posterior of {sims.path.name} map {index}", "", f"run: {r.folder}; {n_samples} samples; seed {seed}",
             *(f"- note: {n}" for n in notes), "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(row[c] if c == "param" else f"{row[c]:.4g}" for c in cols) + " |" for row in rows]
    write_text(paths["table"], "\n".join(lines) + "\n")
    corner_plot(paths["corner"], samples, r.cfg.params, None if notes else r.box, truth,
                f"{sims.path.name} map {index}")
    return result
