"""Speed of the inference wing on this machine.

Prints maps per second of each convergence simulator (PM and lognormal at 64^2 and 128^2, through
``make_kappa_maps``, file writing included), the training seconds of each summary + NPE on GRF
fields, and the seconds for 10^4 posterior samples of one observation; beside the reference run in
the same process: sbi's own default, NPE with no embedding on the raw pixels.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/inference.py [--train 2000] [--npix 32] [--pm-maps 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skymorph.cosmo.products import make_kappa_maps
from skymorph.infer.data import load_simulations
from skymorph.infer.estimators import NPE
from skymorph.infer.grf import write_grf_file
from skymorph.infer.run import InferConfig, load_inference, train_inference

BOX = {"A": (0.5, 2.0), "n": (-3.0, -1.0)}


def simulator_rates(tmp: Path, pm_maps: int, ln_maps: int) -> list[tuple[str, int, float]]:
    rows = []
    for npix in (64, 128):
        for sim, n in (("pm", pm_maps), ("lognormal", ln_maps)):
            t = time.perf_counter()
            make_kappa_maps(tmp / f"{sim}{npix}.h5", "0.2:0.4", "0.6:1.0", n, npix=npix, seed=1, simulator=sim,
                            progress=False, overwrite=True)
            rows.append((f"{sim} {npix}^2", n, n / (time.perf_counter() - t)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=2000, help="GRF training fields")
    ap.add_argument("--npix", type=int, default=32)
    ap.add_argument("--pm-maps", type=int, default=2)
    ap.add_argument("--lognormal-maps", type=int, default=2000)
    ap.add_argument("--cnn-epochs", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print("| simulator | maps | maps/s |\n|---|---|---|")
        rates = simulator_rates(tmp, args.pm_maps, args.lognormal_maps)
        for name, n, r in rates:
            print(f"| {name} | {n} | {r:.3g} |")
        for npix in (64, 128):
            ln = next(r for nm, _, r in rates if nm == f"lognormal {npix}^2")
            pm = next(r for nm, _, r in rates if nm == f"pm {npix}^2")
            print(f"lognormal / PM at {npix}^2: {ln / pm:.0f}x")

        write_grf_file(tmp / "train.h5", args.train, args.npix, BOX, seed=1)
        write_grf_file(tmp / "obs.h5", 1, args.npix, BOX, seed=2)
        obs = load_simulations(tmp / "obs.h5", ["A", "n"], "field")
        print("\n| run | train s | s per 10^4 samples |\n|---|---|---|")
        base = {"data": tmp / "train.h5", "maps": "field", "params": ["A", "n"]}
        timings = {}
        for name, extra in (("pk + NPE", {}), ("pk + Gaussian/emcee", {"estimator": "gaussian"}),
                            ("cnn (VMIM) + NPE", {"summary": "cnn", "max_epochs": args.cnn_epochs}),
                            ("cnn+pk (VMIM) + NPE", {"summary": "cnn+pk", "max_epochs": args.cnn_epochs})):
            t = time.perf_counter()
            out = train_inference(InferConfig.validated({**base, **extra}), tmp / name.replace(" ", "_"),
                                  progress=False)
            train_s = time.perf_counter() - t
            run = load_inference(out)
            x = run.summarise(run.observe(obs, 0))[0]
            run.sample(x, 100, 0)  # warm-up
            t = time.perf_counter()
            run.sample(x, 10_000, 1)
            timings[name] = (train_s, time.perf_counter() - t)
            print(f"| {name} | {train_s:.1f} | {timings[name][1]:.3f} |")
        # sbi's default: NPE on the raw pixels, no embedding network
        sims = load_simulations(tmp / "train.h5", ["A", "n"], "field")
        t = time.perf_counter()
        raw = NPE(BOX).fit(sims.theta, sims.maps.reshape(len(sims.maps), -1), seed=0)
        raw_train = time.perf_counter() - t
        t = time.perf_counter()
        raw.sample(obs.maps.reshape(1, -1)[0], 10_000, 1)
        raw_sample = time.perf_counter() - t
        print(f"| sbi default (NPE, raw {args.npix}^2 pixels) | {raw_train:.1f} | {raw_sample:.3f} |")
        pk_train, pk_sample = timings["pk + NPE"]
        print(f"\npk + NPE against sbi's default: training time {pk_train / raw_train:.2f}x sbi's, "
              f"sampling {raw_sample / pk_sample:.1f}x faster")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
