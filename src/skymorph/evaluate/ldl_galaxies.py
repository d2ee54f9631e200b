"""LDL on galaxies: stellar or gas surface density painted from a cutout's dark-matter particles by
Lagrangian Deep Learning layers (``cosmo.ldl``), fitted on train galaxies and judged on the test
split with the translation metrics, beside a trained translator.

Per view: the galaxy's DM particles rotated as the view was, those inside the view's cube
(|x|, |y|, |z| < half-width, the map's own depth) painted on a mesh of the map's npix cells per
side, positions in units of the cube side (so that k_h, k_l are in map units and shared by all
galaxies), CIC nodes at the map's pixel centres, the cube periodic for the Fourier filters (its
edges wrap; stated). Paint weights make 1 + delta = rho_DM / rho_ref, rho_ref the median mean DM
density of the train views (Msun/kpc^3). Layers move the particles; the output layer
F = ReLU(b1 (rho'/rho_ref)^mu + b0) is a density in units of rho_ref; the map is its sum along the
line of sight times rho_ref times the cell depth (Msun/kpc^2), rows along +y as the store's maps.

Loss: LDL's L1 of the residual filtered by 1 + (k / k_f)^-n (k_f the map's fundamental; the mean,
k = 0, weighted as k_f: unlike matter's delta a field's level must be fitted), on the maps in
Msun/kpc^2 divided by each view's mean (so that every galaxy weighs alike; in the store's log space
most star pixels sit at the floor and the fit falls into the dead ReLU of an all-zero map); summed
over one view of each of the first ``limit`` train galaxies. L-BFGS-B with LDL's bounds (b1 >= 0),
on parameters scaled by their start, b1 started where the maps' masses match.
"""
from __future__ import annotations

import numpy as np
import torch

from skymorph.cosmo import ldl
from skymorph.data.store import MapStore
from skymorph.errors import ConfigError, InputError
from skymorph.evaluate.metrics import HIGHER_IS_BETTER, map_metrics
from skymorph.sim.sources import open_source

__all__ = ["GalaxyViews", "load_views", "fit_galaxies", "predict", "compare", "write_comparison", "TABLE_METRICS"]

TABLE_METRICS = ("mse_log", "pk_err_dex", "rk", "profile_rel_err", "mass_rel_err", "ssim", "pdf_w1")


class GalaxyViews:
    """DM particles of store views in cube units, their paint weights, and the target maps."""

    def __init__(self, store_path, target: str, index: np.ndarray):
        with MapStore(store_path) as store:
            if target not in store.domains:
                raise ConfigError(f"{store_path}: no domain {target!r} (has {', '.join(store.domains)})")
            source = store.settings.get("source")
            self.npix = int(store.settings["size"])
            self.truth = store.maps(target, index).astype(np.float64)
            self.norm = store.norm(target)
            self.pixel = store.meta("pixel_kpc", index)
            self.galaxy = store.meta("galaxy_id", index)
            rot = store.meta("rotation", index)
            hw = store.meta("half_width_kpc", index)
        if not isinstance(source, dict) or "path" not in source:
            raise InputError(f"{store_path}: the store does not record its galaxy source; LDL needs the particles")
        src = open_source(source["path"], source.get("snapshot"))
        self.index, self.half_width, self.target = index, hw, target
        self.pos, self.mass = [], []
        cache = {}
        for gid, r, h in zip(self.galaxy, rot, hw):
            if gid not in cache:
                cache = {gid: src.load(int(gid), ("dm",))}
            dm = cache[gid].particles["dm"]
            p = dm.pos @ np.asarray(r).T
            inside = np.all(np.abs(p) < h, axis=1)
            if not inside.any():
                raise InputError(f"{source['path']}: galaxy {gid} has no dark-matter particles in its view")
            d = 2 * h / self.npix
            self.pos.append((p[inside] + h - 0.5 * d) / (2 * h))  # nodes at pixel centres, cube side 1
            self.mass.append(dm.mass[inside])
        vol = [(2 * h) ** 3 for h in hw]
        self.rho_mean = np.array([m.sum() / v for m, v in zip(self.mass, vol)])

    def weights(self, i: int, rho_ref: float) -> np.ndarray:
        """Paint weights of view i: mass / (cell volume rho_ref), so the mesh is rho / rho_ref."""
        cell = (2 * self.half_width[i] / self.npix) ** 3
        return self.mass[i] / (cell * rho_ref)


def load_views(store_path, target: str, split: str, limit: int | None = None) -> GalaxyViews:
    """Views of ``split``; with ``limit``, the first view of each of the first ``limit`` galaxies."""
    with MapStore(store_path) as store:
        index = np.sort(store.split(split))
        if limit is not None:
            gal = store.meta("galaxy_id", index)
            _, first = np.unique(gal, return_index=True)
            index = index[np.sort(first)][:limit]
    if len(index) == 0:
        raise ConfigError(f"{store_path}: no views in the {split} split")
    return GalaxyViews(store_path, target, index)


def _map(views: GalaxyViews, i: int, layers, output, rho_ref: float) -> torch.Tensor:
    n = views.npix
    pos = torch.from_numpy(views.pos[i])
    w = torch.from_numpy(views.weights(i, rho_ref))
    field = ldl.forward(pos, layers, output, n, 1.0, w)
    depth = 2 * views.half_width[i] / n
    return (field.sum(dim=2) * (rho_ref * depth)).T  # [iy, ix] as the store's maps


def _filter2d(n: int, n_loss: float) -> torch.Tensor:
    f = torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float64).abs().view(-1, 1)
    fz = torch.fft.rfftfreq(n, 1.0 / n, dtype=torch.float64).view(1, -1)
    k = torch.sqrt(f**2 + fz**2)
    # the mean (k = 0) is weighted as the fundamental: a field's level is part of the fit
    return 1.0 + torch.clamp_min(k, 1.0) ** (-n_loss)


def fit_galaxies(views: GalaxyViews, n_layers: int = 2, n_loss: float = 1.0, max_iter: int = 50,
                 progress: bool = False) -> ldl.LDLModel:
    """Fit displacement layers + output layer to the views' target maps (module docstring);
    ``progress`` counts the objective's evaluations."""
    from scipy.optimize import minimize

    n = views.npix
    rho_ref = float(np.median(views.rho_mean))
    filt = _filter2d(n, n_loss)
    target = torch.from_numpy(views.truth)
    level = target.mean(dim=(1, 2))  # each view's mean surface density: galaxies weigh alike
    history = []

    def objective(u):
        xt = torch.tensor(u * scale, dtype=torch.float64, requires_grad=True)
        layers, output = ldl.unpack_parameters(xt, n_layers, "field")
        total = 0.0
        for i in range(len(views.pos)):
            pred = _map(views, i, layers, output, rho_ref)
            r = torch.fft.irfft2(torch.fft.rfft2((pred - target[i]) / level[i]) * filt, s=(n, n))
            val = r.abs().mean() / len(views.pos)
            val.backward()
            total += val.item()
        history.append(total)
        bar.advance(task)
        return total, xt.grad.numpy() * scale

    mean_field = float(np.mean([t.mean() / (2 * h) for t, h in zip(views.truth, views.half_width)])) / rho_ref
    x0 = ldl.start_point(n, 1.0, n_layers, "field", mean_field)
    layers0, output0 = ldl.unpack_parameters(x0, n_layers, "field")
    with torch.no_grad():  # b1 starts where the maps' masses match, median over the views
        ratio = [float(_map(views, i, layers0, output0, rho_ref).sum() / target[i].sum()) for i in range(len(target))]
    x0[-3] /= float(np.median(ratio))
    # L-BFGS-B in units of each parameter's start (k_h, k_l ~ 10-200, b1 ~ 1e-2, alpha ~ 1e-3):
    # unscaled, the steps in one swamp the others and the fit stalls at its start
    scale = np.array([max(abs(v), 1e-2) for v in x0])
    scale[-1] = scale[-3]  # b0 in units of b1
    bounds = [(None if lo is None else lo / sc, None if hi is None else hi / sc)
              for (lo, hi), sc in zip(ldl.parameter_bounds(n, 1.0, n_layers, "field"), scale)]
    with ldl.evaluation_bar(progress) as (bar, task):
        res = minimize(objective, np.asarray(x0) / scale, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": max_iter})
    layers, output = ldl.unpack_parameters([float(v) for v in res.x * scale], n_layers, "field")
    record = {"loss": "l1 of the filtered residual over each view's mean surface density", "n_loss": n_loss,
              "start": x0,
              "start_loss": history[0], "final_loss": float(res.fun), "evaluations": len(history),
              "iterations": int(res.nit), "message": str(res.message), "rho_ref_msun_kpc3": rho_ref,
              "fit_views": len(views.pos), "fit_galaxies": int(len(np.unique(views.galaxy))), "units": "cube side"}
    return ldl.LDLModel(n, 1.0, layers, output, record)


def predict(model: ldl.LDLModel, views: GalaxyViews) -> np.ndarray:
    """LDL maps (N, npix, npix) in Msun/kpc^2 of the views."""
    if model.mesh != views.npix:
        raise ConfigError(f"the LDL model is for {model.mesh}^2 maps, the store's are {views.npix}^2")
    rho_ref = model.record["rho_ref_msun_kpc3"]
    with torch.no_grad():
        return np.stack([_map(views, i, model.layers, model.output, rho_ref).numpy()
                         for i in range(len(views.pos))])


def compare(model: ldl.LDLModel, views: GalaxyViews, data, runs=(), seed: int = 0) -> dict:
    """LDL's per-view metrics on the views beside each trained translator ``runs`` (evaluated on the
    same split): the median of each of :data:`TABLE_METRICS` with its 68% interval over galaxies,
    the parameter count, and paired per-galaxy verdicts of LDL against each run (95%)."""
    from skymorph import stats
    from skymorph.evaluate.benchmark import cells
    from skymorph.evaluate.runner import evaluate_run

    pred = predict(model, views)
    per = {"ldl": [map_metrics(pred[i], views.truth[i], float(views.pixel[i]), views.norm.eps)
                   for i in range(len(pred))]}
    params = {"ldl": model.n_params}
    for run in runs:
        ev = evaluate_run(run, data, "test")
        if list(ev.index) != list(views.index):
            raise ConfigError(f"{run}: evaluated on other views than the LDL test views (another store?)")
        if ev.cfg.source != ["dm"] or ev.cfg.target != views.target:
            raise ConfigError(f"{run}: translates {'+'.join(ev.cfg.source)} -> {ev.cfg.target}, "
                              f"not dm -> {views.target}")
        name = f"{ev.cfg.method} ({run})"
        per[name], params[name] = ev.rows, int(ev.info["parameters"])
    values = {m: {k: np.array([r[k] for r in rows]) for k in TABLE_METRICS} for m, rows in per.items()}
    table = {m: {"parameters": params[m], **cells({k: v[None] for k, v in vals.items()}, views.galaxy, seed)}
             for m, vals in values.items()}
    verdicts = [{"method": "ldl", "reference": m, "metric": k,
                 **stats.paired_verdict(values["ldl"][k], values[m][k], views.galaxy, k in HIGHER_IS_BETTER,
                                        0.95, seed=seed)}
                for m in values if m != "ldl" for k in TABLE_METRICS]
    return {"target": views.target, "views": int(len(views.index)),
            "galaxies": int(len(np.unique(views.galaxy))), "table": table, "verdicts": verdicts}


def write_comparison(folder, result: dict, model: ldl.LDLModel) -> str:
    """results.json and results.md beside the model's ldl.json; returns the markdown."""
    import json
    from pathlib import Path

    from skymorph.atomic import write_text
    from skymorph.evaluate.report import md_table

    folder = Path(folder)
    model.save(folder)
    write_text(folder / "results.json", json.dumps(result, indent=1, default=str))
    header = ["method", "parameters", *TABLE_METRICS]
    rows = [[m, f"{t['parameters']:,}", *[f"{t[k]['median']:.3g} [{t[k]['lo']:.3g}, {t[k]['hi']:.3g}]"
                                           for k in TABLE_METRICS]] for m, t in result["table"].items()]
    lines = [f"# dm -> {result['target']}: LDL against translators", "",
             f"{result['views']} test views of {result['galaxies']} galaxies; medians over views [68% bootstrap "
             f"interval over galaxies]; lower is better except "
             f"{', '.join(sorted(HIGHER_IS_BETTER & set(TABLE_METRICS)))}. LDL fitted on "
             f"{model.record['fit_views']} train views ({model.record['fit_galaxies']} galaxies).", "",
             *md_table(header, rows), ""]
    for v in result["verdicts"]:
        lines.append(f"- {v['metric']}: ldl vs {v['reference']}: {v['verdict']} (difference {v['diff']:.3g} "
                     f"[{v['lo']:.3g}, {v['hi']:.3g}], {v['units']} galaxies)")
    text = "\n".join(lines) + "\n"
    write_text(folder / "results.md", text)
    return text
