"""Train (or reuse) every method for every domain pair under one budget, evaluate, and report."""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from ..errors import ConfigError
from ..methods import method_class
from ..methods.base import check_request
from ..methods.config import TrainConfig
from ..methods.training import CONFIG_NAME, TRAIN_SECONDS, fill_from_data, train
from . import plots
from .metrics import CALIBRATION_NAMES, METRIC_NAMES, spread_error_curve
from .report import write_markdown, write_html
from .runner import evaluate_run

console = Console(stderr=True)


def parse_pairs(spec: str) -> list[tuple[list[str], str]]:
    """'gas:hi,gas:dm' or 'gas+temp:hi' -> [(['gas'], 'hi'), ...] (several sources joined by '+')."""
    pairs = []
    for item in spec.split(","):
        if item.count(":") != 1:
            raise ConfigError(f"pair {item!r}: expected source:target, e.g. gas:hi")
        src, tgt = item.split(":")
        pairs.append(([s for s in src.split("+") if s], tgt))
    return pairs


def pair_name(source: list[str], target: str) -> str:
    return f"{'+'.join(source)}-{target}"


def _trained(cfg: TrainConfig, run: Path, progress: bool) -> Path:
    """Reuse a finished run of the same data, resume an interrupted one, or train afresh."""
    if (run / CONFIG_NAME).exists():
        saved = TrainConfig.load(run / CONFIG_NAME)
        if (saved.method, saved.source, saved.target) != (cfg.method, cfg.source, cfg.target):
            raise ConfigError(f"{run}: holds a {saved.method} run for {saved.source}->{saved.target}, "
                              f"not {cfg.method} for {cfg.source}->{cfg.target}")
        current = fill_from_data(cfg)
        same_data = (saved.norms, saved.npix) == (current.norms, current.npix)
        if same_data and (run / TRAIN_SECONDS).exists():
            return run
        if same_data and (run / "checkpoints" / "last.ckpt").exists():
            return train(cfg, run, resume=True, progress=progress)
    return train(cfg, run, overwrite=True, progress=progress)


def check_methods(methods: list[str], samplers: list[str] | None) -> None:
    """Every method exists and every requested sampler fits at least one of them."""
    fitting = {s for m in methods for s in method_class(m).samplers}
    for s in samplers or []:
        if s not in fitting:
            raise ConfigError(f"sampler {s!r} fits none of the methods {', '.join(methods)} "
                              f"(they take: {', '.join(sorted(fitting))})")


def _point(ev) -> dict:
    return {"sampler": ev.info["sampler"], "steps": ev.info["steps"], "nfe": ev.info["nfe"], "views": ev.info["n_views"],
            "seconds_per_map": ev.info["seconds_per_map"],
            "metrics": {k: ev.summary[k]["median"] for k in METRIC_NAMES}}


def sweep(run: Path, data: Path, method: str, steps: list[int], samplers: list[str] | None, seed: int,
          first, views: int | None = None) -> list[dict]:
    """Quality versus cost: medians of every metric for each fitting sampler and step count, over
    ``views`` evenly spaced test views (default all).

    A single-pass method (one sampler, one step) gives one point, its evaluation ``first``.
    """
    cls = method_class(method)
    if cls.samplers == ("direct",) or not cls.trainable:
        return [_point(first)]
    points = []
    for sampler in [s for s in cls.samplers if not samplers or s in samplers]:
        for n in steps:
            ev = evaluate_run(run, data, "test", steps=n, seed=seed, sampler=sampler, views=views)
            points.append(_point(ev))
            console.print(f"    {method} {sampler} {n} steps: NFE {ev.info['nfe']}, "
                          f"{ev.info['seconds_per_map']:.3g} s/map, pk_rel_err {ev.summary['pk_rel_err']['median']:.3g}, "
                          f"mse_log {ev.summary['mse_log']['median']:.3g}")
    return points


def sweep_curves(pair: dict) -> dict[str, list[dict]]:
    """Sweep points of one pair grouped by method:sampler (single-pass methods: by method)."""
    out: dict[str, list[dict]] = {}
    for m, res in pair.items():
        for p in res.get("sweep", []):
            out.setdefault(m if p["sampler"] == "direct" else f"{m}:{p['sampler']}", []).append(p)
    return out


def run_benchmark(data: Path, pairs: list[tuple[list[str], str]], methods: list[str], out: Path,
                  max_minutes: float | None, max_epochs: int = 1000, options: dict | None = None, seed: int = 0,
                  progress: bool = True, steps: list[int] | None = None, samplers: list[str] | None = None,
                  n_samples: int = 1, sweep_views: int | None = None) -> dict:
    """results[pair][method] = {'info': ..., 'metrics': {metric: {mean, median, p16, p84, n}}}, plus
    'sweep' (quality versus cost, with ``steps``) and 'calibration' (stochastic methods, ``n_samples`` > 1)."""
    check_methods(methods, samplers)
    if steps is not None and (not steps or min(steps) < 1):
        raise ConfigError(f"--steps must be positive integers, got {steps}")
    check_request(None, n_samples)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    figures: dict[str, list[Path]] = {}
    for source, target in pairs:
        name = pair_name(source, target)
        evs, extra, spreads = {}, {}, {}
        for method in methods:
            cfg = TrainConfig.build({"method": method, "data": data, "source": source, "target": target,
                                     "max_minutes": max_minutes, "max_epochs": max_epochs, "seed": seed,
                                     **(options or {})})
            budget = f"{max_minutes:g} min" if max_minutes else f"{max_epochs} epochs"
            console.print(f"[bold]{name}[/bold] {method}: training or reusing (budget {budget}) ...")
            run = _trained(cfg, out / "runs" / name / method, progress)
            evs[method] = evaluate_run(run, data, "test", seed=seed)
            med = evs[method].summary
            console.print(f"  {method}: test mse_log {med['mse_log']['median']:.3g}, "
                          f"pk_rel_err {med['pk_rel_err']['median']:.3g}, ssim {med['ssim']['median']:.3g}")
            extra[method] = {}
            if steps:
                extra[method]["sweep"] = sweep(run, data, method, steps, samplers, seed, evs[method], sweep_views)
            if n_samples > 1 and method_class(method).stochastic:
                cal = evaluate_run(run, data, "test", seed=seed, n_samples=n_samples)
                extra[method]["calibration"] = {"info": cal.info,
                                                "metrics": {k: cal.summary[k] for k in CALIBRATION_NAMES}}
                spreads[method] = (*spread_error_curve(cal.samples, cal.truth, cal.info["eps"])[:2], n_samples)
        results[name] = {m: {"info": e.info, "metrics": e.summary, **extra[m]} for m, e in evs.items()}
        first = next(iter(evs.values()))
        preds = {m: e.pred for m, e in evs.items()}
        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        unit = first.cfg.units[target]
        figures[name] = [
            plots.examples(fig_dir / f"{name}_examples.png", first.source[:, 0], first.truth, preds,
                           (source[0], target), (first.cfg.units[source[0]], unit), first.info["eps"]),
            plots.spectra(fig_dir / f"{name}_spectra.png", first.truth, preds, f"{'+'.join(source)} -> {target}"),
            plots.profiles_and_pdfs(fig_dir / f"{name}_profiles_pdf.png", first.truth, preds, first.info["eps"], unit,
                                    f"{'+'.join(source)} -> {target}"),
        ]
        curves = sweep_curves(results[name])
        if any(len(c) > 1 for c in curves.values()):
            figures[name].append(plots.quality_vs_cost(fig_dir / f"{name}_quality_vs_cost.png", curves,
                                                       f"{'+'.join(source)} -> {target}"))
        if spreads:
            figures[name].append(plots.spread_error(fig_dir / f"{name}_spread_error.png", spreads,
                                                    f"{'+'.join(source)} -> {target}"))
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    write_markdown(results, out / "results.md")
    write_html(results, figures, out / "report.html", data)
    return results
