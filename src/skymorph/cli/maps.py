"""Commands that make and inspect map stores: synth, maps build / info / show / fits."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from .common import Overwrite, Parts, ProgressBar, Scheduler, app, friendly, maps_app, number_list, open_galaxies


@app.command()
@friendly
def synth(out_dir: Path = typer.Argument(..., help="folder for cutout_<id>.hdf5 and catalog.hdf5"),
          galaxies: int = typer.Option(16, help="number of galaxies"),
          particles: int = typer.Option(10_000, help="particles per species per galaxy"),
          seed: int = typer.Option(0, help="random seed (same seed, same files)"),
          redshift: float = typer.Option(0.0, help="redshift of the snapshot"),
          overwrite: bool = typer.Option(False, help="replace existing files"),
          progress: ProgressBar = True):
    """Write synthetic galaxies as TNG-format cutouts (code units) plus a catalogue."""
    from ..sim.synth import synthesize

    cat = synthesize(out_dir, galaxies, particles, seed=seed, redshift=redshift, overwrite=overwrite, progress=progress)
    typer.echo(f"wrote {galaxies} galaxies and {cat}")


@maps_app.command("build")
@friendly
def maps_build(source: Path = typer.Argument(..., help="folder of cutouts with catalog.hdf5, or a TNG basePath"),
               out: Path = typer.Option(..., help="output map store (.h5)"),
               domains: str = typer.Option("dm,star,gas,hi,hi21,temp,bfield", help="comma-separated domains (also h2)"),
               size: int = typer.Option(64, help="pixels per side"),
               rotations: int = typer.Option(3, help="random rotations per galaxy (plus the unrotated view)"),
               fov: float = typer.Option(1.0, help="half-width in half-mass radii of --fov-ref"),
               fov_ref: Literal["gas", "dm", "star"] = typer.Option("gas", help="species whose half-mass radius "
                                                                                "sets the field of view"),
               face_edge: bool = typer.Option(False, help="add face-on and edge-on views (stellar spin)"),
               snapshot: Optional[int] = typer.Option(None, help="snapshot number (TNG simulation folder)"),
               subhalos: Optional[str] = typer.Option(None, help="subhalo ids, e.g. 0-99 or 3,5,7"),
               seed: int = typer.Option(0, help="random seed for rotations and splits"),
               workers: int = typer.Option(1, help="worker processes"),
               scheduler: Scheduler = None,
               parts: Parts = None,
               splits: str = typer.Option("0.8,0.1,0.1", help="train,val,test fractions of the galaxies"),
               hi_model: str = typer.Option("br06", help="HI/H2 split of the neutral hydrogen: br06 (Blitz & "
                                                         "Rosolowsky 2006 pressure relation) or simple (all HI)"),
               overwrite: Overwrite = False,
               progress: ProgressBar = True):
    """Project galaxies into a paired multi-domain map store (resumes an interrupted build)."""
    from ..data.build import build_dataset

    src = open_galaxies(source, snapshot, subhalos)
    fractions = number_list(splits, "--splits", float)
    path = build_dataset(src, out, domains, size, rotations, fov, fov_ref, seed, workers, overwrite, face_edge,
                         splits=fractions, progress=progress, hi_model=hi_model, scheduler=scheduler, parts_dir=parts)
    typer.echo(f"wrote {path}")


@maps_app.command("info")
@friendly
def maps_info(store: Path = typer.Argument(..., help="map store (.h5)")):
    """Counts, domains, units, splits and value ranges of a map store, and its truth columns
    (catalogue truth per view, /meta/truth_<name>) with units and ranges."""
    from ..data.show import store_info
    from ..data.store import MapStore

    with MapStore(store) as s:
        typer.echo(store_info(s))


@maps_app.command("show")
@friendly
def maps_show(store: Path = typer.Argument(..., help="map store (.h5)"),
              index: int = typer.Option(0, help="view index"),
              out: Path = typer.Option(..., help="output PNG"),
              overwrite: Overwrite = False):
    """All domains of one view in a panel (log colours, colour bars with units, kpc scale bar)."""
    from ..data.show import show_view
    from ..data.store import MapStore

    with MapStore(store) as s:
        typer.echo(f"wrote {show_view(s, index, out, overwrite)}")


@maps_app.command("fits")
@friendly
def maps_fits(store: Path = typer.Argument(..., help="map store (.h5)"),
              index: int = typer.Option(0, help="view index"),
              domain: str = typer.Option(..., help="domain to export"),
              out: Path = typer.Option(..., help="output FITS file"),
              overwrite: Overwrite = False):
    """Export one map as FITS with BUNIT, pixel scale and extent in the header."""
    from ..data.fits import export_fits
    from ..data.store import MapStore

    with MapStore(store) as s:
        typer.echo(f"wrote {export_fits(s, index, domain, out, overwrite)}")


@maps_app.command("cube")
@friendly
def maps_cube(source: Path = typer.Argument(..., help="folder of cutouts with catalog.hdf5, or a TNG basePath"),
              index: int = typer.Option(..., help="galaxy (subhalo) id"),
              out: Path = typer.Option(..., help="output FITS cube"),
              snapshot: Optional[int] = typer.Option(None, help="snapshot number (TNG simulation folder)"),
              size: int = typer.Option(128, help="pixels per side"),
              channel_width: float = typer.Option(5.0, help="channel width, km/s"),
              velocity_range: str = typer.Option("-400:400", help="LO:HI line-of-sight velocities, km/s"),
              fov: float = typer.Option(1.0, help="half-width in half-mass radii of --fov-ref"),
              fov_ref: Literal["gas", "dm", "star"] = typer.Option("gas", help="species whose half-mass radius "
                                                                             "sets the field"),
              inclination: Optional[float] = typer.Option(None, help="degrees from face-on (default: the "
                                                                     "simulation's z axis)"),
              turbulence: float = typer.Option(5.0, help="turbulent line-width floor, km/s"),
              hi_model: str = typer.Option("br06", help="HI/H2 split: br06 or simple"),
              overwrite: Overwrite = False):
    """HI position-position-velocity cube of one galaxy, with moment maps (FITS)."""
    from ..atomic import check_output
    from ..maps.cube import galaxy_cube, parse_velocity_range, write_cube_fits
    from ..sim.sources import open_source

    check_output(out, overwrite)
    src = open_source(source, snapshot, [index] if snapshot is not None else None)
    galaxy = src.load(index, ("gas", "dm", "stars"), {"gas": ["Velocities", "NeutralHydrogenAbundance",
                                                             "InternalEnergy"]})
    cube = galaxy_cube(galaxy, size, channel_width, parse_velocity_range(velocity_range), fov, fov_ref, inclination,
                       turbulence, hi_model)
    path = write_cube_fits(cube, out, overwrite=overwrite)
    hi = cube.hi_mass_map.sum() * (2 * cube.half_width / size) ** 2
    typer.echo(f"wrote {path}: {len(cube.velocities)} channels of {channel_width:g} km/s, {size}^2 px of "
               f"{2 * cube.half_width / size:.3g} kpc; HI {hi:.3g} Msun, {100 * cube.lost_fraction:.2g}% outside "
               f"the velocity range")
    if cube.lost_fraction > 0.01:
        typer.echo(f"warning: {100 * cube.lost_fraction:.1f}% of the HI falls outside --velocity-range", err=True)
