"""Maximum a posteriori reconstruction of the initial conditions through the differentiable PM.

Minimise over the white noise z (unit variance per particle-lattice cell)

    L(z) = sum_cells [G_R * W (d - F(z))]^2 / (2 sigma^2) + sum z^2 / 2,

with F the FastPM forward model (same particles, mesh, steps, a_init and cosmology as the data),
d the observed final density contrast, W the survey mask (1 = observed), sigma the noise sd per
mesh cell and G_R a Gaussian smoothing of the residual whose scale R (in cells) is annealed to 0
(Seljak+17, Modi+18: large scales converge first, then the small). With Poisson tracers of mean
density n (per (Mpc/h)^3) the noise variance per cell is sigma^2 + 1 / (n V_cell). Optimisers:
torch's L-BFGS (strong Wolfe line search) or Adam; from z = 0 or the Wiener filter of the data in
linear theory. Each evaluation is one forward PM run and its adjoint (``nbody._Leapfrog``), counted
as one "pass".

Judged against the truth where the file has it: the cross-correlation r(k) = P_rt / sqrt(P_rr P_tt)
and transfer function T(k) = sqrt(P_rr / P_tt) of the initial (linear) and of the final fields.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from skymorph.atomic import atomic_path, check_output
from skymorph.cosmo.linear import Cosmology, growth_factor, linear_power
from skymorph.cosmo.mesh import linear_field, power_spectrum_3d, wavenumbers
from skymorph.cosmo.nbody import check_memory, simulate
from skymorph.errors import ConfigError, InputError
from skymorph.hdf5 import check_finite, open_hdf5
from skymorph.provenance import provenance

__all__ = ["Observation", "read_observation", "mock_observation", "read_mask", "forward_model", "map_objective",
           "reconstruct", "cross_spectra",
           "write_reconstruction", "plot_reconstruction", "OPTIMIZERS", "STARTS"]

OPTIMIZERS = ("lbfgs", "adam")
STARTS = ("zero", "wiener")
MODEL_KEYS = ("box", "mesh", "particles", "steps", "a_init", "Omega_m", "sigma8")


@dataclass
class Observation:
    """A final density to reconstruct from, the forward model that made it and the truths the file has.
    Meshes are float32 numpy arrays; ``mask`` is None (all observed) or (mesh,)*3 of 0/1."""

    path: Path
    density: np.ndarray
    a: float
    box: float
    mesh: int
    particles: int
    steps: int
    a_init: float
    cosmo: Cosmology
    sigma: float = 0.0
    mask: np.ndarray | None = None
    truth: dict = field(default_factory=dict)  # "noise", "linear", "final" where known
    notes: dict = field(default_factory=dict)  # how the observation was made (stored with the output)


def read_observation(path, **model) -> Observation:
    """The last ``/density`` snapshot of ``path`` (a ``cosmo sim`` output, or any HDF5 file with
    ``/density`` (mesh^3 or n_out x mesh^3), ``/a`` or an ``a`` attribute, and the forward model's
    attributes ``box, mesh, particles, steps, a_init, Omega_m, sigma8``). A value given in
    ``model`` must match the file's where the file has it, and fills it where it does not."""
    path = Path(path)
    with open_hdf5(path) as f:
        if "density" not in f:
            raise InputError(f"{path}: no /density dataset (the observed final density)")
        dens = f["density"]
        density = np.asarray(dens[-1] if dens.ndim == 4 else dens[()], dtype=np.float32)
        a = float(f["a"][-1]) if "a" in f else float(f.attrs.get("a", 1.0))
        attrs = {k: f.attrs[k] for k in MODEL_KEYS if k in f.attrs}
        truth = {k: np.asarray(f[f"initial/{k}"][()], dtype=np.float32)
                 for k in ("noise", "linear") if f"initial/{k}" in f}
    if density.ndim != 3 or len(set(density.shape)) != 1:
        raise InputError(f"{path}: /density must be a cube (mesh, mesh, mesh), got {density.shape}")
    check_finite(path, "/density", density)
    attrs.setdefault("mesh", density.shape[0])
    for key, value in model.items():
        if value is None:
            continue
        if key in attrs and not math.isclose(float(attrs[key]), float(value), rel_tol=1e-6):
            raise ConfigError(f"{path}: the observation has {key} = {float(attrs[key]):g}, the requested forward "
                              f"model {key} = {float(value):g}")
        attrs[key] = value
    missing = [k for k in MODEL_KEYS if k not in attrs]
    if missing:
        raise InputError(f"{path}: the forward model's {', '.join(missing)} are not in the file's attributes; "
                         f"give them as options")
    mesh = int(attrs["mesh"])
    if density.shape[0] != mesh:
        raise ConfigError(f"{path}: /density is {density.shape[0]}^3, the forward model's mesh {mesh}^3")
    particles = int(attrs["particles"])
    for k, v in truth.items():
        if v.shape != (particles,) * 3:
            raise InputError(f"{path}: /initial/{k} is {v.shape}, expected ({particles},)*3 particles")
        check_finite(path, f"/initial/{k}", v)
    return Observation(path, density, a, float(attrs["box"]), mesh, particles, int(attrs["steps"]),
                       float(attrs["a_init"]), Cosmology(float(attrs["Omega_m"]), float(attrs["sigma8"])),
                       truth=truth)


def mock_observation(obs: Observation, noise: float, tracers: float | None, mask: np.ndarray | None,
                     seed: int) -> Observation:
    """Observe the file's density as a survey would: Poisson tracers of mean density ``tracers``
    (per (Mpc/h)^3, optional), Gaussian noise of sd ``noise`` per cell, the mask; the file's density
    becomes the final-field truth. The likelihood's sigma includes the shot noise."""
    rng = np.random.default_rng(seed)
    truth = obs.density
    observed = truth.astype(np.float64)
    var = noise**2
    if tracers is not None:
        mean = tracers * (obs.box / obs.mesh) ** 3
        observed = rng.poisson(mean * np.clip(1.0 + observed, 0.0, None)) / mean - 1.0
        var += 1.0 / mean
    observed = observed + noise * rng.standard_normal(observed.shape)
    if mask is not None:
        observed = observed * mask
    out = Observation(**{**obs.__dict__, "density": observed.astype(np.float32), "sigma": math.sqrt(var),
                         "mask": mask, "truth": {**obs.truth, "final": truth}})
    out.notes = {"mock": True, "noise": noise, "tracers": tracers, "seed": seed, "masked_fraction":
                 0.0 if mask is None else float(1.0 - mask.mean())}
    return out


def read_mask(path, mesh: int) -> np.ndarray:
    """A survey mask (.npy of shape (mesh,)*3; nonzero = observed) as float32 0/1."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--mask {path}: no such file")
    try:
        m = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"--mask {path}: not a readable .npy array ({exc})") from None
    if m.shape != (mesh,) * 3:
        raise ConfigError(f"--mask {path}: shape {m.shape}, the observation's mesh is ({mesh},)*3")
    check_finite(path, "mask", m)
    return (m != 0).astype(np.float32)


def _smoother(mesh: int, box: float, radius_cells: float):
    """Gaussian smoothing of a mesh by radius_cells cells (identity at 0), in Fourier space."""
    if radius_cells <= 0:
        return lambda x: x
    kx, ky, kz = wavenumbers(mesh, box, dtype=torch.float64)
    r = radius_cells * box / mesh
    g = torch.exp(-0.5 * (kx**2 + ky**2 + kz**2) * r * r)
    return lambda x: torch.fft.irfftn(torch.fft.rfftn(x) * g.to(x.dtype), s=x.shape)


def _wiener_start(obs: Observation) -> torch.Tensor:
    """White noise whose linear field is the linear-theory Wiener filter of the data,
    S / (S + N) d / D(a) with S = D(a)^2 P_lin(k) and N = sigma^2 V_cell."""
    if obs.mesh != obs.particles:
        raise ConfigError(f"--start wiener needs the PM mesh equal to the particle lattice "
                          f"(mesh {obs.mesh}, particles {obs.particles}); use --start zero")
    n, box = obs.mesh, obs.box
    kx, ky, kz = wavenumbers(n, box, dtype=torch.float64)
    k = torch.sqrt(kx**2 + ky**2 + kz**2)
    k[0, 0, 0] = 1.0
    d_a = float(growth_factor(obs.a, obs.cosmo))
    p_lin = linear_power(k, obs.cosmo)
    signal = d_a**2 * p_lin
    noise_power = max(obs.sigma, 1e-6) ** 2 * box**3 / n**3
    d_k = torch.fft.rfftn(torch.from_numpy(obs.density).double())
    lin_k = signal / (signal + noise_power) * d_k / d_a
    amp = torch.sqrt(p_lin * n**3 / box**3)
    z_k = lin_k / amp
    z_k[0, 0, 0] = 0.0
    return torch.fft.irfftn(z_k, s=(n, n, n)).float()


def forward_model(obs: Observation, z: torch.Tensor) -> torch.Tensor:
    """Final density contrast (mesh^3) of the PM run of white noise z with the observation's model."""
    return simulate(z, obs.box, obs.cosmo, obs.mesh, obs.steps, obs.a_init, (obs.a,), keep_particles=False)[0].delta


def map_objective(obs: Observation, radius_cells: float):
    """z -> L(z) of the module docstring with the residual smoothed by radius_cells cells."""
    smooth = _smoother(obs.mesh, obs.box, radius_cells)
    data = torch.from_numpy(obs.density)
    mask = None if obs.mask is None else torch.from_numpy(obs.mask)

    def loss(z):
        resid = data.to(z.dtype) - forward_model(obs, z)
        if mask is not None:
            resid = resid * mask.to(z.dtype)
        return 0.5 * (smooth(resid) ** 2).sum() / obs.sigma**2 + 0.5 * (z**2).sum()

    return loss


@dataclass
class Reconstruction:
    noise: np.ndarray
    linear: np.ndarray
    final: np.ndarray
    history: list  # (pass, stage, smoothing_cells, loss)
    seconds: float
    settings: dict
    metrics: dict = field(default_factory=dict)  # "initial", "final": (k, r, T) against the truths known


def reconstruct(obs: Observation, optimizer: str = "lbfgs", anneal=(1.0, 0.5, 0.0), iterations: int = 50,
                start: str = "zero", lr: float | None = None, checkpoint: Path | None = None,
                progress: bool = False, monitor=None) -> Reconstruction:
    """MAP white noise of ``obs`` (module docstring): ``iterations`` L-BFGS iterations or Adam steps
    per annealing stage (smoothing radii in cells); ``lr`` is Adam's rate (default 0.03: 0.1 diverged
    on 32^3 mocks), L-BFGS takes unit steps with its line search. With ``checkpoint`` the state after each stage is
    saved there (npz, read as data) and a rerun continues after the last finished stage.
    ``monitor(z, history)``, if given, is called after every pass (benchmarks/reconstruct.py)."""
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"--optimizer {optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
    if start not in STARTS:
        raise ConfigError(f"--start {start!r}: expected one of {', '.join(STARTS)}")
    anneal = [float(r) for r in anneal]
    if not anneal or any(not r >= 0 for r in anneal):
        raise ConfigError(f"--anneal {anneal}: expected smoothing radii >= 0 in cells")
    if lr is not None and optimizer != "adam":
        raise ConfigError(f"--lr {lr:g}: a learning rate applies to --optimizer adam only")
    if optimizer == "adam":
        lr = 0.03 if lr is None else float(lr)
        if not lr > 0:
            raise ConfigError(f"--lr {lr:g}: must be positive")
    if iterations < 1:
        raise ConfigError(f"--iterations {iterations}: must be positive")
    if not obs.sigma > 0:
        raise ConfigError(f"{obs.path}: the noise level must be positive (--noise), got {obs.sigma:g}")
    check_memory(obs.mesh, obs.particles, 1, False, 4, with_grad=True)
    settings = {"optimizer": optimizer, "anneal": anneal, "iterations": iterations, "start": start, "lr": lr,
                "sigma": obs.sigma}
    n = obs.particles
    history, done, seconds = [], 0, 0.0
    z0 = _wiener_start(obs) if start == "wiener" else torch.zeros((n,) * 3)
    if checkpoint is not None and Path(checkpoint).is_file():
        with np.load(checkpoint, allow_pickle=False) as ck:
            saved = json.loads(str(ck["settings"]))
            if saved != settings:
                raise ConfigError(f"{checkpoint}: an interrupted reconstruction with other settings ({saved}); "
                                  f"remove it or rerun with those settings")
            z0, done, seconds = torch.from_numpy(ck["z"]), int(ck["stages_done"]), float(ck["seconds"])
            history = [tuple(h) for h in ck["history"].tolist()]
    z = z0.clone().requires_grad_(True)

    from rich.progress import track

    for stage in track(range(done, len(anneal)), description="reconstruction stages", disable=not progress,
                       transient=True):
        objective = map_objective(obs, anneal[stage])
        t0 = time.perf_counter()

        def closure():
            if torch.is_grad_enabled():
                opt.zero_grad()
            loss = objective(z)
            if torch.is_grad_enabled():
                loss.backward()
            history.append((len(history) + 1, stage, anneal[stage], loss.item()))
            if monitor is not None:
                monitor(z.detach(), history)
            return loss

        if optimizer == "lbfgs":
            opt = torch.optim.LBFGS([z], lr=1.0, max_iter=iterations, history_size=10,
                                    line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)
            opt.step(closure)
        else:
            opt = torch.optim.Adam([z], lr=lr)
            for _ in range(iterations):
                opt.step(closure)
        seconds += time.perf_counter() - t0
        if checkpoint is not None:
            with atomic_path(checkpoint) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, z=z.detach().numpy(), stages_done=stage + 1, seconds=seconds,
                         history=np.array(history, dtype=np.float64).reshape(-1, 4),
                         settings=json.dumps(settings))
    with torch.no_grad():
        final = forward_model(obs, z)
        linear = linear_field(z, obs.box, lambda k: linear_power(k, obs.cosmo))
    rec = Reconstruction(z.detach().numpy(), linear.numpy(), final.numpy(), history, seconds, settings)
    rec.metrics = _metrics(obs, rec)
    return rec


def cross_spectra(recon: np.ndarray, truth: np.ndarray, box: float):
    """k (h/Mpc), r(k) = P_rt / sqrt(P_rr P_tt) and T(k) = sqrt(P_rr / P_tt) of two meshes."""
    r, t = torch.from_numpy(recon).double(), torch.from_numpy(truth).double()
    k, p_rt, _ = power_spectrum_3d(r, box, t)
    _, p_rr, _ = power_spectrum_3d(r, box)
    _, p_tt, _ = power_spectrum_3d(t, box)
    return k.numpy(), (p_rt / torch.sqrt(p_rr * p_tt)).numpy(), torch.sqrt(p_rr / p_tt).numpy()


def write_reconstruction(out, obs: Observation, rec: Reconstruction, overwrite: bool = False) -> Path:
    """``recon.h5``: ``/initial/noise`` and ``/initial/linear`` (reconstructed, the names ``cosmo sim``
    uses), ``/density`` (1, mesh^3) the final field they produce at ``/a``, ``/observed`` the data,
    ``/mask`` where there is one, ``/history`` (pass, stage, smoothing radius in cells, loss) and,
    where the truth is known, ``/metrics/{k, r_initial, t_initial, r_final, t_final}``; attributes:
    the forward model, the settings, the number of passes and seconds."""
    from skymorph.cosmo.products import write_initial

    out = check_output(out, overwrite)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        write_initial(f, rec.noise, rec.linear)
        f["a"] = np.array([obs.a])
        f["density"] = rec.final[None].astype(np.float32)
        f["observed"] = obs.density
        if obs.mask is not None:
            f["mask"] = obs.mask
        h = np.array(rec.history, dtype=np.float64).reshape(-1, 4)
        g = f.create_group("history")
        g["pass"], g["stage"] = h[:, 0].astype(int), h[:, 1].astype(int)
        g["smoothing_cells"], g["loss"] = h[:, 2], h[:, 3]
        for key, (k, r, t) in rec.metrics.items():
            if "metrics/k" not in f:
                f["metrics/k"] = k
            f[f"metrics/r_{key}"], f[f"metrics/t_{key}"] = r, t
        f.attrs.update({"box": obs.box, "mesh": obs.mesh, "particles": obs.particles, "steps": obs.steps,
                        "a_init": obs.a_init, **obs.cosmo.params(), "source": str(obs.path),
                        "passes": len(rec.history), "seconds": rec.seconds,
                        "settings": json.dumps({**rec.settings, **obs.notes}),
                        "density_unit": "density contrast delta", "provenance": json.dumps(provenance())})
    return out


def _metrics(obs: Observation, rec: Reconstruction) -> dict:
    out = {}
    if "linear" in obs.truth:
        out["initial"] = cross_spectra(rec.linear, obs.truth["linear"], obs.box)
    final_truth = obs.truth.get("final")
    if final_truth is not None:
        k, r, t = cross_spectra(rec.final, final_truth, obs.box)
        if "initial" in out:  # one k axis: the particle lattice's bins, or the mesh's when they differ
            n = min(len(out["initial"][0]), len(k))
            out = {"initial": tuple(v[:n] for v in out["initial"]), "final": (k[:n], r[:n], t[:n])}
        else:
            out["final"] = (k, r, t)
    return out


def plot_reconstruction(obs: Observation, rec: Reconstruction, out, overwrite: bool = False) -> Path:
    """Slices of the true and reconstructed initial and final fields, and r(k), T(k) of both."""
    out = check_output(out, overwrite)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    truth_lin = obs.truth.get("linear")
    fig, axes = plt.subplots(2, 3, figsize=(13, 8))
    # each reconstruction shares the colour scale of what it is compared with
    lin_ref = rec.linear if truth_lin is None else truth_lin
    for ax, img, ref, title in [(axes[0, 0], truth_lin, truth_lin, "true linear field"),
                                (axes[0, 1], rec.linear, lin_ref, "reconstructed linear field"),
                                (axes[1, 0], obs.density, obs.density, "observed final density"),
                                (axes[1, 1], rec.final, obs.density, "final density of the reconstruction")]:
        if img is None:
            ax.set_axis_off()
            ax.set_title(f"{title}: not in {obs.path.name}", fontsize=9)
            continue
        sl = img[img.shape[0] // 2]
        lim = np.percentile(np.abs(ref[ref.shape[0] // 2]), 99)
        ax.imshow(sl, cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    for row, key in ((0, "initial"), (1, "final")):
        ax = axes[row, 2]
        if key not in rec.metrics:
            ax.set_axis_off()
            continue
        k, r, t = rec.metrics[key]
        ax.semilogx(k, r, label="r(k)")
        ax.semilogx(k, t, label="T(k)")
        ax.axhline(1.0, color="k", lw=0.5)
        ax.axhline(0.9, color="grey", lw=0.5, ls=":")
        ax.set_ylim(0, 1.2)
        ax.set_xticks([0.05, 0.1, 0.2, 0.4, 0.8], ["0.05", "0.1", "0.2", "0.4", "0.8"])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("k [h/Mpc]")
        ax.set_title(f"{key} field vs truth", fontsize=10)
        ax.legend(fontsize=8)
    s = rec.settings
    fig.suptitle(f"{s['optimizer']}, anneal {s['anneal']} cells, sigma = {s['sigma']:.3g}, "
                 f"{len(rec.history)} forward+backward passes", fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out
