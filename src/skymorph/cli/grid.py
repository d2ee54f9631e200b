"""Grid simulations: grid read."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

import typer

from ..errors import SkymorphError
from .common import Overwrite, ProgressBar, friendly, grid_app


@grid_app.command("read")
@friendly
def grid_read(path: Path = typer.Argument(..., help="Athena++ .athdf, FITS cube or skymorph cube store (.h5)"),
              out: Path = typer.Option(..., help="output cube store (.h5)"),
              fields: Optional[str] = typer.Option(None, help="comma-separated variables (default: all)"),
              level: Literal["root", "finest"] = typer.Option("root", help="Athena++ mesh refinement: restrict "
                                                                           "refined blocks to the root grid, or "
                                                                           "prolongate all to the finest level"),
              units: Optional[str] = typer.Option(None, help="units of fields, name=unit,... (Athena++ files "
                                                             "have code units)"),
              overwrite: Overwrite = False):
    """Assemble a grid simulation output into a uniform cube store."""
    from ..atomic import check_output
    from ..grid.readers import read_grid
    from ..grid.store import parse_units, write_cube

    check_output(out, overwrite)
    cube = read_grid(path, [f for f in (fields or "").split(",") if f] or None, level)
    written = write_cube(cube, out, parse_units(units, list(cube.fields)), overwrite=overwrite)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in cube.fields.items())
    typer.echo(f"wrote {written}: {shapes}")


@grid_app.command("simulate")
@friendly
def grid_simulate(out: Path = typer.Option(..., help="output snapshot file (.h5)"),
                  model: str = typer.Option("cr_diffuse", help="mhd, cr_advect, cr_diffuse or cr_stream"),
                  kappa: float = typer.Option(0.0, help="CR diffusion coefficient along B, code units L c_s "
                                                        "(cr_diffuse only, > 0)"),
                  n: int = typer.Option(128, help="cells per side"),
                  dim: int = typer.Option(2, help="2 or 3 dimensions"),
                  mach: float = typer.Option(1.0, help="target rms Mach number of the driving"),
                  beta: float = typer.Option(1.0, help="plasma beta of the mean field B0 along x"),
                  cr_ratio: Optional[float] = typer.Option(None, help="initial CR to gas pressure ratio (CR models; "
                                                                      "default 1)"),
                  snapshots: int = typer.Option(10, help="snapshots to write"),
                  spinup: float = typer.Option(2.0, help="turnover times L / (M c_s) before the first snapshot"),
                  every: float = typer.Option(0.5, help="turnover times between snapshots"),
                  cfl: float = typer.Option(0.3, help="Courant number (<= 0.5)"),
                  smoothing: Optional[float] = typer.Option(None, help="streaming regularisation length h, cells "
                                                                       "(cr_stream; default 8)"),
                  kernel: str = typer.Option("numba", help="HLL sweep: numba or numpy (the reference)"),
                  seed: int = typer.Option(0, help="seed of the driving"),
                  resume: bool = typer.Option(False, help="continue an interrupted run of OUT"),
                  overwrite: Overwrite = False,
                  progress: ProgressBar = True):
    """Driven MHD turbulence with a cosmic-ray fluid (the built-in finite-volume solver)."""
    from ..grid.simulate import SimConfig, label_of, simulate

    if smoothing is not None and model != "cr_stream":
        raise SkymorphError(f"--smoothing: only cr_stream streams (model {model})")
    if cr_ratio is not None and model == "mhd":
        raise SkymorphError("--cr-ratio: model mhd has no cosmic rays")
    defaults = SimConfig()
    cfg = SimConfig(model=model, n=n, dim=dim, mach=mach, kappa=kappa, beta=beta,
                    cr_ratio=defaults.cr_ratio if cr_ratio is None else cr_ratio, snapshots=snapshots, spinup=spinup,
                    every=every, cfl=cfl, smoothing=defaults.smoothing if smoothing is None else smoothing, seed=seed,
                    kernel=kernel)
    path = simulate(cfg, out, resume=resume, overwrite=overwrite, progress=progress)
    typer.echo(f"wrote {path}: {label_of(cfg)}, {snapshots} snapshots of {n}^{dim}")


def _ints(text: Optional[str], flag: str) -> list[int]:
    try:
        return [int(v) for v in (text or "").split(",") if v.strip()]
    except ValueError:
        raise SkymorphError(f"{flag} {text!r}: expected comma-separated integers") from None


@grid_app.command("slices")
@friendly
def grid_slices(inputs: list[Path] = typer.Argument(..., help="grid simulate outputs or cube stores"),
                out: Path = typer.Option(..., help="output map store (.h5)"),
                axis: str = typer.Option("x", help="slices perpendicular to x, y or z; splits along it"),
                size: int = typer.Option(64, help="tile size, cells"),
                buffer: int = typer.Option(16, help="minimum gap between splits along the axis, cells"),
                layers: str = typer.Option("1", help="planes averaged per image, comma-separated (3D)"),
                fractions: str = typer.Option("0.6,0.2,0.2", help="train,val,test slab widths"),
                fields: Optional[str] = typer.Option(None, help="fields to tile (default: rho, ec, eb where all "
                                                               "inputs have them)"),
                val_seeds: Optional[str] = typer.Option(None, help="seeds of runs held out whole for validation"),
                test_seeds: Optional[str] = typer.Option(None, help="seeds of runs held out whole for testing"),
                overwrite: Overwrite = False):
    """Buffered train/val/test slices of grid runs, in the map store layout."""
    from ..grid.slices import build_slices

    try:
        fracs = [float(v) for v in fractions.split(",")]
    except ValueError:
        raise SkymorphError(f"--fractions {fractions!r}: expected three numbers") from None
    path = build_slices(inputs, out, axis, size, buffer, _ints(layers, "--layers"), fracs,
                        [f for f in (fields or "").split(",") if f] or None, _ints(val_seeds, "--val-seeds"),
                        _ints(test_seeds, "--test-seeds"), overwrite)
    from ..data.store import MapStore

    with MapStore(path) as store:
        counts = ", ".join(f"{s} {len(store.split(s))}" for s in ("train", "val", "test"))
        typer.echo(f"wrote {path}: {store.n} tiles of {', '.join(store.domains)} ({counts}); "
                   f"classes {', '.join(json.loads(store.attrs['classes']))}")


@grid_app.command("compare")
@friendly
def grid_compare(inputs: list[Path] = typer.Argument(..., help="grid simulate outputs (several per class pool)"),
                 out: Path = typer.Option(..., help="output stem: OUT.png, OUT.md"),
                 overwrite: Overwrite = False):
    """Gas statistics by class: density PDF width, density power spectrum slope, Mach number."""
    from ..grid.statistics import compare_runs

    png, md = compare_runs(inputs, out, overwrite)
    typer.echo(f"wrote {png} and {md}")
    typer.echo(md.read_text().split("\n\n", 2)[-1].rstrip())
