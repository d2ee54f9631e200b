"""Benchmark tables (Markdown) and a self-contained HTML report (figures embedded)."""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from .metrics import CALIBRATION_NAMES, HIGHER_IS_BETTER, METRIC_NAMES

COST = ("parameters", "train_minutes", "seconds_per_map", "nfe")
HEADLINE = ("mse_log", "pk_rel_err")  # what every network must beat the baseline on


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, int) or (abs(v) >= 1000 and float(v).is_integer()):
        return f"{int(v):,}"
    return f"{v:.3g}"


def _best(rows: dict[str, float], metric: str) -> str | None:
    vals = {m: v for m, v in rows.items() if v is not None and not math.isnan(v)}
    if not vals or len(set(vals.values())) == 1:
        return None
    pick = max if metric in HIGHER_IS_BETTER else min
    return pick(vals, key=vals.get)


def table(pair: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows (methods) for one pair: median of each metric, then cost; best in bold."""
    methods = list(pair)
    header = ["method", *METRIC_NAMES, *COST]
    cells = {m: [m] for m in methods}
    for metric in METRIC_NAMES:
        vals = {m: pair[m]["metrics"][metric]["median"] for m in methods}
        best = _best(vals, metric)
        for m in methods:
            s = _fmt(vals[m])
            cells[m].append(f"**{s}**" if m == best else s)
    for c in COST:
        vals = {m: pair[m]["info"][c] for m in methods}
        best = _best(vals, c) if c != "parameters" else None
        for m in methods:
            s = _fmt(vals[m])
            cells[m].append(f"**{s}**" if m == best else s)
    return header, [cells[m] for m in methods]


def verdicts(name: str, pair: dict) -> list[str]:
    """One line per network: does it beat the baseline on the headline metrics, by how much."""
    if "baseline" not in pair:
        return []
    base = pair["baseline"]["metrics"]
    lines = []
    for m, res in pair.items():
        if m == "baseline":
            continue
        lines.append(f"{name}: {m}: " + _versus(res["metrics"], base, HEADLINE, "beats baseline", "does NOT beat baseline"))
    return lines


def _versus(metrics: dict, ref: dict, names, better: str, worse: str) -> str:
    """'name a vs b (better|worse)' per lower-is-better metric, medians; a 'NOT' in ``worse`` marks a
    failed verdict in the HTML report."""
    return "; ".join(f"{k} {metrics[k]['median']:.3g} vs {ref[k]['median']:.3g} "
                     f"({better if metrics[k]['median'] < ref[k]['median'] else worse})" for k in names)


def sweep_table(pair: dict) -> tuple[list[str], list[list[str]]]:
    """Quality versus cost: one row per method, sampler and step count (medians over the split)."""
    header = ["method", "sampler", "steps", "nfe", "seconds_per_map", "views", *METRIC_NAMES]
    rows = [[m, p["sampler"], _fmt(p["steps"]), _fmt(p["nfe"]), _fmt(p["seconds_per_map"]), _fmt(p["views"]),
             *(_fmt(p["metrics"][k]) for k in METRIC_NAMES)]
            for m, res in pair.items() for p in sorted(res.get("sweep", []), key=lambda p: (p["sampler"], p["nfe"]))]
    return header, rows


def cost_answers(name: str, pair: dict, tol: float = 0.05) -> list[str]:
    """Per iterative method and headline metric: the fewest NFE within ``tol`` of the method's best
    value over its sweep (all samplers and step counts), and the fewest that reach both at once."""
    lines = []
    for m, res in pair.items():
        if len(res.get("sweep", [])) < 2:
            continue
        pts = [p for p in res["sweep"] if all(math.isfinite(p["metrics"][k]) for k in HEADLINE)]
        if not pts:
            lines.append(f"{name}: {m}: no setting gave finite pk_rel_err and mse_log")
            continue
        best = {k: min(p["metrics"][k] for p in pts) for k in HEADLINE}
        near = {k: [p for p in pts if p["metrics"][k] <= best[k] * (1 + tol)] for k in HEADLINE}
        both = [p for p in near[HEADLINE[0]] if p in near[HEADLINE[1]]]

        def cheapest(cands):
            p = min(cands, key=lambda p: (p["nfe"], p["seconds_per_map"]))
            return f"{p['nfe']} NFE ({p['sampler']}, {p['steps']} steps, {p['seconds_per_map']:.3g} s/map)"
        parts = [f"{k} within {tol:.0%} of its best ({best[k]:.3g}) at {cheapest(near[k])}" for k in HEADLINE]
        parts.append(f"both at once at {cheapest(both)}" if both else "no setting reaches both at once")
        lines.append(f"{name}: {m}: " + "; ".join(parts))
    return lines


def calibration_table(pair: dict) -> tuple[list[str], list[list[str]]]:
    """Coverage of the truth by the samples' central 68% / 95% and spread-skill (median [p16, p84])."""
    header = ["method", "samples", "sampler", "steps", *CALIBRATION_NAMES]
    rows = []
    for m, res in pair.items():
        if "calibration" not in res:
            continue
        info, met = res["calibration"]["info"], res["calibration"]["metrics"]
        rows.append([m, _fmt(info["n_samples"]), info["sampler"], _fmt(info["steps"]),
                     *(f"{_fmt(met[k]['median'])} [{_fmt(met[k]['p16'])}, {_fmt(met[k]['p84'])}]"
                       for k in CALIBRATION_NAMES)])
    return header, rows


def stochastic_verdicts(name: str, pair: dict) -> list[str]:
    """Do the stochastic methods keep the pixel PDF and P(k) of the truth better than unet?"""
    if "unet" not in pair:
        return []
    ref = pair["unet"]["metrics"]
    lines = []
    for m, res in pair.items():
        if m == "unet" or res["info"].get("sampler", "direct") == "direct":
            continue
        lines.append(f"{name}: {m} ({res['info']['sampler']}, {res['info']['steps']} steps, one sample): "
                     + _versus(res["metrics"], ref, ("pdf_w1", "pk_rel_err"), "better than unet", "NOT better than unet"))
    return lines


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def write_markdown(results: dict, path: Path) -> Path:
    out = ["# skymorph benchmark", "",
           "Medians over the test split, physical units after inverting the normalisation. "
           "Lower is better except psnr, ssim, rk. Best value in bold. Stochastic methods: one sample "
           "per map unless stated.", ""]
    for name, pair in results.items():
        out += [f"## {name}", "", *md_table(*table(pair)), ""]
        out += [f"- {v}" for v in verdicts(name, pair) + stochastic_verdicts(name, pair)] + [""]
        header, rows = sweep_table(pair)
        if any(len(r.get("sweep", [])) > 1 for r in pair.values()):
            out += [f"### {name}: quality versus cost", "", *md_table(header, rows), ""]
            out += [f"- {v}" for v in cost_answers(name, pair)] + [""]
        header, rows = calibration_table(pair)
        if rows:
            out += [f"### {name}: uncertainty (calibrated: coverage68 0.68, coverage95 0.95, "
                    "spread_skill sqrt(1 + 1/K))", "", *md_table(header, rows), ""]
    path.write_text("\n".join(out))
    return path


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).stem)}">'


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:13px;margin:1em 0;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:4px 7px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left;font-weight:600}img{max-width:100%;margin:.5em 0}
.verdict{background:#f6f8fa;border-left:4px solid #4a7;padding:.5em 1em;margin:.5em 0;font-size:14px}
.miss{border-left-color:#c44}"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    def cells(r, tag):
        return "".join(f"<{tag}>{'<b>' + c[2:-2] + '</b>' if c.startswith('**') else html.escape(c)}</{tag}>"
                       for c in r)
    return ("<table><tr>" + cells(header, "th") + "</tr>" + "".join("<tr>" + cells(r, "td") + "</tr>" for r in rows)
            + "</table>")


def write_html(results: dict, figures: dict[str, list[Path]], path: Path, data) -> Path:
    body = [f"<h1>skymorph benchmark</h1><p>Data: <code>{html.escape(str(data))}</code>. Every metric is computed "
            "on physical maps (test split, one row per method, median over views; lower is better except "
            "psnr, ssim, rk; best in bold). Cost: trainable parameters, training minutes, seconds and network "
            "evaluations (NFE) per translated map.</p>"]
    for name, pair in results.items():
        body.append(f"<h2>{html.escape(name)}</h2>")
        for v in verdicts(name, pair) + stochastic_verdicts(name, pair):
            body.append(f'<div class="verdict{" miss" if "NOT" in v else ""}">{html.escape(v)}</div>')
        body.append(_html_table(*table(pair)))
        if any(len(r.get("sweep", [])) > 1 for r in pair.values()):
            body.append("<h3>Quality versus cost</h3>")
            body += [f'<div class="verdict">{html.escape(v)}</div>' for v in cost_answers(name, pair)]
            body.append(_html_table(*sweep_table(pair)))
        header, rows = calibration_table(pair)
        if rows:
            body.append("<h3>Uncertainty</h3><p>Fraction of truth pixels inside the central 68% / 95% of the "
                        "samples (calibrated: 0.68 / 0.95) and RMS error of the sample mean over the RMS spread "
                        "(calibrated: sqrt(1 + 1/K)); median [16th, 84th percentile] over views.</p>")
            body.append(_html_table(header, rows))
        body += [_img(f) for f in figures.get(name, [])]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>skymorph benchmark</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")
    path.write_text(page)
    return path
