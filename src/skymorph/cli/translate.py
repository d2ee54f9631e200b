"""Commands of the translation wing: train, translate, evaluate, benchmark."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from ..errors import SkymorphError
from .common import (Device, Overwrite, ProgressBar, Reverse, RunDevice, Sampler,
                     SamplerSteps, Split, app, friendly, number_list)


@app.command("train")
@friendly
def train_cmd(out: Path = typer.Option(..., help="run folder (checkpoints, logs, resolved config)"),
              method: Optional[str] = typer.Option(None, help="baseline, unet, pix2pix, score_sde, indi, ..."),
              data: Optional[Path] = typer.Option(None, help="map store (.h5)"),
              source: Optional[str] = typer.Option(None, help="source domain(s), e.g. gas or gas,temp"),
              target: Optional[str] = typer.Option(None, help="target domain"),
              config: Optional[Path] = typer.Option(None, help="YAML config (options given here override it)"),
              max_epochs: Optional[int] = typer.Option(None, help="epochs (default 30; with --max-minutes a cap of 1000)"),
              max_minutes: Optional[float] = typer.Option(None, help="wall-clock budget in minutes"),
              batch_size: Optional[int] = typer.Option(None, help="maps per batch (default 16)"),
              lr: Optional[float] = typer.Option(None, help="learning rate (default: the method's)"),
              seed: Optional[int] = typer.Option(None, help="random seed (default 0)"),
              base_channels: Optional[int] = typer.Option(None, help="U-Net width (default 32)"),
              backbone: Optional[Literal["unet", "dim"]] = typer.Option(
                  None, help="denoiser of score_sde / indi: unet or dim (Diffusion Mamba; default unet)"),
              dim_width: Optional[int] = typer.Option(None, help="DiM token width (default 144)"),
              dim_blocks: Optional[int] = typer.Option(None, help="DiM Mamba blocks, odd (default 9)"),
              patch_size: Optional[int] = typer.Option(None, help="DiM pixels per token side (default 4)"),
              sampler: Optional[str] = typer.Option(None, help="default sampler of a diffusion-family run"),
              ema: Optional[bool] = typer.Option(None, "--ema/--no-ema", help="EMA of generator weights"),
              devices: Optional[int] = typer.Option(None, help="devices (GPUs, or CPU processes)"),
              strategy: Optional[str] = typer.Option(None, help="auto, ddp, ddp_spawn, ..."),
              accelerator: Optional[Literal["auto", "cpu", "gpu"]] = typer.Option(None, help="Lightning accelerator "
                                                                                          "(default auto)"),
              precision: Optional[Literal["32-true", "16-mixed", "bf16-mixed"]] = typer.Option(
                  None, help="numerical precision (default 32-true)"),
              deterministic: Optional[bool] = typer.Option(None, "--deterministic/--no-deterministic",
                                                           help="deterministic kernels (default on: reproducible on "
                                                                "the CPU; some CUDA kernels have none)"),
              resume: bool = typer.Option(False, help="continue an interrupted run in OUT"),
              overwrite: bool = typer.Option(False, help="replace an existing run folder"),
              progress: ProgressBar = True):
    """Train a translation method through PyTorch Lightning (checkpoint every epoch, --resume)."""
    from ..methods.config import TrainConfig
    from ..methods.training import CONFIG_NAME, train
    from ..training.run import summary_line, training_record

    given = {"method": method, "data": data, "source": source, "target": target, "max_epochs": max_epochs,
             "max_minutes": max_minutes, "batch_size": batch_size, "lr": lr, "seed": seed,
             "base_channels": base_channels, "backbone": backbone, "dim_width": dim_width, "dim_blocks": dim_blocks,
             "patch_size": patch_size, "sampler": sampler, "ema": ema, "devices": devices, "strategy": strategy,
             "accelerator": accelerator, "precision": precision, "deterministic": deterministic}
    if resume:
        saved = TrainConfig.load(out / CONFIG_NAME)
        asked = {k: given[k] for k in ("method", "source", "target") if given[k] is not None}
        check = TrainConfig.build(saved.model_dump(), **asked)  # the store (--data) is checked by fingerprint
        for key in asked:
            if getattr(check, key) != getattr(saved, key):
                raise SkymorphError(f"{out}: --resume of a run trained with {key} = {getattr(saved, key)}, "
                                    f"not {getattr(check, key)}")
        cfg = TrainConfig.build(saved.model_dump(), max_epochs=max_epochs, max_minutes=max_minutes, data=data)
    elif config is not None:
        cfg = TrainConfig.load(config, **given)
    else:
        missing = [k for k in ("method", "data", "source", "target") if given[k] is None]
        if missing:
            raise SkymorphError(f"train needs --{missing[0]} (or a --config file that sets it)")
        cfg = TrainConfig.build({}, **given)
    run = train(cfg, out, resume=resume, overwrite=overwrite, progress=progress)
    typer.echo(f"trained {run}: {summary_line(training_record(run))}")


@app.command("translate")
@friendly
def translate_cmd(run: Path = typer.Argument(..., help="trained run folder"),
                  out: Path = typer.Option(..., help="output predictions (.h5, or .fits with --fits)"),
                  data: Optional[Path] = typer.Option(None, help="map store to translate a split of"),
                  split: Split = typer.Option("test", help="split to translate / evaluate"),
                  fits_in: Optional[Path] = typer.Option(None, "--fits", help="translate one FITS map instead"),
                  steps: SamplerSteps = None,
                  sampler: Sampler = None,
                  samples: int = typer.Option(1, help="samples per input (stochastic methods): mean and std written"),
                  seed: int = typer.Option(0, help="random seed"),
                  reverse: Reverse = False,
                  device: RunDevice = "auto",
                  overwrite: Overwrite = False,
                  progress: ProgressBar = True):
    """Translate maps with a trained run; predictions are written in physical units."""
    from ..data.store import MapStore
    from ..methods.apply import translate_fits, translate_store
    from ..methods.base import check_request
    from ..methods.training import load_run

    check_request(steps, samples)
    cfg, method = load_run(run, reverse=reverse, device=device)
    method.set_sampler(sampler or cfg.sampler)
    if fits_in is not None:
        typer.echo(f"wrote {translate_fits(cfg, method, fits_in, out, steps, seed, overwrite)}")
    elif data is not None:
        with MapStore(data) as store:
            path = translate_store(cfg, method, store, split, out, steps, seed, samples, overwrite, progress)
            typer.echo(f"wrote {path}")
    else:
        raise SkymorphError("translate needs --data maps.h5 (with --split) or --fits map.fits")


@app.command("evaluate")
@friendly
def evaluate_cmd(run: Path = typer.Argument(..., help="trained run folder"),
                 data: Path = typer.Option(..., help="map store (.h5)"),
                 out: Path = typer.Option(..., help="folder for metrics.json and figures"),
                 split: Split = typer.Option("test", help="split to translate / evaluate"),
                 steps: SamplerSteps = None,
                 sampler: Sampler = None,
                 samples: int = typer.Option(1, help="samples per input; >= 2 adds their calibration"),
                 seed: int = typer.Option(0, help="random seed"),
                 reverse: Reverse = False,
                 device: RunDevice = "auto",
                 overwrite: Overwrite = False,
                 progress: ProgressBar = True):
    """Physics-aware metrics of a run on a split (physical units), with figures."""
    from ..evaluate.runner import evaluate_run, write_evaluation

    ev = evaluate_run(run, data, split, steps, seed, samples, sampler, reverse, device=device, progress=progress)
    write_evaluation(ev, out, overwrite)
    typer.echo(f"{ev.info['method']} {'+'.join(ev.info['source'])}->{ev.info['target']} on {ev.info['n_views']} "
               f"{split} views: " + ", ".join(f"{k} {ev.summary[k]['median']:.3g}"
                                               for k in ("mse_log", "ssim", "pk_err_dex", "pdf_w1")))
    typer.echo(f"wrote {out / 'metrics.json'} and figures")


@app.command("benchmark")
@friendly
def benchmark_cmd(data: Path = typer.Option(..., help="map store (.h5)"),
                  out: Path = typer.Option(..., help="folder for runs, results.json/.md and report.html"),
                  pairs: str = typer.Option("gas:hi,gas:dm,gas:star", help="source:target pairs"),
                  methods: str = typer.Option("baseline,unet,pix2pix", help="methods to compare; "
                                                              "score_sde@dim: on the Diffusion Mamba backbone"),
                  max_minutes: Optional[float] = typer.Option(None, help="training budget per method, pair and seed"),
                  max_epochs: Optional[int] = typer.Option(None, help="epochs per run (default 30; with --max-minutes "
                                                                      "a cap of 1000)"),
                  base_channels: Optional[int] = typer.Option(None, help="U-Net width (default: train's; "
                                                                         "not of @dim entries)"),
                  seed: int = typer.Option(0, help="first training seed; also seeds sampling and the bootstrap"),
                  seeds: int = typer.Option(1, help="training seeds per method and pair (seed, seed + 1, ...)"),
                  steps: Optional[str] = typer.Option(None, help="quality vs cost: step counts, e.g. 1,2,5,10,20"),
                  samplers: Optional[str] = typer.Option(None, help="samplers of the sweep (default: all that fit)"),
                  samples: int = typer.Option(1, help="samples per map for the calibration of stochastic methods"),
                  sweep_views: Optional[int] = typer.Option(None, help="test views of the sweep (default all)"),
                  max_nfe: Optional[int] = typer.Option(None, help="evaluate each stochastic method at the most "
                                                                   "sampler steps (up to its default) within this "
                                                                   "many network calls per sample"),
                  retrain: bool = typer.Option(False, help="train every run afresh, even where one with the same "
                                                           "config and store exists"),
                  overwrite: bool = typer.Option(False, help="replace existing results (runs are reused by key)"),
                  device: Device = typer.Option("auto", help="where training and evaluation run (auto: CUDA when "
                                                             "available)"),
                  progress: ProgressBar = True):
    """Train (or reuse) every method for every pair and seed under one budget; verdicts with intervals
    over test galaxies, tables and an HTML report."""
    from ..evaluate.benchmark import parse_pairs, run_benchmark
    from ..evaluate.report import cost_answers, verdict_lines

    options = {"accelerator": {"cuda": "gpu"}.get(device, device),
               **({} if base_channels is None else {"base_channels": base_channels})}
    res = run_benchmark(data, parse_pairs(pairs), [m.strip() for m in methods.split(",")], out, max_minutes,
                        max_epochs, options, seed, progress, number_list(steps, "--steps") if steps else None,
                        [s.strip() for s in samplers.split(",")] if samplers else None, samples, sweep_views,
                        seeds, retrain, overwrite, device, max_nfe)
    for name, pair in res["pairs"].items():
        for line in verdict_lines(name, pair) + cost_answers(name, pair["methods"]):
            typer.echo(line)
    typer.echo(f"report: {out / 'report.html'} (tables: {out / 'results.md'})")


@app.command("benchmark-curve")
@friendly
def benchmark_curve_cmd(folders: list[Path] = typer.Argument(..., help="benchmark output folders, one per budget"),
                        out: Path = typer.Option(..., help="folder for curve.json/.md/.png"),
                        pair: Optional[str] = typer.Option(None, help="pair to plot, e.g. gas-star (default: the "
                                                                      "only pair in common)"),
                        metrics: Optional[str] = typer.Option(None, help="metrics (default mse_log,pdf_w1,pk_err_dex)"),
                        reference: str = typer.Option("unet", help="method the benchmark judged the others against"),
                        overwrite: Overwrite = False):
    """Quality versus training budget from benchmarks run under several --max-minutes (or --max-epochs):
    medians with intervals per budget, differences to the reference and where their trend crosses zero."""
    from ..evaluate.curve import budget_curve, curve_markdown

    res = budget_curve(folders, out, pair, [m.strip() for m in metrics.split(",")] if metrics else None, reference,
                       overwrite)
    typer.echo(curve_markdown(res))
    typer.echo(f"wrote {out / 'curve.md'}, {out / 'curve.json'} and {out / 'curve.png'}")
