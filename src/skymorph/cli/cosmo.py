"""The physics wing: cosmo sim / power, lensing maps / train-prior / massmap / benchmark."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from ..errors import SkymorphError
from .common import Overwrite, Parts, ProgressBar, RunDevice, Scheduler, cosmo_app, friendly, lensing_app


@cosmo_app.command("sim")
@friendly
def cosmo_sim(out: Path = typer.Option(..., help="output simulation file (.h5)"),
              mesh: int = typer.Option(64, help="PM mesh cells per side (positive, even)"),
              box: float = typer.Option(256.0, help="box side in Mpc/h"),
              pm_steps: int = typer.Option(10, help="PM kick-drift-kick steps from --a-init"),
              omega_m: float = typer.Option(0.3089, help="matter density Omega_m in (0, 1)"),
              sigma8: float = typer.Option(0.8159, help="sigma_8 (> 0)"),
              seed: int = typer.Option(0, help="random seed of the white noise"),
              particles: Optional[int] = typer.Option(None, help="particles per side (default: --mesh)"),
              a_out: str = typer.Option("0.25,0.5,1", help="comma-separated output scale factors"),
              a_init: float = typer.Option(0.1, help="starting scale factor (2LPT)"),
              overwrite: Overwrite = False,
              progress: ProgressBar = True):
    """Run a FastPM N-body simulation; density snapshots, final particles and parameters to HDF5."""
    from ..cosmo.linear import Cosmology
    from ..cosmo.products import run_simulation

    try:
        a_list = [float(a) for a in a_out.split(",")]
    except ValueError:
        raise SkymorphError(f"--a-out {a_out!r}: expected comma-separated scale factors") from None
    path = run_simulation(out, Cosmology(omega_m, sigma8), mesh, box, pm_steps, seed, particles, a_list, a_init,
                          overwrite, progress)
    typer.echo(f"wrote {path}")


@cosmo_app.command("power")
@friendly
def cosmo_power(sim: Path = typer.Argument(..., help="simulation file from 'skymorph cosmo sim'"),
                out: Path = typer.Option(..., help="output PNG"),
                overwrite: Overwrite = False):
    """Measured P(k) of each snapshot against linear theory times D(a)^2."""
    from ..cosmo.products import plot_power

    typer.echo(f"wrote {plot_power(sim, out, overwrite)}")


@cosmo_app.command("reconstruct")
@friendly
def cosmo_reconstruct(data: Path = typer.Option(..., help="observed final density: a 'cosmo sim' output or any HDF5 "
                                                     "file with /density and the forward model's attributes"),
                      out: Path = typer.Option(..., help="output reconstruction (.h5); a figure goes beside it"),
                      noise: float = typer.Option(0.1, help="Gaussian noise sd per mesh cell of the density"),
                      mock: bool = typer.Option(True, help="observe the file's density (tracers, noise drawn with "
                                                           "--seed, mask) and judge against it; --no-mock: the "
                                                           "file's density is the data as it is"),
                      tracers: Optional[float] = typer.Option(None, help="Poisson tracers per (Mpc/h)^3 (with --mock)"),
                      mask: Optional[Path] = typer.Option(None, help="survey mask .npy of the mesh's shape, "
                                                                     "nonzero = observed"),
                      optimizer: Literal["lbfgs", "adam"] = typer.Option("lbfgs", help="torch optimiser"),
                      anneal: str = typer.Option("1,0.5,0", help="residual smoothing radii in cells, one "
                                                                 "optimisation stage each"),
                      iterations: int = typer.Option(40, help="L-BFGS iterations or Adam steps per stage"),
                      lr: Optional[float] = typer.Option(None, help="Adam's learning rate (default 0.03)"),
                      start: Literal["zero", "wiener"] = typer.Option("zero", help="starting white noise"),
                      seed: int = typer.Option(0, help="seed of the mock's noise and tracers"),
                      box: Optional[float] = typer.Option(None, help="forward model box, Mpc/h (default: the file's)"),
                      mesh: Optional[int] = typer.Option(None, help="forward model PM mesh (default: the file's)"),
                      particles: Optional[int] = typer.Option(None, help="particles per side (default: the file's)"),
                      pm_steps: Optional[int] = typer.Option(None, help="PM steps (default: the file's)"),
                      omega_m: Optional[float] = typer.Option(None, help="Omega_m (default: the file's)"),
                      sigma8: Optional[float] = typer.Option(None, help="sigma_8 (default: the file's)"),
                      resume: bool = typer.Option(False, help="continue an interrupted reconstruction of OUT"),
                      overwrite: Overwrite = False,
                      progress: ProgressBar = True):
    """MAP initial conditions through the differentiable PM (annealed residual smoothing)."""
    from ..atomic import check_output
    from ..cosmo import reconstruct as rc

    try:
        radii = [float(r) for r in anneal.split(",")]
    except ValueError:
        raise SkymorphError(f"--anneal {anneal!r}: expected comma-separated radii in cells") from None
    if noise < 0:
        raise SkymorphError(f"--noise {noise:g}: must be >= 0")
    if tracers is not None and not (tracers > 0 and mock):
        raise SkymorphError("--tracers: needs a positive density and --mock (a given density is not resampled)")
    figure = out.with_suffix(".png")
    check_output(out, overwrite or resume)
    check_output(figure, overwrite or resume)
    ckpt = out.with_name(out.name + ".ckpt.npz")
    if ckpt.exists() and not resume:
        raise SkymorphError(f"{ckpt}: an interrupted reconstruction is there; --resume to continue it or remove it")
    obs = rc.read_observation(data, box=box, mesh=mesh, particles=particles, steps=pm_steps, Omega_m=omega_m,
                              sigma8=sigma8)
    window = None if mask is None else rc.read_mask(mask, obs.mesh)
    if mock:
        obs = rc.mock_observation(obs, noise, tracers, window, seed)
    else:
        obs.sigma, obs.mask = noise, window
    rec = rc.reconstruct(obs, optimizer, radii, iterations, start, lr, ckpt, progress)
    path = rc.write_reconstruction(out, obs, rec, overwrite=True)
    rc.plot_reconstruction(obs, rec, figure, overwrite=True)
    ckpt.unlink(missing_ok=True)
    line = f"wrote {path} and {figure}: {len(rec.history)} forward+backward passes, {rec.seconds:.0f} s"
    if "initial" in rec.metrics:
        k, r, _ = rec.metrics["initial"]
        line += "; initial r(k) " + ", ".join(f"{r[i]:.2f} at {k[i]:.2f}" for i in
                                               sorted({int(abs(k - q).argmin()) for q in (0.1, 0.2, 0.4)}))
    typer.echo(line + " h/Mpc")


ldl_app = typer.Typer(help="Lagrangian Deep Learning: physical displacement layers on PM particles.",
                      no_args_is_help=True)
cosmo_app.add_typer(ldl_app, name="ldl")


@ldl_app.command("fit")
@friendly
def ldl_fit(input: Path = typer.Option(..., help="'cosmo sim' output whose final particles are moved"),
            target: Path = typer.Option(..., help="file with the target field on the LDL mesh (/density)"),
            out: Path = typer.Option(..., help="output folder: ldl.json, metrics.json, ldl.png"),
            target_dataset: str = typer.Option("density", help="the target file's mesh dataset"),
            target_kind: Literal["matter", "field"] = typer.Option("matter", help="matter: the displaced "
                                                                   "particles' overdensity; field: plus the "
                                                                   "ReLU output layer"),
            layers: int = typer.Option(1, help="displacement layers (5 parameters each)"),
            loss: Optional[Literal["l1", "l2"]] = typer.Option(None, help="residual norm (default l2 for matter, "
                                                                         "l1 for a field)"),
            n_loss: float = typer.Option(1.0, help="residual filter 1 + k^-n_loss (large scales weighted up)"),
            max_iter: int = typer.Option(100, help="L-BFGS-B iterations"),
            mesh: Optional[int] = typer.Option(None, help="LDL mesh (default: the target's; must match it)"),
            test_input: Optional[Path] = typer.Option(None, help="an independent seed's input, to judge on"),
            test_target: Optional[Path] = typer.Option(None, help="the independent seed's target"),
            overwrite: Overwrite = False,
            progress: ProgressBar = True):
    """Fit LDL layers moving INPUT's particles towards TARGET's field (test sub-cube held out)."""
    from ..atomic import check_output
    from ..cosmo import ldl

    if (test_input is None) != (test_target is None):
        raise SkymorphError("--test-input and --test-target go together")
    check_output(out, overwrite)

    def pair(inp, tgt):
        pos, box, input_mesh = ldl.read_particles(inp)
        field, tbox = ldl.read_target(tgt, target_dataset)
        if not abs(box - tbox) <= 1e-6 * box:
            raise SkymorphError(f"{tgt}: box {tbox:g} Mpc/h, the input {inp} has {box:g} Mpc/h")
        want = mesh if mesh is not None else field.shape[0]
        if field.shape[0] != want:
            raise SkymorphError(f"{tgt}: /{target_dataset} is {field.shape[0]}^3, the LDL mesh is {want}^3 (--mesh)")
        return pos, field, box, input_mesh

    pos, field, box, input_mesh = pair(input, target)
    model = ldl.fit(pos, field, box, layers, target_kind, loss, n_loss, max_iter, progress)
    out.mkdir(parents=True, exist_ok=True)
    model.record.update({"input": str(input), "target": str(target), "input_mesh": input_mesh})
    metrics = {"test_region": ldl.judge(model, pos, field, box, region=True)}
    if test_input is not None:
        metrics["independent_seed"] = ldl.judge(model, *pair(test_input, test_target)[:3])
    model.save(out)
    typer.echo(ldl.write_metrics(out, metrics, model))


@ldl_app.command("apply")
@friendly
def ldl_apply(model: Path = typer.Argument(..., help="folder of 'cosmo ldl fit'"),
              input: Path = typer.Option(..., help="'cosmo sim' output whose final particles are moved"),
              out: Path = typer.Option(..., help="output field (.h5, /density as 'cosmo sim' writes it)"),
              overwrite: Overwrite = False):
    """Paint INPUT's particles through fitted LDL layers."""
    from ..cosmo import ldl

    fitted = ldl.LDLModel.load(model)
    pos, box, _ = ldl.read_particles(input)
    typer.echo(f"wrote {ldl.write_field(out, ldl.apply(fitted, pos, box, input), fitted, input, overwrite)}")


@ldl_app.command("galaxies")
@friendly
def ldl_galaxies(data: Path = typer.Option(..., help="map store whose source cutouts hold the DM particles"),
                 target: str = typer.Option(..., help="domain to paint from the dark matter (e.g. star, gas)"),
                 out: Path = typer.Option(..., help="output folder: ldl.json, results.md, results.json"),
                 layers: int = typer.Option(2, help="displacement layers (5 parameters each) before the output "
                                                    "layer (3)"),
                 fit_galaxies: int = typer.Option(48, help="train galaxies fitted, one view each"),
                 n_loss: float = typer.Option(1.0, help="residual filter 1 + (k/k_f)^-n_loss"),
                 max_iter: int = typer.Option(50, help="L-BFGS-B iterations"),
                 against: str = typer.Option("", help="comma-separated trained dm -> TARGET run folders to "
                                                      "judge beside (e.g. a U-Net)"),
                 seed: int = typer.Option(0, help="bootstrap seed"),
                 overwrite: Overwrite = False,
                 progress: ProgressBar = True):
    """LDL layers paint TARGET from each galaxy's DM particles; fitted on train, judged on test."""
    from ..atomic import check_output
    from ..evaluate import ldl_galaxies as lg

    check_output(out, overwrite)
    if layers < 1 or fit_galaxies < 1 or max_iter < 1:
        raise SkymorphError("--layers, --fit-galaxies and --max-iter must be positive")
    runs = [Path(r) for r in against.split(",") if r]
    for r in runs:
        if not r.is_dir():
            raise SkymorphError(f"--against {r}: no such run folder")
    model = lg.fit_galaxies(lg.load_views(data, target, "train", fit_galaxies), layers, n_loss, max_iter, progress)
    result = lg.compare(model, lg.load_views(data, target, "test"), data, runs, seed)
    out.mkdir(parents=True, exist_ok=True)
    typer.echo(lg.write_comparison(out, result, model))


@lensing_app.command("maps")
@friendly
def lensing_maps(out: Path = typer.Option(..., help="output map file (.h5); chunks go to OUT.parts/ until done"),
                 simulator: Literal["pm", "lognormal"] = typer.Option(
                     "pm", help="pm: Born convergence of PM runs (accurate); lognormal: shifted-lognormal fields "
                                "with the Limber C_ell (fast)"),
                 omega_m: str = typer.Option("0.3089", help="Omega_m, or a range lo:hi drawn per map"),
                 sigma8: str = typer.Option("0.8159", help="sigma_8, or a range lo:hi drawn per map"),
                 n_maps: int = typer.Option(1, help="number of maps (pm: one PM run each)"),
                 field_deg: float = typer.Option(5.0, help="field side in degrees"),
                 npix: int = typer.Option(128, help="pixels per side"),
                 z_source: float = typer.Option(1.0, help="source redshift"),
                 seed: int = typer.Option(0, help="master seed: every map's parameters and seed are drawn from it"),
                 box: Optional[float] = typer.Option(None, help="pm: box side in Mpc/h (default 256)"),
                 mesh: Optional[int] = typer.Option(None, help="pm: mesh (and particles) per side (default 64)"),
                 pm_steps: Optional[int] = typer.Option(None, help="pm: kick-drift-kick steps per map (default 10)"),
                 n_gal: float = typer.Option(30.0, help="galaxies per arcmin^2 (shape noise)"),
                 sigma_e: float = typer.Option(0.26, help="ellipticity dispersion per component"),
                 mask: Optional[Path] = typer.Option(None, help="mask (.npy or .fits, npix x npix, 1 = observed)"),
                 workers: int = typer.Option(1, help="processes making maps (the output does not depend on it)"),
                 scheduler: Scheduler = None,
                 parts: Parts = None,
                 overwrite: Overwrite = False,
                 progress: ProgressBar = True):
    """Convergence maps (PM Born or shifted lognormal) with KS shear, shape noise and an optional mask;
    resumable: rerun a killed command to finish it."""
    from ..cosmo.products import make_kappa_maps

    pm_only = {"--box": box, "--mesh": mesh, "--pm-steps": pm_steps}
    if simulator != "pm" and any(v is not None for v in pm_only.values()):
        given = ", ".join(k for k, v in pm_only.items() if v is not None)
        raise SkymorphError(f"{given}: PM options; the {simulator} simulator has no PM run")
    box = 256.0 if box is None else box
    mesh = 64 if mesh is None else mesh
    pm_steps = 10 if pm_steps is None else pm_steps
    path = make_kappa_maps(out, omega_m, sigma8, n_maps, field_deg, npix, z_source, seed, box, mesh, pm_steps, n_gal,
                           sigma_e, mask, overwrite=overwrite, progress=progress, simulator=simulator, workers=workers,
                           scheduler=scheduler, parts_dir=parts)
    typer.echo(f"wrote {path}")


@lensing_app.command("train-prior")
@friendly
def lensing_train_prior(data: Optional[Path] = typer.Option(None, help="convergence maps (kappa.h5 of 'lensing maps')"),
                        out: Path = typer.Option(..., help="run folder (prior.yaml, checkpoints, logs)"),
                        max_epochs: Optional[int] = typer.Option(None, help="epochs (default 30; with --max-minutes a "
                                                                            "cap of 1000)"),
                        max_minutes: Optional[float] = typer.Option(None, help="wall-clock budget in minutes"),
                        base_channels: int = typer.Option(16, help="U-Net width (16, not train's 32: one smooth "
                                                                   "convergence channel needs less)"),
                        backbone: Literal["unet", "dim"] = typer.Option("unet", help="score network: unet or dim "
                                                                                     "(Diffusion Mamba, width 144, "
                                                                                     "9 blocks, patch 4)"),
                        residual: Literal["damped", "wiener", "white"] = typer.Option(
                            "wiener", help="the network residual's scale per Fourier mode: wiener, by "
                                           "sigma^2 / (C + sigma^2) (moves a mode by sigma in kappa); damped, by "
                                           "sigma / sqrt(C + sigma^2) (by at most its width); or white (the "
                                           "earlier form; unstable at ~1 arcmin pixels)"),
                        batch_size: int = typer.Option(32, help="maps per batch"),
                        seed: int = typer.Option(0, help="random seed"),
                        device: RunDevice = "auto",
                        deterministic: bool = typer.Option(True, help="deterministic kernels (reproducible on the CPU; "
                                                                      "some CUDA kernels have none)"),
                        resume: bool = typer.Option(False, help="continue an interrupted or finished run in OUT"),
                        overwrite: bool = typer.Option(False, help="replace an existing run folder"),
                        progress: ProgressBar = True):
    """Train the convergence score prior (denoising score matching, residual to the Gaussian score)."""
    from ..cosmo.prior import gain_line, train_prior

    if data is None and not resume:
        raise SkymorphError("train-prior needs --data kappa.h5 (or --resume)")
    opts = {} if resume else {"batch_size": batch_size, "seed": seed, "deterministic": deterministic,
                              "backbone": backbone, "residual": residual,
                              **({"base_channels": base_channels} if backbone == "unet" else {})}
    run = train_prior(data, out, max_epochs, max_minutes, resume, overwrite, progress, device, **opts)
    typer.echo(f"trained {run}: {gain_line(run)}")


@lensing_app.command("massmap")
@friendly
def lensing_massmap(shear: Path = typer.Option(..., help="shear file (/gamma_obs, /mask; e.g. a kappa.h5)"),
                    estimator: Literal["ks", "wiener", "posterior", "tweedie"] = typer.Option(
                        "posterior", help="Kaiser-Squires, Wiener filter, score-prior posterior samples, or the "
                                          "score prior's posterior mean and std by Tweedie's formulas"),
                    out: Path = typer.Option(..., help="output result.h5"),
                    prior: Optional[Path] = typer.Option(None, help="prior run folder (train-prior)"),
                    samples: int = typer.Option(8, help="posterior samples per map (tweedie: completions of the "
                                                        "masked shear averaged)"),
                    smoothing: Optional[float] = typer.Option(None, help="KS Gaussian smoothing in arcmin "
                                                                          "(default: the prior run's choice)"),
                    maps: Optional[str] = typer.Option(None, help="maps of the file: a:b or i,j,k (default all)"),
                    noise_levels: int = typer.Option(30, help="posterior and tweedie's completions: noise levels "
                                                               "of the annealing"),
                    langevin_steps: int = typer.Option(3, help="posterior and tweedie's completions: Langevin "
                                                                "steps per noise level"),
                    seed: int = typer.Option(0, help="random seed"),
                    device: RunDevice = "auto",
                    overwrite: Overwrite = False,
                    progress: ProgressBar = True):
    """Convergence maps from shear: Kaiser-Squires, Wiener filter, score-prior posterior samples or Tweedie mean."""
    from ..cosmo.massbench import run_massmap

    path, info = run_massmap(shear, estimator, out, prior, samples, smoothing, maps, noise_levels, langevin_steps, seed,
                             overwrite, progress, device)
    if estimator == "posterior":
        typer.echo(f"{info['seconds_per_sample']:.3g} s and {info['score_evaluations_per_sample']} score evaluations per sample")
    elif estimator == "tweedie":
        typer.echo(f"{info['seconds_per_map']:.3g} s per map ({info['draws']} completions, one score evaluation each "
                   f"for the mean and {info['probes']} vector-Jacobian products for the std)")
    typer.echo(f"wrote {path}")


@lensing_app.command("benchmark")
@friendly
def lensing_benchmark(data: Path = typer.Option(..., help="held-out convergence maps with shear (kappa.h5)"),
                      prior: Path = typer.Option(..., help="prior run folder (train-prior)"),
                      out: Path = typer.Option(..., help="folder for results.json/.md and massmap.png"),
                      samples: int = typer.Option(16, help="posterior samples per map (and Tweedie's completions)"),
                      maps: Optional[str] = typer.Option(None, help="maps of the file: a:b or i,j,k (default all)"),
                      noise_levels: int = typer.Option(30, help="noise levels of the annealing"),
                      langevin_steps: int = typer.Option(3, help="Langevin steps per noise level"),
                      seed: int = typer.Option(0, help="random seed"),
                      device: RunDevice = "auto",
                      overwrite: Overwrite = False,
                      progress: ProgressBar = True):
    """KS vs Wiener vs posterior mean on held-out maps: RMSE, Pearson r, calibration, cost, figure."""
    from ..cosmo.massbench import results_markdown, run_benchmark

    typer.echo(results_markdown(run_benchmark(data, prior, out, samples, maps, noise_levels, langevin_steps, seed,
                                                  overwrite, progress, device)))
    typer.echo(f"wrote {out / 'results.md'}, {out / 'results.json'} and {out / 'massmap.png'}")
