"""Training and inference throughput of the translation networks on this machine.

Prints maps per second for one optimisation step (forward + backward + update, batch 16) and
for inference (batch 16), for unet and pix2pix at 64^2 and 128^2, with parameter counts, as
absolute numbers and as ratios to unet at 64^2 measured in the same run.

    .venv/bin/python benchmarks/training.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import time

import torch

from skymorph.methods import make_method


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(name: str, npix: int, batch: int, repeats: int, base: int) -> dict:
    torch.manual_seed(0)
    method = make_method(name, 1, 1, base_channels=base, **({"d_base": 64} if name == "pix2pix" else {}))
    opts = method.make_optimizers(None)
    data = {"source": torch.randn(batch, 1, npix, npix), "target": torch.randn(batch, 1, npix, npix)}

    def step(i, loss):
        opts[i].zero_grad()
        loss.backward()
        opts[i].step()

    train_s = _time(lambda: method.training_step(data, step), repeats)
    method.eval()
    infer_s = _time(lambda: method.translate(data["source"]), repeats)
    return {"method": name, "npix": npix, "params": sum(p.numel() for p in method.net.parameters()),
            "train_maps_s": batch / train_s, "infer_maps_s": batch / infer_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--base", type=int, default=32, help="U-Net base channels")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, U-Net base {args.base}")
    rows = [measure(m, n, args.batch, args.repeats, args.base) for n in (64, 128) for m in ("unet", "pix2pix")]
    ref = rows[0]
    print(f"{'method':8s} {'npix':>5s} {'G params':>10s} {'train maps/s':>13s} {'ratio':>6s} {'infer maps/s':>13s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['method']:8s} {r['npix']:5d} {r['params']:10,d} {r['train_maps_s']:13.1f} "
              f"{r['train_maps_s'] / ref['train_maps_s']:6.2f} {r['infer_maps_s']:13.1f} "
              f"{r['infer_maps_s'] / ref['infer_maps_s']:6.2f}")


if __name__ == "__main__":
    main()
