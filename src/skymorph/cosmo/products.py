"""Files the ``skymorph cosmo`` and ``skymorph lensing`` commands write: PM snapshots, P(k) plots and
convergence-map sets (HDF5, written atomically; an existing output needs ``overwrite=True``).

``sim.h5``: ``/a`` (n_out,); ``/density`` (n_out, N, N, N) float32 density contrast on the PM
mesh; ``/particles/pos`` (P, 3) comoving Mpc/h in [0, box) and ``/particles/vel`` (P, 3) peculiar
velocity in km/s, both at the last scale factor; attributes: box (Mpc/h), mesh, particles, steps,
a_init, seed and the cosmology.

``kappa.h5``: ``/kappa`` (N, npix, npix) Born convergence; ``/gamma`` (N, 2, npix, npix) its shear
(gamma1, gamma2) from the Kaiser-Squires forward operator; ``/gamma_obs`` the same plus shape noise,
times the mask; ``/mask`` (npix, npix) 1 = observed; ``/params/{Omega_m,sigma8,seed}`` (N,) per
map; attributes: field_deg, npix, pixel_arcmin, z_source, n_gal (per arcmin^2), sigma_e (per
component), noise_std (per component per pixel), box, mesh, steps, a_init, seed and the fixed
cosmological parameters.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch

from skymorph.atomic import atomic_path
from skymorph.cosmo.lensing import ks_forward, shape_noise_std
from skymorph.cosmo.lightcone import convergence_map, lens_planes
from skymorph.cosmo.linear import Cosmology, growth_factor, linear_power
from skymorph.cosmo.mesh import power_spectrum_3d
from skymorph.cosmo.nbody import check_memory, simulate
from skymorph.data.store import check_output
from skymorph.errors import ConfigError, InputError
from skymorph.provenance import provenance

__all__ = ["parse_range", "run_simulation", "plot_power", "make_kappa_maps"]

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
    check_memory(mesh, particles, steps, len(a_out), True)
    with torch.no_grad():
        snaps = simulate(_noise(np.random.default_rng(seed), particles), box, cosmo, mesh, steps, a_init, a_out,
                         progress=progress)
    last = snaps[-1]
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
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


def make_kappa_maps(out, omega_m, sigma8, n_maps: int = 1, field_deg: float = 5.0, npix: int = 128,
                    z_source: float = 1.0, seed: int = 0, box: float = 256.0, mesh: int = 64, steps: int = 10,
                    n_gal: float = 30.0, sigma_e: float = 0.26, mask=None, a_init: float = 0.1,
                    overwrite: bool = False, progress: bool = True) -> Path:
    """Write ``n_maps`` Born convergence maps, their shear and noisy shear to ``kappa.h5``.

    ``omega_m`` and ``sigma8`` are numbers or (lo, hi) ranges drawn uniformly per map; each map
    comes from its own PM run (``mesh``^3 particles on a ``mesh``^3 mesh) of a seed drawn from
    ``seed``. See the module docstring for the layout.
    """
    om_lo, om_hi = parse_range(omega_m, "--omega-m")
    s8_lo, s8_hi = parse_range(sigma8, "--sigma8")
    for om, s8 in ((om_lo, s8_lo), (om_hi, s8_hi)):
        Cosmology(om, s8)
    if n_maps < 1:
        raise ConfigError(f"--n-maps {n_maps}: need at least one map")
    if npix < 2 or not 0 < field_deg < 90:
        raise ConfigError(f"--npix {npix} / --field-deg {field_deg}: need npix >= 2 and 0 < field < 90 deg")
    _check_grid(mesh, mesh, box, steps)
    out = check_output(out, overwrite)
    pixel_arcmin = field_deg * 60.0 / npix
    sigma_n = shape_noise_std(sigma_e, n_gal, pixel_arcmin)
    msk = np.ones((npix, npix), np.float32) if mask is None else _read_mask(mask, npix)
    # geometry checks (source beyond the planes, field wider than the box) before any run
    n_planes = len(lens_planes(Cosmology(om_lo, s8_lo), z_source, box, mesh, mesh, a_init).a)
    check_memory(mesh, mesh, steps, n_planes, False)
    rng = np.random.default_rng(seed)
    seeds = rng.integers(2**31, size=n_maps)
    oms = rng.uniform(om_lo, om_hi, n_maps)
    s8s = rng.uniform(s8_lo, s8_hi, n_maps)
    kappa = np.empty((n_maps, npix, npix), np.float32)
    gamma = np.empty((n_maps, 2, npix, npix), np.float32)
    gamma_obs = np.empty_like(gamma)
    from rich.progress import track

    with torch.no_grad():
        for i in track(range(n_maps), description="Convergence maps", disable=not progress):
            r = np.random.default_rng(int(seeds[i]))
            k = convergence_map(Cosmology(float(oms[i]), float(s8s[i])), _noise(r, mesh), box, mesh, steps, z_source,
                                field_deg, npix, r, thickness_cells=mesh, a_init=a_init)
            g = ks_forward(k.double())
            kappa[i] = k.numpy()
            gamma[i] = np.stack([g.real.numpy(), g.imag.numpy()])
            gamma_obs[i] = (gamma[i] + sigma_n * r.standard_normal((2, npix, npix))) * msk
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        for name, data in (("kappa", kappa), ("gamma", gamma), ("gamma_obs", gamma_obs)):
            f.create_dataset(name, data=data, chunks=(1,) + data.shape[1:], compression="gzip")
        f["mask"] = msk
        f["params/Omega_m"] = oms
        f["params/sigma8"] = s8s
        f["params/seed"] = seeds
        fixed = {k: v for k, v in Cosmology(om_lo, s8_lo).params().items() if k not in ("Omega_m", "sigma8")}
        f.attrs.update({"field_deg": field_deg, "npix": npix, "pixel_arcmin": pixel_arcmin, "z_source": z_source,
                        "n_gal": n_gal, "sigma_e": sigma_e, "noise_std": sigma_n, "box": box, "mesh": mesh,
                        "steps": steps, "a_init": a_init, "seed": seed,
                        "kappa_unit": "dimensionless convergence (Born)", "angle_unit": "deg", **fixed,
                        "provenance": json.dumps(provenance())})
    return out
