"""Driven turbulence with cosmic rays: the models, the run loop with checkpoints, the snapshot file.

Models (Bustard & Wu 2024's classes): ``mhd`` (no CRs), ``cr_advect`` (CRs advected with the gas, pdV
work, their pressure on the gas), ``cr_diffuse`` (plus diffusion along B with ``kappa``), ``cr_stream``
(plus streaming at the Alfven speed, Sharma+09 regularisation). All start from rho = 1, v = 0, a mean
field B0 along x with plasma beta = p_gas / (B0^2 / 2), and CRs with p_c = ``cr_ratio`` p_gas; the
driving (:mod:`skymorph.grid.driving`) brings them to the same rms Mach number. Each step: SSP-RK2 MHD
+ CR advection (:mod:`skymorph.grid.mhd`), CR transport subcycled (:mod:`skymorph.grid.cosmic_rays`),
then the driving kick. Times are in turnover times t_turn = L / (M c_s) where stated, else code units.

Output ``/snapshots/<field>`` (S, nz, ny, nx) float32 with a ``unit`` attribute (code units: L, c_s,
rho0): rho, vx, vy, vz, bx, by, bz (cell-centred), eb = |B|^2 / 2 and, for CR models, ec;
``/snapshots/time``; ``/history/{time, mach, amplitude, divb}`` (divb: max |div B| dx / |B|_rms);
attributes: the configuration, ``label`` (the class name), units and provenance. A checkpoint
``OUT.ckpt.npz`` (arrays only, loaded without pickle) is kept while the run is under way.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from skymorph.atomic import atomic_path, check_output
from skymorph.errors import ConfigError, Interrupted
from skymorph.provenance import provenance

from . import cosmic_rays, mhd
from .driving import Driver

__all__ = ["MODELS", "SimConfig", "simulate", "initial_state", "advance", "label_of", "checkpoint_path"]

MODELS = ("mhd", "cr_advect", "cr_diffuse", "cr_stream")
MAX_CFL = 0.5  # the unsplit RK2 scheme is stable to ~1/2 in 2D and 3D at this definition of dt
UNITS = {"rho": "code: rho0", "vx": "code: c_s", "vy": "code: c_s", "vz": "code: c_s", "bx": "code: sqrt(rho0) c_s",
         "by": "code: sqrt(rho0) c_s", "bz": "code: sqrt(rho0) c_s", "eb": "code: rho0 c_s^2",
         "ec": "code: rho0 c_s^2"}


@dataclass
class SimConfig:
    """A run: model, grid (``n`` cells per side, ``dim`` 2 or 3), target ``mach``, CR diffusion ``kappa``
    (code units L c_s; cr_diffuse only), mean-field ``beta``, ``cr_ratio`` p_c / p_gas, ``snapshots``
    written every ``every`` turnover times after ``spinup`` turnover times, Courant number ``cfl``,
    streaming regularisation ``smoothing`` (cells), ``seed``, HLL ``kernel`` (numba or numpy)."""

    model: str = "cr_diffuse"
    n: int = 128
    dim: int = 2
    mach: float = 1.0
    kappa: float = 0.0
    beta: float = 1.0
    cr_ratio: float = 1.0
    snapshots: int = 10
    spinup: float = 2.0
    every: float = 0.5
    cfl: float = 0.3
    smoothing: float = 8.0
    seed: int = 0
    kernel: str = "numba"

    def check(self) -> "SimConfig":
        if self.model not in MODELS:
            raise ConfigError(f"--model {self.model!r}: expected one of {', '.join(MODELS)}")
        if self.dim not in (2, 3):
            raise ConfigError(f"--dim {self.dim}: expected 2 or 3")
        if self.n < 8:
            raise ConfigError(f"--n {self.n}: at least 8 cells per side")
        if not 0 < self.cfl <= MAX_CFL:
            raise ConfigError(f"--cfl {self.cfl:g}: the time step would violate the CFL condition; "
                              f"expected 0 < cfl <= {MAX_CFL}")
        if (self.kappa != 0) != (self.model == "cr_diffuse"):
            raise ConfigError(f"--kappa {self.kappa:g}: cr_diffuse needs kappa > 0 and the other models "
                              f"take none (model {self.model})")
        for name in ("mach", "beta", "every"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name} {getattr(self, name):g}: must be > 0")
        if self.kappa < 0 or self.spinup < 0 or self.cr_ratio < 0 or self.smoothing <= 0 or self.snapshots < 1:
            raise ConfigError("--kappa, --spinup and --cr-ratio must be >= 0, --smoothing > 0, --snapshots >= 1")
        if self.model != "mhd" and self.cr_ratio == 0:
            raise ConfigError(f"--cr-ratio 0: model {self.model} needs cosmic rays")
        if self.kernel not in mhd.KERNELS:
            raise ConfigError(f"--kernel {self.kernel!r}: expected one of {', '.join(mhd.KERNELS)}")
        return self

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n if self.dim == 3 else 1, self.n, self.n)

    @property
    def turnover(self) -> float:
        return 1.0 / self.mach


def label_of(cfg: SimConfig) -> str:
    """The class name: the model, with kappa for cr_diffuse (a fiducial and a x100 run are two classes)."""
    return f"cr_diffuse_k{cfg.kappa:g}" if cfg.model == "cr_diffuse" else cfg.model


def initial_state(cfg: SimConfig) -> mhd.State:
    """Uniform gas at rest in the mean field B0 x-hat, CRs at p_c = cr_ratio p_gas (none for mhd)."""
    shape = cfg.shape
    u = np.zeros((5, *shape))
    u[0] = 1.0
    if cfg.model != "mhd":
        u[4] = cfg.cr_ratio ** 0.75
    b = np.zeros((3, *shape))
    b[0] = math.sqrt(2.0 / cfg.beta)
    return mhd.State(u, b, 1.0 / cfg.n)


def mach_rms(state: mhd.State) -> float:
    """Volume-weighted rms Mach number (c_s = 1)."""
    v = state.u[1:4] / state.u[0]
    return float(np.sqrt((v ** 2).sum(axis=0).mean()))


def advance(state: mhd.State, dt: float, cfg: SimConfig, driver: Driver | None) -> mhd.State:
    """One step: MHD + CR advection, CR transport, driving kick."""
    state = mhd.rk2_step(state, dt, kernel=cfg.kernel)
    if cfg.model in ("cr_diffuse", "cr_stream"):
        ec = 3.0 * state.u[4] ** (4.0 / 3.0)
        ec, _ = cosmic_rays.transport(ec, mhd.cell_field(state.b), state.u[0], dt, state.dx, cfg.kappa,
                                      cfg.model == "cr_stream", cfg.smoothing, cfg.kernel)
        state.u[4] = (ec / 3.0) ** 0.75
    if driver is not None:
        state.u = driver.kick(state.u, dt)
        driver.advance(dt, mach_rms(state))
    return state


def snapshot(state: mhd.State, cfg: SimConfig) -> dict:
    """The written fields of one state, float32."""
    w = mhd.primitives(state)
    out = {"rho": w[0], "vx": w[1], "vy": w[2], "vz": w[3], "bx": w[4], "by": w[5], "bz": w[6],
           "eb": 0.5 * (w[4:7] ** 2).sum(axis=0)}
    if cfg.model != "mhd":
        out["ec"] = 3.0 * w[7] ** (4.0 / 3.0)
    return {k: v.astype(np.float32) for k, v in out.items()}


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".ckpt.npz")


def _save(path: Path, cfg, state, driver, snaps, history) -> None:
    rng = json.dumps(driver.state()["rng"])
    arrays = {f"snap_{k}": np.stack([s[k] for s in snaps]) for k in (snaps[0] if snaps else {})}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, u=state.u, b=state.b, t=state.t, modes=driver.modes, amplitude=driver.amplitude,
                     mach_smooth=driver.mach_smooth,
                     rng=np.array(rng), config=np.array(json.dumps(asdict(cfg))),
                     history=np.array(history, dtype=np.float64).reshape(-1, 4), n_snaps=len(snaps), **arrays)


def _load(path: Path, cfg: SimConfig, driver: Driver):
    with np.load(path, allow_pickle=False) as z:
        saved = json.loads(str(z["config"]))
        if saved != asdict(cfg):
            diff = {k: (saved.get(k), v) for k, v in asdict(cfg).items() if saved.get(k) != v}
            raise ConfigError(f"{path}: the checkpoint was made with other settings {diff} (saved, given); "
                              f"resume with the same options")
        state = mhd.State(z["u"], z["b"], 1.0 / cfg.n, float(z["t"]))
        driver.restore({"modes": z["modes"], "amplitude": float(z["amplitude"]),
                        "mach_smooth": float(z["mach_smooth"]), "rng": json.loads(str(z["rng"]))})
        keys = [k[5:] for k in z.files if k.startswith("snap_")]
        snaps = [{k: z[f"snap_{k}"][i] for k in keys} for i in range(int(z["n_snaps"]))]
        return state, snaps, [tuple(r) for r in z["history"]]


def _write(out: Path, cfg: SimConfig, snaps: list[dict], times: list[float], history) -> None:
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        for k in snaps[0]:
            d = f.create_dataset(f"snapshots/{k}", data=np.stack([s[k] for s in snaps]),
                                 chunks=(1, *snaps[0][k].shape), compression="gzip", shuffle=True)
            d.attrs["unit"] = UNITS[k]
        f["snapshots/time"] = np.asarray(times)
        h = np.asarray(history, dtype=np.float64).reshape(-1, 4)
        for i, k in enumerate(("time", "mach", "amplitude", "divb")):
            f[f"history/{k}"] = h[:, i]
        f.attrs.update({**{k: v for k, v in asdict(cfg).items()}, "label": label_of(cfg),
                        "config": json.dumps(asdict(cfg)), "units": json.dumps(UNITS),
                        "provenance": json.dumps(provenance()),
                        "notes": "code units: box L = 1, isothermal c_s = 1, mean density 1; B Heaviside-Lorentz"})


def simulate(cfg: SimConfig, out, resume: bool = False, overwrite: bool = False, progress: bool = False) -> Path:
    """Run ``cfg`` to its last snapshot and write ``out``; Ctrl-C leaves a checkpoint for ``resume``."""
    from rich.progress import Progress

    cfg.check()
    out = check_output(out, overwrite or resume)
    ckpt = checkpoint_path(out)
    if ckpt.exists() and not resume:
        raise ConfigError(f"{ckpt}: an interrupted simulation is there; --resume to continue it or remove it")
    driver = Driver(cfg.shape, cfg.mach, cfg.seed)
    if resume and ckpt.exists():
        state, snaps, history = _load(ckpt, cfg, driver)
    else:
        state, snaps, history = initial_state(cfg), [], []
    times = [cfg.turnover * (cfg.spinup + i * cfg.every) for i in range(cfg.snapshots)]
    save_every = 0.5 * cfg.every * cfg.turnover
    next_save = (math.floor(state.t / save_every) + 1) * save_every
    b_rms = math.sqrt(2.0 / cfg.beta)
    try:
        with Progress(transient=True, disable=not progress) as bar:
            task = bar.add_task(f"{label_of(cfg)} {cfg.n}^{cfg.dim}: time", total=times[-1], completed=state.t)
            while len(snaps) < cfg.snapshots:
                target = times[len(snaps)]
                dt = min(mhd.time_step(state, cfg.cfl), target - state.t, next_save - state.t)
                state = advance(state, dt, cfg, driver)
                bar.update(task, completed=state.t)
                if not np.isfinite(state.u[0]).all() or state.u[0].min() <= 0:
                    raise ConfigError(f"{out}: the solution lost positivity at t = {state.t:.4g}; lower --cfl "
                                      f"or --mach")
                if state.t >= target - 1e-12:
                    snaps.append(snapshot(state, cfg))
                if state.t >= next_save - 1e-12 or len(snaps) == cfg.snapshots:
                    divb = float(np.abs(mhd.divergence(state.b, state.dx)).max() * state.dx / b_rms)
                    history.append((state.t, mach_rms(state), driver.amplitude, divb))
                    next_save += save_every
                    _save(ckpt, cfg, state, driver, snaps, history)
    except KeyboardInterrupt:
        _save(ckpt, cfg, state, driver, snaps, history)
        raise Interrupted(f"{out}: stopped at t = {state.t:.3g} of {times[-1]:.3g}; the state is in {ckpt}, "
                          f"rerun with --resume to continue") from None
    _write(out, cfg, snaps, times, history)
    ckpt.unlink(missing_ok=True)
    return out

