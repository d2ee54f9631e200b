"""Simulation-based inference: infer grf / train / posterior / validate / compare."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from .common import Overwrite, ProgressBar, app, friendly

HeldOutSamples = Annotated[int, typer.Option(help="posterior samples per held-out map")]
MapsLimit = Annotated[Optional[int], typer.Option(help="use only the first N held-out maps (a map store: galaxies)")]
Seed = Annotated[int, typer.Option(help="random seed")]

infer_app = typer.Typer(help="Simulation-based inference of parameters from maps (sbi, learned summaries, "
                             "calibrated posteriors).", no_args_is_help=True)
app.add_typer(infer_app, name="infer")


def _names(text: str, option: str) -> list[str]:
    from ..errors import ConfigError

    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ConfigError(f"{option} {text!r}: expected comma-separated names")
    return names


@infer_app.command("grf")
@friendly
def infer_grf(out: Path = typer.Option(..., help="output file (.h5): /field and /params/{A,n}"),
              n_maps: int = typer.Option(1000, help="number of fields"),
              npix: int = typer.Option(32, help="pixels per side"),
              prior: str = typer.Option("A=0.5:2,n=-3:-1", help="uniform box of P(k) = A (k/k0)^n, name=lo:hi"),
              seed: Seed = 0,
              overwrite: Overwrite = False):
    """Gaussian random fields with a power-law spectrum: the simulator whose exact posterior is known."""
    from ..atomic import check_output
    from ..errors import ConfigError
    from ..infer.data import parse_prior
    from ..infer.grf import PARAMS, write_grf_file

    box = parse_prior(prior, list(PARAMS))
    if set(box) != set(PARAMS) or box["A"][0] <= 0:
        raise ConfigError(f"--prior {prior!r}: give both A (positive) and n, e.g. A=0.5:2,n=-3:-1")
    if n_maps < 1 or npix < 8:
        raise ConfigError(f"--n-maps {n_maps} / --npix {npix}: need at least one map of 8 pixels or more")
    typer.echo(f"wrote {write_grf_file(check_output(out, overwrite), n_maps, npix, box, seed)}")


@infer_app.command("train")
@friendly
def infer_train(data: Path = typer.Option(..., help="simulations: a map file with /params, or a map store"),
                params: str = typer.Option(..., help="parameters to infer, comma-separated (e.g. Omega_m,sigma8)"),
                out: Path = typer.Option(..., help="run folder"),
                maps: Optional[str] = typer.Option(None, help="map dataset of a plain file (default kappa)"),
                domains: Optional[str] = typer.Option(None, help="map store: domains, one channel each (e.g. gas,hi)"),
                prior: Optional[str] = typer.Option(None, help="uniform prior box name=lo:hi,... (default: the "
                                                               "range found in the file)"),
                summary: Literal["pk", "cnn", "cnn+pk"] = typer.Option(
                    "pk", help="binned power spectrum, a CNN trained by VMIM, or a CNN that also takes the "
                               "map's power spectrum (--pk-bins, --peaks)"),
                estimator: Literal["npe", "nle", "gaussian"] = typer.Option(
                    "npe", help="sbi neural posterior estimation, sbi neural likelihood estimation sampled by "
                                "emcee, or a Gaussian likelihood sampled by emcee"),
                density: Literal["maf", "nsf"] = typer.Option("nsf", help="NPE / NLE flow (a single maf was "
                                                                          "over-confident on GRFs, nsf calibrated)"),
                ensemble: int = typer.Option(1, help="NPE / NLE flows trained and mixed (NLE: their mean likelihood)"),
                noise: Literal["none", "shape"] = typer.Option("none", help="shape: the file's shape noise and mask "
                                                                            "applied afresh"),
                noise_copies: int = typer.Option(1, help="noise realisations per map for the density estimator"),
                pk_bins: int = typer.Option(16, help="log-spaced power-spectrum bins"),
                peaks: int = typer.Option(0, help="peak-count height bins added to the pk summary (0: none)"),
                features: Optional[int] = typer.Option(None, help="cnn summaries per map (default: one per "
                                                                  "parameter)"),
                max_epochs: Optional[int] = typer.Option(None, help="cnn epochs (default 30; with --max-minutes a "
                                                                    "cap of 1000)"),
                max_minutes: Optional[float] = typer.Option(None, help="cnn wall-clock budget in minutes"),
                batch_size: int = typer.Option(64, help="cnn maps per batch"),
                seed: Seed = 0,
                resume: bool = typer.Option(False, help="continue an interrupted run in OUT"),
                overwrite: Overwrite = False,
                progress: ProgressBar = True):
    """Train an amortised posterior p(params | map) on simulations."""
    from ..infer.data import parse_prior
    from ..infer.run import InferConfig, train_inference

    names = _names(params, "--params")
    raw = {"data": data, "params": names, "maps": maps, "domains": _names(domains, "--domains") if domains else [],
           "prior": parse_prior(prior, names), "summary": summary, "estimator": estimator, "density": density,
           "ensemble": ensemble, "noise": noise, "noise_copies": noise_copies, "pk_bins": pk_bins, "peaks": peaks,
           "features": features, "max_epochs": max_epochs, "max_minutes": max_minutes, "batch_size": batch_size,
           "seed": seed}
    run = train_inference(InferConfig.validated(raw), out, overwrite, progress, resume)
    typer.echo(f"trained {run}")


@infer_app.command("posterior")
@friendly
def infer_posterior(run: Path = typer.Argument(..., help="run folder of 'skymorph infer train'"),
                    obs: Path = typer.Option(..., help="file holding the observed map"),
                    index: int = typer.Option(0, help="map (or map-store view) index in --obs"),
                    samples: int = typer.Option(10_000, help="posterior samples"),
                    out: Path = typer.Option(..., help="output folder: samples.h5, posterior.md/.json, corner.png"),
                    seed: Seed = 0,
                    allow_outside_prior: bool = typer.Option(False, help="sample even when the observation lies "
                                                                         "outside the training range"),
                    overwrite: Overwrite = False):
    """Posterior samples, table and corner plot for one observed map."""
    from ..infer.posterior import posterior

    res = posterior(run, obs, index, samples, out, seed, overwrite, allow_outside_prior)
    for row in res["table"]:
        truth = f" (truth {row['truth']:.4g})" if "truth" in row else ""
        typer.echo(f"{row['param']}: {row['mean']:.4g} +- {row['sd']:.3g}{truth}")
    typer.echo(f"wrote {out}")


@infer_app.command("validate")
@friendly
def infer_validate(run: Path = typer.Argument(..., help="run folder of 'skymorph infer train'"),
                   data: Path = typer.Option(..., help="held-out simulations (for a map store: its test split)"),
                   out: Path = typer.Option(..., help="output folder: results.json/.md, report.html, figures"),
                   samples: HeldOutSamples = 500,
                   maps_limit: MapsLimit = None,
                   seed: Seed = 0,
                   overwrite: Overwrite = False,
                   progress: ProgressBar = True):
    """TARP, SBC, posterior mean vs truth and figure of merit on held-out simulations."""
    from ..infer.validate import validate

    res = validate(run, data, out, samples, maps_limit, seed, overwrite, progress)
    r = next(iter(res["runs"].values()))
    typer.echo(f"{r['maps']} maps: FoM {r['fom_median']['value']:.4g}, TARP ATC {r['tarp']['atc']:+.3f}, "
               + ", ".join(f"{p} SBC KS p {v['sbc_ks_p']:.2f}" for p, v in r["params"].items())
               + f"; calibrated: {'yes' if r['calibrated'] else 'no'}; wrote {out}/report.html")


@infer_app.command("compare")
@friendly
def infer_compare(runs: str = typer.Option(..., help="run folders, comma-separated"),
                  data: Path = typer.Option(..., help="held-out simulations"),
                  out: Path = typer.Option(..., help="output folder"),
                  samples: HeldOutSamples = 500,
                  maps_limit: MapsLimit = None,
                  seed: Seed = 0,
                  overwrite: Overwrite = False,
                  progress: ProgressBar = True):
    """The same held-out maps through every run: one table, figures, paired figure-of-merit verdicts."""
    from ..infer.report import verdict_lines
    from ..infer.validate import compare

    res = compare([Path(r) for r in _names(runs, "--runs")], data, out, samples, maps_limit, seed, overwrite,
                  progress=progress)
    for line in verdict_lines(res):
        typer.echo(line)
    typer.echo(f"wrote {out}/report.html")
