"""Grid simulations: grid read."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from .common import Overwrite, friendly, grid_app


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
