"""Tables, figures and the HTML report of inference validation (the judge's report machinery)."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from ..atomic import save_png, write_text
from ..evaluate.report import CSS, html_table, img_tag, md_table

NOTE = ("Per parameter over held-out maps: bias and RMSE of the posterior mean, median posterior sd and the prior's "
        "sd over it (narrowing); interval coverage of the order-statistic interval of the L samples, measured "
        "(nominal at L); SBC: KS p-value of the ranks of the truth (uniform when calibrated). TARP: expected "
        "coverage against credibility, calibrated when the diagonal lies inside its 95% bootstrap band over maps "
        "(simultaneous over levels; ATC > 0: too wide). FoM = 1/sqrt(det Cov) of each posterior: median [68% bootstrap interval over "
        "maps].")


def _g(v: float) -> str:
    return f"{v:.3g}"


def tables(results: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    runs, params = results["runs"], results["params"]
    head = ["run", "summary", "estimator", "noise", "maps", "FoM", "TARP ATC", "TARP in band", "calibrated"]
    rows = [[k, r["summary"], r["estimator"], r["noise"], str(r["maps"]),
             f"{_g(r['fom_median']['value'])} [{_g(r['fom_median']['lo'])}, {_g(r['fom_median']['hi'])}]",
             f"{r['tarp']['atc']:+.3f}", "yes" if r["tarp"]["within_band"] else "no",
             "yes" if r["calibrated"] else "no"] for k, r in runs.items()]
    out = [("runs", head, rows)]
    for p in params:
        h = ["run", "bias", "RMSE", "posterior sd", "narrowing", "coverage 68%", "coverage 95%", "SBC KS p"]
        rows = []
        for k, r in runs.items():
            v = r["params"][p]
            rows.append([k, f"{v['bias']:+.3g}", _g(v["rmse"]), _g(v["sd_median"]), f"{v['narrowing']:.2f}x",
                         f"{v['coverage68'][0]:.2f} ({v['coverage68'][1]:.2f})",
                         f"{v['coverage95'][0]:.2f} ({v['coverage95'][1]:.2f})", f"{v['sbc_ks_p']:.2f}"])
        out.append((p, h, rows))
    return out


def verdict_lines(results: dict) -> list[str]:
    return [f"{v['a']} vs {v['b']}: FoM ratio {v['fom_ratio']:.2f} [95%: {v['fom_ratio_lo']:.2f}, "
            f"{v['fom_ratio_hi']:.2f}] over {v['units']} maps"
            + (" and {} / {} training seeds".format(*v["seeds"]) if max(v["seeds"]) > 1 else "") + f": {v['a']} "
            + ({"better": "has the larger FoM", "worse": "has the smaller FoM"}.get(v["verdict"], "— " + v["verdict"]))
            for v in results["verdicts"]]


def _provenance(results: dict) -> list[str]:
    p = results["provenance"]
    return [f"{k}: {p[k]}" for k in ("command", "skymorph_version", "date", "data", "samples", "seed") if k in p]


def write_markdown(results: dict, path: Path, title: str) -> Path:
    lines = [f"# {title}", "", *(f"- {x}" for x in _provenance(results)), "", NOTE, ""]
    lines += [f"- {v}" for v in verdict_lines(results)] + [""]
    for name, head, rows in tables(results):
        lines += [f"## {name}", "", *md_table(head, rows), ""]
    return write_text(path, "\n".join(lines))


def write_html(results: dict, figures: list[Path], path: Path, title: str) -> Path:
    prov = "".join(f"<div><code>{html.escape(x)}</code></div>" for x in _provenance(results))
    body = [f"<h1>{html.escape(title)}</h1><div class='prov'>{prov}</div><p>{html.escape(NOTE)}</p>"]
    body += [f'<div class="verdict">{html.escape(v)}</div>' for v in verdict_lines(results)]
    for name, head, rows in tables(results):
        body.append(f"<h3>{html.escape(name)}</h3>" + html_table(head, rows))
    body += [img_tag(f) for f in figures]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")
    return write_text(path, page)


def _save(fig, path: Path) -> Path:
    return save_png(fig, path, dpi=110)


def figures(out: Path, results: dict) -> list[Path]:
    """tarp.png (expected coverage with its band), sbc.png (rank histograms), truth.png (mean vs truth)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, params = results["runs"], results["params"]
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    for i, (k, r) in enumerate(runs.items()):
        t = r["tarp"]
        ax.fill_between(t["alpha"], t["lo"], t["hi"], color=f"C{i}", alpha=0.2)
        ax.plot(t["alpha"], t["ecp"], color=f"C{i}", label=f"{k} (ATC {t['atc']:+.2f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="credibility level", ylabel="expected coverage", title="TARP")
    ax.legend(fontsize=8)
    paths = [_save(fig, out / "tarp.png")]
    fig, axes = plt.subplots(len(runs), len(params), figsize=(3.2 * len(params), 2.4 * len(runs)), squeeze=False)
    for i, (k, r) in enumerate(runs.items()):
        ranks = np.asarray(r["sbc_ranks"])
        n_bins = max(5, min(20, r["maps"] // 10))
        for j, p in enumerate(params):
            a = axes[i, j]
            a.hist(ranks[:, j], bins=n_bins, range=(0, r["samples"]), color=f"C{i}", alpha=0.8)
            a.axhline(r["maps"] / n_bins, color="k", lw=0.8)
            a.set_title(f"{k}: {p} (KS p {r['params'][p]['sbc_ks_p']:.2f})", fontsize=8)
            a.set_xlabel("rank of the truth", fontsize=8)
    paths.append(_save(fig, out / "sbc.png"))
    fig, axes = plt.subplots(1, len(params), figsize=(3.6 * len(params), 3.4), squeeze=False)
    for j, p in enumerate(params):
        a = axes[0, j]
        for i, (k, r) in enumerate(runs.items()):
            a.scatter(np.asarray(r["truth"])[:, j], np.asarray(r["posterior_mean"])[:, j], s=6, color=f"C{i}",
                      label=k, alpha=0.7)
        lims = a.get_xlim()
        a.plot(lims, lims, "k--", lw=0.8)
        a.set(xlabel=f"true {p}", ylabel=f"posterior mean {p}")
        a.legend(fontsize=7)
    paths.append(_save(fig, out / "truth.png"))
    return paths
