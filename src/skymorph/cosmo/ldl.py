"""Lagrangian Deep Learning (Dai & Seljak 2021): a few physical layers that move particles.

A displacement layer (5 parameters alpha, gamma, k_h, k_l, n) paints the particles (CIC) into the
overdensity delta on the LDL mesh, filters the source (1 + delta)^gamma in Fourier space by

    O(k) = -exp(-k^2 / k_l^2) exp(-k_h^2 / k^2) k^n      (k in h/Mpc; k_l cuts small scales, k_h large)

and moves each particle by S = alpha grad(O * source) read out at its position (Mpc/h; gradient
i k in Fourier space). Layers are applied in turn. For a field target (not matter) an output layer
F = ReLU(b1 (1 + delta')^mu + b0) (3 parameters) maps the final overdensity to the field.

Loss (as LDL): the residual field filtered in Fourier space by (1 + k^-n_loss) (large scales
weighted up), then its L1 (fields) or L2 (matter) norm over the training region; the test region
(the corner sub-cube [0, box/2)^3, an eighth of the volume) never enters the fit. Fitted by
scipy's L-BFGS-B with the bounds of LDL (gamma in [0.05, 2], k_h, k_l in [0.03, 2 pi N / L],
n in [-4.5, 4.5]), gradients from torch in float64.

Written here because LDL's own code is TensorFlow-on-FastPM; the layers are a page of torch on the
project's differentiable CIC (``mesh.cic_paint``/``cic_readout``).
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from skymorph.atomic import atomic_path, check_output, write_text
from skymorph.cosmo.mesh import cic_paint, cic_readout, power_spectrum_3d, wavenumbers
from skymorph.errors import ConfigError, InputError
from skymorph.hdf5 import check_finite, open_hdf5
from skymorph.provenance import provenance

__all__ = ["LDLModel", "read_particles", "read_target", "fit", "apply", "held_out_mask", "compare_fields", "judge",
           "evaluation_bar",
           "write_metrics", "write_field", "LOSSES", "TARGETS"]

LOSSES = ("l1", "l2")
TARGETS = ("matter", "field")
LAYER_PARAMS = ("alpha", "gamma", "k_h", "k_l", "n")
OUTPUT_PARAMS = ("b1", "mu", "b0")


@dataclass
class LDLModel:
    """Fitted layers: ``layers`` is a list of {alpha, gamma, k_h, k_l, n}; ``output`` {b1, mu, b0}
    for a field target (None for matter); the mesh and box they act on; the fit's record."""

    mesh: int
    box: float
    layers: list
    output: dict | None = None
    record: dict = field(default_factory=dict)

    def identity(self) -> "LDLModel":
        """The same model with every alpha = 0: no displacement (the input itself, for matter)."""
        return LDLModel(self.mesh, self.box, [{**layer, "alpha": 0.0} for layer in self.layers], self.output)

    @property
    def n_params(self) -> int:
        return 5 * len(self.layers) + (3 if self.output else 0)

    def save(self, folder: Path) -> Path:
        return write_text(Path(folder) / "ldl.json", json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, folder) -> "LDLModel":
        path = Path(folder) / "ldl.json"
        if not path.is_file():
            raise InputError(f"{folder}: not an LDL fit (no ldl.json)")
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path}: not a readable LDL model ({exc})") from None


def read_particles(path) -> tuple[np.ndarray, float, int | None]:
    """Final particle positions (P, 3) in Mpc/h, the box and the PM mesh of a ``cosmo sim`` output."""
    path = Path(path)
    with open_hdf5(path) as f:
        if "particles/pos" not in f or "box" not in f.attrs:
            raise InputError(f"{path}: no /particles/pos or box attribute (a 'cosmo sim' output is needed)")
        pos, box = f["particles/pos"][()].astype(np.float64), float(f.attrs["box"])
        mesh = int(f.attrs["mesh"]) if "mesh" in f.attrs else None
    if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) == 0:
        raise InputError(f"{path}: /particles/pos must be (P, 3) with P > 0, got {pos.shape}")
    return check_finite(path, "/particles/pos", pos), box, mesh


def read_target(path, dataset: str = "density") -> tuple[np.ndarray, float]:
    """The last snapshot of a mesh dataset (``/density`` of a ``cosmo sim`` output) and its box."""
    path = Path(path)
    with open_hdf5(path) as f:
        if dataset not in f or "box" not in f.attrs:
            raise InputError(f"{path}: no /{dataset} dataset or box attribute")
        d = f[dataset]
        arr, box = np.asarray(d[-1] if d.ndim == 4 else d[()], np.float64), float(f.attrs["box"])
    if arr.ndim != 3 or len(set(arr.shape)) != 1:
        raise InputError(f"{path}: /{dataset} must be a cube, got {arr.shape}")
    return check_finite(path, f"/{dataset}", arr), box


@contextmanager
def evaluation_bar(progress: bool):
    """A transient counter of L-BFGS-B's objective evaluations (their number is not known ahead)."""
    from rich.progress import Progress

    with Progress(transient=True, disable=not progress) as bar:
        yield bar, bar.add_task("LDL fit: L-BFGS-B evaluations", total=None)


def held_out_mask(mesh: int) -> torch.Tensor:
    """1 on the test region, the corner sub-cube [0, mesh/2)^3, 0 elsewhere."""
    m = torch.zeros((mesh,) * 3, dtype=torch.float64)
    h = mesh // 2
    m[:h, :h, :h] = 1.0
    return m


def _kmag(mesh, box):
    kx, ky, kz = wavenumbers(mesh, box, dtype=torch.float64)
    return kx, ky, kz, torch.sqrt(kx**2 + ky**2 + kz**2)


def _weight(pos, mesh, weight):
    """Per-particle paint weights making the mesh 1 + delta: equal ones (mean 1) unless given."""
    return mesh**3 / pos.shape[0] if weight is None else weight


def displace(pos: torch.Tensor, layer: dict, mesh: int, box: float, weight=None) -> torch.Tensor:
    """One displacement layer (module docstring); pos (P, 3) in box units, parameters tensors or
    floats; ``weight`` (P,) paints 1 + delta in the caller's units (default: mean density 1)."""
    delta = cic_paint(pos, mesh, box, _weight(pos, mesh, weight)) - 1.0
    source = torch.clamp_min(1.0 + delta, 1e-8) ** layer["gamma"]
    kx, ky, kz, k = _kmag(mesh, box)
    safe = torch.where(k > 0, k, torch.ones_like(k))
    o = -torch.exp(-(k / layer["k_l"]) ** 2) * torch.exp(-(layer["k_h"] / safe) ** 2) * safe ** layer["n"]
    o = torch.where(k > 0, o, torch.zeros_like(o))
    phi = torch.fft.rfftn(source) * o
    grads = torch.stack([torch.fft.irfftn(1j * kk * phi, s=(mesh,) * 3) for kk in (kx, ky, kz)])
    return pos + layer["alpha"] * cic_readout(grads, pos, box)


def forward(pos: torch.Tensor, layers: list, output: dict | None, mesh: int, box: float,
            weight=None) -> torch.Tensor:
    """The LDL field on the mesh: the displaced particles' overdensity, or the output layer's field."""
    for layer in layers:
        pos = displace(pos, layer, mesh, box, weight)
    delta = cic_paint(pos, mesh, box, _weight(pos, mesh, weight)) - 1.0
    if output is None:
        return delta
    return torch.relu(output["b1"] * torch.clamp_min(1.0 + delta, 1e-8) ** output["mu"] + output["b0"])


def _loss_filter(mesh, box, n_loss):
    k = _kmag(mesh, box)[3]
    return torch.where(k > 0, 1.0 + torch.where(k > 0, k, torch.ones_like(k)) ** (-n_loss), torch.zeros_like(k))


def _residual(model_field, target, filt):
    n = target.shape[-1]
    return torch.fft.irfftn(torch.fft.rfftn(model_field - target) * filt, s=(n,) * 3)


def start_point(mesh: int, box: float, n_layers: int, target: str, target_mean: float):
    """LDL's start (alpha, gamma, n) = (0.001, 0.5, 0) with its k_h = 1, k_l = 8 h/Mpc (set for
    TNG300's resolution) replaced by the mesh's k_h = k_f and k_l = k_Nyq; output (mean, 1, 0)."""
    k_f, k_nyq = 2 * math.pi / box, math.pi * mesh / box
    layer = [1e-3, 0.5, k_f, k_nyq, 0.0]
    x0 = layer * n_layers
    if target == "field":
        x0 = x0 + [max(target_mean, 1e-3), 1.0, 0.0]
    return x0


def parameter_bounds(mesh: int, box: float, n_layers: int, target: str):
    k_max = 2 * math.pi * mesh / box
    b = [(None, None), (0.05, 2.0), (0.03, k_max), (0.03, k_max), (-4.5, 4.5)] * n_layers
    if target == "field":
        b = b + [(0.0, None), (0.05, 5.0), (None, None)]  # b1 >= 0: the field grows with density
    return b


def unpack_parameters(x, n_layers, target):
    layers = [dict(zip(LAYER_PARAMS, x[5 * i:5 * i + 5])) for i in range(n_layers)]
    output = dict(zip(OUTPUT_PARAMS, x[5 * n_layers:5 * n_layers + 3])) if target == "field" else None
    return layers, output


def fit(pos: np.ndarray, target_field: np.ndarray, box: float, n_layers: int = 1, target: str = "matter",
        loss: str | None = None, n_loss: float = 1.0, max_iter: int = 100, progress: bool = False) -> LDLModel:
    """Fit the layers on the training region (everything but :func:`held_out_mask`) by L-BFGS-B;
    ``progress`` counts the objective's evaluations."""
    from scipy.optimize import minimize

    if target not in TARGETS:
        raise ConfigError(f"--target-kind {target!r}: expected one of {', '.join(TARGETS)}")
    loss = loss or ("l2" if target == "matter" else "l1")
    if loss not in LOSSES:
        raise ConfigError(f"--loss {loss!r}: expected one of {', '.join(LOSSES)}")
    if n_layers < 1:
        raise ConfigError(f"--layers {n_layers}: need at least one displacement layer")
    mesh = target_field.shape[0]
    p = torch.from_numpy(pos)
    t = torch.from_numpy(target_field)
    train = 1.0 - held_out_mask(mesh)
    filt = _loss_filter(mesh, box, n_loss)
    norm = float(train.sum())
    history = []

    def objective(x):
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        layers, output = unpack_parameters(xt, n_layers, target)
        r = _residual(forward(p, layers, output, mesh, box), t, filt) * train
        val = (r.abs().sum() if loss == "l1" else (r**2).sum()) / norm
        val.backward()
        history.append(val.item())
        bar.advance(task)
        return val.item(), xt.grad.numpy().copy()

    x0 = start_point(mesh, box, n_layers, target, float(target_field.mean()))
    with evaluation_bar(progress) as (bar, task):
        res = minimize(objective, x0, jac=True, method="L-BFGS-B",
                       bounds=parameter_bounds(mesh, box, n_layers, target), options={"maxiter": max_iter})
    layers, output = unpack_parameters([float(v) for v in res.x], n_layers, target)
    record = {"loss": loss, "n_loss": n_loss, "start": x0, "final_loss": float(res.fun), "start_loss": history[0],
              "evaluations": len(history), "iterations": int(res.nit), "message": str(res.message),
              "target_kind": target, "test_region": "corner sub-cube [0, box/2)^3, never in the fit"}
    return LDLModel(mesh, box, layers, output, record)


def apply(model: LDLModel, pos: np.ndarray, box: float, path="input") -> np.ndarray:
    """The LDL field (mesh^3) of particles pos (P, 3) in a box of the model's size."""
    if not math.isclose(box, model.box, rel_tol=1e-6):
        raise ConfigError(f"{path}: box {box:g} Mpc/h, the LDL model was fitted in {model.box:g} Mpc/h")
    with torch.no_grad():
        return forward(torch.from_numpy(pos), model.layers, model.output, model.mesh, model.box).numpy()


def _region(field: np.ndarray) -> np.ndarray:
    """The test sub-cube, tapered by a 3D Hann window (its edges are not periodic)."""
    from scipy.signal.windows import hann

    h = field.shape[0] // 2
    w = hann(h, sym=False)
    return field[:h, :h, :h] * (w[:, None, None] * w[None, :, None] * w[None, None, :])


def compare_fields(fields: dict, target: np.ndarray, box: float, region: bool = False) -> dict:
    """P(k) ratio and r(k) of each field against the target: whole periodic box, or the test sub-cube
    (its own box of side box/2, every field under the same Hann taper)."""
    if region:
        target, box = _region(target), box / 2
        fields = {k: _region(v) for k, v in fields.items()}
    t = torch.from_numpy(np.ascontiguousarray(target)).double()
    k, p_tt, _ = power_spectrum_3d(t, box)
    out = {"k": k.numpy()}
    for name, f in fields.items():
        x = torch.from_numpy(np.ascontiguousarray(f)).double()
        _, p_xx, _ = power_spectrum_3d(x, box)
        _, p_xt, _ = power_spectrum_3d(x, box, t)
        out[name] = {"ratio": (p_xx / p_tt).numpy(), "r": (p_xt / torch.sqrt(p_xx * p_tt)).numpy()}
    return out


def write_field(out, field: np.ndarray, model: LDLModel, source, overwrite: bool = False) -> Path:
    """``painted.h5``: ``/density`` (1, mesh^3) the LDL field, ``/a`` [1]; attributes box, mesh, the
    model's parameters and the input file (so ``cosmo power`` reads it)."""
    out = check_output(out, overwrite)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f["density"] = field[None].astype(np.float32)
        f["a"] = np.array([1.0])
        f.attrs.update({"box": model.box, "mesh": model.mesh, "source": str(source),
                        "ldl": json.dumps(asdict(model)), "provenance": json.dumps(provenance()),
                        "density_unit": "density contrast delta" if model.output is None else "LDL output field"})
    return out


def judge(model: LDLModel, pos: np.ndarray, target: np.ndarray, box: float, region: bool = False) -> dict:
    """:func:`compare_fields` of the input (the identity model) and of the LDL field against the target."""
    fields = {"input": apply(model.identity(), pos, box), "ldl": apply(model, pos, box)}
    return compare_fields(fields, target, box, region)


def _worst(m: dict, name: str, k_max: float) -> tuple[float, float]:
    """Largest |P ratio - 1| and smallest r(k) of field ``name`` for k <= k_max."""
    sel = np.isfinite(m["k"]) & (m["k"] <= k_max)
    return float(np.max(np.abs(m[name]["ratio"][sel] - 1))), float(np.min(m[name]["r"][sel]))


def write_metrics(folder: Path, metrics: dict, model: LDLModel) -> str:
    """metrics.json (per k: P ratio and r of input and LDL against the target), ldl.png, and the
    summary line: worst |P ratio - 1| and lowest r up to k_Nyq / 2 of the LDL mesh, before -> after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k_half = math.pi * model.record.get("input_mesh", model.mesh) / model.box / 2
    folder = Path(folder)
    write_text(folder / "metrics.json", json.dumps(
        {name: {"k": m["k"].tolist(), **{f: {q: v.tolist() for q, v in m[f].items()} for f in ("input", "ldl")}}
         for name, m in metrics.items()}, indent=1))
    fig, axes = plt.subplots(1, 2 * len(metrics), figsize=(5 * 2 * len(metrics), 3.8), squeeze=False)
    parts = []
    for i, (name, m) in enumerate(metrics.items()):
        ax_p, ax_r = axes[0, 2 * i], axes[0, 2 * i + 1]
        for f, style in (("input", "--"), ("ldl", "-")):
            ax_p.semilogx(m["k"], m[f]["ratio"], style, label=f)
            ax_r.semilogx(m["k"], m[f]["r"], style, label=f)
        for ax, lab in ((ax_p, "P(k) / P_target(k)"), (ax_r, "r(k)")):
            ax.axhline(1.0, color="k", lw=0.5)
            ax.axvline(k_half, color="grey", lw=0.5, ls=":")
            ax.set_xlabel("k [h/Mpc]")
            ax.set_ylabel(lab)
            ax.set_title(name.replace("_", " "), fontsize=10)
            ax.legend(fontsize=8)
        (p0, r0), (p1, r1) = _worst(m, "input", k_half), _worst(m, "ldl", k_half)
        parts.append(f"{name.replace('_', ' ')}: max |P/P_target - 1| {p0:.3f} -> {p1:.3f}, "
                     f"min r {r0:.3f} -> {r1:.3f}")
    fig.suptitle(f"LDL, {model.n_params} parameters; dotted: k_Nyq / 2 of the input's "
                 f"{model.record.get('input_mesh', model.mesh)}^3 mesh", fontsize=10)
    fig.tight_layout()
    with atomic_path(folder / "ldl.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return f"wrote {folder}: {model.n_params} parameters; up to k = {k_half:.2f} h/Mpc: " + "; ".join(parts)
