"""Seconds per translated map of the diffusion-family samplers at 64^2 on this machine.

Times ``translate`` of score_sde (every sampler) and indi at several step counts on a batch of
maps (a U-Net of width 16, as in the demo; the speed does not depend on the weights), prints the
seconds per map, the network evaluations (NFE), and the speed-up over the reference measured in
the same run: score_sde_pytorch's default, the predictor-corrector sampler with 1000 steps
(2000 NFE), and over one U-Net regression pass.

    .venv/bin/python benchmarks/diffusion.py [--batch 8] [--base 16] [--steps 1,2,5,10,20,50,100]
"""
from __future__ import annotations

import argparse
import time

import torch

from skymorph.methods import make_method


def seconds_per_map(method, source: torch.Tensor, steps: int) -> float:
    method.translate(source[:1], steps=min(steps, 2), seed=0)  # warm-up (and the lazy diffusers import)
    t = time.perf_counter()
    method.translate(source, steps=steps, seed=0)
    return (time.perf_counter() - t) / len(source)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--base", type=int, default=16, help="U-Net base channels")
    ap.add_argument("--npix", type=int, default=64)
    ap.add_argument("--steps", default="1,2,5,10,20,50,100")
    args = ap.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    torch.manual_seed(0)
    src = torch.randn(args.batch, 1, args.npix, args.npix)
    opts = dict(base_channels=args.base, prior=False)
    sde = make_method("score_sde", 1, **opts).eval()
    sde.set_sampler("pc")
    ref = seconds_per_map(sde, src, 1000)
    unet = seconds_per_map(make_method("unet", 1, **opts).eval(), src, 1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.npix}^2, batch {args.batch}, "
          f"U-Net width {args.base}")
    print(f"reference: score_sde pc 1000 steps (2000 NFE): {ref:.3f} s/map; unet regression: {unet * 1e3:.2f} ms/map")
    print(f"{'method':9s} {'sampler':7s} {'steps':>5s} {'NFE':>5s} {'s/map':>9s} {'x faster than pc-1000':>22s} "
          f"{'x unet':>8s}")
    for sampler in sde.samplers:
        sde.set_sampler(sampler)
        for n in steps:
            s = seconds_per_map(sde, src, n)
            print(f"{'score_sde':9s} {sampler:7s} {n:5d} {sde.nfe(n):5d} {s:9.4f} {ref / s:22.1f} {s / unet:8.1f}")
    indi = make_method("indi", 1, **opts).eval()
    for n in steps:
        s = seconds_per_map(indi, src, n)
        print(f"{'indi':9s} {'indi':7s} {n:5d} {indi.nfe(n):5d} {s:9.4f} {ref / s:22.1f} {s / unet:8.1f}")


if __name__ == "__main__":
    main()
