"""Train (or reuse) every method for every domain pair and training seed under one budget, evaluate
on the test split, and judge with intervals over galaxies (:mod:`skymorph.stats`).

Everything is validated before the first training: pairs against the store, methods, samplers and
every training option (each run's config is built first). A run is reused only when the hash of its
resolved config (the store's fingerprint included, other methods' options left out) matches
(``<run>.key`` beside the run folder); any changed option retrains, ``retrain`` forces it.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
from rich.console import Console

from .. import stats
from ..atomic import write_text
from ..data.dataset import check_pair
from ..data.store import MapStore
from ..errors import ConfigError, OutputExistsError
from ..methods import METHODS, make_method, method_class
from ..models import BACKBONES
from ..methods.base import check_request
from ..methods.config import TrainConfig
from ..methods.training import fill_from_data, train
from ..training.config import epoch_budget
from ..training.run import training_record
from ..provenance import provenance
from . import plots
from .metrics import CALIBRATION_NAMES, HIGHER_IS_BETTER, METRIC_NAMES, spread_error_curve, summarise
from .report import write_html, write_markdown
from .runner import Evaluation, evaluate_run

console = Console(stderr=True)

HEADLINE = ("mse_log", "pk_err_dex")  # what every network must beat the baseline on
VERSUS_UNET = ("pdf_w1", "pk_err_dex")  # do the stochastic methods keep the PDF and P(k) better than regression?
#: parameterisations of one diffusion model on the same network, judged against each other on both lists:
#: a method listed first is the challenger (edm becomes score_sde's default only if it wins here; corrdiff
#: against edm: what the regression mean adds to the same diffusion)
RIVALS = (("edm", "score_sde"), ("corrdiff", "edm"))
CELL_LEVEL = 0.68  # interval of every metric cell
VERDICT_LEVEL = 0.95  # interval of every paired difference


def parse_pairs(spec: str) -> list[tuple[list[str], str]]:
    """'gas:hi,gas:dm' or 'gas+temp:hi' -> [(['gas'], 'hi'), ...] (several sources joined by '+')."""
    pairs = []
    for item in spec.split(","):
        if item.count(":") != 1:
            raise ConfigError(f"--pairs {item!r}: expected source:target, e.g. gas:hi")
        src, tgt = item.split(":")
        pairs.append(([s for s in src.split("+") if s], tgt))
    return pairs


def pair_name(source: list[str], target: str) -> str:
    return f"{'+'.join(source)}-{target}"


def run_key(cfg: TrainConfig) -> str:
    """Hash of a config resolved by :func:`fill_from_data`: everything but the store's path, whose
    fingerprint (``store_fingerprint``) stands for it, and the options of other methods (so a method
    gaining an option leaves the finished runs of the others reusable)."""
    others = {k for m in METHODS.values() for k in m.option_defaults()} - set(method_class(cfg.method).option_defaults())
    blob = json.dumps(cfg.model_dump(mode="json", exclude={"data", *others}), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _trained(cfg: TrainConfig, run: Path, retrain: bool, progress: bool) -> tuple[Path, str]:
    """(run, what happened): reuse a finished run of the same key, resume an interrupted one, or train afresh."""
    key, key_file = run_key(fill_from_data(cfg)), run.with_name(run.name + ".key")
    same = not retrain and key_file.exists() and key_file.read_text().strip() == key
    if same and training_record(run)["finished"]:
        return run, "reused"
    if same and (run / "checkpoints" / "last.ckpt").exists():
        return train(cfg, run, resume=True, progress=progress), "resumed"
    if run.exists():
        shutil.rmtree(run)
    run.parent.mkdir(parents=True, exist_ok=True)
    write_text(key_file, key + "\n")
    return train(cfg, run, progress=progress), "trained"


def method_of(label: str) -> tuple[str, dict]:
    """A benchmark entry's method and the options it sets: 'score_sde' -> ('score_sde', {}), and
    'score_sde@dim' -> ('score_sde', {'backbone': 'dim'}), the method on another denoiser backbone."""
    name, at, backbone = label.partition("@")
    if not at:
        return name, {}
    if backbone not in BACKBONES:
        raise ConfigError(f"--methods {label!r}: unknown backbone {backbone!r}; expected one of {', '.join(BACKBONES)}")
    if "backbone" not in method_class(name).option_defaults():
        raise ConfigError(f"--methods {label!r}: {name!r} has no backbone option (the diffusion family has)")
    return name, {"backbone": backbone}


def check_methods(methods: list[str], samplers: list[str] | None) -> None:
    """Every method exists and every requested sampler fits at least one of them."""
    fitting = {s for m in methods for s in method_class(method_of(m)[0]).samplers}
    for s in samplers or []:
        if s not in fitting:
            raise ConfigError(f"--samplers: {s!r} fits none of the methods {', '.join(methods)} "
                              f"(they take: {', '.join(sorted(fitting))})")


def _point(ev: Evaluation) -> dict:
    return {"sampler": ev.info["sampler"], "steps": ev.info["steps"], "nfe": ev.info["nfe"], "views": ev.info["n_views"],
            "seconds_per_map": ev.info["seconds_per_map"],
            "metrics": {k: ev.summary[k]["median"] for k in METRIC_NAMES}}


def sweep(run: Path, data: Path, method: str, steps: list[int], samplers: list[str] | None, seed: int,
          first: Evaluation, views: int | None = None, device: str = "cpu", progress: bool = False) -> list[dict]:
    """Quality versus cost: medians of every metric for each fitting sampler and step count, over
    ``views`` evenly spaced test views (default all). A single-pass method gives one point, ``first``."""
    cls = method_class(method_of(method)[0])
    if cls.samplers == ("direct",) or not cls.trainable:
        return [_point(first)]
    points = []
    for sampler in [s for s in cls.samplers if not samplers or s in samplers]:
        for n in steps:
            ev = evaluate_run(run, data, "test", steps=n, seed=seed, sampler=sampler, views=views, device=device,
                              progress=progress)
            points.append(_point(ev))
            console.print(f"    {method} {sampler} {n} steps: NFE {ev.info['nfe']}, {ev.info['seconds_per_map']:.3g} s/map, "
                          f"pk_err_dex {ev.summary['pk_err_dex']['median']:.3g}, mse_log {ev.summary['mse_log']['median']:.3g}")
    return points


def sweep_curves(methods: dict) -> dict[str, list[dict]]:
    """Sweep points of one pair grouped by method:sampler (single-pass methods: by method)."""
    out: dict[str, list[dict]] = {}
    for m, res in methods.items():
        for p in res.get("sweep", []):
            out.setdefault(m if p["sampler"] == "direct" else f"{m}:{p['sampler']}", []).append(p)
    return out


def _per_view(evs: list[Evaluation], names) -> dict[str, np.ndarray]:
    """{metric: (seeds, views)} of the per-view values of each seed's evaluation."""
    return {k: np.array([[r[k] for r in ev.rows] for ev in evs], dtype=np.float64) for k in names}


def cells(per_view: dict[str, np.ndarray], galaxy: np.ndarray, seed: int) -> dict[str, dict]:
    """Per metric: the median over views of the seed-mean values with its 68% interval from a bootstrap
    over galaxies (``lo``, ``hi``), the spread over views (p16, p84), and with several seeds the
    standard deviation of the per-seed medians (``seed_sd``)."""
    out = {}
    for k, v in per_view.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a view NaN in every seed (e.g. SSIM of a flat map)
            mean = np.nanmean(v, axis=0)
            seed_medians = np.nanmedian(v, axis=1)
        iv = stats.bootstrap_interval(mean, galaxy, CELL_LEVEL, seed=seed)
        spread = summarise([{k: x} for x in mean])[k]
        out[k] = {**spread, "median": iv["value"], "lo": iv["lo"], "hi": iv["hi"], "galaxies": iv["units"],
                  "seeds": int(len(v)), "seed_sd": float(np.std(seed_medians, ddof=1)) if len(v) > 1 else float("nan")}
    return out


def verdicts(per_view: dict[str, dict[str, np.ndarray]], galaxy: np.ndarray, stochastic: dict[str, bool],
             seed: int) -> list[dict]:
    """Paired per-galaxy verdicts: every other method against the baseline on :data:`HEADLINE`, every
    stochastic method against unet on :data:`VERSUS_UNET`, a method on another backbone
    (``score_sde@dim``) against the same method on its default one on :data:`HEADLINE`, and each pair
    of :data:`RIVALS` (edm against score_sde, corrdiff against edm) on both lists."""
    out = []
    pairs = [("baseline", HEADLINE, lambda m: True), ("unet", VERSUS_UNET, lambda m: stochastic[m])]
    pairs += [(m.partition("@")[0], HEADLINE, lambda x, m=m: x == m) for m in per_view if "@" in m]
    both = tuple(dict.fromkeys(HEADLINE + VERSUS_UNET))
    pairs += [(ref, both, lambda x, c=challenger: x == c) for challenger, ref in RIVALS]
    for ref, names, who in pairs:
        if ref not in per_view:
            continue
        for m in per_view:
            if m == ref or not who(m):
                continue
            for k in names:
                v = stats.paired_verdict(per_view[m][k], per_view[ref][k], galaxy, k in HIGHER_IS_BETTER,
                                         VERDICT_LEVEL, seed=seed)
                out.append({"method": m, "reference": ref, "metric": k, **v})
    return out


def _calibration(evs: list[Evaluation], seed: int) -> dict:
    """Calibration cells over the seeds' evaluations with K samples, the nominal values at that K and
    the rank histogram summed over seeds."""
    first = evs[0].info
    counts = np.sum([ev.info["calibration"]["rank"]["counts"] for ev in evs], axis=0)
    chi2, p = stats.rank_uniformity(counts)
    return {"info": {k: first[k] for k in ("n_samples", "sampler", "steps", "nfe", "seconds_per_map")},
            "nominal": first["calibration"]["nominal"],
            "metrics": cells(_per_view(evs, CALIBRATION_NAMES), evs[0].galaxy, seed),
            "rank": {"counts": counts.tolist(), "chi2": chi2, "p_value": p}}


def steps_within(cfg: TrainConfig, max_nfe: int | None) -> int | None:
    """Sampler steps of a stochastic run's evaluation: None (the method's default) without a cap; with
    ``max_nfe``, the most steps, up to the default, whose network calls per sample stay within it."""
    if max_nfe is None or not method_class(cfg.method).stochastic:
        return None
    method = make_method(cfg.method, len(cfg.source), 1, **cfg.method_options())
    fits = [n for n in range(1, method.default_steps + 1) if method.nfe(n) <= max_nfe]
    if not fits:
        raise ConfigError(f"--max-nfe {max_nfe}: {cfg.method} ({method.sampler}) needs {method.nfe(1)} network calls "
                          f"for a single step")
    return fits[-1]


def validate(data: Path, pairs, methods: list[str], max_minutes, max_epochs, options, seed: int, seeds: int,
             steps, samplers, n_samples: int, max_nfe: int | None = None
             ) -> tuple[dict[tuple[str, str, int], TrainConfig], str]:
    """Every input checked before any work: the config of every run, keyed by (pair, method, seed), and
    the store's fingerprint."""
    if max_nfe is not None and max_nfe < 1:
        raise ConfigError(f"--max-nfe must be a positive integer, got {max_nfe}")
    check_methods(methods, samplers)
    if steps is not None and (not steps or min(steps) < 1):
        raise ConfigError(f"--steps must be positive integers, got {steps}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be a positive integer, got {seeds}")
    check_request(None, n_samples)
    with MapStore(data) as store:
        for source, target in pairs:
            check_pair(store, source, target)
        fingerprint = store.fingerprint
    cfgs = {}
    for source, target in pairs:
        for method in methods:
            for s in range(seeds):
                name, variant = method_of(method)
                given = {k: v for k, v in (options or {}).items()  # the U-Net's width is not DiM's
                         if not (variant.get("backbone") == "dim" and k in ("base_channels", "depth"))}
                raw = {"method": name, "data": data, "source": source, "target": target, "max_minutes": max_minutes,
                       "max_epochs": max_epochs, **given, **variant, "seed": seed + s}
                cfgs[pair_name(source, target), method, s] = TrainConfig.build(raw, "benchmark options")
            steps_within(cfgs[pair_name(source, target), method, 0], max_nfe)
    return cfgs, fingerprint


def run_benchmark(data: Path, pairs: list[tuple[list[str], str]], methods: list[str], out: Path,
                  max_minutes: float | None, max_epochs: int | None = None, options: dict | None = None, seed: int = 0,
                  progress: bool = True, steps: list[int] | None = None, samplers: list[str] | None = None,
                  n_samples: int = 1, sweep_views: int | None = None, seeds: int = 1, retrain: bool = False,
                  overwrite: bool = False, device: str = "cpu", max_nfe: int | None = None) -> dict:
    """Benchmark ``methods`` on ``pairs``; writes results.json, results.md, report.html and figures/ into ``out``.

    Returns ``{"provenance": ..., "pairs": {name: {"methods": {method: {"info", "metrics", "per_view",
    ["sweep"], ["calibration"]}}, "verdicts": [...]}}}``: metric cells with 68% intervals over test
    galaxies; training seeds ``seed, seed + 1, ...`` (``seeds`` of them) per method and pair; verdicts on
    the paired per-galaxy differences at 95%; the sweep over samplers and ``steps`` (first seed); the
    calibration with ``n_samples`` samples (stochastic methods). The main evaluation and the
    calibration run at each method's default sampler steps or, with ``max_nfe``, at the most steps
    within that many network calls per sample.
    """
    out = Path(out)
    if (out / "results.json").exists() and not overwrite:
        raise OutputExistsError(f"{out}/results.json: output exists (use --overwrite to replace it; "
                                f"finished runs in {out}/runs are reused)")
    cfgs, fingerprint = validate(data, pairs, methods, max_minutes, max_epochs, options, seed, seeds, steps, samplers,
                                 n_samples, max_nfe)
    budget = f"{max_minutes:g} min" if max_minutes else f"{epoch_budget(max_epochs, None)} epochs"
    out.mkdir(parents=True, exist_ok=True)
    pairs_out: dict[str, dict] = {}
    figures: dict[str, list[Path]] = {}
    for source, target in pairs:
        name = pair_name(source, target)
        label = f"{'+'.join(source)} -> {target}"
        evs: dict[str, list[Evaluation]] = {}
        per_view: dict[str, dict[str, np.ndarray]] = {}
        res: dict[str, dict] = {}
        spreads, ranks = {}, {}
        for method in methods:
            runs = []
            for s in range(seeds):
                console.print(f"[bold]{name}[/bold] {method} seed {seed + s}: training or reusing (budget {budget}) ...")
                run, what = _trained(cfgs[name, method, s], out / "runs" / name / method / f"seed_{seed + s}",
                                     retrain, progress)
                console.print(f"  {what} {run}")
                runs.append(run)
            n_steps = steps_within(cfgs[name, method, 0], max_nfe)
            evs[method] = [evaluate_run(r, data, "test", steps=n_steps, seed=seed, device=device, progress=progress)
                           for r in runs]
            per_view[method] = _per_view(evs[method], METRIC_NAMES)
            first = evs[method][0]
            res[method] = {"info": {**first.info, "runs": [str(r) for r in runs], "seeds": list(range(seed, seed + seeds)),
                                    "train_minutes": float(np.mean([e.info["train_minutes"] for e in evs[method]]))},
                           "metrics": cells(per_view[method], first.galaxy, seed),
                           "per_view": {"index": first.index.tolist(), "galaxy_id": first.galaxy.tolist(),
                                        **{k: v.tolist() for k, v in per_view[method].items()}}}
            med = res[method]["metrics"]
            console.print(f"  {method}: test mse_log {med['mse_log']['median']:.3g}, pk_err_dex "
                          f"{med['pk_err_dex']['median']:.3g}, ssim {med['ssim']['median']:.3g}")
            if steps:
                res[method]["sweep"] = sweep(runs[0], data, method, steps, samplers, seed, first, sweep_views, device,
                                             progress)
            if n_samples > 1 and method_class(method_of(method)[0]).stochastic:
                cal = [evaluate_run(r, data, "test", steps=n_steps, seed=seed, n_samples=n_samples, device=device,
                                    progress=progress) for r in runs]
                res[method]["calibration"] = _calibration(cal, seed)
                spreads[method] = (*spread_error_curve(cal[0].samples, cal[0].truth, cal[0].info["eps"])[:2], n_samples)
                ranks[method] = res[method]["calibration"]["rank"]
        galaxy = next(iter(evs.values()))[0].galaxy
        pairs_out[name] = {"methods": res, "verdicts": verdicts(per_view, galaxy,
                                                                {m: method_class(method_of(m)[0]).stochastic for m in methods},
                                                                seed)}
        figures[name] = _figures(out / "figures", name, label, source, target, {m: e[0] for m, e in evs.items()},
                                 pairs_out[name]["methods"], spreads, ranks)
    results = {"provenance": provenance(data=str(Path(data).resolve()), store_fingerprint=fingerprint,
                                        pairs=[pair_name(s, t) for s, t in pairs], methods=methods,
                                        max_minutes=max_minutes, max_epochs=max_epochs, options=options or {},
                                        seed=seed, seeds=seeds, samples=n_samples, steps=steps, samplers=samplers,
                                        sweep_views=sweep_views, max_nfe=max_nfe),
               "pairs": pairs_out}
    write_text(out / "results.json", json.dumps(results, indent=1, default=float))
    write_markdown(results, out / "results.md")
    write_html(results, figures, out / "report.html")
    return results


def _figures(fig_dir: Path, name: str, label: str, source, target, first: dict[str, Evaluation], methods: dict,
             spreads: dict, ranks: dict) -> list[Path]:
    """Examples, spectra, profiles and PDFs of the first seed; quality versus cost; spread versus error
    and rank histograms of the stochastic methods."""
    fig_dir.mkdir(exist_ok=True)
    ev = next(iter(first.values()))
    preds = {m: e.pred for m, e in first.items()}
    unit = ev.cfg.units[target]
    figs = [plots.examples(fig_dir / f"{name}_examples.png", ev.source[:, 0], ev.truth, preds, (source[0], target),
                           (ev.cfg.units[source[0]], unit), ev.info["eps"]),
            plots.spectra(fig_dir / f"{name}_spectra.png", ev.truth, preds, label, unit),
            plots.profiles_and_pdfs(fig_dir / f"{name}_profiles_pdf.png", ev.truth, preds, ev.info["eps"], unit, label)]
    curves = sweep_curves(methods)
    if any(len(c) > 1 for c in curves.values()):
        figs.append(plots.quality_vs_cost(fig_dir / f"{name}_quality_vs_cost.png", curves, label))
    if spreads:
        figs.append(plots.spread_error(fig_dir / f"{name}_spread_error.png", spreads, label))
        figs.append(plots.rank_histograms(fig_dir / f"{name}_rank_histogram.png", ranks, label))
    return figs
