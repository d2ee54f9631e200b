"""Seconds per translated map of the diffusion-family samplers at 64^2 on this machine.

Times ``translate`` of score_sde (every sampler) and indi at several step counts on a batch of
maps (a U-Net of width 16, as in the demo; the speed does not depend on the weights), prints the
seconds per map, the network evaluations (NFE), and the speed-up over the reference measured in
the same run: score_sde_pytorch's default, the predictor-corrector sampler with 1000 steps
(2000 NFE), and over one U-Net regression pass. The DiM rows: milliseconds per network evaluation
(forward, and forward + backward as in training) of the Diffusion Mamba denoiser beside the
time-embedded U-Net of the same parameter count (width 16; DiM width 144, 9 blocks, patch 4) at 64^2
and 128^2, as a ratio to the U-Net in the same process. The EDM rows: training throughput (maps per
second of a training step: objectives, backward and Adam steps) of score_sde (VP), edm, corrdiff (its
U-Net mean and edm) and the U-Net regression on the same width, as a ratio to VP, and the EDM
sampler's NFE and seconds per map at 64^2 and 128^2.

    .venv/bin/python benchmarks/diffusion.py [--batch 8] [--base 16] [--steps 1,2,5,10,20,50,100]
                                             [--only samplers|dim|edm]
"""
from __future__ import annotations

import argparse
import time

import torch

from skymorph.methods import make_method
from skymorph.models import denoiser


def ms_per_call(net, x: torch.Tensor, backward: bool) -> float:
    """Milliseconds per map of one network evaluation (best of 3), with its backward pass if asked."""
    t_in = torch.rand(len(x))
    best = float("inf")
    for _ in range(4):  # the first is a warm-up
        start = time.perf_counter()
        if backward:
            net(x, t_in).square().mean().backward()
        else:
            with torch.no_grad():
                net(x, t_in)
        best = min(best, time.perf_counter() - start)
    return 1e3 * best / len(x)


def dim_rows(batch: int, base: int) -> None:
    print(f"\nDiM vs U-Net denoiser, ms per map per network call (batch {batch}):")
    print(f"{'npix':>5s} {'net':6s} {'params':>8s} {'forward':>9s} {'x unet':>7s} {'fwd+bwd':>9s} {'x unet':>7s}")
    for npix in (64, 128):
        x = torch.randn(batch, 2, npix, npix)
        unet, dim = denoiser("unet", 2, 1, base_channels=base), denoiser("dim", 2, 1)
        ref = {b: ms_per_call(unet, x, b) for b in (False, True)}
        for name, net in (("unet", unet), ("dim", dim)):
            got = ref if name == "unet" else {b: ms_per_call(net, x, b) for b in (False, True)}
            params = sum(p.numel() for p in net.parameters())
            print(f"{npix:5d} {name:6s} {params / 1e6:7.2f}M {got[False]:9.2f} {got[False] / ref[False]:7.2f} "
                  f"{got[True]:9.2f} {got[True] / ref[True]:7.2f}")


def maps_per_second(method, source: torch.Tensor, target: torch.Tensor, repeats: int = 5) -> float:
    """Training throughput: maps per second of one training step (every objective, backward and Adam step
    the method takes on a batch), best of ``repeats`` after a warm-up."""
    opts = method.make_optimizers(1e-4)

    def step(i: int, loss: torch.Tensor) -> None:
        opts[i].zero_grad()
        loss.backward()
        opts[i].step()

    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        method.training_step({"source": source, "target": target}, step)
        best = min(best, time.perf_counter() - start)
    return len(source) / best


def edm_rows(batch: int, base: int, steps: list[int]) -> None:
    print(f"\nscore_sde (VP) vs edm, corrdiff (U-Net mean + edm) and the U-Net regression, width {base}, batch {batch}:")
    print(f"{'npix':>5s} {'method':9s} {'train maps/s':>12s} {'x VP':>6s}")
    nets = {m: make_method(m, 1, base_channels=base, prior=False) for m in ("score_sde", "edm", "corrdiff", "unet")}
    for npix in (64, 128):
        src, tgt = torch.randn(batch, 1, npix, npix), torch.randn(batch, 1, npix, npix)
        ref = maps_per_second(nets["score_sde"].train(), src, tgt)
        for m, net in nets.items():
            got = ref if m == "score_sde" else maps_per_second(net.train(), src, tgt)
            print(f"{npix:5d} {m:9s} {got:12.1f} {got / ref:6.2f}")
    edm = nets["edm"].eval()
    print(f"\nEDM sampler (Heun, rho 7; default {edm.default_steps} steps), batch {batch}:")
    print(f"{'npix':>5s} {'steps':>5s} {'NFE':>5s} {'s/map':>9s} {'ms/NFE':>7s}")
    for npix in (64, 128):
        src = torch.randn(batch, 1, npix, npix)
        for n in steps:
            s = seconds_per_map(edm, src, n)
            print(f"{npix:5d} {n:5d} {edm.nfe(n):5d} {s:9.4f} {1e3 * s / edm.nfe(n):7.2f}")


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
    ap.add_argument("--only", choices=("samplers", "dim", "edm"), help="one part (default: all)")
    args = ap.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    if args.only in (None, "samplers"):
        sampler_rows(args.batch, args.base, args.npix, steps)
    if args.only in (None, "dim"):
        dim_rows(args.batch, args.base)
    if args.only in (None, "edm"):
        edm_rows(args.batch, args.base, [n for n in steps if n >= 2])


def sampler_rows(batch: int, base: int, npix: int, steps: list[int]) -> None:
    torch.manual_seed(0)
    src = torch.randn(batch, 1, npix, npix)
    opts = dict(base_channels=base, prior=False)
    sde = make_method("score_sde", 1, **opts).eval()
    sde.set_sampler("pc")
    ref = seconds_per_map(sde, src, 1000)
    unet = seconds_per_map(make_method("unet", 1, **opts).eval(), src, 1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {npix}^2, batch {batch}, U-Net width {base}")
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
