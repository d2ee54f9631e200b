"""Quality versus training budget: several ``skymorph benchmark`` folders of one store and pair,
each trained under another budget (``--max-minutes`` or ``--max-epochs``), read into one curve.

For every budget and method: the median of each metric over test views with its 68% interval over
galaxies (the benchmark's cells); for every method the benchmark judged against the reference
(the stochastic methods against the U-Net on pdf_w1 and pk_err_dex): the paired difference with its
95% interval. Where a method is behind at the largest budget, the least-squares line of that difference against
log10(budget) gives the budget at which it would cross zero, if the line goes that way: an
extrapolation, stated as one. Nothing is trained or evaluated here.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..atomic import check_output, write_text
from ..errors import ConfigError, InputError
from ..provenance import provenance
from .metrics import HIGHER_IS_BETTER

__all__ = ["Point", "read_benchmark", "crossing", "budget_curve", "curve_markdown"]


class Point(NamedTuple):
    """One benchmark folder on the curve."""

    budget: float
    unit: str  # 'min' or 'epochs'
    results: dict  # its results.json
    folder: Path


def read_benchmark(folder: Path) -> Point:
    """The budget, its unit and the results of a benchmark folder's results.json."""
    path = Path(folder) / "results.json"
    try:
        res = json.loads(path.read_text())
        prov = res["provenance"]
        res["pairs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a 'skymorph benchmark' result ({type(exc).__name__}: {exc})") from None
    for key, unit in (("max_minutes", "min"), ("max_epochs", "epochs")):
        if prov.get(key):
            return Point(float(prov[key]), unit, res, Path(folder))
    raise InputError(f"{path}: the benchmark names no budget (max_minutes, max_epochs); rerun it with one")


def crossing(budget, diff) -> dict:
    """The line diff = a + b log10(budget) through the points by least squares and the budget where
    it reaches zero: ``{"slope": b (per decade), "budget": x0 or None}``; x0 is None unless the
    line moves toward zero from the side of the last point (b of the opposite sign to it)."""
    x, y = np.log10(np.asarray(budget, float)), np.asarray(diff, float)
    if x.size < 2 or np.ptp(x) == 0:
        raise ConfigError("a trend needs at least two different budgets")
    b, a = np.polyfit(x, y, 1)
    heads_to_zero = b != 0 and np.sign(b) != np.sign(y[np.argmax(x)])
    return {"slope": float(b), "budget": float(10 ** (-a / b)) if heads_to_zero else None}


def budget_curve(folders: list[Path], out: Path, pair: str | None = None, metrics: list[str] | None = None,
                 reference: str = "unet", overwrite: bool = False) -> dict:
    """Read the benchmark ``folders`` (one store, one budget unit, distinct budgets) and write
    curve.json, curve.md and curve.png into ``out``; returns the curve (module docstring)."""
    if len(folders) < 2:
        raise ConfigError(f"benchmark-curve needs at least two benchmark folders (budgets), got {len(folders)}")
    read = sorted((read_benchmark(f) for f in folders), key=lambda p: p.budget)
    units = {p.unit for p in read}
    if len(units) > 1:
        raise ConfigError("benchmark-curve: the folders mix --max-minutes and --max-epochs budgets")
    unit = units.pop()
    budgets = [p.budget for p in read]
    if len(set(budgets)) < len(budgets):
        raise ConfigError(f"benchmark-curve: two folders with the same budget ({budgets}); one folder per budget")
    stores = {p.results["provenance"].get("store_fingerprint") for p in read}
    if len(stores) > 1:
        raise InputError("benchmark-curve: the folders were benchmarked on different map stores: "
                         + ", ".join(f"{p.folder}: {p.results['provenance'].get('data')}" for p in read))
    common = set.intersection(*(set(p.results["pairs"]) for p in read))
    if pair is None:
        if len(common) != 1:
            raise ConfigError(f"benchmark-curve: pairs in common {sorted(common)}; choose one with --pair")
        pair = common.pop()
    elif pair not in common:
        raise ConfigError(f"--pair {pair!r}: not in every folder (in all of them: {sorted(common) or 'none'})")
    pairs = [p.results["pairs"][pair] for p in read]
    methods = [m for m in pairs[0]["methods"] if all(m in p["methods"] for p in pairs)]
    if reference not in methods:
        raise ConfigError(f"--reference {reference!r}: not benchmarked in every folder (in all: {', '.join(methods)})")
    known = set.intersection(*(set(p["methods"][m]["metrics"]) for p in pairs for m in methods))
    metrics = metrics or [m for m in ("mse_log", "pdf_w1", "pk_err_dex") if m in known]
    for m in metrics:
        if m not in known:
            raise ConfigError(f"--metrics {m!r}: not measured in every folder (known: {', '.join(sorted(known))})")
    cells = {m: {k: [{key: p["methods"][m]["metrics"][k][key] for key in ("median", "lo", "hi")} for p in pairs]
                 for k in metrics} for m in methods}
    versus = {}
    for m in methods:
        for k in metrics:
            vs = [next((v for v in p["verdicts"] if (v["method"], v["reference"], v["metric"]) == (m, reference, k)),
                       None) for p in pairs]
            if all(vs):
                losing = vs[-1]["diff"] < 0 if k in HIGHER_IS_BETTER else vs[-1]["diff"] > 0
                trend = crossing(budgets, [v["diff"] for v in vs]) if losing else None
                versus.setdefault(m, {})[k] = {"points": [{key: v[key] for key in ("diff", "lo", "hi", "verdict")}
                                                          for v in vs], "trend": trend}
    res = {"provenance": provenance(folders=[str(p.folder) for p in read], pair=pair, metrics=metrics,
                                    reference=reference),
           "pair": pair, "unit": unit, "budgets": budgets,
           "commands": [p.results["provenance"].get("command", "") for p in read],
           "units": pairs[0]["verdicts"][0]["units"] if pairs[0]["verdicts"] else None,
           "cells": cells, "versus": versus, "reference": reference}
    out = check_output(Path(out) / "curve.json", overwrite).parent
    _figure(out / "curve.png", res)
    write_text(out / "curve.md", curve_markdown(res))
    write_text(out / "curve.json", json.dumps(res, indent=1))
    return res


def curve_markdown(res: dict) -> str:
    """The curve as tables: medians [68% over galaxies] per budget, differences to the reference [95%]."""
    unit, budgets = res["unit"], res["budgets"]
    head = "| method | " + " | ".join(f"{b:g} {unit}" for b in budgets) + " |"
    rule = "|---|" + "---|" * len(budgets)
    lines = [f"# Quality versus training budget ({res['pair']})", "",
             "Median over test views [68% interval from a bootstrap over test galaxies], from:", ""]
    lines += [f"- {b:g} {unit}: `{c}`" for b, c in zip(budgets, res["commands"])]
    for k in next(iter(res["cells"].values())):
        lines += ["", f"## {k} ({'higher' if k in HIGHER_IS_BETTER else 'lower'} is better)", "", head, rule]
        for m, c in res["cells"].items():
            lines.append(f"| {m} | " + " | ".join(f"{x['median']:.4g} [{x['lo']:.4g}, {x['hi']:.4g}]" for x in c[k]) + " |")
    if res["versus"]:
        lines += ["", f"## Against {res['reference']} (paired difference over {res['units']} galaxies, 95%)", "",
                  "| method | metric | " + " | ".join(f"{b:g} {unit}" for b in budgets) + " | trend |",
                  "|---|---|" + "---|" * (len(budgets) + 1)]
        for m, per in res["versus"].items():
            for k, v in per.items():
                t = v["trend"]
                trend = ("ahead at the largest budget" if t is None else
                         f"crosses at ~{t['budget']:.3g} {unit} (line through {len(budgets)} budgets, extrapolated)"
                         if t["budget"] is not None and t["budget"] > budgets[-1] else
                         f"not closing ({t['slope']:+.3g} per decade)" if t["budget"] is None else
                         f"line crosses at {t['budget']:.3g} {unit}, inside the range, but the last point still loses")
                lines.append(f"| {m} | {k} | " + " | ".join(f"{p['diff']:+.3g} [{p['lo']:+.3g}, {p['hi']:+.3g}] {p['verdict']}"
                                                        for p in v["points"]) + f" | {trend} |")
    return "\n".join(lines) + "\n"


def _figure(path: Path, res: dict) -> None:
    """One panel per metric: median and 68% interval against budget (log axis), per method."""
    from matplotlib.ticker import NullFormatter

    from ..atomic import save_png
    from .plots import COLORS, plt

    metrics = list(next(iter(res["cells"].values())))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    x = np.asarray(res["budgets"])
    for ax, k in zip(axes[0], metrics):
        for i, (m, c) in enumerate(res["cells"].items()):
            med = np.array([p["median"] for p in c[k]])
            err = np.abs(np.array([[p["median"] - p["lo"], p["hi"] - p["median"]] for p in c[k]]).T)
            ax.errorbar(x * (1 + 0.03 * (i - 1)), med, yerr=err, marker="o", capsize=3, color=COLORS[i % len(COLORS)],
                        label=m)
        ax.set_xscale("log")
        ax.set_xlabel(f"training budget [{res['unit']}]")
        ax.set_ylabel(k)
        ax.set_title(f"{res['pair']}: {k}")
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.xaxis.set_minor_formatter(NullFormatter())
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path, dpi=100)
