"""Classification of simulations from images: classify train / evaluate."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import Overwrite, ProgressBar, Split, classify_app, friendly


@classify_app.command("train")
@friendly
def classify_train(data: Optional[Path] = typer.Option(None, help="map store with class labels (grid slices)"),
                   out: Path = typer.Option(..., help="run folder"),
                   input: str = typer.Option("rho", help="fields fed to the network, comma-separated"),
                   flatten_spectrum: bool = typer.Option(False, help="train on phase-only images (Fourier "
                                                                     "amplitudes flattened)"),
                   max_epochs: Optional[int] = typer.Option(None, help="epoch limit (default 30, or 1000 with "
                                                                       "--max-minutes)"),
                   max_minutes: Optional[float] = typer.Option(None, help="wall-clock budget, minutes"),
                   patience: int = typer.Option(5, help="early stopping: epochs without a better val loss"),
                   batch_size: int = typer.Option(32, help="images per batch"),
                   lr: float = typer.Option(1e-3, help="AdamW learning rate"),
                   seed: int = typer.Option(0, help="training seed"),
                   resume: bool = typer.Option(False, help="continue an interrupted run in OUT"),
                   overwrite: Overwrite = False,
                   progress: ProgressBar = True):
    """Train the CNN classifier (4 strided conv blocks, batch norm, dropout, linear head)."""
    from ..classify.train import train_classifier
    from ..training.run import summary_line, training_record

    opts = {} if resume else {"flatten_spectrum": flatten_spectrum, "max_epochs": max_epochs,
                              "max_minutes": max_minutes, "patience": patience, "batch_size": batch_size,
                              "lr": lr, "seed": seed}
    if data is None and not resume:
        raise typer.BadParameter("--data is needed (or --resume)")
    run = train_classifier(data, out, [f for f in input.split(",") if f], resume, overwrite, progress, **opts)
    typer.echo(f"trained {run}: {summary_line(training_record(run))}")


@classify_app.command("evaluate")
@friendly
def classify_evaluate(runs: list[Path] = typer.Argument(..., help="classify runs (several training seeds "
                                                                  "are reported side by side)"),
                      data: Optional[Path] = typer.Option(None, help="map store (default: the first run's)"),
                      split: Split = typer.Option("test", help="split to judge"),
                      out: Path = typer.Option(..., help="output stem: OUT.json, OUT.md, OUT.png"),
                      overwrite: Overwrite = False):
    """Accuracy, per-class precision and recall with bootstrap intervals, confusion matrix."""
    from ..classify.evaluate import evaluate_runs

    res = evaluate_runs(runs, data, split, out, overwrite)
    acc = res["runs"][0]["accuracy"]
    typer.echo(f"wrote {out}.json/.md/.png: accuracy {acc['value']:.3f} [{acc['lo']:.3f}, {acc['hi']:.3f}] over "
               f"{res['units']} units ({res['images']} images); mean over {len(runs)} run(s) "
               f"{res['mean_accuracy']:.3f}")


@classify_app.command("explain")
@friendly
def classify_explain(run: Path = typer.Argument(..., help="classify run"),
                     data: Optional[Path] = typer.Option(None, help="map store (default: the run's)"),
                     index: int = typer.Option(0, help="image of the split to explain"),
                     split: Split = typer.Option("test", help="split the image comes from"),
                     out: Path = typer.Option(..., help="output stem: OUT.png, OUT.json"),
                     overwrite: Overwrite = False):
    """Saliency and integrated gradients of every class for one image (captum)."""
    from ..classify.explain import explain_image

    res = explain_image(run, data, index, split, out, overwrite)
    gaps = max(abs(c["completeness_gap"]) for c in res["classes"].values())
    typer.echo(f"wrote {out}.png/.json: true {res['true']}, predicted {res['predicted']}; largest integrated-"
               f"gradients completeness gap {gaps:.2e}")


@classify_app.command("probe")
@friendly
def classify_probe(run: Path = typer.Argument(..., help="classify run"),
                   probe: str = typer.Option(..., help="blur (Gaussian sigma, px) or phase (flattened Fourier "
                                                       "amplitudes, 1 = phase-only)"),
                   levels: Optional[str] = typer.Option(None, help="comma-separated levels (default blur 0,1,2,4,8;"
                                                                  " phase 0,0.25,0.5,0.75,1)"),
                   data: Optional[Path] = typer.Option(None, help="map store (default: the run's)"),
                   split: Split = typer.Option("test", help="split to judge"),
                   out: Path = typer.Option(..., help="output stem: OUT.json, OUT.md, OUT.png"),
                   overwrite: Overwrite = False):
    """Accuracy as the input is smoothed or its spectrum flattened."""
    from ..classify.explain import probe_classifier
    from ..errors import SkymorphError

    try:
        lv = None if levels is None else [float(v) for v in levels.split(",")]
    except ValueError:
        raise SkymorphError(f"--levels {levels!r}: expected comma-separated numbers") from None
    res = probe_classifier(run, probe, data, lv, split, out, overwrite)
    curve = ", ".join(f"{r['level']:g}: {r['accuracy']['value']:.2f}" for r in res["levels"])
    typer.echo(f"wrote {out}.json/.md/.png: accuracy by {res['level_name']} {curve}")
