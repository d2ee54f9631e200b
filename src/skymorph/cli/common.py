"""The command objects and helpers every command module shares."""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from ..errors import Interrupted, SkymorphError

app = typer.Typer(help="Deep learning on astrophysical simulations: galaxies -> paired multi-domain maps -> models.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
maps_app = typer.Typer(help="Build and inspect paired multi-domain map datasets.", no_args_is_help=True)
app.add_typer(maps_app, name="maps")
cosmo_app = typer.Typer(help="Differentiable particle-mesh simulations (FastPM scheme, torch).", no_args_is_help=True)
app.add_typer(cosmo_app, name="cosmo")
lensing_app = typer.Typer(help="Weak-lensing convergence and shear maps from PM runs.", no_args_is_help=True)
app.add_typer(lensing_app, name="lensing")
grid_app = typer.Typer(help="Grid simulations: Athena++ and FITS cubes, the built-in CR turbulence solver.",
                       no_args_is_help=True)
app.add_typer(grid_app, name="grid")
classify_app = typer.Typer(help="Classify simulations from images (e.g. CR transport from gas density).",
                           no_args_is_help=True)
app.add_typer(classify_app, name="classify")
clouds_app = typer.Typer(help="Point clouds of galaxies: datasets, a conditional flow (dark matter -> gas), judges.",
                         no_args_is_help=True)
app.add_typer(clouds_app, name="clouds")
radio_app = typer.Typer(help="Radio: simulated galaxies placed on the sky (SKA sky models).", no_args_is_help=True)
app.add_typer(radio_app, name="radio")

Split = Literal["train", "val", "test"]
Device = Literal["auto", "cpu", "cuda"]

# Options that mean one thing in every command that takes them: declared once, with their help line.
RunDevice = Annotated[Device, typer.Option(help="where the network runs (auto: CUDA when available)")]
Reverse = Annotated[bool, typer.Option(help="two-way runs (cyclegan): run the trained model target -> source")]
SamplerSteps = Annotated[Optional[int], typer.Option(help="sampler steps (diffusion family; default per method)")]
Sampler = Annotated[Optional[str], typer.Option(help="sampler of a diffusion-family run, e.g. dpm++, ddim, em, pc, "
                                                     "indi (default: the run's)")]
Overwrite = Annotated[bool, typer.Option(help="replace existing outputs")]
ProgressBar = Annotated[bool, typer.Option(help="progress bars")]
Scheduler = Annotated[Optional[str], typer.Option(help="run the tasks on a Dask cluster: tcp://host:8786 (a running "
                                                       "dask scheduler) or local:N (N worker processes here)")]
Parts = Annotated[Optional[Path], typer.Option(help="folder for the part files (one every cluster worker can "
                                                    "write; default beside the output)")]


def friendly(fn):
    """Turn SkymorphError (and unreadable paths) into one clear line and a non-zero exit."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Interrupted as exc:
            typer.secho(f"interrupted: {exc}", fg="yellow", err=True)
            sys.exit(130)
        except SkymorphError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            typer.secho("interrupted: rerun the same command to resume", fg="yellow", err=True)
            sys.exit(130)
    return wrapper


def open_galaxies(source: Path, snapshot: int | None, subhalos: str | None):
    """The galaxy source of a build command: a cutout folder or a TNG basePath, ``--subhalos`` parsed."""
    from ..sim.sources import open_source, parse_ids

    try:
        ids = parse_ids(subhalos)
    except ValueError:
        raise SkymorphError(f"--subhalos {subhalos!r}: expected ids like 0-99 or 3,5,7") from None
    return open_source(source, snapshot, ids)


def number_list(text: str, option: str, cast=int) -> list:
    """Comma-separated integers (``cast=int``) or numbers (``cast=float``) of a command-line option."""
    try:
        return [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        what, example = ("integers", "1,2,5,10") if cast is int else ("numbers", "0,1,2")
        raise SkymorphError(f"{option} {text!r}: expected comma-separated {what}, e.g. {example}") from None


