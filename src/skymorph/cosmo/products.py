"""Files the ``skymorph cosmo`` and ``skymorph lensing`` commands write: PM snapshots, P(k) plots and
convergence-map sets (HDF5, written atomically; an existing output needs ``overwrite=True``).

``sim.h5``: ``/a`` (n_out,); ``/density`` (n_out, N, N, N) float32 density contrast on the PM
mesh; ``/initial/noise`` (P^(1/3),)*3 the unit white noise the run started from and
``/initial/linear`` its linear density contrast at a = 1 on the particle lattice (the truth a
reconstruction is judged against); ``/particles/pos`` (P, 3) comoving Mpc/h in [0, box) and
``/particles/vel`` (P, 3) peculiar velocity in km/s, both at the last scale factor; attributes: box
(Mpc/h), mesh, particles, steps, a_init, seed and the cosmology.

``kappa.h5`` (``skymorph lensing maps``, either simulator): ``/kappa`` (N, npix, npix) float32
convergence; ``/gamma`` (N, 2, npix, npix) its shear (gamma1, gamma2) from the Kaiser-Squires
forward operator; ``/gamma_obs`` the same plus shape noise, times the mask; ``/mask`` (npix, npix)
1 = observed; ``/params/{Omega_m,sigma8,seed}`` (N,) per map, and for the lognormal simulator
``/params/shift`` (N,), the shift lambda of each map. Attributes: simulator ("pm" or "lognormal"),
field_deg, npix, pixel_arcmin, z_source, n_gal (per arcmin^2), sigma_e (per component), noise_std
(per component per pixel), seed, kappa_unit and the fixed cosmological parameters; for "pm" also
box, mesh, steps and a_init; for "lognormal" shift_model (the fit used, with its reference),
shift_min and shift_max.

Campaigns are written resumably: chunks of maps (one PM map, or up to 256 lognormal maps, per
chunk) go as they are made to atomically written part files ``<out>.parts/chunk_NNNNNN.h5`` beside
the output, with the run's settings in ``<out>.parts/settings.json``; when every chunk is there
they are copied, in order, into the output (written atomically) and the parts folder is removed.
All per-map parameters and seeds are drawn up front from the master seed, and each map uses only
its own generator, so a killed run rerun with the same settings makes only the missing chunks and
ends bit-identical to an uninterrupted run, for any number of workers.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import torch

from skymorph.atomic import atomic_path, write_text
from skymorph.cosmo.lensing import comoving_distance, ks_forward, shape_noise_std
from skymorph.cosmo.lightcone import convergence_map, lens_planes
from skymorph.cosmo.lognormal import SHIFT_MODEL, lognormal_maps, shift_parameter
from skymorph.cosmo.linear import Cosmology, growth_factor, linear_power
from skymorph.cosmo.mesh import linear_field, power_spectrum_3d
from skymorph.cosmo.nbody import check_memory, simulate
from skymorph.atomic import check_output
from skymorph.errors import ConfigError, InputError, Interrupted, SkymorphError
from skymorph.parallel import check_scheduler, run_tasks, writable_folder
from skymorph.provenance import provenance

__all__ = ["SIMULATORS", "parse_range", "run_simulation", "plot_power", "make_kappa_maps"]

KM_S_PER_H0_MPC = 100.0  # H0 x 1 Mpc/h in km/s


def _check_grid(mesh: int, particles: int, box: float, steps: int):
    if mesh < 2 or mesh % 2:
        raise ConfigError(f"--mesh {mesh}: must be a positive even number")
    if particles < 2 or particles % 2:
        raise ConfigError(f"--particles {particles}: must be a positive even number")
    if not box > 0:
        raise ConfigError(f"--box {box}: must be a positive length in Mpc/h")
    if steps < 1:
        raise ConfigError(f"--pm-steps {steps}: need at least one step")


def _noise(rng: np.random.Generator, n: int) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal((n, n, n), dtype=np.float32))


def parse_range(text: str, name: str) -> tuple[float, float]:
    """'0.3' -> (0.3, 0.3); '0.2:0.4' -> (0.2, 0.4), a uniform range drawn per map."""
    try:
        parts = [float(p) for p in str(text).split(":")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise ConfigError(f"{name} {text!r}: expected a number or a range lo:hi")
    if parts[0] > parts[1]:
        raise ConfigError(f"{name} {text!r}: the range is reversed (lo > hi); write {parts[1]:g}:{parts[0]:g}")
    return parts[0], parts[1]


def run_simulation(out, cosmo: Cosmology, mesh: int = 64, box: float = 256.0, steps: int = 10, seed: int = 0,
                   particles: int | None = None, a_out=(0.25, 0.5, 1.0), a_init: float = 0.1,
                   overwrite: bool = False, progress: bool = True) -> Path:
    """Run the PM simulation of one white-noise seed and write ``sim.h5`` (module docstring)."""
    particles = mesh if particles is None else int(particles)
    _check_grid(mesh, particles, box, steps)
    out = check_output(out, overwrite)
    a_out = sorted(float(a) for a in a_out)
    check_memory(mesh, particles, len(a_out), True)
    noise = _noise(np.random.default_rng(seed), particles)
    with torch.no_grad():
        snaps = simulate(noise, box, cosmo, mesh, steps, a_init, a_out, progress=progress)
        linear = linear_field(noise, box, lambda k: linear_power(k, cosmo))
    last = snaps[-1]
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        write_initial(f, noise.numpy(), linear.numpy())
        f["a"] = np.array([s.a for s in snaps])
        f.create_dataset("density", data=np.stack([s.delta.numpy() for s in snaps]).astype(np.float32),
                         chunks=(1, mesh, mesh, mesh))
        f["particles/pos"] = torch.remainder(last.pos, box).numpy().astype(np.float32)
        f["particles/vel"] = (last.mom * (KM_S_PER_H0_MPC / last.a)).numpy().astype(np.float32)
        f["particles"].attrs.update({"a": last.a, "pos_unit": "Mpc/h (comoving)", "vel_unit": "km/s (peculiar)"})
        f.attrs.update({"box": box, "mesh": mesh, "particles": particles, "steps": steps, "a_init": a_init,
                        "seed": seed, "density_unit": "density contrast delta", **cosmo.params(),
                        "provenance": json.dumps(provenance())})
    return out


def write_initial(f: h5py.File, noise: np.ndarray, linear: np.ndarray) -> None:
    """``/initial/noise`` (the unit white noise on the particle lattice the run started from) and
    ``/initial/linear`` (its linear density contrast at a = 1, D = 1), float32."""
    g = f.create_group("initial")
    g["noise"] = noise.astype(np.float32)
    g["linear"] = linear.astype(np.float32)
    g.attrs.update({"noise_unit": "unit-variance white noise per particle-lattice cell",
                    "linear_unit": "linear density contrast at a = 1 (growth D = 1)"})


def _read_sim(path):
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            if "density" not in f or "a" not in f:
                raise InputError(f"{path}: not a simulation file (/density or /a missing)")
            attrs = dict(f.attrs)
            return f["a"][()], f["density"][()], attrs
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({exc})") from None


def plot_power(sim, out, overwrite: bool = False) -> Path:
    """Measured P(k) of every snapshot of ``sim.h5`` (CIC-compensated) against D(a)^2 P_lin(k)."""
    out = check_output(out, overwrite)
    a_all, dens, attrs = _read_sim(sim)
    cosmo = Cosmology(**{k: float(attrs[k]) for k in Cosmology().params()})  # the parameters stored by run_simulation
    box = float(attrs["box"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axr) = plt.subplots(2, 1, figsize=(6, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for i, (a, d) in enumerate(zip(a_all, dens)):
        k, p, _ = power_spectrum_3d(torch.from_numpy(d).double(), box, compensate_cic=True)
        k, p = k.numpy(), p.numpy()
        lin = (growth_factor(float(a), cosmo) ** 2 * linear_power(torch.from_numpy(k), cosmo)).numpy()
        ax.loglog(k, p, color=f"C{i}", label=f"PM a = {a:.3g}")
        ax.loglog(k, lin, color=f"C{i}", ls="--", lw=0.8)
        axr.semilogx(k, p / lin, color=f"C{i}")
    axr.axhline(1.0, color="k", lw=0.5)
    ax.set_ylabel("P(k) [(Mpc/h)^3]")
    ax.set_title(f"{attrs['particles']}^3 particles, {attrs['mesh']}^3 mesh, {box:g} Mpc/h; dashed: D^2 P_lin")
    ax.legend(fontsize=8)
    axr.set_xlabel("k [h/Mpc]")
    axr.set_ylabel("P / D^2 P_lin")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return out


def _read_mask(path, npix: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--mask {path}: no such file")
    if path.suffix.lower() == ".npy":
        mask = np.load(path)
    elif path.suffix.lower() in (".fits", ".fit"):
        from astropy.io import fits

        mask = fits.getdata(path)
    else:
        raise InputError(f"--mask {path}: expected a .npy or .fits file")
    if mask is None or mask.shape != (npix, npix):
        raise InputError(f"--mask {path}: expected a ({npix}, {npix}) map, got {getattr(mask, 'shape', None)}")
    return (np.asarray(mask) != 0).astype(np.float32)


SIMULATORS = ("pm", "lognormal")
_FLAGS = {"omega_m": "--omega-m", "sigma8": "--sigma8", "n_maps": "--n-maps", "field_deg": "--field-deg",
          "npix": "--npix", "z_source": "--z-source", "seed": "--seed", "n_gal": "--n-gal", "sigma_e": "--sigma-e",
          "mask": "--mask", "simulator": "--simulator", "box": "--box", "mesh": "--mesh", "steps": "--pm-steps",
          "a_init": "a_init", "chunk": "chunk", "format": "the part format"}


def _chunk_size(simulator: str, npix: int) -> int:
    """Maps per part file: one PM run each; lognormal maps in batches of about 16 MiB (256 at 64^2)."""
    return 1 if simulator == "pm" else max(1, min(256, 2**20 // (npix * npix)))


def _part_path(parts: Path, j: int) -> Path:
    return parts / f"chunk_{j:06d}.h5"


@contextmanager
def _single_thread():
    """Torch on one thread while maps are made, in the parent as in every worker, so that the maps
    (their float reductions) do not depend on ``workers``."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _worker_init() -> None:
    """Workers leave Ctrl-C to the parent (finished chunks are kept as parts) and use one torch thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def _make_chunk(spec: dict, j: int, oms: np.ndarray, s8s: np.ndarray, seeds: np.ndarray, msk: np.ndarray,
                parts: Path) -> int:
    """Make maps ``j * chunk ...`` (their parameters and seeds given) and write their part file
    atomically. Map i uses only the generator of its own seed: PM white noise and box
    replication (or the lognormal field), then its shape noise."""
    npix, n = spec["npix"], len(seeds)
    rngs = [np.random.default_rng(int(s)) for s in seeds]
    shift = None
    with torch.no_grad(), _single_thread():
        if spec["simulator"] == "pm":
            kappa, mesh = np.empty((n, npix, npix), np.float32), spec["mesh"]
            for i, r in enumerate(rngs):
                kappa[i] = convergence_map(Cosmology(float(oms[i]), float(s8s[i])), _noise(r, mesh), spec["box"], mesh,
                                           spec["steps"], spec["z_source"], spec["field_deg"], npix, r,
                                           thickness_cells=mesh, a_init=spec["a_init"]).numpy()
        else:
            kap, shift = lognormal_maps(oms, s8s, rngs, spec["z_source"], spec["field_deg"], npix, spec["omega_m"])
            kappa = kap.astype(np.float32)
        g = ks_forward(torch.from_numpy(kappa).double())
        gamma = torch.stack([g.real, g.imag], dim=1).numpy().astype(np.float32)
    gamma_obs = np.empty_like(gamma)
    for i, r in enumerate(rngs):
        gamma_obs[i] = (gamma[i] + spec["noise_std"] * r.standard_normal((2, npix, npix))) * msk
    with atomic_path(_part_path(parts, j)) as tmp, h5py.File(tmp, "w") as f:
        f["kappa"], f["gamma"], f["gamma_obs"] = kappa, gamma, gamma_obs
        if shift is not None:
            f["shift"] = shift
    return j


def _open_parts(parts: Path, settings: dict, overwrite: bool) -> None:
    """The parts folder of ``settings``: kept when its settings match (resume), replaced with
    ``overwrite``, otherwise refused (ConfigError naming the differing options)."""
    settings_file = parts / "settings.json"
    if parts.exists():
        old = json.loads(settings_file.read_text()) if settings_file.is_file() else None
        if old is not None and old != settings and not overwrite:
            diff = sorted({k for k in set(old) | set(settings) if old.get(k) != settings.get(k)})
            flags = ", ".join(_FLAGS.get(k, k) for k in diff)
            raise ConfigError(f"{parts}: an interrupted run with other settings ({flags}) is there; "
                              f"rerun with its settings or use --overwrite to start afresh")
        if old != settings:
            shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if not settings_file.is_file():
        write_text(settings_file, json.dumps(settings))


def make_kappa_maps(out, omega_m, sigma8, n_maps: int = 1, field_deg: float = 5.0, npix: int = 128,
                    z_source: float = 1.0, seed: int = 0, box: float = 256.0, mesh: int = 64, steps: int = 10,
                    n_gal: float = 30.0, sigma_e: float = 0.26, mask=None, a_init: float = 0.1,
                    overwrite: bool = False, progress: bool = True, simulator: str = "pm", workers: int = 1,
                    scheduler: str | None = None, parts_dir=None) -> Path:
    """Write ``n_maps`` convergence maps, their shear and noisy shear to ``kappa.h5``, resumably.

    ``omega_m`` and ``sigma8`` are numbers or (lo, hi) ranges drawn uniformly per map; the per-map
    parameters and seeds are all drawn up front from ``seed``, so map i is the same however the
    run is split or interrupted. ``simulator="pm"``: each map is the Born convergence of its own PM
    run (``mesh``^3 particles on a ``mesh``^3 mesh); ``"lognormal"``: a shifted-lognormal field with
    the Limber C_ell of the map's cosmology (:mod:`skymorph.cosmo.lognormal`; ``box``, ``mesh``,
    ``steps`` and ``a_init`` are unused). Chunks of maps go to part files ``<out>.parts/`` as they are
    made, by ``workers`` processes or on the Dask ``scheduler`` (:func:`skymorph.parallel.run_tasks`; the
    result does not depend on either), in OUT.parts inside ``parts_dir`` if given (a folder every
    cluster worker can write); a rerun with the same settings makes only the missing chunks, other settings are refused
    unless ``overwrite``.
    See the module docstring for the layout.
    """
    om_lo, om_hi = parse_range(omega_m, "--omega-m")
    s8_lo, s8_hi = parse_range(sigma8, "--sigma8")
    for om, s8 in ((om_lo, s8_lo), (om_hi, s8_hi)):
        Cosmology(om, s8)
    if simulator not in SIMULATORS:
        raise ConfigError(f"--simulator {simulator!r}: expected one of {', '.join(SIMULATORS)}")
    if n_maps < 1:
        raise ConfigError(f"--n-maps {n_maps}: need at least one map")
    if workers < 1:
        raise ConfigError(f"--workers {workers}: must be at least 1")
    if npix < 2 or not 0 < field_deg < 90:
        raise ConfigError(f"--npix {npix} / --field-deg {field_deg}: need npix >= 2 and 0 < field < 90 deg")
    if not z_source > 0:
        raise ConfigError(f"--z-source {z_source:g}: must be positive")
    if simulator == "pm":
        _check_grid(mesh, mesh, box, steps)
    out = check_output(out, overwrite)
    pixel_arcmin = field_deg * 60.0 / npix
    sigma_n = shape_noise_std(sigma_e, n_gal, pixel_arcmin)
    msk = np.ones((npix, npix), np.float32) if mask is None else _read_mask(mask, npix)
    if simulator == "pm":
        # geometry checks (source beyond the planes, field wider than the box) before any run
        planes = lens_planes(Cosmology(om_lo, s8_lo), z_source, box, mesh, mesh, a_init)
        width = math.radians(field_deg) * 0.5 * planes.chi_source
        if width > box:
            raise ConfigError(f"a {field_deg} deg field is {width:.0f} Mpc/h wide half-way to the source, more than "
                              f"the {box:g} Mpc/h box: use a larger --box or a smaller field")
        check_memory(mesh, mesh, len(planes.a), False)
    else:
        shift_parameter(z_source, om_lo)
        comoving_distance(z_source, Cosmology(om_lo, s8_lo))  # the redshift is inside the distance tables
    rng = np.random.default_rng(seed)
    seeds = rng.integers(2**31, size=n_maps)
    oms = rng.uniform(om_lo, om_hi, n_maps)
    s8s = rng.uniform(s8_lo, s8_hi, n_maps)

    chunk = _chunk_size(simulator, npix)
    settings = {"format": 1, "simulator": simulator, "omega_m": [om_lo, om_hi], "sigma8": [s8_lo, s8_hi],
                "n_maps": int(n_maps), "field_deg": float(field_deg), "npix": int(npix), "z_source": float(z_source),
                "seed": int(seed), "n_gal": float(n_gal), "sigma_e": float(sigma_e),
                "mask": hashlib.sha256(msk.tobytes()).hexdigest(), "chunk": chunk}
    if simulator == "pm":
        settings.update({"box": float(box), "mesh": int(mesh), "steps": int(steps), "a_init": float(a_init)})
    check_scheduler(scheduler)
    parts = (writable_folder(parts_dir) if parts_dir is not None else out.parent) / (out.name + ".parts")
    _open_parts(parts, settings, overwrite)
    bounds = [(a, min(a + chunk, n_maps)) for a in range(0, n_maps, chunk)]
    todo = [j for j in range(len(bounds)) if not _part_path(parts, j).exists()]
    n_done = n_maps - sum(bounds[j][1] - bounds[j][0] for j in todo)
    spec = {**settings, "noise_std": sigma_n}
    try:
        run_tasks(_make_chunk, {j: (spec, j, oms[a:b], s8s[a:b], seeds[a:b], msk, parts)
                                for j, (a, b) in ((j, bounds[j]) for j in todo)},
                  workers, scheduler, progress, f"{spec['simulator']} convergence maps",
                  weight=lambda j: bounds[j][1] - bounds[j][0], total=n_maps, completed=n_done,
                  initializer=_worker_init)
    except KeyboardInterrupt:
        kept = sum(b - a for j, (a, b) in enumerate(bounds) if _part_path(parts, j).exists())
        raise Interrupted(f"{kept} of {n_maps} maps are kept in {parts}; rerun the same command to resume") from None
    except SkymorphError:
        shutil.rmtree(parts, ignore_errors=True)  # bad input: resuming cannot help, leave nothing behind
        raise

    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        shapes = {"kappa": (n_maps, npix, npix), "gamma": (n_maps, 2, npix, npix), "gamma_obs": (n_maps, 2, npix, npix)}
        # gzip level 1 with byte shuffle: as small as the default level on these noisy floats, 30% faster
        dsets = {name: f.create_dataset(name, shape=shape, dtype=np.float32, chunks=(1,) + shape[1:], shuffle=True,
                                        compression="gzip", compression_opts=1) for name, shape in shapes.items()}
        shifts = np.empty(n_maps) if simulator == "lognormal" else None
        for j, (a, b) in enumerate(bounds):
            with h5py.File(_part_path(parts, j), "r") as p:
                for name, d in dsets.items():
                    d[a:b] = p[name][()]
                if shifts is not None:
                    shifts[a:b] = p["shift"][()]
        f["mask"] = msk
        f["params/Omega_m"] = oms
        f["params/sigma8"] = s8s
        f["params/seed"] = seeds
        fixed = {k: v for k, v in Cosmology(om_lo, s8_lo).params().items() if k not in ("Omega_m", "sigma8")}
        attrs = {"simulator": simulator, "field_deg": field_deg, "npix": npix, "pixel_arcmin": pixel_arcmin,
                 "z_source": z_source, "n_gal": n_gal, "sigma_e": sigma_e, "noise_std": sigma_n, "seed": seed,
                 "angle_unit": "deg", **fixed, "provenance": json.dumps(provenance())}
        if simulator == "pm":
            attrs.update({"box": box, "mesh": mesh, "steps": steps, "a_init": a_init,
                          "kappa_unit": "dimensionless convergence (Born)"})
        else:
            f["params/shift"] = shifts
            attrs.update({"shift_min": float(shifts.min()), "shift_max": float(shifts.max()),
                          "shift_model": SHIFT_MODEL,
                          "kappa_unit": "dimensionless convergence (shifted lognormal, linear Limber C_ell)"})
        f.attrs.update(attrs)
    shutil.rmtree(parts)
    return out
