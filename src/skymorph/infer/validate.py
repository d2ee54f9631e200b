"""Validation of inference runs on held-out simulations: TARP expected coverage (``tarp``), SBC ranks
with KS p-values (``sbi.diagnostics``), posterior mean against truth, marginal interval coverage at
the sample size used (:mod:`skymorph.stats`), and the figure of merit; ``compare`` puts several runs
through the same maps with paired verdicts over maps (and over training seeds: runs that differ only in
their seed are one method).

Figure of merit of one posterior: FoM = 1 / sqrt(det Cov), Cov the covariance of its samples (for
two parameters the inverse area of the 1-sigma ellipse up to pi). Its median over test maps carries
a 68% bootstrap interval over maps; "A has the larger FoM" is decided on the paired per-map
difference of ln FoM with its 95% interval. The unit is the map: each held-out map is an independent
simulation.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from .. import stats
from ..atomic import check_output, write_text
from ..errors import ConfigError, InputError
from ..provenance import provenance
from .data import load_simulations
from .run import InferenceRun, load_inference

__all__ = ["MIN_MAPS", "posterior_samples", "diagnostics", "validate", "compare"]

#: held-out maps validation needs: TARP bins its credibility levels in n // 10 and SBC's KS test
#: needs a few tens of ranks
MIN_MAPS = 50


def _subset(sims, keep: np.ndarray):
    sims.maps, sims.theta, sims.rows, sims.groups = sims.maps[keep], sims.theta[keep], sims.rows[keep], sims.groups[keep]
    if sims.observed is not None:
        sims.observed = sims.observed[keep]
    return sims


def _held_out(run: InferenceRun, data, n_maps: int | None):
    """The held-out maps: a plain file whole (not the run's training file), a map store's test split with
    one view per galaxy (the views of a galaxy share its truth: the galaxy is the independent unit)."""
    sims = load_simulations(data, run.cfg.params, run.cfg.maps, run.cfg.domains or None,
                            "test" if run.cfg.domains else None, observed=run.cfg.noise == "shape")
    if sims.fingerprint == run.cfg.data_fingerprint:
        raise InputError(f"{sims.path}: these are the run's training simulations; validate on held-out ones")
    unit = "maps"
    if run.cfg.domains:
        sims, unit = _subset(sims, np.sort(np.unique(sims.groups, return_index=True)[1])), "galaxies (one view each)"
    if n_maps is not None:
        sims = _subset(sims, np.arange(min(n_maps, len(sims.maps))))
    if len(sims.maps) < MIN_MAPS:
        raise InputError(f"{sims.path}: {len(sims.maps)} held-out {unit}; validation needs at least {MIN_MAPS}")
    return sims


def posterior_samples(run: InferenceRun, sims, n_samples: int, seed: int, progress: bool = False) -> np.ndarray:
    """Samples (n_samples, N, P) of the posterior of every map of ``sims``, map i from seed [seed, i]."""
    from rich.progress import track

    run.check(sims)
    x = run.summarise(run.observe(sims, seed))
    return np.stack([run.sample(xi, n_samples, int(np.random.default_rng([seed, i]).integers(2**31)))
                     for i, xi in track(enumerate(x), total=len(x), description=f"Posteriors of {run.folder.name}",
                                        disable=not progress)], 1)


def _fom(samples: np.ndarray) -> np.ndarray:
    """1 / sqrt(det Cov) per map, from samples (L, N, P)."""
    c = np.stack([np.atleast_2d(np.cov(samples[:, i].T)) for i in range(samples.shape[1])])
    return 1.0 / np.sqrt(np.linalg.det(c))


def diagnostics(samples: np.ndarray, theta: np.ndarray, params: list[str], box: dict, seed: int = 0) -> dict:
    """Calibration and precision of posterior samples (L, N, P) against truths (N, P)."""
    import tarp
    import torch
    from sbi.diagnostics.sbc import check_uniformity_frequentist

    n_samples, n_maps, _ = samples.shape
    lo, hi = np.array([box[p] for p in params]).T
    # TARP on parameters scaled to the prior box, references drawn uniformly in it; the band is
    # simultaneous over credibility levels: the 95% quantile over bootstrap resamples of the maps of the
    # largest deviation of a resample's curve from the full one
    scaled, truth_s = (samples - lo) / (hi - lo), (theta - lo) / (hi - lo)
    ecp, alpha = tarp.get_tarp_coverage(scaled, truth_s, references="random", metric="euclidean", seed=seed)
    rng = np.random.default_rng([seed, 6])
    boot = np.stack([tarp.get_tarp_coverage(scaled[:, b], truth_s[b], references="random", metric="euclidean",
                                            seed=seed)[0] for b in rng.integers(0, n_maps, (200, n_maps))])
    half = float(np.percentile(np.abs(boot - ecp).max(1), 95))
    band = np.stack([ecp - half, ecp + half])
    mean_ecp = ecp
    inside = bool(np.max(np.abs(ecp - alpha)) <= half)
    atc = float(np.sum(mean_ecp[len(alpha) // 2:] - alpha[len(alpha) // 2:]))
    ranks = (samples < theta[None]).sum(0)  # (N, P): SBC rank of the truth among the L samples
    ks = check_uniformity_frequentist(torch.as_tensor(ranks, dtype=torch.float32), n_samples).numpy()
    mean = samples.mean(0)
    sd = samples.std(0, ddof=1)
    fom = _fom(samples) if len(params) > 1 else 1.0 / sd[:, 0]
    per = {}
    for j, p in enumerate(params):
        c68, n68 = stats.interval_coverage(samples[:, :, j], theta[:, j], 0.68)
        c95, n95 = stats.interval_coverage(samples[:, :, j], theta[:, j], 0.95)
        width = hi[j] - lo[j]
        per[p] = {"bias": float(np.mean(mean[:, j] - theta[:, j])),
                  "rmse": float(np.sqrt(np.mean((mean[:, j] - theta[:, j]) ** 2))),
                  "sd_median": float(np.median(sd[:, j])),
                  "prior_sd": float(width / np.sqrt(12.0)),
                  "narrowing": float(width / np.sqrt(12.0) / np.median(sd[:, j])),
                  "sbc_ks_p": float(ks[j]), "coverage68": [float(c68), float(n68)],
                  "coverage95": [float(c95), float(n95)]}
    units = np.arange(n_maps)
    return {"maps": int(n_maps), "samples": int(n_samples), "params": per,
            "tarp": {"alpha": alpha.tolist(), "ecp": mean_ecp.tolist(), "lo": band[0].tolist(), "hi": band[1].tolist(),
                     "atc": atc, "within_band": inside},
            "sbc_ranks": ranks.tolist(), "fom": fom.tolist(),
            "fom_median": stats.bootstrap_interval(fom, units, 0.68, seed=seed),
            "posterior_mean": mean.tolist(), "truth": theta.tolist(),
            "calibrated": bool(inside and all(v["sbc_ks_p"] > 0.01 for v in per.values()))}


def validate(run, data, out, n_samples: int = 500, n_maps: int | None = None, seed: int = 0,
             overwrite: bool = False, progress: bool = False) -> dict:
    """Validate one run on held-out simulations; writes results.json, results.md, the figures and
    report.html into ``out``."""
    return compare([run], data, out, n_samples, n_maps, seed, overwrite, "skymorph inference validation", progress)


def _methods(labels: list[str], loaded) -> dict[str, list[str]]:
    """Runs whose settings differ only in their seed are training seeds of one method: name -> labels."""
    groups: dict[str, list[str]] = {}
    for label, r in zip(labels, loaded):
        key = json.dumps(r.cfg.model_dump(mode="json", exclude={"seed"}), sort_keys=True)
        groups.setdefault(key, []).append(label)
    return {"+".join(v): v for v in groups.values()}


def _verdicts(methods: dict[str, list[str]], res: dict) -> list[dict]:
    """Paired ln FoM verdicts between methods, over held-out maps and the methods' training seeds."""
    out = []
    for a, b in itertools.combinations(methods, 2):
        fa, fb = (np.log(np.stack([res[r]["fom"] for r in methods[m]])) for m in (a, b))
        v = stats.paired_verdict(fa, fb, np.arange(fa.shape[1]), higher_is_better=True)
        out.append({"a": a, "b": b, "metric": "ln FoM", **v, "fom_ratio": float(np.exp(v["diff"])),
                    "fom_ratio_lo": float(np.exp(v["lo"])), "fom_ratio_hi": float(np.exp(v["hi"]))})
    return out


def compare(runs, data, out, n_samples: int = 500, n_maps: int | None = None, seed: int = 0,
            overwrite: bool = False, title: str = "skymorph inference comparison", progress: bool = False) -> dict:
    """Put every run through the same held-out maps of ``data``: one table, figures, paired FoM verdicts
    between methods (runs that differ only in their seed are one method's training seeds, and its
    verdicts resample them beside the maps)."""
    if n_samples < 20:
        raise ConfigError(f"--samples {n_samples}: SBC and TARP need at least 20 posterior samples per map")
    out = Path(out)
    names = ["results.json", "results.md", "report.html", "tarp.png", "sbc.png", "truth.png"]
    for name in names:  # every output checked before any work
        check_output(out / name, overwrite)
    loaded = [load_inference(r) for r in runs]
    labels = [Path(r.folder).name for r in loaded]
    if len(set(labels)) != len(labels):
        labels = [str(r.folder) for r in loaded]
    params = loaded[0].cfg.params
    for r in loaded[1:]:
        if r.cfg.params != params:
            raise ConfigError(f"{r.folder}: infers {', '.join(r.cfg.params)}; {loaded[0].folder} infers "
                              f"{', '.join(params)}: compare runs of the same parameters")
    res = {}
    for label, r in zip(labels, loaded):
        sims = _held_out(r, data, n_maps)
        samples = posterior_samples(r, sims, n_samples, seed, progress)
        res[label] = {"run": str(r.folder), "summary": r.cfg.summary, "estimator": r.cfg.estimator,
                      "noise": r.cfg.noise, "n_train": r.cfg.n_train,
                      **diagnostics(samples, sims.theta, params, r.box, seed)}
    if len({len(v["fom"]) for v in res.values()}) != 1:
        raise InputError(f"{data}: the runs saw different numbers of held-out maps; pass --maps-limit")
    results = {"provenance": {**provenance(), "data": str(Path(data).resolve()), "samples": n_samples,
                              "seed": seed}, "params": params, "runs": res,
               "verdicts": _verdicts(_methods(labels, loaded), res)}
    from . import report

    figures = report.figures(out, results)
    write_text(out / "results.json", json.dumps(results, indent=1))
    report.write_markdown(results, out / "results.md", title)
    report.write_html(results, figures, out / "report.html", title)
    return results

