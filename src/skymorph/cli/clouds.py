"""Point clouds: clouds build, train, translate, evaluate."""
from __future__ import annotations

from pathlib import Path
from typing import List, Literal, Optional

import typer

from ..errors import SkymorphError
from .common import Overwrite, ProgressBar, Scheduler, Split, clouds_app, friendly, number_list, open_galaxies

Species = Literal["dm", "gas", "star"]


@clouds_app.command("build")
@friendly
def clouds_build(source: Path = typer.Argument(..., help="folder of cutouts with catalog.hdf5, or a TNG basePath"),
                 out: Path = typer.Option(..., help="output cloud store (.h5)"),
                 from_: Species = typer.Option("dm", "--from", help="source species"),
                 to: Species = typer.Option("gas", help="target species"),
                 features: str = typer.Option("pos", help="point features: pos, pos,mass, pos,vel or pos,vel,mass"),
                 n_in: int = typer.Option(4096, help="source points per view"),
                 n_out: int = typer.Option(4096, help="target points per view"),
                 sampling: Literal["random", "fps", "mass"] = typer.Option(
                     "mass", help="subsampling: random, fps (farthest point) or mass (probability ~ mass)"),
                 replace: bool = typer.Option(False, help="sample with replacement where a view has fewer "
                                                          "particles than asked (random and mass only)"),
                 rotations: int = typer.Option(3, help="random rotations per galaxy (plus the unrotated view)"),
                 fov: float = typer.Option(1.0, help="cube half-width in half-mass radii of --fov-ref"),
                 fov_ref: Species = typer.Option("gas", help="species whose half-mass radius sets the cube"),
                 snapshot: Optional[int] = typer.Option(None, help="snapshot number (TNG simulation folder)"),
                 subhalos: Optional[str] = typer.Option(None, help="subhalo ids, e.g. 0-99 or 3,5,7"),
                 seed: int = typer.Option(0, help="random seed of rotations, sampling and splits (as maps build)"),
                 splits: str = typer.Option("0.8,0.1,0.1", help="train,val,test fractions of the galaxies"),
                 workers: int = typer.Option(1, help="worker processes"),
                 scheduler: Scheduler = None,
                 overwrite: Overwrite = False,
                 progress: ProgressBar = True):
    """Subsample each galaxy's particles into paired source and target clouds (the views of maps build)."""
    from ..clouds.store import build_clouds

    path = build_clouds(open_galaxies(source, snapshot, subhalos), out, from_, to, features, n_in, n_out, sampling, rotations,
                        fov, fov_ref, seed, number_list(splits, "--splits", float), replace, overwrite, progress,
                        workers, scheduler)
    typer.echo(f"wrote {path}")


@clouds_app.command("train")
@friendly
def clouds_train(data: Optional[Path] = typer.Option(None, help="cloud store (.h5)"),
                 out: Path = typer.Option(..., help="run folder"),
                 max_epochs: Optional[int] = typer.Option(None, help="epochs (default 30; with --max-minutes a cap)"),
                 max_minutes: Optional[float] = typer.Option(None, help="wall-clock budget in minutes"),
                 batch_size: Optional[int] = typer.Option(None, help="views per batch (default 8)"),
                 points_per_step: Optional[int] = typer.Option(None, help="target points per view and step "
                                                                          "(default 1024, or all if fewer)"),
                 lr: Optional[float] = typer.Option(None, help="Adam learning rate (default 1e-3)"),
                 width: Optional[int] = typer.Option(None, help="network width (default 128)"),
                 steps: Optional[int] = typer.Option(None, help="default Heun steps of the sampler (default 32)"),
                 augment: Optional[bool] = typer.Option(None, "--augment/--no-augment",
                                                        help="random rotations of each view (default on)"),
                 seed: Optional[int] = typer.Option(None, help="random seed (default 0)"),
                 resume: bool = typer.Option(False, help="continue an interrupted run in OUT"),
                 overwrite: Overwrite = False,
                 progress: ProgressBar = True):
    """Train the conditional flow: target clouds drawn point by point given the source cloud."""
    from ..clouds.train import train_cloud_flow

    given = {"max_epochs": max_epochs, "max_minutes": max_minutes, "batch_size": batch_size,
             "points_per_step": points_per_step, "lr": lr, "width": width, "steps": steps, "augment": augment,
             "seed": seed}
    options = {k: v for k, v in given.items() if v is not None}
    if not resume and data is None:
        raise SkymorphError("clouds train needs --data clouds.h5")
    run = train_cloud_flow(data, out, resume, overwrite, progress, **options)
    typer.echo(f"trained {run}")


@clouds_app.command("translate")
@friendly
def clouds_translate(run: Path = typer.Argument(..., help="trained clouds run folder"),
                     data: Path = typer.Option(..., help="cloud store (.h5)"),
                     out: Path = typer.Option(..., help="generated clouds (.h5)"),
                     split: Split = typer.Option("test", help="split whose source clouds are translated"),
                     points: Optional[int] = typer.Option(None, help="points per generated cloud (default: the "
                                                                     "store's --n-out; any number)"),
                     steps: Optional[int] = typer.Option(None, help="Heun steps (default: the run's)"),
                     seed: int = typer.Option(0, help="random seed"),
                     overwrite: Overwrite = False,
                     progress: ProgressBar = True):
    """Draw target clouds for every view of a split: points in half-widths, weights in Msun."""
    import h5py

    from ..atomic import atomic_path, check_output
    from ..clouds.store import CloudStore
    from ..evaluate.clouds import generate

    check_output(out, overwrite)
    if points is not None and points < 1 or steps is not None and steps < 1:
        raise SkymorphError(f"--points and --steps must be positive, got {points} and {steps}")
    with CloudStore(data) as store:
        g = generate(run, store, split, points, steps, seed, progress)
        hw = store.meta("half_width_kpc", g["index"])
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            f["points"], f["weight"], f["log_mass"], f["index"], f["half_width_kpc"] = (
                g["points"], g["weight"], g["log_mass"], g["index"], hw)
            f.attrs.update({"columns": ",".join(g["columns"]), "steps": g["steps"], "nfe": g["nfe"], "seed": seed,
                            "split": split, "store": str(Path(data).resolve()), "run": str(Path(run).resolve()),
                            "seconds_per_view": g["seconds_per_view"]})
    typer.echo(f"wrote {out}: {len(g['index'])} clouds of {g['points'].shape[1]} points, "
               f"{g['seconds_per_view']:.3g} s per cloud")


@clouds_app.command("evaluate")
@friendly
def clouds_evaluate(runs: List[Path] = typer.Argument(..., help="trained clouds run folder(s): one per training seed"),
                    data: Path = typer.Option(..., help="cloud store (.h5)"),
                    out: Path = typer.Option(..., help="folder for metrics.json, results.md, clouds.png"),
                    split: Split = typer.Option("test", help="split to judge"),
                    points: Optional[int] = typer.Option(None, help="points per generated cloud (default --n-out)"),
                    steps: Optional[int] = typer.Option(None, help="Heun steps (default: the run's)"),
                    maps: Optional[Path] = typer.Option(None, help="map store of the same galaxies and views: judge "
                                                                   "the clouds in projection too"),
                    map_run: Optional[List[Path]] = typer.Option(None, help="2D translator run(s) on --maps (the map "
                                                                            "route; repeat for seeds)"),
                    seed: int = typer.Option(0, help="random seed of sampling and bootstrap"),
                    overwrite: Overwrite = False,
                    progress: ProgressBar = True):
    """Judge generated clouds against the true ones and the rescaled source, with intervals over galaxies."""
    from ..atomic import check_output
    from ..evaluate.clouds import evaluate_clouds, write_cloud_evaluation

    if map_run and maps is None:
        raise SkymorphError("--map-run needs --maps (the store the map run translates)")
    check_output(out / "metrics.json", overwrite)  # before the work, not after it
    res = evaluate_clouds(runs, data, split, points, steps, seed, maps, map_run or (), progress)
    write_cloud_evaluation(res, out, overwrite)
    for v in res["verdicts"] + res.get("maps", {}).get("verdicts", []):
        typer.echo(f"{v['method']} vs {v['reference']} on {v['metric']}: {v['verdict']} "
                   f"({v['diff']:+.3g} [{v['lo']:+.3g}, {v['hi']:+.3g}], {v['units']} galaxies)")
    typer.echo(f"wrote {out / 'results.md'}")
