"""Radio sky models: radio skymodel."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer

from .common import Overwrite, friendly, radio_app


@radio_app.command("skymodel")
@friendly
def radio_skymodel(cube: Path = typer.Argument(..., help="HI cube from skymorph maps cube (FITS)"),
                   out: Path = typer.Option(..., help="sky cube (FITS, celestial + FREQ WCS)"),
                   ra: float = typer.Option(..., help="right ascension of the centre, deg"),
                   dec: float = typer.Option(..., help="declination of the centre, deg"),
                   distance: Optional[str] = typer.Option(None, help="distance, e.g. 10Mpc (nearby: D_L = D_A)"),
                   redshift: Optional[float] = typer.Option(None, help="redshift (distances from Planck15)"),
                   beam: Optional[str] = typer.Option(None, help="Gaussian beam FWHM, e.g. 10arcsec (Jy/beam); "
                                                                 "default Jy/pixel"),
                   table: Optional[Path] = typer.Option(None, help="also write the Karabo/OSKAR sky-model table "
                                                                   "(.csv or .fits)"),
                   threshold: float = typer.Option(0.0, help="table: components above this flux, Jy"),
                   overwrite: Overwrite = False):
    """Place a simulated galaxy's HI cube on the sky: FITS sky cube and point-source sky model."""
    from ..atomic import check_output
    from ..radio import skymodel as sm

    check_output(out, overwrite)
    if table is not None:
        check_output(table, overwrite)
    where = sm.place(ra, dec, distance, redshift, beam)
    tb, pix, vel, dv = sm.read_cube_fits(cube)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = sm.write_sky_cube(tb, pix, vel, dv, where, out, overwrite)
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)
    line = f"wrote {path}: D_L {where.d_l:.4g} Mpc, D_A {where.d_a:.4g} Mpc, z {where.redshift:g}"
    if table is not None:
        t = sm.sky_table(tb, pix, vel, dv, where, threshold)
        sm.write_sky_table(t, table, overwrite)
        line += f"; {len(t)} components, {float(t['stokes_i'].sum()):.4g} Jy in {table}"
    typer.echo(line)
