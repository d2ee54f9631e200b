"""Benchmark: skymorph's FastPM step against JaxPM, its gradient's time and memory, and the time per
convergence map.

For each (particles, mesh) configuration, child processes (so that each peak RSS is its own) run:

* the same kick-drift-kick steps in both codes from the same 2LPT initial conditions (skymorph's,
  with skymorph's growth-aware step factors), and print the relative rms difference of the final
  density meshes, so that the two codes are shown to compute the same thing before they are timed;
* skymorph: seconds per step = (``simulate`` with ``--steps`` - with 1 step) / (steps - 1), best of
  ``--repeat`` (the 2LPT set-up cancels). A step is one CIC paint, the Poisson solve, the force
  meshes, a CIC readout, two kicks and a drift;
* JaxPM (``pip install -e '.[bench]'``): the same step jitted from JaxPM's own public pieces, used
  consistently: ``jaxpm.painting`` CIC paint and readout, ``jaxpm.distributed.fft3d/ifft3d`` (the
  jaxdecomp FFT whose transposed output ``jaxpm.kernels.fftk`` lays its wavenumbers out for), the
  4th-order ``gradient_kernel`` and ``invlaplace_kernel``, as ``jaxpm.pm.pm_forces`` does (which
  itself needs one particle per cell); compiled first, ``block_until_ready``. Ratio = JaxPM /
  skymorph (> 1: skymorph faster);
* forward + gradient: d/d(noise) of sum(delta^2) through ``--grad-steps`` steps, seconds per step and
  the child's peak RSS above its RSS after imports (the reverse-time adjoint keeps it flat in the
  number of steps).

Then the time per 5 deg, 128^2 convergence map (64^3 particles and mesh, 256 Mpc/h, 10 steps, z_s = 1).

    python benchmarks/pm.py [--steps 4] [--repeat 2] [--threads 1] [--grad-steps 10,40] [--no-jax]
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


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(n_part, threads):
    import os

    if threads == 1:  # XLA's CPU thread pools, before jax is imported
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    return torch.from_numpy(np.random.default_rng(0).standard_normal((n_part,) * 3, dtype=np.float32))


def _initial_state(noise, mesh, steps):
    """skymorph's 2LPT positions and momenta at a = 0.1 and its per-step (kick, drift, kick) factors."""
    import torch

    from skymorph.cosmo.linear import Cosmology, growth_factor, linear_power, momentum_growth
    from skymorph.cosmo.mesh import linear_field
    from skymorph.cosmo.nbody import lattice, lpt

    cosmo = Cosmology()
    n = noise.shape[-1]
    disp, p = lpt(linear_field(noise, BOX, lambda k: linear_power(k, cosmo)), BOX, cosmo, 0.1)
    x = lattice(n, BOX) + disp
    edges = torch.linspace(0.1, 1.0, steps + 1, dtype=torch.float64).tolist()
    coefs = []
    for a0, a1 in zip(edges[:-1], edges[1:]):
        d0, d1 = float(growth_factor(a0, cosmo)), float(growth_factor(a1, cosmo))
        g0, gc, g1 = (float(momentum_growth(a, cosmo)) for a in (a0, 0.5 * (a0 + a1), a1))
        coefs.append(((gc - g0) / d0, (d1 - d0) / gc, (g1 - gc) / d1))
    return x, p, coefs


def _jaxpm_forces(n_part, mesh):
    """F(x) in skymorph's units (x in Mpc/h; force in delta x Mpc/h) from JaxPM's pieces."""
    import jax.numpy as jnp
    from jaxpm.distributed import fft3d, ifft3d
    from jaxpm.kernels import fftk, gradient_kernel, invlaplace_kernel
    from jaxpm.painting import _cic_paint_impl, _cic_read_impl

    cell = BOX / mesh
    weight = (mesh / n_part) ** 3  # JaxPM paints unit weights; its k = 0 mode is dropped

    def forces(x):
        u = x / cell
        delta_k = fft3d(_cic_paint_impl(jnp.zeros((mesh,) * 3), u))
        kvec = fftk(delta_k)
        pot_k = delta_k * invlaplace_kernel(kvec)
        f = jnp.stack([_cic_read_impl(ifft3d(-gradient_kernel(kvec, i) * pot_k), u) for i in range(3)], axis=-1)
        return f * (weight * cell)

    return forces


def _agreement(n_part, mesh, steps, threads, use_jax, queue):
    """Relative rms difference of the final density, skymorph vs JaxPM, same ICs and step factors."""
    noise = _setup(n_part, threads)
    if not use_jax:
        queue.put(float("nan"))
        return
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        queue.put(float("nan"))
        return
    import numpy as np
    import torch

    from skymorph.cosmo.mesh import cic_paint, cic_readout, gravity

    x, p, coefs = _initial_state(noise, mesh, steps)
    weight = (mesh / n_part) ** 3

    def sky_force(pos):
        return cic_readout(gravity(cic_paint(pos, mesh, BOX, weight) - 1.0, BOX), pos, BOX)

    jforce = jax.jit(_jaxpm_forces(n_part, mesh))
    xs, ps = x.clone(), p.clone()
    xj, pj = jnp.asarray(x.numpy()), jnp.asarray(p.numpy())
    with torch.no_grad():
        fs, fj = sky_force(xs), jforce(xj)
        for k1, dr, k2 in coefs:
            ps = ps + k1 * fs
            xs = xs + dr * ps
            fs = sky_force(xs)
            ps = ps + k2 * fs
            pj = pj + k1 * fj
            xj = xj + dr * pj
            fj = jforce(xj)
            pj = pj + k2 * fj
        ds = cic_paint(xs, mesh, BOX, weight) - 1.0
        dj = cic_paint(torch.from_numpy(np.array(xj)), mesh, BOX, weight) - 1.0
    queue.put(float((ds - dj).pow(2).mean().sqrt() / ds.pow(2).mean().sqrt()))


def _speed(n_part, mesh, steps, repeat, threads, use_jax, queue):
    import torch

    from skymorph.cosmo.linear import Cosmology
    from skymorph.cosmo.nbody import simulate

    noise = _setup(n_part, threads)
    base = _rss_mib()

    def run(k):
        t0 = time.perf_counter()
        with torch.no_grad():
            simulate(noise, BOX, Cosmology(), mesh, k, keep_particles=False)
        return time.perf_counter() - t0

    run(1)  # warm-up (numba and kernel caches)
    t_sky = min((run(steps) - run(1)) / (steps - 1) for _ in range(repeat))
    peak = _peak_mib() - base
    t_jax = float("nan")
    if use_jax:
        try:
            import jax
            import jax.numpy as jnp
        except ImportError:
            jax = None
        if jax is not None:
            forces = _jaxpm_forces(n_part, mesh)

            @jax.jit
            def step(x, p, f):
                p = p + 0.05 * f
                x = x + 0.1 * p
                f = forces(x)
                return x, p + 0.05 * f, f

            x, p, _ = _initial_state(noise, mesh, 1)
            state = (jnp.asarray(x.numpy()), jnp.asarray(p.numpy()))
            state = (*state, forces(state[0]))
            jax.block_until_ready(step(*state))  # compile
            best = float("inf")
            for _ in range(repeat):
                s = state
                t0 = time.perf_counter()
                for _ in range(steps):
                    s = step(*s)
                jax.block_until_ready(s)
                best = min(best, (time.perf_counter() - t0) / steps)
            t_jax = best
    queue.put((t_sky, t_jax, peak))


def _gradient(n_part, mesh, steps, threads, queue):
    from skymorph.cosmo.linear import Cosmology
    from skymorph.cosmo.nbody import simulate

    noise = _setup(n_part, threads)
    base = _rss_mib()
    w = noise.clone().requires_grad_(True)
    t0 = time.perf_counter()
    delta = simulate(w, BOX, Cosmology(), mesh, steps, keep_particles=False)[-1].delta
    (delta**2).sum().backward()
    queue.put(((time.perf_counter() - t0) / steps, _peak_mib() - base))


def _in_child(target, *args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grad-steps", default="10,40", help="comma-separated step counts of the gradient runs")
    ap.add_argument("--no-jax", action="store_true")
    args = ap.parse_args()
    grad_steps = [int(s) for s in args.grad_steps.split(",") if s]
    print(f"threads: {args.threads}; seconds per step (best of {args.repeat}); peak = RSS above the imports")
    head = (f"{'particles':>9} {'mesh':>5} {'vs JaxPM':>9} {'skymorph s':>10} {'JaxPM s':>8} {'JaxPM/sky':>9} "
            f"{'fwd MiB':>8}")
    head += "".join(f" {'grad' + str(s) + ' s':>9} {'grad' + str(s) + ' MiB':>11}" for s in grad_steps)
    print(head)
    for n_part, mesh in CONFIGS:
        agree = _in_child(_agreement, n_part, mesh, 10, args.threads, not args.no_jax)
        t_sky, t_jax, peak = _in_child(_speed, n_part, mesh, args.steps, args.repeat, args.threads, not args.no_jax)
        grads = [_in_child(_gradient, n_part, mesh, s, args.threads) for s in grad_steps]
        row = (f"{n_part:>7}^3 {mesh:>4}^3 {agree:9.1e} {t_sky:10.3f} {t_jax:8.3f} {t_jax / t_sky:9.2f} "
               f"{peak:8.0f}")
        row += "".join(f" {t:9.3f} {m:11.0f}" for t, m in grads)
        print(row, flush=True)
    print("vs JaxPM: relative rms difference of the final density after 10 identical steps from the same ICs")

    import numpy as np
    import torch

    from skymorph.cosmo.lightcone import convergence_map
    from skymorph.cosmo.linear import Cosmology

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
