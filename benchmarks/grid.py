"""Benchmark: the grid solver's cell updates per second (one SSP-RK2 MHD step with CR advection, the
driving kick and, for cr_diffuse, the subcycled CR diffusion), numba kernels beside the same scheme in
plain numpy (the reference run in the same process), at one thread and all threads, in 2D and 3D; and
the time from rest to a driven steady state (rms Mach within 10% of the target, mhd model).

    python benchmarks/grid.py [--n2 128] [--n3 32] [--steps 20] [--steady] [--steady-n3 64]

Ratios are numba / numpy on the same state (the machine is shared and noisy); absolute numbers are
printed beside them. ``--steady`` adds the runs to steady state at n2^2 and steady-n3^3 on all threads
(minutes).
"""
from __future__ import annotations

import argparse
import os
import time

import numba

from skymorph.grid import mhd
from skymorph.grid.driving import Driver
from skymorph.grid.simulate import SimConfig, advance, initial_state, mach_rms


def _spun_up(cfg: SimConfig, steps: int = 30):
    """A state after a few driven steps (so the flow is not uniform) and its driver."""
    state, driver = initial_state(cfg), Driver(cfg.shape, cfg.mach, cfg.seed)
    for _ in range(steps):
        state = advance(state, mhd.time_step(state, cfg.cfl), cfg, driver)
    return state, driver


def updates_per_second(cfg: SimConfig, steps: int, threads: int) -> float:
    numba.set_num_threads(threads)
    state, driver = _spun_up(cfg, 3)
    dt = mhd.time_step(state, cfg.cfl)
    advance(state.copy(), dt, cfg, driver)  # compile
    t = time.perf_counter()
    for _ in range(steps):
        state = advance(state, dt, cfg, driver)
    return steps * state.u[0].size / (time.perf_counter() - t)


def steady(cfg: SimConfig, threads: int) -> tuple[float, float, int]:
    """Seconds and simulated time until the rms Mach stays within 10% of the target for 0.25 t_turn."""
    numba.set_num_threads(threads)
    state, driver = initial_state(cfg), Driver(cfg.shape, cfg.mach, cfg.seed)
    t0, steps, since = time.perf_counter(), 0, None
    while True:
        state = advance(state, mhd.time_step(state, cfg.cfl), cfg, driver)
        steps += 1
        ok = abs(mach_rms(state) / cfg.mach - 1) < 0.1
        since = (since if since is not None else state.t) if ok else None
        if since is not None and state.t - since >= 0.25 * cfg.turnover:
            return time.perf_counter() - t0, state.t, steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n2", type=int, default=128)
    ap.add_argument("--n3", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--steady", action="store_true")
    ap.add_argument("--steady-n3", type=int, default=64)
    a = ap.parse_args()
    all_threads = numba.config.NUMBA_NUM_THREADS
    print(f"cores {os.cpu_count()}, numba threads available {all_threads}")
    print(f"{'case':28s} {'threads':>7s} {'numba Mcell/s':>14s} {'numpy Mcell/s':>14s} {'ratio':>6s}")
    for model in ("mhd", "cr_diffuse"):
        for dim, n in ((2, a.n2), (3, a.n3)):
            kappa = 0.1 if model == "cr_diffuse" else 0.0
            for threads in sorted({1, all_threads}):
                fast = updates_per_second(SimConfig(model=model, n=n, dim=dim, kappa=kappa), a.steps, threads)
                ref = updates_per_second(SimConfig(model=model, n=n, dim=dim, kappa=kappa, kernel="numpy"),
                                         max(2, a.steps // 4), threads)
                print(f"{model + f' {n}^{dim}':28s} {threads:7d} {fast / 1e6:14.3f} {ref / 1e6:14.3f} "
                      f"{fast / ref:6.2f}")
    if a.steady:
        for dim, n in ((2, a.n2), (3, a.steady_n3)):
            sec, t, steps = steady(SimConfig(model="mhd", n=n, dim=dim), all_threads)
            print(f"steady state mhd {n}^{dim}, {all_threads} thread(s): {sec:.0f} s, t = {t:.2f} L/c_s, {steps} steps")


if __name__ == "__main__":
    main()
