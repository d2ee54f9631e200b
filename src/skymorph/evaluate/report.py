"""Benchmark tables (Markdown) and a self-contained HTML report (figures embedded)."""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from .metrics import HIGHER_IS_BETTER, METRIC_NAMES

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
        parts = []
        for metric in HEADLINE:
            a, b = res["metrics"][metric]["median"], base[metric]["median"]
            parts.append(f"{metric} {a:.3g} vs {b:.3g} ({'beats' if a < b else 'does NOT beat'} baseline)")
        lines.append(f"{name}: {m}: " + "; ".join(parts))
    return lines


def write_markdown(results: dict, path: Path) -> Path:
    out = ["# skymorph benchmark", "",
           "Medians over the test split, physical units after inverting the normalisation. "
           "Lower is better except psnr, ssim, rk. Best value in bold.", ""]
    for name, pair in results.items():
        header, rows = table(pair)
        out += [f"## {name}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out += [""] + [f"- {v}" for v in verdicts(name, pair)] + [""]
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


def write_html(results: dict, figures: dict[str, list[Path]], path: Path, data) -> Path:
    body = [f"<h1>skymorph benchmark</h1><p>Data: <code>{html.escape(str(data))}</code>. Every metric is computed "
            "on physical maps (test split, one row per method, median over views; lower is better except "
            "psnr, ssim, rk; best in bold). Cost: trainable parameters, training minutes, seconds and network "
            "evaluations (NFE) per translated map.</p>"]
    for name, pair in results.items():
        header, rows = table(pair)
        body.append(f"<h2>{html.escape(name)}</h2>")
        for v in verdicts(name, pair):
            body.append(f'<div class="verdict{" miss" if "NOT" in v else ""}">{html.escape(v)}</div>')
        cells = lambda r, tag: "".join(  # noqa: E731
            f"<{tag}>{'<b>' + c[2:-2] + '</b>' if c.startswith('**') else html.escape(c)}</{tag}>" for c in r)
        body.append("<table><tr>" + cells(header, "th") + "</tr>" +
                    "".join("<tr>" + cells(r, "td") + "</tr>" for r in rows) + "</table>")
        body += [_img(f) for f in figures.get(name, [])]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>skymorph benchmark</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")
    path.write_text(page)
    return path
