"""Train (or reuse) every method for every domain pair under one budget, evaluate, and report."""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from ..errors import ConfigError
from ..methods.config import TrainConfig
from ..methods.training import CONFIG_NAME, TRAIN_SECONDS, fill_from_data, train
from . import plots
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


def run_benchmark(data: Path, pairs: list[tuple[list[str], str]], methods: list[str], out: Path,
                  max_minutes: float | None, max_epochs: int = 1000, options: dict | None = None, seed: int = 0,
                  progress: bool = True) -> dict:
    """results[pair][method] = {'info': ..., 'metrics': {metric: {mean, median, p16, p84, n}}}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    figures: dict[str, list[Path]] = {}
    for source, target in pairs:
        name = pair_name(source, target)
        evs = {}
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
        results[name] = {m: {"info": e.info, "metrics": e.summary} for m, e in evs.items()}
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
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    write_markdown(results, out / "results.md")
    write_html(results, figures, out / "report.html", data)
    return results
