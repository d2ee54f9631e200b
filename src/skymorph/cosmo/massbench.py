"""Mass maps from a shear file, and the mass-mapping benchmark (KS, Wiener, score-prior posterior).

``result.h5`` of :func:`run_massmap`: ``/kappa`` (N, H, W) the estimate (KS map, Wiener filter,
posterior mean of the samples or by Tweedie's formula; dimensionless convergence), ``/std`` (N, H, W)
for the posterior (of the samples) and Tweedie (its second-order formula), ``/samples`` (N, K, H, W) for the
posterior, ``/index`` (N,) the maps' positions in the shear file,
``/mask``; attributes: method, source file, pixel_arcmin, and per method the KS smoothing (arcmin), or
the sampler schedule, seconds per sample and score evaluations per sample, or Tweedie's draws and
seconds per map.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from skymorph import stats
from skymorph.atomic import atomic_path
from skymorph.cosmo.massmap import (GaussianPrior, LensingData, Schedule, completed_ks_maps, coverage,
                                    gaussian_coverage, ks_map, masked_pearson, masked_rmse, mode_power,
                                    read_lensing_file, sample_mean_rmse, sample_posterior, tweedie_denoise,
                                    tweedie_moments, tweedie_of_completions, tweedie_posterior, wiener)
from skymorph.cosmo.prior import SEEDS_NAME, PriorConfig, check_geometry, gain_line, load_prior
from skymorph.atomic import check_output
from skymorph.provenance import provenance
from skymorph.errors import ConfigError, InputError

__all__ = ["METHODS", "parse_maps", "run_massmap", "run_benchmark"]

METHODS = ("ks", "wiener", "posterior", "tweedie")
TWEEDIE = "posterior mean by Tweedie (masked shear completed)"
PROBES = 4  # Hutchinson probes per completion of Tweedie's posterior variance (its Gaussian part is exact)


def parse_maps(text: str | None, n: int) -> np.ndarray:
    """Map indices from 'a:b' (a slice) or 'i,j,k'; None: all ``n`` maps."""
    if text is None:
        return np.arange(n)
    try:
        if ":" in text:
            lo, hi = (int(v) if v else d for v, d in zip(text.split(":"), (0, n)))
            idx = np.arange(lo, min(hi, n))
        else:
            idx = np.array([int(v) for v in text.split(",") if v.strip()])
    except ValueError:
        raise ConfigError(f"--maps {text!r}: expected a range a:b or indices i,j,k") from None
    if len(idx) == 0 or idx.min() < 0 or idx.max() >= n:
        raise ConfigError(f"--maps {text!r}: need at least one index in [0, {n})")
    return idx


def _gaussian(cfg: PriorConfig) -> GaussianPrior:
    return GaussianPrior(mode_power(cfg.ell, cfg.cl, cfg.npix, cfg.pixel_arcmin), cfg.kappa_mean)


def _schedule(cfg: PriorConfig, levels: int, steps: int) -> Schedule:
    return Schedule(cfg.sigma_max, cfg.sigma_min, levels, steps)


def _noise_outside(cfg: PriorConfig, noise_std: float) -> str | None:
    """Why the prior's score cannot be read at the data's noise level (None: it can)."""
    if cfg.sigma_min <= noise_std <= cfg.sigma_max:
        return None
    return (f"the noise {noise_std:.3g} is outside the prior's trained range [{cfg.sigma_min:.3g}, "
            f"{cfg.sigma_max:.3g}]")


def _posterior(data: LensingData, idx, net, sched: Schedule, samples: int, seed: int, progress: bool):
    """Samples (N, K, H, W) as float64 numpy and seconds per sample."""
    from rich.progress import Progress

    total = len(idx) * samples * sched.evaluations
    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"Posterior samples ({type(net).__name__})", total=total)
        start = time.perf_counter()
        out = sample_posterior(torch.from_numpy(data.gamma[idx]), torch.from_numpy(data.mask), data.noise_std, net,
                               samples, sched, seed, progress=lambda k: bar.advance(task, k))
        seconds = (time.perf_counter() - start) / (len(idx) * samples)
    return out.double().numpy(), seconds


def run_massmap(shear, method: str, out, prior=None, samples: int = 8, smoothing_arcmin: float | None = None,
                maps: str | None = None, levels: int = 30, steps: int = 3, seed: int = 0, overwrite: bool = False,
                progress: bool = True, device: str = "cpu") -> tuple[Path, dict]:
    """Mass maps of the shear file by ``method`` (ks, wiener or posterior) into ``out`` (module
    docstring). KS smooths by ``smoothing_arcmin`` or else the prior run's choice; Wiener and the
    posterior need the prior run (its power spectrum; the posterior its network)."""
    if method not in METHODS:
        raise ConfigError(f"--estimator {method!r}: expected one of {', '.join(METHODS)}")
    if method == "posterior" and samples < 1:
        raise ConfigError(f"--samples must be a positive integer, got {samples}")
    out = check_output(out, overwrite)
    data = read_lensing_file(shear)
    idx = parse_maps(maps, len(data.gamma))
    cfg = net = None
    if prior is not None:
        cfg, net = load_prior(prior, device=device)
        check_geometry(cfg, data)
    elif method != "ks" or smoothing_arcmin is None:
        raise ConfigError(f"--estimator {method} needs --prior RUN" + (" (or --smoothing ARCMIN)" if method == "ks" else ""))
    if method == "tweedie" and (why := _noise_outside(cfg, data.noise_std)):
        raise ConfigError(f"--estimator tweedie on {shear}: {why} ({prior}): its score was never trained there")
    attrs = {"method": method, "source": str(shear), "pixel_arcmin": data.pixel_arcmin,
             "kappa_unit": "dimensionless convergence",
             "provenance": json.dumps(provenance(shear=str(Path(shear).resolve()), estimator=method, samples=samples,
                                                 prior=None if prior is None else str(Path(prior).resolve()),
                                                 seed=seed, maps=maps))}
    extra = {}
    if method == "ks":
        smooth = cfg.ks_smoothing_arcmin if smoothing_arcmin is None else smoothing_arcmin
        if smooth < 0:
            raise ConfigError(f"--smoothing {smooth}: must be >= 0 arcmin")
        est = ks_map(torch.from_numpy(data.gamma[idx]), smooth / data.pixel_arcmin).numpy()
        attrs["smoothing_arcmin"] = smooth
    elif method == "tweedie":
        start = time.perf_counter()
        mean, var = tweedie_moments(*tweedie_posterior(torch.from_numpy(data.gamma[idx]), torch.from_numpy(data.mask),
                                                       data.noise_std, net, _gaussian(cfg), samples,
                                                       _schedule(cfg, levels, steps), seed, probes=PROBES))
        est, extra = mean.numpy(), {"std": var.sqrt().numpy()}
        attrs.update({"draws": samples, "probes": PROBES, "seconds_per_map": (time.perf_counter() - start) / len(idx),
                      "seed": seed, "levels": levels, "steps": steps, "prior": str(prior)})
    elif method == "wiener":
        est = wiener(torch.from_numpy(data.gamma[idx]), torch.from_numpy(data.mask), data.noise_std, _gaussian(cfg)).numpy()
    else:
        sched = _schedule(cfg, levels, steps)
        smp, seconds = _posterior(data, idx, net, sched, samples, seed, progress)
        est = smp.mean(1)
        extra = {"std": smp.std(1, ddof=1) if samples > 1 else np.zeros_like(est), "samples": smp}
        attrs.update({"samples": samples, "seconds_per_sample": seconds, "score_evaluations_per_sample": sched.evaluations,
                      "sigma_max": sched.sigma_max, "sigma_min": sched.sigma_min, "levels": levels, "steps": steps,
                      "seed": seed, "prior": str(prior)})
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f["kappa"] = est.astype(np.float32)
        for name, arr in extra.items():
            f.create_dataset(name, data=arr.astype(np.float32), compression="gzip")
        f["index"] = idx
        f["mask"] = data.mask.astype(np.float32)
        f.attrs.update(attrs)
    return out, attrs


def _verdicts(scores: dict, seed: int) -> list[dict]:
    """The learned-prior posterior mean against KS and Wiener, per metric, on the paired per-map
    differences (maps are the independent units; 95% bootstrap intervals). The RMSE verdicts also carry
    the ratio exp(mean over maps of log(RMSE / RMSE_ref)) with its interval, from the same paired
    bootstrap on the logs: the form of the goal "RMSE <= 0.93 x Wiener"."""
    out = []
    for learned, ref in [(a, b) for a in scores["rmse"] if a.endswith("learned prior")
                         for b in scores["rmse"] if not b.startswith("posterior mean")]:
        for metric, vals in scores.items():
            units = np.arange(len(vals[ref]))
            v = stats.paired_verdict(vals[learned], vals[ref], units, metric == "pearson", seed=seed)
            if metric != "pearson":
                r = stats.paired_verdict(np.log(vals[learned]), np.log(vals[ref]), units, seed=seed)
                v.update({"ratio": math.exp(r["diff"]), "ratio_lo": math.exp(r["lo"]), "ratio_hi": math.exp(r["hi"])})
            out.append({"method": learned, "reference": ref, "metric": metric, **v})
    return out


def _prior_at_noise(net, gauss: GaussianPrior, truth: np.ndarray, cfg: PriorConfig, noise_std: float, seed: int) -> dict:
    """The prior apart from the sampler: each true map noised by white noise of the survey's
    noise_std per pixel (which is what unmasked shear noise puts on the E-mode convergence: KS is unitary
    mode by mode), and denoised by Tweedie's formula E[kappa | y] = y + sigma^2 score(y, sigma), the
    exact posterior mean of each prior for that unmasked problem (for the Gaussian prior: the unmasked
    Wiener filter). A learned prior whose Tweedie denoiser does not beat the Gaussian one here will not
    make an unmasked posterior mean that beats Wiener however well it is sampled. RMSE over all pixels,
    mean removed, and the paired verdict on log RMSE over maps."""
    if why := _noise_outside(cfg, noise_std):
        return {"sigma": noise_std, "skipped": why}
    gen = torch.Generator().manual_seed(seed)
    kappa = torch.from_numpy(truth)
    y = kappa + noise_std * torch.randn(kappa.shape, generator=gen, dtype=kappa.dtype)
    ones = np.ones(truth.shape[-2:])
    rmse = {name: masked_rmse(tweedie_denoise(prior, y, noise_std).numpy(), truth, ones)
            for name, prior in (("learned prior", net), ("Gaussian prior", gauss))}
    v = stats.paired_verdict(np.log(rmse["learned prior"]), np.log(rmse["Gaussian prior"]), np.arange(len(truth)),
                             seed=seed)
    return {"sigma": noise_std, "rmse": {k: _stats(r) for k, r in rmse.items()}, "verdict": v["verdict"],
            "ratio": math.exp(v["diff"]), "ratio_lo": math.exp(v["lo"]), "ratio_hi": math.exp(v["hi"])}


def _stats(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "median": float(np.median(values)), "per_map": values.tolist()}


def _figure(path: Path, truth, panels: dict, mask) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["truth", *panels]
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 3.0))
    lim = np.percentile(np.abs(truth), 99.5)
    for ax, name in zip(axes, names):
        img = truth if name == "truth" else panels[name]
        std_panel = name == "posterior std"
        im = ax.imshow(np.where(mask > 0, img, np.nan), origin="lower", cmap="viridis" if std_panel else "RdBu_r",
                       vmin=0 if std_panel else -lim, vmax=img.max() if std_panel else lim)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def run_benchmark(data, prior, out, samples: int = 16, maps: str | None = None, levels: int = 30, steps: int = 3,
                  seed: int = 0, overwrite: bool = False, progress: bool = True, device: str = "cpu") -> dict:
    """KS (the prior run's smoothing), Wiener and posterior mean on held-out maps of ``data``:
    masked mean-subtracted RMSE and Pearson r per map (mean, spread, median), seconds and score
    evaluations per posterior sample, 68% / 95% coverage; the same sampler with the Gaussian prior
    as a reference. Writes results.json, results.md and massmap.png into folder ``out``."""
    if samples < 2:
        raise ConfigError(f"--samples {samples}: the benchmark needs at least 2 posterior samples per map")
    out = Path(out)
    check_output(out / "results.json", overwrite)
    lens = read_lensing_file(data, need_kappa=True)
    cfg, net = load_prior(prior, device=device)
    check_geometry(cfg, lens)
    seeds_file = Path(prior) / SEEDS_NAME
    if lens.seeds is not None and seeds_file.exists():
        seen = np.isin(lens.seeds, np.load(seeds_file, allow_pickle=False))
        if seen.any():
            raise InputError(f"{data}: {int(seen.sum())} of its {len(seen)} maps come from PM runs the prior was "
                             f"trained on; benchmark on held-out maps (another --seed of 'skymorph lensing maps')")
    idx = parse_maps(maps, len(lens.kappa))
    truth, mask = lens.kappa[idx].astype(np.float64), lens.mask
    gamma, tmask = torch.from_numpy(lens.gamma[idx]), torch.from_numpy(mask)
    gauss = _gaussian(cfg)
    sched = _schedule(cfg, levels, steps)
    smooth_px = cfg.ks_smoothing_arcmin / cfg.pixel_arcmin
    est = {f"KS ({cfg.ks_smoothing_arcmin:.3g}' Gaussian)": ks_map(gamma, smooth_px).numpy(),
           "Wiener filter": wiener(gamma, tmask, lens.noise_std, gauss).numpy()}
    smp_g, sec_g = _posterior(lens, idx, gauss, sched, samples, seed, progress)
    smp, sec = _posterior(lens, idx, net, sched, samples, seed, progress)
    draws = {"posterior mean, Gaussian prior": smp_g, "posterior mean, learned prior": smp}
    skipped = _noise_outside(cfg, lens.noise_std)
    sec_t, cover_t = {}, {}
    if skipped is None:  # Tweedie's estimates of the same completions for both priors (paired); seconds include them
        start = time.perf_counter()
        y = completed_ks_maps(gamma, tmask, lens.noise_std, gauss, samples, sched, seed)
        completing = time.perf_counter() - start
        for name, p in (("Gaussian prior", gauss), ("learned prior", net)):
            start = time.perf_counter()
            means, variances = tweedie_of_completions(p, y, lens.noise_std, PROBES, seed)
            sec_t[name] = (completing + time.perf_counter() - start) / len(idx)
            mean, var = tweedie_moments(means, variances)
            draws[f"{TWEEDIE}, {name}"] = means.numpy()
            cover_t[name] = {str(k): {**_stats(v), "nominal": k}
                             for k, v in gaussian_coverage(mean.numpy(), var.sqrt().numpy(), truth, mask).items()}
    est.update({name: d.mean(1) for name, d in draws.items()})
    scores = {"rmse": {name: masked_rmse(e, truth, mask) for name, e in est.items()},
              "pearson": {name: masked_pearson(e, truth, mask) for name, e in est.items()}}
    # the means of K draws without their K-draw noise (the filters are deterministic: their RMSE itself)
    scores["rmse_k_inf"] = {**scores["rmse"], **{name: sample_mean_rmse(d, truth, mask) for name, d in draws.items()}}
    res = {"provenance": provenance(data=str(Path(data).resolve()), prior=str(Path(prior).resolve()), samples=samples,
                                    maps=maps, noise_levels=levels, langevin_steps=steps, seed=seed, device=str(device)),
           "data": str(data), "prior": str(prior), "maps": idx.tolist(), "samples": samples,
           "noise_std": lens.noise_std, "pixel_arcmin": lens.pixel_arcmin, "masked_fraction": float(1 - mask.mean()),
           "ks_smoothing_arcmin": cfg.ks_smoothing_arcmin, "prior_training": gain_line(prior),
           "prior_residual": cfg.residual,
           "schedule": {"sigma_max": sched.sigma_max, "sigma_min": sched.sigma_min, "levels": levels, "steps": steps},
           "score_evaluations_per_sample": sched.evaluations,
           "seconds_per_sample": {"learned prior": sec, "Gaussian prior": sec_g},
           "tweedie": {"skipped": skipped} if skipped else {"draws": samples, "seconds_per_map": sec_t, "probes": PROBES,
                                                            "coverage": cover_t},
           "methods": {name: {k: _stats(scores[k][name]) for k in scores} for name in est},
           "verdicts": _verdicts(scores, seed),
           "coverage": {name: {str(k): {**_stats(v), "nominal": nominal} for k, (v, nominal) in coverage(s, truth, mask).items()}
                        for name, s in (("learned prior", smp), ("Gaussian prior", smp_g))},
           "prior_at_noise": _prior_at_noise(net, gauss, truth, cfg, lens.noise_std, seed),
           # a chain that ran away shows here first: samples far wider than the maps the prior was trained on
           "sample_rms_over_map_std": {name: _stats(np.sqrt(((s - cfg.kappa_mean) ** 2).mean((1, 2, 3))) / cfg.kappa_std)
                                       for name, s in (("learned prior", smp), ("Gaussian prior", smp_g))}}
    with atomic_path(out / "results.json") as tmp:
        Path(tmp).write_text(json.dumps(res, indent=1))
    with atomic_path(out / "results.md") as tmp:
        Path(tmp).write_text(results_markdown(res))
    _figure(out / "massmap.png", truth[0], {"KS": est[next(iter(est))][0], "Wiener": est["Wiener filter"][0],
                                            "posterior mean": smp[0].mean(0),
                                            **({"Tweedie mean": est[f"{TWEEDIE}, learned prior"][0]} if not skipped else {}),
                                            "posterior std": smp[0].std(0, ddof=1),
                                            "sample 1": smp[0, 0], "sample 2": smp[0, 1]}, mask)
    return res


def results_markdown(res: dict) -> str:
    """The benchmark as markdown tables: accuracy, calibration, cost."""
    n = len(res["maps"])
    lines = [f"Mass mapping on {n} held-out maps of {res['data']} ({res['pixel_arcmin']:.3g}' pixels, shape noise "
             f"{res['noise_std']:.3g} per component per pixel, {100 * res['masked_fraction']:.1f}% masked); "
             f"mean +- standard deviation over maps (median). Prior ({res.get('prior_residual', 'white')} residual): "
             f"{res.get('prior_training', 'n/a')}.", "",
             f"| method | RMSE | RMSE at K -> inf (the {res['samples']}-sample noise of a posterior mean removed) "
             "| Pearson r |", "|---|---|---|---|"]
    for name, m in res["methods"].items():
        r, ri, p = m["rmse"], m["rmse_k_inf"], m["pearson"]
        lines.append(f"| {name} | {r['mean']:.5f} +- {r['std']:.5f} ({r['median']:.5f}) | "
                     f"{ri['mean']:.5f} +- {ri['std']:.5f} | {p['mean']:.3f} +- {p['std']:.3f} ({p['median']:.3f}) |")
    t = res.get("tweedie", {})
    if "skipped" in t:
        lines += ["", f"Posterior mean by Tweedie: not measured ({t['skipped']})."]
    elif t:
        lines += ["", f"Posterior mean by Tweedie: y + noise_std^2 score(y, noise_std) of the KS map y of the shear, its "
                  f"masked pixels completed from the Gaussian posterior predictive, averaged over {t['draws']} "
                  f"completions (one score evaluation each; exact without a mask); seconds per map (completions, mean "
                  f"and std): "
                  + ", ".join(f"{k} {v:.3g}" for k, v in t["seconds_per_map"].items()) + "."]
        if "coverage" in t:
            lines += ["", f"Its uncertainty: the posterior variance by Tweedie's second-order formula per completion "
                      f"(sigma^2 (1 + sigma^2 diag of the score's Jacobian), the Gaussian part exact, the learned part by "
                      f"{t['probes']} Hutchinson probes) plus the spread of the completions' means; fraction of observed "
                      f"true pixels within mean +- 1.0 / 1.96 std, mean +- standard deviation over maps (nominal: the "
                      f"level):", "",
                      "| prior | 68% (nominal) | 95% (nominal) |", "|---|---|---|"]
            for name, c in t["coverage"].items():
                lines.append(f"| Tweedie, {name} | {c['0.68']['mean']:.3f} +- {c['0.68']['std']:.3f} (0.68) | "
                             f"{c['0.95']['mean']:.3f} +- {c['0.95']['std']:.3f} (0.95) |")
    lines += ["", f"Calibration ({res['samples']} samples per map): fraction of observed true pixels inside the central "
              "order-statistic interval of the samples chosen for 68% / 95%, mean +- standard deviation over maps, "
              "against that interval's exact coverage for a calibrated posterior at this K (nominal):", "",
              "| prior | 68% interval (nominal) | 95% interval (nominal) |", "|---|---|---|"]
    for name, c in res["coverage"].items():
        lines.append(f"| {name} | {c['0.68']['mean']:.3f} +- {c['0.68']['std']:.3f} ({c['0.68']['nominal']:.3f}) | "
                     f"{c['0.95']['mean']:.3f} +- {c['0.95']['std']:.3f} ({c['0.95']['nominal']:.3f}) |")
    if "sample_rms_over_map_std" in res:
        lines += ["", "Sample spread: rms of the samples about the training maps' mean over their pixel standard "
                  "deviation (about 1 for samples as wide as real maps; far above 1: the chains ran away): "
                  + ", ".join(f"{k} {v['mean']:.2f} +- {v['std']:.2f}" for k, v in res["sample_rms_over_map_std"].items())]
    t = res.get("prior_at_noise")
    if t and "skipped" in t:
        lines += ["", f"Prior at the data's noise: not measured ({t['skipped']})."]
    elif t:
        r = t["rmse"]
        lines += ["", f"Prior at the data's noise (the sampler left out): each true map plus white noise of "
                  f"{t['sigma']:.3g} per pixel, denoised by Tweedie's formula, the exact unmasked posterior mean of "
                  f"each prior; RMSE learned {r['learned prior']['mean']:.5f} +- {r['learned prior']['std']:.5f}, "
                  f"Gaussian (the unmasked Wiener filter) {r['Gaussian prior']['mean']:.5f} +- "
                  f"{r['Gaussian prior']['std']:.5f}; ratio {t['ratio']:.3f} [{t['ratio_lo']:.3f}, {t['ratio_hi']:.3f}] "
                  f"(95% over maps): {t['verdict']}. This is what a perfectly sampled posterior gains on unmasked data."]
    lines += ["", "Verdicts (paired per-map differences, 95% bootstrap intervals over maps):", ""]
    for v in res.get("verdicts", []):
        lines.append(f"- {v['method']} vs {v['reference']} on {v['metric']}: difference {v['diff']:.3g} "
                     f"[{v['lo']:.3g}, {v['hi']:.3g}] ({v['units']} maps): {v['verdict']}"
                     + (f"; ratio {v['ratio']:.3f} [{v['ratio_lo']:.3f}, {v['ratio_hi']:.3f}]" if "ratio" in v else ""))
    s = res["schedule"]
    lines += ["", f"Cost: {res['score_evaluations_per_sample']} score evaluations per sample ({s['levels']} levels x "
              f"{s['steps']} steps, sigma {s['sigma_max']:.3g} -> {s['sigma_min']:.3g}); seconds per sample: "
              + ", ".join(f"{k} {v:.3g}" for k, v in res["seconds_per_sample"].items()), ""]
    return "\n".join(lines)
