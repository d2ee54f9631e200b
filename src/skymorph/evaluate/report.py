"""Benchmark tables (Markdown) and a self-contained HTML report (figures embedded).

Every metric cell is the median over test views with its 68% interval from a bootstrap over test
galaxies; every verdict is a paired per-galaxy difference with its 95% interval, "better" only when
that interval excludes zero. Both say on how many galaxies and training seeds they rest.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from ..atomic import write_text
from .metrics import HIGHER_IS_BETTER

COST = ("parameters", "train_minutes", "seconds_per_map", "nfe")
#: Metric tables, each narrow enough for a 1400 px window.
GROUPS = (("pixels", ("mse_log", "mae_log", "psnr", "ssim")),
          ("spectra and structure", ("pk_err_dex", "rk", "profile_rel_err", "mass_rel_err", "center_offset")),
          ("morphology and pixel PDF", ("asymmetry_err", "clumpiness_err", "concentration_err", "pdf_w1", "pdf_ks")))
UNITS = {"mse_log": "dex^2", "mae_log": "dex", "psnr": "dB", "pk_err_dex": "dex", "center_offset": "kpc",
         "pdf_w1": "dex", "train_minutes": "min", "seconds_per_map": "s"}
SWEEP_METRICS = ("mse_log", "pk_err_dex", "pdf_w1", "ssim")
CAPTION = ("Median over test views [68% interval from a bootstrap over test galaxies, all views of a galaxy "
           "resampled together]; metrics on physical maps; lower is better except psnr, ssim, rk; the best median "
           "in bold (whether a difference is significant: the verdicts). pk_err_dex and rk: means over ln k up to "
           "half the Nyquist wavenumber.")


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, int) or (abs(v) >= 1000 and float(v).is_integer()):
        return f"{int(v):,}"
    return f"{v:.3g}"


def _head(name: str) -> str:
    return f"{name} [{UNITS[name]}]" if name in UNITS else name


def _best(vals: dict[str, float], metric: str) -> str | None:
    vals = {m: v for m, v in vals.items() if v is not None and not math.isnan(v)}
    if not vals or len(set(vals.values())) == 1:
        return None
    return (max if metric in HIGHER_IS_BETTER else min)(vals, key=vals.get)


def _cell(c: dict) -> str:
    s = f"{_fmt(c['median'])} [{_fmt(c['lo'])}, {_fmt(c['hi'])}]"
    return s + (f" ± {_fmt(c['seed_sd'])}" if c.get("seeds", 1) > 1 else "")


def metric_table(methods: dict, names) -> tuple[list[str], list[list[str]]]:
    """Header and rows (methods) of one group of metrics, best median in bold."""
    cells = {m: [m] for m in methods}
    for k in names:
        best = _best({m: methods[m]["metrics"][k]["median"] for m in methods}, k)
        for m in methods:
            s = _cell(methods[m]["metrics"][k])
            cells[m].append(f"**{s}**" if m == best else s)
    return ["method", *map(_head, names)], list(cells.values())


def cost_table(methods: dict) -> tuple[list[str], list[list[str]]]:
    """Cost per method (no 'best': fewer parameters or NFE is not better in itself) and the seeds behind it."""
    rows = [[m, *(_fmt(r["info"][c]) for c in COST), _fmt(len(r["info"]["seeds"]))] for m, r in methods.items()]
    return ["method", *map(_head, COST), "training seeds"], rows


def verdict_lines(name: str, pair: dict) -> list[str]:
    """One line per verdict: difference of the means over galaxies, 95% interval, units and seeds, verdict."""
    lines = []
    for v in pair["verdicts"]:
        lines.append(f"{name}: {v['method']} vs {v['reference']} on {v['metric']}: difference {_fmt(v['diff'])} "
                     f"[{_fmt(v['lo'])}, {_fmt(v['hi'])}] ({v['level']:.0%}; {v['units']} galaxies, "
                     f"{v['seeds'][0]} + {v['seeds'][1]} training seeds): "
                     + {"better": f"{v['method']} better", "worse": f"{v['method']} worse"}.get(v["verdict"], v["verdict"]))
    return lines


def sweep_table(methods: dict) -> tuple[list[str], list[list[str]]]:
    """Quality versus cost: one row per method, sampler and step count (medians over the sweep views)."""
    header = ["method", "sampler", "steps", "nfe", _head("seconds_per_map"), "views", *map(_head, SWEEP_METRICS)]
    rows = [[m, p["sampler"], _fmt(p["steps"]), _fmt(p["nfe"]), _fmt(p["seconds_per_map"]), _fmt(p["views"]),
             *(_fmt(p["metrics"][k]) for k in SWEEP_METRICS)]
            for m, res in methods.items() for p in sorted(res.get("sweep", []), key=lambda p: (p["sampler"], p["nfe"]))]
    return header, rows


def cost_answers(name: str, methods: dict, tol: float = 0.05, headline=("mse_log", "pk_err_dex")) -> list[str]:
    """Per iterative method and headline metric: the fewest NFE within ``tol`` of the method's best
    value over its sweep (all samplers and step counts), and the fewest that reach both at once."""
    lines = []
    for m, res in methods.items():
        if len(res.get("sweep", [])) < 2:
            continue
        pts = [p for p in res["sweep"] if all(math.isfinite(p["metrics"][k]) for k in headline)]
        if not pts:
            lines.append(f"{name}: {m}: no setting gave finite {' and '.join(headline)}")
            continue
        best = {k: min(p["metrics"][k] for p in pts) for k in headline}
        near = {k: [p for p in pts if p["metrics"][k] <= best[k] * (1 + tol)] for k in headline}
        both = [p for p in near[headline[0]] if p in near[headline[1]]]

        def cheapest(cands):
            p = min(cands, key=lambda p: (p["nfe"], p["seconds_per_map"]))
            return f"{p['nfe']} NFE ({p['sampler']}, {p['steps']} steps, {p['seconds_per_map']:.3g} s/map)"
        parts = [f"{k} within {tol:.0%} of its best ({best[k]:.3g}) at {cheapest(near[k])}" for k in headline]
        parts.append(f"both at once at {cheapest(both)}" if both else "no setting reaches both at once")
        lines.append(f"{name}: {m}: " + "; ".join(parts))
    return lines


def calibration_table(methods: dict) -> tuple[list[str], list[list[str]]]:
    """Measured [68% interval over galaxies] against nominal at the K used, and the rank-histogram p-value."""
    header = ["method", "K", "sampler", "steps", "coverage68 (nominal)", "coverage95 (nominal)",
              "spread_skill (nominal)", "rank chi2 p"]
    rows = []
    for m, res in methods.items():
        if "calibration" not in res:
            continue
        cal = res["calibration"]
        info, met, nom = cal["info"], cal["metrics"], cal["nominal"]
        rows.append([m, _fmt(info["n_samples"]), info["sampler"], _fmt(info["steps"]),
                     *(f"{_cell(met[k])} ({_fmt(nom[k])})" for k in ("coverage68", "coverage95", "spread_skill")),
                     f"{cal['rank']['p_value']:.2g}"])
    return header, rows


CALIBRATION_NOTE = ("Coverage: fraction of truth pixels inside the central order-statistic interval [X(j), X(K+1-j)] "
                    "of the K samples chosen for 68% / 95%, a truth tied with samples (an empty pixel at the log "
                    "floor) counted with its rank drawn among the ties, as in the rank histogram; nominal: that "
                    "interval's exact coverage for a calibrated ensemble, (K+1-2j)/(K+1). Below nominal: too narrow; above: too wide. spread_skill: RMS error of "
                    "the sample mean over the RMS spread, nominal sqrt(1 + 1/K). Rank chi2 p: uniformity of the rank "
                    "histogram (pixels are correlated: a distance from flat, not a calibrated test).")


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _provenance_lines(prov: dict) -> list[str]:
    keep = ("command", "skymorph_version", "date", "data", "store_fingerprint", "max_minutes", "max_epochs", "options",
            "seed", "seeds", "samples")
    return [f"{k}: {prov[k]}" for k in keep if k in prov]


def write_markdown(results: dict, path: Path) -> Path:
    out = ["# skymorph benchmark", "", *(f"- {line}" for line in _provenance_lines(results["provenance"])), "",
           CAPTION, ""]
    for name, pair in results["pairs"].items():
        methods = pair["methods"]
        out += [f"## {name}", "", *(f"- {v}" for v in verdict_lines(name, pair)), ""]
        for title, names in GROUPS:
            out += [f"### {name}: {title}", "", *md_table(*metric_table(methods, names)), ""]
        out += [f"### {name}: cost", "", *md_table(*cost_table(methods)), ""]
        if any(len(r.get("sweep", [])) > 1 for r in methods.values()):
            out += [f"### {name}: quality versus cost", "", *md_table(*sweep_table(methods)), ""]
            out += [f"- {v}" for v in cost_answers(name, methods)] + [""]
        header, rows = calibration_table(methods)
        if rows:
            out += [f"### {name}: uncertainty", "", CALIBRATION_NOTE, "", *md_table(header, rows), ""]
    return write_text(path, "\n".join(out))


def img_tag(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).stem)}">'


CSS = """body{font-family:system-ui,sans-serif;max-width:1360px;margin:2em auto;color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:13px;margin:.6em 0 1.2em}
th,td{border:1px solid #ccc;padding:4px 7px;text-align:right;white-space:nowrap}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left;font-weight:600}img{max-width:100%;margin:.5em 0}
.verdict{background:#f6f8fa;border-left:4px solid #999;padding:.4em 1em;margin:.3em 0;font-size:14px}
.better{border-left-color:#4a7}.worse{border-left-color:#c44}
.prov{font-size:12px;color:#555;background:#fafafa;border:1px solid #eee;padding:.5em 1em}
.prov code{white-space:pre-wrap;word-break:break-all}"""


def html_table(header: list[str], rows: list[list[str]]) -> str:
    def cells(r, tag):
        return "".join(f"<{tag}>{'<b>' + html.escape(c[2:-2]) + '</b>' if c.startswith('**') else html.escape(c)}</{tag}>"
                       for c in r)
    return ("<table><tr>" + cells(header, "th") + "</tr>" + "".join("<tr>" + cells(r, "td") + "</tr>" for r in rows)
            + "</table>")


def write_html(results: dict, figures: dict[str, list[Path]], path: Path) -> Path:
    prov = "".join(f"<div><code>{html.escape(line)}</code></div>" for line in _provenance_lines(results["provenance"]))
    body = [f"<h1>skymorph benchmark</h1><div class='prov'>{prov}</div><p>{html.escape(CAPTION)} Cost: trainable "
            "parameters, training minutes (mean over seeds), seconds and network evaluations (NFE) per translated "
            "map.</p>"]
    for name, pair in results["pairs"].items():
        methods = pair["methods"]
        body.append(f"<h2>{html.escape(name)}</h2>")
        for line, v in zip(verdict_lines(name, pair), pair["verdicts"]):
            kind = {"better": " better", "worse": " worse"}.get(v["verdict"], "")
            body.append(f'<div class="verdict{kind}">{html.escape(line)}</div>')
        for title, names in GROUPS:
            body.append(f"<h3>{html.escape(title)}</h3>" + html_table(*metric_table(methods, names)))
        body.append("<h3>cost</h3>" + html_table(*cost_table(methods)))
        if any(len(r.get("sweep", [])) > 1 for r in methods.values()):
            body.append("<h3>quality versus cost</h3>")
            body += [f'<div class="verdict">{html.escape(v)}</div>' for v in cost_answers(name, methods)]
            body.append(html_table(*sweep_table(methods)))
        header, rows = calibration_table(methods)
        if rows:
            body.append(f"<h3>uncertainty</h3><p>{html.escape(CALIBRATION_NOTE)}</p>" + html_table(header, rows))
        body += [img_tag(f) for f in figures.get(name, [])]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>skymorph benchmark</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")
    return write_text(path, page)
