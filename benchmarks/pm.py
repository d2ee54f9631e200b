"""Benchmark: skymorph's torch FastPM step against JaxPM on the same configuration, and the time
per convergence map.

For each (particles, mesh) configuration a child process (so that its peak RSS is its own) runs:

* skymorph: ``simulate`` with ``--steps`` and with 1 step; time per step = the difference / (steps - 1)
  (the 2LPT set-up cancels); best of ``--repeat``. One step = CIC paint, rfftn, 3 irfftn force
  meshes, CIC readout, two kicks and a drift (one force evaluation).
* JaxPM (``pip install -e '.[bench]'``): one jitted step with the same work, built from JaxPM's
  own pieces: its CIC paint and readout kernels, Fourier kernels (4th-order gradient, exact
  -1/k^2) and FFTs, and a kick-drift-kick update; compiled before timing, ``block_until_ready``.
  (``jaxpm.pm.pm_forces`` itself only paints one particle per mesh cell, so particles != mesh
  needs the pieces.) Ratio = JaxPM time / skymorph time (> 1: skymorph faster).

Peak memory is the child's peak RSS minus its RSS after imports (both frameworks run in the same
child, so it is an upper bound for either; run with ``--no-jax`` for skymorph alone). Then the time per 5 deg, 128^2 convergence
map (64^3 particles and mesh, 256 Mpc/h, 10 steps, z_s = 1) in this process.

    python benchmarks/pm.py [--steps 4] [--repeat 2] [--threads 0 (torch default)] [--no-jax]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

CONFIGS = [(64, 128), (128, 128), (64, 256), (128, 256)]
BOX = 256.0


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _jaxpm_step(n_part: int, mesh: int):
    """A jitted KDK step (pos, vel in mesh units) built from JaxPM's kernels."""
    import jax
    import jax.numpy as jnp
    from jaxpm.kernels import fftk, gradient_kernel, invlaplace_kernel
    from jaxpm.painting import _cic_paint_impl, _cic_read_impl

    kvec = fftk(jnp.zeros((mesh, mesh, mesh), jnp.complex64))

    def forces(pos):
        delta = _cic_paint_impl(jnp.zeros((mesh,) * 3), pos)
        pot = jnp.fft.fftn(delta) * invlaplace_kernel(kvec)
        return jnp.stack([_cic_read_impl(jnp.fft.ifftn(-gradient_kernel(kvec, i) * pot).real, pos)
                          for i in range(3)], axis=-1)

    @jax.jit
    def step(pos, vel, f):
        vel = vel + 0.05 * f
        pos = pos + 0.1 * vel
        f = forces(pos)
        return pos, vel + 0.05 * f, f

    key = jax.random.PRNGKey(0)
    pos = jax.random.uniform(key, (n_part**3, 3)) * mesh
    vel = jnp.zeros_like(pos)
    f = forces(pos)
    jax.block_until_ready(step(pos, vel, f))  # compile
    return step, (pos, vel, f)


def _child(n_part, mesh, steps, repeat, threads, use_jax, queue):
    import numpy as np
    import torch

    from skymorph.cosmo.linear import Cosmology
    from skymorph.cosmo.nbody import simulate

    if threads:
        torch.set_num_threads(threads)
    base = _rss_mib()  # after imports, before any mesh exists
    cosmo = Cosmology()
    noise = torch.from_numpy(np.random.default_rng(0).standard_normal((n_part,) * 3, dtype=np.float32))

    def run(k):
        t0 = time.perf_counter()
        with torch.no_grad():
            simulate(noise, BOX, cosmo, mesh, k, keep_particles=False)
        return time.perf_counter() - t0

    run(1)  # warm-up (kernel caches)
    jstep = None
    if use_jax:
        try:
            jstep, state = _jaxpm_step(n_part, mesh)
        except ImportError:
            jstep = None
    t_torch = min((run(steps) - run(1)) / (steps - 1) for _ in range(repeat))
    t_jax = float("nan")
    if jstep is not None:
        import jax

        best = float("inf")
        for _ in range(repeat):
            s = state
            t0 = time.perf_counter()
            for _ in range(steps):
                s = jstep(*s)
            jax.block_until_ready(s)
            best = min(best, (time.perf_counter() - t0) / steps)
        t_jax = best
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((t_torch, t_jax, peak - base, torch.get_num_threads()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-jax", action="store_true")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    print(f"{'particles':>9} {'mesh':>5} {'skymorph s/step':>16} {'JaxPM s/step':>13} {'JaxPM/skymorph':>15} "
          f"{'peak MiB':>9} {'threads':>7}")
    for n_part, mesh in CONFIGS:
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(n_part, mesh, args.steps, args.repeat, args.threads,
                                              not args.no_jax, q))
        p.start()
        t_torch, t_jax, peak, threads = q.get()
        p.join()
        print(f"{n_part:>7}^3 {mesh:>4}^3 {t_torch:16.3f} {t_jax:13.3f} {t_jax / t_torch:15.2f} {peak:9.0f} "
              f"{threads:>7}", flush=True)

    import numpy as np
    import torch

    from skymorph.cosmo.lightcone import convergence_map
    from skymorph.cosmo.linear import Cosmology

    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    times = []
    for _ in range(args.repeat):
        noise = torch.from_numpy(rng.standard_normal((64,) * 3, dtype=np.float32))
        t0 = time.perf_counter()
        with torch.no_grad():
            convergence_map(Cosmology(), noise, BOX, 64, 10, 1.0, 5.0, 128, rng)
        times.append(time.perf_counter() - t0)
    print(f"convergence map (5 deg, 128^2, 64^3 particles/mesh, 10 steps, z_s = 1): {min(times):.2f} s per map")


if __name__ == "__main__":
    main()
