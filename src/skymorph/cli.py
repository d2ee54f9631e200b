"""The ``skymorph`` command: thin wrappers that parse options and call library functions.

A :class:`~skymorph.errors.SkymorphError` becomes one red line on stderr and exit code 1.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import SkymorphError

app = typer.Typer(help="Deep learning on astrophysical simulations: galaxies -> paired multi-domain maps -> models.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
maps_app = typer.Typer(help="Build and inspect paired multi-domain map datasets.", no_args_is_help=True)
app.add_typer(maps_app, name="maps")
cosmo_app = typer.Typer(help="Differentiable particle-mesh simulations (FastPM scheme, torch).", no_args_is_help=True)
app.add_typer(cosmo_app, name="cosmo")
lensing_app = typer.Typer(help="Weak-lensing convergence and shear maps from PM runs.", no_args_is_help=True)
app.add_typer(lensing_app, name="lensing")


def _friendly(fn):
    """Turn SkymorphError (and unreadable paths) into one clear line and a non-zero exit."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SkymorphError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            typer.secho("interrupted: rerun the same command to resume", fg="yellow", err=True)
            sys.exit(130)
    return wrapper


@app.command()
@_friendly
def synth(out_dir: Path = typer.Argument(..., help="folder for cutout_<id>.hdf5 and catalog.hdf5"),
          galaxies: int = typer.Option(16, help="number of galaxies"),
          particles: int = typer.Option(10_000, help="particles per species per galaxy"),
          seed: int = typer.Option(0, help="random seed (same seed, same files)"),
          redshift: float = typer.Option(0.0, help="redshift of the snapshot"),
          overwrite: bool = typer.Option(False, help="replace existing files")):
    """Write synthetic galaxies as TNG-format cutouts (code units) plus a catalogue."""
    from .sim.synth import synthesize

    cat = synthesize(out_dir, galaxies, particles, seed=seed, redshift=redshift, overwrite=overwrite)
    typer.echo(f"wrote {galaxies} galaxies and {cat}")


@maps_app.command("build")
@_friendly
def maps_build(source: Path = typer.Argument(..., help="folder of cutouts with catalog.hdf5, or a TNG basePath"),
               out: Path = typer.Option(..., help="output map store (.h5)"),
               domains: str = typer.Option("dm,star,gas,hi,hi21,temp,bfield", help="comma-separated domains"),
               size: int = typer.Option(64, help="pixels per side"),
               rotations: int = typer.Option(3, help="random rotations per galaxy (plus the unrotated view)"),
               fov: float = typer.Option(1.0, help="half-width in half-mass radii of --fov-ref"),
               fov_ref: str = typer.Option("gas", help="gas, dm or star"),
               face_edge: bool = typer.Option(False, help="add face-on and edge-on views (stellar spin)"),
               snapshot: Optional[int] = typer.Option(None, help="snapshot number (TNG simulation folder)"),
               subhalos: Optional[str] = typer.Option(None, help="subhalo ids, e.g. 0-99 or 3,5,7"),
               seed: int = typer.Option(0, help="random seed for rotations and splits"),
               workers: int = typer.Option(1, help="worker processes"),
               overwrite: bool = typer.Option(False, help="replace an existing output")):
    """Project galaxies into a paired multi-domain map store (resumes an interrupted build)."""
    from .data.build import build_dataset
    from .sim.sources import open_source, parse_ids

    try:
        ids = parse_ids(subhalos)
    except ValueError:
        raise SkymorphError(f"--subhalos {subhalos!r}: expected ids like 0-99 or 3,5,7") from None
    src = open_source(source, snapshot, ids)
    path = build_dataset(src, out, domains, size, rotations, fov, fov_ref, seed, workers, overwrite, face_edge)
    typer.echo(f"wrote {path}")


@maps_app.command("info")
@_friendly
def maps_info(store: Path = typer.Argument(..., help="map store (.h5)")):
    """Counts, domains, units, splits and value ranges of a map store."""
    from .data.show import store_info
    from .data.store import MapStore

    with MapStore(store) as s:
        typer.echo(store_info(s))


@maps_app.command("show")
@_friendly
def maps_show(store: Path = typer.Argument(..., help="map store (.h5)"),
              index: int = typer.Option(0, help="view index"),
              out: Path = typer.Option(..., help="output PNG"),
              overwrite: bool = typer.Option(False, help="replace an existing output")):
    """All domains of one view in a panel (log colours, colour bars with units, kpc scale bar)."""
    from .data.show import show_view
    from .data.store import MapStore

    with MapStore(store) as s:
        typer.echo(f"wrote {show_view(s, index, out, overwrite)}")


@maps_app.command("fits")
@_friendly
def maps_fits(store: Path = typer.Argument(..., help="map store (.h5)"),
              index: int = typer.Option(0, help="view index"),
              domain: str = typer.Option(..., help="domain to export"),
              out: Path = typer.Option(..., help="output FITS file"),
              overwrite: bool = typer.Option(False, help="replace an existing output")):
    """Export one map as FITS with BUNIT, pixel scale and extent in the header."""
    from .data.fits import export_fits
    from .data.store import MapStore

    with MapStore(store) as s:
        typer.echo(f"wrote {export_fits(s, index, domain, out, overwrite)}")


@app.command("train")
@_friendly
def train_cmd(out: Path = typer.Option(..., help="run folder (checkpoints, logs, resolved config)"),
              method: Optional[str] = typer.Option(None, help="baseline, unet, pix2pix, score_sde, indi, ..."),
              data: Optional[Path] = typer.Option(None, help="map store (.h5)"),
              source: Optional[str] = typer.Option(None, help="source domain(s), e.g. gas or gas,temp"),
              target: Optional[str] = typer.Option(None, help="target domain"),
              config: Optional[Path] = typer.Option(None, help="YAML config (options given here override it)"),
              max_epochs: Optional[int] = typer.Option(None, help="epochs (default 30)"),
              max_minutes: Optional[float] = typer.Option(None, help="wall-clock budget in minutes"),
              batch_size: Optional[int] = typer.Option(None), lr: Optional[float] = typer.Option(None),
              seed: Optional[int] = typer.Option(None), base_channels: Optional[int] = typer.Option(None),
              sampler: Optional[str] = typer.Option(None, help="default sampler of a diffusion-family run"),
              ema: Optional[bool] = typer.Option(None, "--ema/--no-ema", help="EMA of generator weights"),
              devices: Optional[int] = typer.Option(None, help="devices (GPUs, or CPU processes)"),
              strategy: Optional[str] = typer.Option(None, help="auto, ddp, ddp_spawn, ..."),
              accelerator: Optional[str] = typer.Option(None, help="auto, cpu, gpu"),
              precision: Optional[str] = typer.Option(None, help="32-true, 16-mixed, bf16-mixed"),
              resume: bool = typer.Option(False, help="continue an interrupted run in OUT"),
              overwrite: bool = typer.Option(False, help="replace an existing run folder"),
              progress: bool = typer.Option(True, help="progress bar")):
    """Train a translation method through PyTorch Lightning (checkpoint every epoch, --resume)."""
    from .methods.config import TrainConfig
    from .methods.training import CONFIG_NAME, train

    given = {"method": method, "data": data, "source": source, "target": target, "max_epochs": max_epochs,
             "max_minutes": max_minutes, "batch_size": batch_size, "lr": lr, "seed": seed,
             "base_channels": base_channels, "sampler": sampler, "ema": ema, "devices": devices, "strategy": strategy,
             "accelerator": accelerator, "precision": precision}
    if resume:
        saved = TrainConfig.load(out / CONFIG_NAME)
        asked = {k: given[k] for k in ("method", "data", "source", "target") if given[k] is not None}
        check = TrainConfig.build(saved.model_dump(), **asked)
        for key in asked:
            if getattr(check, key) != getattr(saved, key):
                raise SkymorphError(f"{out}: --resume of a run trained with {key} = {getattr(saved, key)}, "
                                    f"not {getattr(check, key)}")
        cfg = TrainConfig.build(saved.model_dump(), max_epochs=max_epochs, max_minutes=max_minutes)
    elif config is not None:
        cfg = TrainConfig.load(config, **given)
    else:
        missing = [k for k in ("method", "data", "source", "target") if given[k] is None]
        if missing:
            raise SkymorphError(f"train needs --{missing[0]} (or a --config file that sets it)")
        cfg = TrainConfig.build({}, **given)
    typer.echo(f"trained {train(cfg, out, resume=resume, overwrite=overwrite, progress=progress)}")


@app.command("translate")
@_friendly
def translate_cmd(run: Path = typer.Argument(..., help="trained run folder"),
                  out: Path = typer.Option(..., help="output predictions (.h5, or .fits with --fits)"),
                  data: Optional[Path] = typer.Option(None, help="map store to translate a split of"),
                  split: str = typer.Option("test", help="train, val or test"),
                  fits_in: Optional[Path] = typer.Option(None, "--fits", help="translate one FITS map instead"),
                  steps: Optional[int] = typer.Option(None, help="sampler steps (diffusion family; default per method)"),
                  sampler: Optional[str] = typer.Option(None, help="score_sde: dpm++, unipc, heun, ddim, ode, em, pc"),
                  samples: int = typer.Option(1, help="samples per input (stochastic methods): mean and std written"),
                  seed: int = typer.Option(0, help="random seed"),
                  reverse: bool = typer.Option(False, help="two-way runs (cyclegan): translate target -> source"),
                  overwrite: bool = typer.Option(False, help="replace an existing output")):
    """Translate maps with a trained run; predictions are written in physical units."""
    from .data.store import MapStore
    from .methods.apply import translate_fits, translate_store
    from .methods.base import check_request
    from .methods.training import load_run

    check_request(steps, samples)
    cfg, method = load_run(run, reverse=reverse)
    method.set_sampler(sampler or cfg.sampler)
    if fits_in is not None:
        typer.echo(f"wrote {translate_fits(cfg, method, fits_in, out, steps, seed, overwrite)}")
    elif data is not None:
        with MapStore(data) as store:
            typer.echo(f"wrote {translate_store(cfg, method, store, split, out, steps, seed, samples, overwrite)}")
    else:
        raise SkymorphError("translate needs --data maps.h5 (with --split) or --fits map.fits")


@app.command("evaluate")
@_friendly
def evaluate_cmd(run: Path = typer.Argument(..., help="trained run folder"),
                 data: Path = typer.Option(..., help="map store (.h5)"),
                 out: Path = typer.Option(..., help="folder for metrics.json and figures"),
                 split: str = typer.Option("test", help="train, val or test"),
                 steps: Optional[int] = typer.Option(None, help="sampler steps"),
                 sampler: Optional[str] = typer.Option(None, help="sampler (diffusion family)"),
                 samples: int = typer.Option(1, help="samples per input; >= 2 adds their calibration"),
                 seed: int = typer.Option(0, help="random seed"),
                 reverse: bool = typer.Option(False, help="two-way runs (cyclegan): evaluate target -> source"),
                 overwrite: bool = typer.Option(False, help="replace existing outputs")):
    """Physics-aware metrics of a run on a split (physical units), with figures."""
    from .evaluate.runner import evaluate_run, write_evaluation

    ev = evaluate_run(run, data, split, steps, seed, samples, sampler, reverse)
    write_evaluation(ev, out, overwrite)
    typer.echo(f"{ev.info['method']} {'+'.join(ev.info['source'])}->{ev.info['target']} on {ev.info['n_views']} "
               f"{split} views: " + ", ".join(f"{k} {ev.summary[k]['median']:.3g}"
                                               for k in ("mse_log", "ssim", "pk_rel_err", "pdf_w1")))
    typer.echo(f"wrote {out / 'metrics.json'} and figures")


def _number_list(text: str, option: str, cast=int) -> list:
    """Comma-separated integers (``cast=int``) or numbers (``cast=float``) of a command-line option."""
    try:
        return [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        what, example = ("integers", "1,2,5,10") if cast is int else ("numbers", "0,1,2")
        raise SkymorphError(f"{option} {text!r}: expected comma-separated {what}, e.g. {example}") from None


@app.command("benchmark")
@_friendly
def benchmark_cmd(data: Path = typer.Option(..., help="map store (.h5)"),
                  out: Path = typer.Option(..., help="folder for runs, results.json/.md and report.html"),
                  pairs: str = typer.Option("gas:hi,gas:dm,gas:star", help="source:target pairs"),
                  methods: str = typer.Option("baseline,unet,pix2pix", help="methods to compare"),
                  max_minutes: Optional[float] = typer.Option(None, help="training budget per method and pair"),
                  max_epochs: int = typer.Option(1000, help="epoch cap per method and pair"),
                  base_channels: int = typer.Option(32, help="U-Net width"),
                  seed: int = typer.Option(0, help="random seed"),
                  steps: Optional[str] = typer.Option(None, help="quality vs cost: step counts, e.g. 1,2,5,10,20"),
                  samplers: Optional[str] = typer.Option(None, help="samplers of the sweep (default: all that fit)"),
                  samples: int = typer.Option(1, help="samples per map for the calibration of stochastic methods"),
                  sweep_views: Optional[int] = typer.Option(None, help="test views of the sweep (default all)"),
                  progress: bool = typer.Option(True, help="progress bars")):
    """Train (or reuse) every method for every pair under one budget; tables and an HTML report."""
    from .evaluate.benchmark import parse_pairs, run_benchmark
    from .evaluate.report import cost_answers, stochastic_verdicts, verdicts

    res = run_benchmark(data, parse_pairs(pairs), [m.strip() for m in methods.split(",")], out, max_minutes,
                        max_epochs, {"base_channels": base_channels}, seed, progress,
                        _number_list(steps, "--steps") if steps else None,
                        [s.strip() for s in samplers.split(",")] if samplers else None, samples, sweep_views)
    for name, pair in res.items():
        for line in verdicts(name, pair) + stochastic_verdicts(name, pair) + cost_answers(name, pair):
            typer.echo(line)
    typer.echo(f"report: {out / 'report.html'} (tables: {out / 'results.md'})")


@app.command("explain")
@_friendly
def explain_cmd(run: Path = typer.Argument(..., help="trained run folder"),
                data: Path = typer.Option(..., help="map store (.h5)"),
                out: Path = typer.Option(..., help="folder for the figure (.png) and the raw attributions (.npz)"),
                index: int = typer.Option(0, help="view: its position in the split's sorted view list"),
                split: str = typer.Option("test", help="train, val or test"),
                what: str = typer.Option("discriminator", help="discriminator (realness score) or generator "
                                                               "(mean of a region of its output)"),
                method: str = typer.Option("shap", help="shap, saliency or integrated_gradients"),
                region: Optional[str] = typer.Option(None, help="generator region y0:y1,x0:x1 in pixels "
                                                                 "(default: the central quarter-width square)"),
                feed: str = typer.Option("dm,star", help="other domains fed to the discriminators"),
                background: int = typer.Option(32, help="shap: background maps from the training split"),
                nsamples: int = typer.Option(512, help="shap: expected-gradient samples per map"),
                n_steps: int = typer.Option(64, help="integrated gradients: integration points"),
                seed: int = typer.Option(0, help="random seed"),
                reverse: bool = typer.Option(False, help="two-way runs (cyclegan): the target -> source direction"),
                overwrite: bool = typer.Option(False, help="replace existing outputs")):
    """What a run looks at: SHAP / saliency / integrated gradients over one view's input maps."""
    from .explain import explain_run, write_explanation

    exp = explain_run(run, data, index, what, method, split, region, tuple(d.strip() for d in feed.split(",") if d.strip()),
                      background, nsamples, n_steps, seed, reverse)
    png, npz = write_explanation(exp, out, overwrite)
    scores = exp.scores()
    for i, case in enumerate(exp.cases):
        line = f"{case.side} {case.label}: output {scores['output'][i]:.4g}"
        if method != "saliency":
            line += (f", reference {scores['reference'][i]:.4g}, sum of attributions - (output - reference) = "
                     f"{scores['gap'][i]:.2g}" + (f" +- {scores['stderr'][i]:.2g} (MC)" if method == "shap" else ""))
        typer.echo(line)
    typer.echo(f"wrote {png} and {npz}")


@app.command("probe")
@_friendly
def probe_cmd(run: Path = typer.Argument(..., help="trained run folder"),
              data: Path = typer.Option(..., help="map store (.h5)"),
              probe: str = typer.Option(..., help="blur, phase or noise"),
              out: Path = typer.Option(..., help="folder for probe_<name>.json/.md/.png"),
              split: str = typer.Option("test", help="train, val or test"),
              levels: Optional[str] = typer.Option(None, help="comma-separated probe levels (default per probe)"),
              steps: Optional[int] = typer.Option(None, help="sampler steps"),
              samples: int = typer.Option(1, help="samples per input"),
              seed: int = typer.Option(0, help="random seed (noise probe and samplers)"),
              reverse: bool = typer.Option(False, help="two-way runs (cyclegan): the target -> source direction"),
              overwrite: bool = typer.Option(False, help="replace existing outputs")):
    """Metrics as the input is blurred, reduced to its Fourier phases or made noisy."""
    from .explain import probe_run, write_probe

    values = _number_list(levels, "--levels", float) if levels else None
    res = probe_run(run, data, probe, split, values, seed, steps, samples, reverse)
    paths = write_probe(res, out, overwrite)
    for level, s in zip(res.levels, res.summaries):
        typer.echo(f"{res.parameter} {level:g}: " + ", ".join(f"{k} {s[k]['median']:.3g}"
                                                              for k in ("mse_log", "ssim", "pk_rel_err", "rk")))
    typer.echo(f"wrote {', '.join(str(p) for p in paths)}")



@cosmo_app.command("sim")
@_friendly
def cosmo_sim(out: Path = typer.Option(..., help="output simulation file (.h5)"),
              mesh: int = typer.Option(64, help="PM mesh cells per side (positive, even)"),
              box: float = typer.Option(256.0, help="box side in Mpc/h"),
              steps: int = typer.Option(10, help="kick-drift-kick steps from --a-init"),
              omega_m: float = typer.Option(0.3089, help="matter density Omega_m in (0, 1)"),
              sigma8: float = typer.Option(0.8159, help="sigma_8 (> 0)"),
              seed: int = typer.Option(0, help="random seed of the white noise"),
              particles: Optional[int] = typer.Option(None, help="particles per side (default: --mesh)"),
              a_out: str = typer.Option("0.25,0.5,1", help="comma-separated output scale factors"),
              a_init: float = typer.Option(0.1, help="starting scale factor (2LPT)"),
              overwrite: bool = typer.Option(False, help="replace an existing output"),
              progress: bool = typer.Option(True, help="progress bar")):
    """Run a FastPM N-body simulation; density snapshots, final particles and parameters to HDF5."""
    from .cosmo.linear import Cosmology
    from .cosmo.products import run_simulation

    try:
        a_list = [float(a) for a in a_out.split(",")]
    except ValueError:
        raise SkymorphError(f"--a-out {a_out!r}: expected comma-separated scale factors") from None
    path = run_simulation(out, Cosmology(omega_m, sigma8), mesh, box, steps, seed, particles, a_list, a_init,
                          overwrite, progress)
    typer.echo(f"wrote {path}")


@cosmo_app.command("power")
@_friendly
def cosmo_power(sim: Path = typer.Argument(..., help="simulation file from 'skymorph cosmo sim'"),
                out: Path = typer.Option(..., help="output PNG"),
                overwrite: bool = typer.Option(False, help="replace an existing output")):
    """Measured P(k) of each snapshot against linear theory times D(a)^2."""
    from .cosmo.products import plot_power

    typer.echo(f"wrote {plot_power(sim, out, overwrite)}")


@lensing_app.command("maps")
@_friendly
def lensing_maps(out: Path = typer.Option(..., help="output map file (.h5)"),
                 omega_m: str = typer.Option("0.3089", help="Omega_m, or a range lo:hi drawn per map"),
                 sigma8: str = typer.Option("0.8159", help="sigma_8, or a range lo:hi drawn per map"),
                 n_maps: int = typer.Option(1, help="number of maps (one PM run each)"),
                 field_deg: float = typer.Option(5.0, help="field side in degrees"),
                 npix: int = typer.Option(128, help="pixels per side"),
                 z_source: float = typer.Option(1.0, help="source redshift"),
                 seed: int = typer.Option(0, help="random seed"),
                 box: float = typer.Option(256.0, help="PM box side in Mpc/h"),
                 mesh: int = typer.Option(64, help="PM mesh (and particles) per side"),
                 steps: int = typer.Option(10, help="PM steps"),
                 n_gal: float = typer.Option(30.0, help="galaxies per arcmin^2 (shape noise)"),
                 sigma_e: float = typer.Option(0.26, help="ellipticity dispersion per component"),
                 mask: Optional[Path] = typer.Option(None, help="mask (.npy or .fits, npix x npix, 1 = observed)"),
                 overwrite: bool = typer.Option(False, help="replace an existing output"),
                 progress: bool = typer.Option(True, help="progress bar")):
    """Born convergence maps from PM density planes, with KS shear, shape noise and an optional mask."""
    from .cosmo.products import make_kappa_maps

    path = make_kappa_maps(out, omega_m, sigma8, n_maps, field_deg, npix, z_source, seed, box, mesh, steps,
                           n_gal, sigma_e, mask, overwrite=overwrite, progress=progress)
    typer.echo(f"wrote {path}")


@lensing_app.command("train-prior")
@_friendly
def lensing_train_prior(data: Optional[Path] = typer.Option(None, help="convergence maps (kappa.h5 of 'lensing maps')"),
                        out: Path = typer.Option(..., help="run folder (prior.yaml, checkpoints, logs)"),
                        max_epochs: Optional[int] = typer.Option(None, help="epochs (default 1000)"),
                        max_minutes: Optional[float] = typer.Option(None, help="wall-clock budget in minutes"),
                        base_channels: int = typer.Option(16, help="U-Net width"),
                        batch_size: int = typer.Option(32, help="maps per batch"),
                        seed: int = typer.Option(0, help="random seed"),
                        resume: bool = typer.Option(False, help="continue an interrupted or finished run in OUT"),
                        overwrite: bool = typer.Option(False, help="replace an existing run folder"),
                        progress: bool = typer.Option(True, help="progress bar")):
    """Train the convergence score prior (denoising score matching, residual to the Gaussian score)."""
    from .cosmo.prior import train_prior

    if data is None and not resume:
        raise SkymorphError("train-prior needs --data kappa.h5 (or --resume)")
    opts = {} if resume else {"base_channels": base_channels, "batch_size": batch_size, "seed": seed}
    typer.echo(f"trained {train_prior(data, out, max_epochs, max_minutes, resume, overwrite, progress, **opts)}")


@lensing_app.command("massmap")
@_friendly
def lensing_massmap(shear: Path = typer.Option(..., help="shear file (/gamma_obs, /mask; e.g. a kappa.h5)"),
                    method: str = typer.Option("posterior", help="ks, wiener or posterior"),
                    out: Path = typer.Option(..., help="output result.h5"),
                    prior: Optional[Path] = typer.Option(None, help="prior run folder (train-prior)"),
                    samples: int = typer.Option(8, help="posterior samples per map"),
                    smoothing: Optional[float] = typer.Option(None, help="KS Gaussian smoothing in arcmin "
                                                                          "(default: the prior run's choice)"),
                    maps: Optional[str] = typer.Option(None, help="maps of the file: a:b or i,j,k (default all)"),
                    levels: int = typer.Option(30, help="posterior: noise levels of the annealing"),
                    steps: int = typer.Option(3, help="posterior: Langevin steps per level"),
                    seed: int = typer.Option(0, help="random seed"),
                    overwrite: bool = typer.Option(False, help="replace an existing output"),
                    progress: bool = typer.Option(True, help="progress bar")):
    """Convergence maps from shear: Kaiser-Squires, Wiener filter or score-prior posterior samples."""
    from .cosmo.massbench import run_massmap

    path, info = run_massmap(shear, method, out, prior, samples, smoothing, maps, levels, steps, seed, overwrite, progress)
    if method == "posterior":
        typer.echo(f"{info['seconds_per_sample']:.3g} s and {info['score_evaluations_per_sample']} score evaluations per sample")
    typer.echo(f"wrote {path}")


@lensing_app.command("benchmark")
@_friendly
def lensing_benchmark(data: Path = typer.Option(..., help="held-out convergence maps with shear (kappa.h5)"),
                      prior: Path = typer.Option(..., help="prior run folder (train-prior)"),
                      out: Path = typer.Option(..., help="folder for results.json/.md and massmap.png"),
                      samples: int = typer.Option(16, help="posterior samples per map"),
                      maps: Optional[str] = typer.Option(None, help="maps of the file: a:b or i,j,k (default all)"),
                      levels: int = typer.Option(30, help="noise levels of the annealing"),
                      steps: int = typer.Option(3, help="Langevin steps per level"),
                      seed: int = typer.Option(0, help="random seed"),
                      overwrite: bool = typer.Option(False, help="replace existing outputs"),
                      progress: bool = typer.Option(True, help="progress bars")):
    """KS vs Wiener vs posterior mean on held-out maps: RMSE, Pearson r, calibration, cost, figure."""
    from .cosmo.massbench import results_markdown, run_benchmark

    typer.echo(results_markdown(run_benchmark(data, prior, out, samples, maps, levels, steps, seed, overwrite, progress)))
    typer.echo(f"wrote {out / 'results.md'}, {out / 'results.json'} and {out / 'massmap.png'}")

if __name__ == "__main__":
    app()
