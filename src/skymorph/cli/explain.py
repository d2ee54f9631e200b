"""What a run looks at and relies on: explain, probe."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from .common import (Overwrite, ProgressBar, Reverse, RunDevice, SamplerSteps, Split,
                     app, friendly, number_list)


@app.command("explain")
@friendly
def explain_cmd(run: Path = typer.Argument(..., help="trained run folder"),
                data: Path = typer.Option(..., help="map store (.h5)"),
                out: Path = typer.Option(..., help="folder for the figure (.png) and the raw attributions (.npz)"),
                position: int = typer.Option(0, min=0, help="view: its position in the split's sorted view list "
                                                            "(not a store index)"),
                split: Split = typer.Option("test", help="split the view is taken from"),
                what: Literal["discriminator", "generator"] = typer.Option(
                    "discriminator", help="discriminator (realness score) or generator (mean of a region of its output)"),
                attribution: Literal["shap", "saliency", "integrated_gradients"] = typer.Option(
                    "shap", help="attribution method"),
                region: Optional[str] = typer.Option(None, help="generator region y0:y1,x0:x1 in pixels "
                                                                 "(default: the central quarter-width square)"),
                feed: str = typer.Option("dm,star", help="other domains fed to the discriminators"),
                background: int = typer.Option(32, help="shap: background maps from the training split"),
                nsamples: int = typer.Option(512, help="shap: expected-gradient samples per map"),
                n_steps: int = typer.Option(64, help="integrated gradients: integration points"),
                seed: int = typer.Option(0, help="random seed"),
                reverse: Reverse = False,
                device: RunDevice = "auto",
                overwrite: Overwrite = False,
                progress: ProgressBar = True):
    """What a run looks at: SHAP / saliency / integrated gradients over one view's input maps."""
    from ..explain import explain_run, write_explanation

    exp = explain_run(run, data, position, what, attribution, split, region, tuple(d.strip() for d in feed.split(",") if d.strip()),
                      background, nsamples, n_steps, seed, reverse, device, progress)
    png, npz = write_explanation(exp, out, overwrite)
    scores = exp.scores()
    for i, case in enumerate(exp.cases):
        line = f"{case.side} {case.label}: output {scores['output'][i]:.4g}"
        if attribution != "saliency":
            line += (f", reference {scores['reference'][i]:.4g}, sum of attributions - (output - reference) = "
                     f"{scores['gap'][i]:.2g}" + (f" +- {scores['stderr'][i]:.2g} (MC)" if attribution == "shap" else ""))
        typer.echo(line)
    typer.echo(f"wrote {png} and {npz}")


@app.command("probe")
@friendly
def probe_cmd(run: Path = typer.Argument(..., help="trained run folder"),
              data: Path = typer.Option(..., help="map store (.h5)"),
              probe: Literal["blur", "phase", "noise"] = typer.Option(..., help="what is done to the input"),
              out: Path = typer.Option(..., help="folder for probe_<name>.json/.md/.png"),
              split: Split = typer.Option("test", help="split to probe"),
              levels: Optional[str] = typer.Option(None, help="comma-separated probe levels (default per probe)"),
              steps: SamplerSteps = None,
              samples: int = typer.Option(1, min=1, help="samples per input"),
              seed: int = typer.Option(0, help="random seed (noise probe and samplers)"),
              reverse: Reverse = False,
              device: RunDevice = "auto",
              overwrite: Overwrite = False,
              progress: ProgressBar = True):
    """Metrics as the input is blurred, reduced to its Fourier phases or made noisy."""
    from ..explain import probe_run, write_probe

    values = number_list(levels, "--levels", float) if levels else None
    res = probe_run(run, data, probe, split, values, seed, steps, samples, reverse, device, progress)
    paths = write_probe(res, out, overwrite)
    for level, s in zip(res.levels, res.summaries):
        typer.echo(f"{res.parameter} {level:g}: " + ", ".join(f"{k} {s[k]['median']:.3g}"
                                                              for k in ("mse_log", "ssim", "pk_err_dex", "rk")))
    typer.echo(f"wrote {', '.join(str(p) for p in paths)}")
