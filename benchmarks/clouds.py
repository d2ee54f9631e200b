"""Benchmark: point clouds. Chamfer (torch cdist, chunked), exact EMD (POT) and Sinkhorn (geomloss)
time against cloud size, each as a ratio to the same judge at 1000 points in the same process; the
cloud flow's points generated per second (per network call and per finished cloud of 32 Heun steps)
with the 1000-point throughput as reference; and the memory of the model (weights, and the peak while
encoding 10^4 input points and generating).

    python benchmarks/clouds.py [--sizes 1000,3000,10000,30000,100000] [--emd-max 5000] [--sinkhorn-max 20000]

Exact EMD is quadratic in memory and about cubic in time: it stops at --emd-max points; the tensorized
Sinkhorn at --sinkhorn-max (its N x M cost matrix).
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from skymorph.clouds import metrics as cm
from skymorph.clouds.model import CloudFlow


def timed(fn, repeat: int = 1) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,3000,10000,30000,100000")
    ap.add_argument("--emd-max", type=int, default=5000)
    ap.add_argument("--sinkhorn-max", type=int, default=20000)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    cloud = lambda n: rng.normal(size=(n, 3)) * 0.3  # noqa: E731
    print(f"torch threads: {torch.get_num_threads()}")
    print("cloud flow (width 128, latent 128): generation")
    net = CloudFlow(3, 3).eval()
    weights_mb = sum(p.numel() * p.element_size() for p in net.parameters()) / 2**20
    src = torch.randn(1, 10_000, 3)
    lm = torch.tensor([10.0])
    before = peak_rss_mb()
    with torch.no_grad():
        z = net.encode(src, lm)
        x = torch.randn(1, 1000, 3)
        t0 = torch.zeros(1)
        net.velocity(x, t0, z)
        per_call = {n: timed(lambda n=n: net.velocity(torch.randn(1, n, 3), t0, z), 3) for n in (1000, 10_000, 100_000)}
        cloud_s = timed(lambda: net.sample(src, lm, 100_000, steps=32))
    print(f"weights {weights_mb:.2f} MiB; peak RSS {peak_rss_mb():.0f} MiB ({peak_rss_mb() - before:+.0f} MiB while "
          f"encoding 10^4 input points and generating 10^5)")
    for n, s in per_call.items():
        print(f"  {n:>7} points: {n / s:.3g} points per network call-second ({s * 1e3:.3g} ms per call; "
              f"throughput ratio to 1000 points {n / s / (1000 / per_call[1000]):.3g})")
    print(f"  10^5-point cloud, 32 Heun steps ({net.nfe(32)} calls): {cloud_s:.3g} s = {1e5 / cloud_s:.3g} points/s")
    print("\njudge time against points (both clouds of N points); ratio to N = 1000")
    print(f"{'N':>7} {'chamfer s':>10} {'ratio':>7} {'emd s':>9} {'ratio':>7} {'sinkhorn s':>11} {'ratio':>7}")
    for judge in (cm.chamfer, cm.emd, cm.sinkhorn):  # warm-up: the POT and geomloss imports are not timed
        judge(cloud(10), cloud(10))
    ref = {}
    for n in [1000] + [s for s in sizes if s != 1000]:
        a, b = cloud(n), cloud(n) + 0.05
        row = {"chamfer": timed(lambda: cm.chamfer(a, b), 2)}
        row["emd"] = timed(lambda: cm.emd(a, b)) if n <= args.emd_max else np.nan
        row["sinkhorn"] = timed(lambda: cm.sinkhorn(a, b)) if n <= args.sinkhorn_max else np.nan
        ref = ref or row
        print(f"{n:>7} " + " ".join(f"{row[k]:>10.3g} {row[k] / ref[k]:>7.3g}" for k in ("chamfer", "emd", "sinkhorn")))


if __name__ == "__main__":
    main()
