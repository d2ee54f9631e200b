"""Judging generated point clouds: the cloud flow against the rescaled-source baseline (gas with the
dark matter's shape, scaled to the true mass in the cube) on the 3D judges, and, given a map store of
the same galaxies and a trained 2D translator, all of them projected and scored with the map metrics
against the true maps: the one place where the 3D and 2D routes meet on the same numbers.

In evaluate because it reads map stores and translator runs beside cloud stores. The units of every
comparison are the test galaxies (paired per-galaxy differences, bootstrap over galaxies, the training
seeds of the flow resampled too).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.progress import track
from scipy.spatial import cKDTree

from .. import stats
from ..atomic import save_png, write_text
from ..clouds.metrics import cloud_metrics, radial_profiles
from ..clouds.store import CloudStore
from ..clouds.train import load_cloud_flow, split_arrays
from ..errors import InputError
from ..maps.projection import project_channels
from .metrics import METRIC_NAMES, map_metrics

CLOUD_HEADLINE = ("count_profile_tv", "emd", "chamfer", "mass_profile_dex")
MAP_HEADLINE = ("mse_log", "pk_err_dex", "ssim")
KERNEL_NEIGHBOURS = 32  # smoothing length of a projected point: the distance to its 32nd neighbour


def generate(run, data: CloudStore, split: str, n_points: int | None = None, steps: int | None = None,
             seed: int = 0, progress: bool = False) -> dict:
    """Clouds drawn by the run for every view of ``split``: points (V, n, F) in store units, weights
    (V, n) Msun (each point M_pred / n), predicted log10 mass, seconds per view."""
    net, cfg = load_cloud_flow(run)
    if cfg.data_fingerprint != data.fingerprint:
        raise InputError(f"{data.path}: not the cloud store run {run} was trained on (fingerprint differs)")
    arrays = split_arrays(data, split)
    n = n_points or arrays["target"].shape[1]
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    pts, logm = [], []
    for i in track(range(len(arrays["index"])), description=f"Clouds of {Path(run).name}", disable=not progress,
                   transient=True):
        p, m = net.sample(arrays["source"][i:i + 1], arrays["log_m_src"][i:i + 1], n, steps or cfg.steps, gen)
        pts.append(p[0].numpy())
        logm.append(float(m[0]))
    seconds = (time.perf_counter() - start) / max(len(pts), 1)
    logm = np.asarray(logm)
    return {"points": np.asarray(pts, np.float32), "weight": np.repeat(10**logm[:, None] / n, n, axis=1),
            "log_mass": logm, "index": arrays["index"].numpy(), "seconds_per_view": seconds,
            "steps": steps or cfg.steps, "nfe": net.nfe(steps or cfg.steps), "columns": cfg.columns}


def _rows(points, weights, ref, ref_w, columns, seed, label: str, progress: bool) -> list[dict]:
    vel = "vx" in columns
    return [cloud_metrics(p, w, r, rw, seed=seed, vel_gen=p[:, 3:6] if vel else None,
                          vel_ref=r[:, 3:6] if vel else None)
            for p, w, r, rw in track(zip(points, weights, ref, ref_w), total=len(points),
                                     description=f"3D judges of {label}", disable=not progress, transient=True)]


def project_cloud(points, weights, half_width: float, npix: int) -> np.ndarray:
    """Surface density map (npix, npix) [Msun/kpc^2] of a cloud (positions in half-widths) seen along z,
    each point smoothed over the distance to its :data:`KERNEL_NEIGHBOURS`-th neighbour."""
    pos = np.asarray(points, np.float64)[:, :3] * half_width
    k = min(KERNEL_NEIGHBOURS, len(pos) - 1)
    hsml = cKDTree(pos).query(pos, k + 1)[0][:, -1]
    return project_channels(pos[:, :2], np.maximum(hsml, 1e-6 * half_width), np.asarray(weights, np.float64),
                            npix, half_width)[0]


def _match_views(data: CloudStore, index: np.ndarray, store, split: str) -> np.ndarray:
    """Indices in the map store of the cloud views ``index`` (same galaxy, view, rotation and cube, and in
    the same ``split``: a map run trained on a galaxy the clouds are judged on would have seen it)."""
    key = {(int(g), int(v)): i for i, (g, v) in enumerate(zip(store.meta("galaxy_id"), store.meta("view")))}
    in_split = set(store.split(split).tolist())
    rot, hw = store.meta("rotation"), store.meta("half_width_kpc")  # each column read once, not per view
    c_gal, c_view, c_rot, c_hw = (data.meta(k, index) for k in ("galaxy_id", "view", "rotation", "half_width_kpc"))
    out = []
    for g, v, c_r, c_h in zip(c_gal.astype(int), c_view.astype(int), c_rot, c_hw):
        if (g, v) not in key:
            raise InputError(f"{store.path}: no view {v} of galaxy {g}, which the cloud store {data.path} has "
                             f"(build both from the same source with the same --seed and --rotations)")
        m = key[g, v]
        if not (np.allclose(rot[m], c_r, atol=1e-6) and np.isclose(hw[m], c_h, rtol=1e-6)):
            raise InputError(f"{store.path}: view {v} of galaxy {g} is not the cloud store's (other rotation or "
                             f"field of view: build both with the same --seed, --rotations, --fov, --fov-ref)")
        if m not in in_split:
            raise InputError(f"{store.path}: galaxy {g} is not in the {split} split there, as it is in {data.path} "
                             f"(build both with the same --seed and --splits)")
        out.append(m)
    return np.asarray(out)


def map_route(data: CloudStore, index, clouds: dict[str, tuple], maps_path, map_runs: list, seed: int = 0,
              split: str = "test", progress: bool = False) -> dict:
    """Map metrics per view (against the store's true target maps) of every cloud method projected, and of
    each 2D translator run (its training seeds averaged in the verdicts): {method: {metric: (S, V)}}."""
    from ..data.store import MapStore
    from ..methods.apply import store_sources, translate_maps
    from ..methods.training import load_run

    domain = {"dm": "dm", "gas": "gas", "star": "star"}[data.settings["to"]]
    with MapStore(maps_path) as store:
        m_idx = _match_views(data, index, store, split)
        order = np.argsort(m_idx)  # the store reads sorted indices
        truth = np.empty((len(m_idx), store.npix, store.npix))
        truth[order] = store.maps(domain, m_idx[order])
        hw = data.meta("half_width_kpc", index)
        eps = store.norm(domain).eps

        def scores(pred):  # one row of metrics per view (each view has its own pixel size)
            return [map_metrics(p, t, 2 * h / store.npix, eps) for p, t, h in zip(pred, truth, hw)]

        out = {}
        for name, (points, weights) in clouds.items():
            rows = [scores([project_cloud(p, w, h, store.npix)
                            for p, w, h in track(zip(points[s], weights[s], hw), total=len(hw), disable=not progress,
                                                 description=f"Projecting {name}", transient=True)])
                    for s in range(len(points))]
            out[name] = {k: np.array([[r[k] for r in rs] for rs in rows]) for k in METRIC_NAMES}
        rows = []
        for run in map_runs:
            cfg, method = load_run(run)
            if cfg.target != domain:
                raise InputError(f"{run}: the map run translates to {cfg.target!r}, the clouds to {domain!r}")
            src = np.empty((len(m_idx), len(cfg.source), store.npix, store.npix), np.float32)
            src[order] = store_sources(cfg, store, m_idx[order])
            pred, _ = translate_maps(cfg, method, src, seed=seed, progress=progress)
            rows.append(scores(pred.mean(0)))
        if rows:
            out["map_translator"] = {k: np.array([[r[k] for r in rs] for rs in rows]) for k in METRIC_NAMES}
    return out


def _cells(per_view: dict, galaxy, seed) -> dict:
    return {m: {k: stats.bootstrap_interval(np.nanmean(v, axis=0), galaxy, 0.68, seed=seed) for k, v in mv.items()}
            for m, mv in per_view.items()}


def evaluate_clouds(runs: list, data_path, split: str = "test", n_points: int | None = None, steps: int | None = None,
                    seed: int = 0, maps=None, map_runs=(), progress: bool = False) -> dict:
    """The cloud flow (one run per training seed) against the rescaled source on ``split`` of the cloud
    store, and with ``maps`` (+ ``map_runs``) in projection: per-view values, cells with 68% intervals over
    galaxies, and paired verdicts at 95%."""
    with CloudStore(data_path) as data:
        gens = [generate(r, data, split, n_points, steps, seed, progress) for r in runs]
        index = gens[0]["index"]
        tgt, tw = data.clouds("target", index)
        src, sw = data.clouds("source", index)
        galaxy = data.meta("galaxy_id", index)
        m_tgt = data.meta("mass_in_cube_target", index)
        columns = gens[0]["columns"]
        # the baseline: the source cloud itself (both sides have the same columns) with the target's
        # true mass in the cube spread over it in the source's own proportions
        base, base_w = src, sw * (m_tgt / sw.sum(1))[:, None]
        # the 3D judges compare clouds of equal size (Chamfer depends on the point count): the first
        # n_ref drawn points, an independent n_ref-point draw since points are i.i.d. given z
        n_ref = tgt.shape[1]
        flow_rows = [_rows(g["points"][:, :n_ref], g["weight"][:, :n_ref] * g["points"].shape[1] / n_ref, tgt, tw,
                           columns, seed, Path(r).name, progress) for g, r in zip(gens, runs)]
        base_rows = _rows(base, base_w, tgt, tw, columns, seed, "the rescaled source", progress)
        names = list(flow_rows[0][0])
        per_view = {"cloud_flow": {k: np.array([[r[k] for r in rows] for rows in flow_rows]) for k in names},
                    "rescaled_source": {k: np.array([[r[k] for r in base_rows]]) for k in names}}
        verdicts = [{"method": "cloud_flow", "reference": "rescaled_source", "metric": k,
                     **stats.paired_verdict(per_view["cloud_flow"][k], per_view["rescaled_source"][k], galaxy,
                                            False, 0.95, seed=seed)} for k in CLOUD_HEADLINE]
        res = {"split": split, "views": int(len(index)), "galaxies": int(len(np.unique(galaxy))),
               "seeds": len(runs), "points": int(gens[0]["points"].shape[1]), "steps": gens[0]["steps"],
               "nfe": gens[0]["nfe"], "seconds_per_view": float(np.mean([g["seconds_per_view"] for g in gens])),
               "cells": _cells(per_view, galaxy, seed), "verdicts": verdicts,
               "per_view": {"index": index.tolist(), "galaxy_id": galaxy.tolist(),
                            **{m: {k: v.tolist() for k, v in mv.items()} for m, mv in per_view.items()}}}
        if maps is not None:
            clouds = {"cloud_flow": ([g["points"] for g in gens], [g["weight"] for g in gens]),
                      "rescaled_source": ([base], [base_w])}
            mp = map_route(data, index, clouds, maps, list(map_runs), seed, split, progress)
            res["maps"] = {"cells": _cells(mp, galaxy, seed), "verdicts": [
                {"method": "cloud_flow", "reference": ref, "metric": k,
                 **stats.paired_verdict(mp["cloud_flow"][k], mp[ref][k], galaxy, k in ("ssim",), 0.95, seed=seed)}
                for ref in ("rescaled_source", "map_translator") if ref in mp for k in MAP_HEADLINE]}
        res["_figure"] = {"gen": gens[0]["points"][0], "gen_w": gens[0]["weight"][0], "truth": tgt[0], "truth_w": tw[0],
                          "base": base[0], "base_w": base_w[0], "hw": float(data.meta("half_width_kpc", index[:1])[0])}
    return res


def _table(cells: dict, verdicts: list, names) -> list[str]:
    lines = ["| method | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for m, mc in cells.items():
        lines.append(f"| {m} | " + " | ".join(f"{mc[k]['value']:.3g} [{mc[k]['lo']:.3g}, {mc[k]['hi']:.3g}]"
                                             if k in mc else "" for k in names) + " |")
    lines.append("")
    for v in verdicts:
        lines.append(f"- {v['method']} vs {v['reference']} on {v['metric']}: {v['verdict']} (difference "
                     f"{v['diff']:.3g}, 95% interval [{v['lo']:.3g}, {v['hi']:.3g}], {v['units']} galaxies, "
                     f"seeds {v['seeds'][0]} vs {v['seeds'][1]})")
    return lines


def write_cloud_evaluation(res: dict, out: Path, overwrite: bool = False) -> Path:
    """metrics.json, results.md and clouds.png into folder ``out``."""
    from ..atomic import check_output

    out = Path(out)
    check_output(out / "metrics.json", overwrite)
    fig_data = res.pop("_figure")
    write_text(out / "metrics.json", json.dumps(res, indent=1, default=float))
    head = (f"# Generated clouds on the {res['split']} split\n\n{res['views']} views of {res['galaxies']} galaxies, "
            f"{res['seeds']} training seed(s), {res['points']} points per cloud, {res['steps']} Heun steps "
            f"({res['nfe']} network calls), {res['seconds_per_view']:.3g} s per view. Cells: median over views, 68% "
            f"interval from a bootstrap over galaxies; verdicts: paired per-galaxy differences at 95%.\n")
    lines = [head, "## 3D judges (lower is better)", ""]
    names = list(next(iter(res["cells"].values())))
    lines += _table(res["cells"], res["verdicts"], names)
    if "maps" in res:
        lines += ["", "## Projected maps against the true maps", ""]
        lines += _table(res["maps"]["cells"], res["maps"]["verdicts"], ["mse_log", "pk_err_dex", "ssim", "pdf_w1"])
    write_text(out / "results.md", "\n".join(lines) + "\n")
    _figure(fig_data, out / "clouds.png")
    return out


def _figure(d: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    for ax, (name, p, w) in zip(axes, (("true target", d["truth"], d["truth_w"]), ("cloud flow", d["gen"], d["gen_w"]),
                                       ("rescaled source", d["base"], d["base_w"]))):
        img = project_cloud(p, w, d["hw"], 64)
        ax.imshow(np.log10(img + img[img > 0].min()), origin="lower", extent=[-d["hw"], d["hw"]] * 2, cmap="magma")
        ax.set_title(name)
        ax.set_xlabel("x [kpc]")
    for name, p, w in (("true target", d["truth"], d["truth_w"]), ("cloud flow", d["gen"], d["gen_w"]),
                       ("rescaled source", d["base"], d["base_w"])):
        share, _ = radial_profiles(p, w)
        axes[3].step(np.linspace(0.05, 0.95, 10), share, where="mid", label=name)
    axes[3].set_xlabel("r / half-width")
    axes[3].set_ylabel("share of points per shell")
    axes[3].legend()
    save_png(fig, path)
