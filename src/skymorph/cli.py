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
              method: Optional[str] = typer.Option(None, help="baseline, unet or pix2pix"),
              data: Optional[Path] = typer.Option(None, help="map store (.h5)"),
              source: Optional[str] = typer.Option(None, help="source domain(s), e.g. gas or gas,temp"),
              target: Optional[str] = typer.Option(None, help="target domain"),
              config: Optional[Path] = typer.Option(None, help="YAML config (options given here override it)"),
              max_epochs: Optional[int] = typer.Option(None, help="epochs (default 30)"),
              max_minutes: Optional[float] = typer.Option(None, help="wall-clock budget in minutes"),
              batch_size: Optional[int] = typer.Option(None), lr: Optional[float] = typer.Option(None),
              seed: Optional[int] = typer.Option(None), base_channels: Optional[int] = typer.Option(None),
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
             "base_channels": base_channels, "ema": ema, "devices": devices, "strategy": strategy,
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
                  steps: Optional[int] = typer.Option(None, help="sampler steps (diffusion-type methods)"),
                  samples: int = typer.Option(1, help="samples per input (stochastic methods)"),
                  seed: int = typer.Option(0, help="random seed"),
                  overwrite: bool = typer.Option(False, help="replace an existing output")):
    """Translate maps with a trained run; predictions are written in physical units."""
    from .data.store import MapStore
    from .methods.apply import translate_fits, translate_store
    from .methods.training import load_run

    if samples < 1:
        raise SkymorphError(f"--samples {samples}: need at least one sample")
    cfg, method = load_run(run)
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
                 samples: int = typer.Option(1, help="samples per input"),
                 seed: int = typer.Option(0, help="random seed"),
                 overwrite: bool = typer.Option(False, help="replace existing outputs")):
    """Physics-aware metrics of a run on a split (physical units), with figures."""
    from .evaluate.runner import evaluate_run, write_evaluation

    ev = evaluate_run(run, data, split, steps, seed, samples)
    write_evaluation(ev, out, overwrite)
    typer.echo(f"{ev.info['method']} {'+'.join(ev.info['source'])}->{ev.info['target']} on {ev.info['n_views']} "
               f"{split} views: " + ", ".join(f"{k} {ev.summary[k]['median']:.3g}"
                                               for k in ("mse_log", "ssim", "pk_rel_err", "pdf_w1")))
    typer.echo(f"wrote {out / 'metrics.json'} and figures")


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
                  progress: bool = typer.Option(True, help="progress bars")):
    """Train (or reuse) every method for every pair under one budget; tables and an HTML report."""
    from .evaluate.benchmark import parse_pairs, run_benchmark
    from .evaluate.report import verdicts

    res = run_benchmark(data, parse_pairs(pairs), [m.strip() for m in methods.split(",")], out, max_minutes,
                        max_epochs, {"base_channels": base_channels}, seed, progress)
    for name, pair in res.items():
        for line in verdicts(name, pair):
            typer.echo(line)
    typer.echo(f"report: {out / 'report.html'} (tables: {out / 'results.md'})")


if __name__ == "__main__":
    app()
