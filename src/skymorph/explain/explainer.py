"""What a trained run looks at: attributions of its discriminators' realness scores and of a region
of its generated map, for one view of a store, as figures over the input maps and raw arrays.

Discriminator inputs, per discriminator (a PatchGAN judging the source or the target side): the
real map of the view, the generated one (from the other side's real map), and the store's ``feed``
maps (dark matter, stars), each standardised with its own train-split normalisation, so the
discriminator sees their morphology, not their amplitude. A conditional discriminator (pix2pix)
sees the real source map stacked before each of them. Models see normalised log maps. SHAP
values are measured from the expected output over a background of training-split maps, integrated
gradients from an empty map (physical zero in every channel). Both report their completeness gap:
a discriminator's instance normalisation is singular at a constant map, so its integrated gradients
converge slowly in ``n_steps``.
"""
from __future__ import annotations

import json

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..atomic import check_output  # noqa: E402
from ..data.store import MapStore  # noqa: E402
from ..errors import ConfigError, InputError  # noqa: E402
from ..methods.apply import normalised, store_sources  # noqa: E402
from ..methods.training import load_run  # noqa: E402
from ..provenance import provenance  # noqa: E402
from .attribution import ATTRIBUTIONS, SHAP_CHUNKS, Attribution, Realness, RegionMean, attribute  # noqa: E402

WHAT = ("discriminator", "generator")


@dataclass
class Case:
    """One explained input: the side its discriminator judges ('source', 'target'; 'generator' for
    the generator), a label, the channels' domains and the normalised input (C, H, W)."""

    side: str
    label: str
    domains: list[str]
    x: torch.Tensor


def _empty(cfg, domains: list[str]) -> torch.Tensor:
    """The normalised empty map (physical zero) of each domain: (1, C, H, W)."""
    return normalised(cfg, np.zeros((1, len(domains), cfg.npix, cfg.npix)), domains)


@dataclass
class Explanation:
    what: str
    how: str
    split: str
    position: int
    view: int
    cases: list[Case]
    attributions: list[Attribution]  # one per side, over that side's cases in order
    box: tuple[int, int, int, int] | None = None
    generated: np.ndarray | None = None  # the generator's normalised output (H, W), what='generator'
    info: dict = field(default_factory=dict)

    @property
    def values(self) -> np.ndarray:
        """Attributions of every case, in order: (cases, C, H, W)."""
        return np.concatenate([att.values for att in self.attributions])

    def scores(self) -> dict[str, np.ndarray]:
        """Per case: the explained output, its reference, the completeness gap and its standard error."""
        return {k: np.concatenate([getattr(att, k) for att in self.attributions])
                for k in ("output", "reference", "gap", "stderr")}


def parse_box(text: str | None, npix: int) -> tuple[int, int, int, int]:
    """'y0:y1,x0:x1' in pixels; default the central quarter-width square (the galaxy's centre)."""
    if text is None:
        lo, hi = 3 * npix // 8, 5 * npix // 8
        return lo, hi, lo, hi
    try:
        (y0, y1), (x0, x1) = [[int(v) for v in part.split(":")] for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--region {text!r}: expected y0:y1,x0:x1 in pixels, e.g. 24:40,24:40") from None
    if not (0 <= y0 < y1 <= npix and 0 <= x0 < x1 <= npix):
        raise ConfigError(f"--region {text!r}: outside the {npix}x{npix} map or empty")
    return y0, y1, x0, x1


def explain_run(run: str | Path, data: str | Path, position: int, what: str = "discriminator", how: str = "shap",
                split: str = "test", region: str | None = None, feed: tuple[str, ...] = ("dm", "star"),
                n_background: int = 32, nsamples: int = 512, n_steps: int = 64, seed: int = 0,
                reverse: bool = False, device: str = "cpu", progress: bool = False) -> Explanation:
    """Attributions for view ``position`` of ``split`` (its place in the split's sorted view list),
    computed on ``device``; ``progress``: a bar over the attribution work."""
    from rich.progress import Progress

    if what not in WHAT:
        raise ConfigError(f"--what {what!r}: expected discriminator or generator")
    if how not in ATTRIBUTIONS:
        raise ConfigError(f"--attribution {how!r}: expected one of {', '.join(ATTRIBUTIONS)}")
    if min(n_background, nsamples, n_steps) < 1:
        raise ConfigError("--background, --nsamples and --n-steps must be positive integers")
    cfg, method = load_run(run, reverse=reverse, device=device)
    method.requires_grad_(False)
    if what == "discriminator" and not method.discriminators():
        raise ConfigError(f"{run}: a {cfg.method!r} run has no discriminator to explain (use --what generator)")
    if what == "generator" and method.stochastic:
        raise ConfigError(f"{run}: a {cfg.method!r} run translates by iterative sampling; --what generator "
                          f"explains deterministic one-pass generators")
    with MapStore(data) as store:
        views = np.sort(store.split(split))
        if not 0 <= position < len(views):
            raise InputError(f"{data}: --position {position} outside the {split} split (0..{len(views) - 1})")
        view = int(views[position])
        train = np.sort(store.split("train"))
        pick = np.sort(np.random.default_rng(seed).choice(train, min(n_background, len(train)), replace=False))
        src, bg_src = store_sources(cfg, store, np.array([view])), store_sources(cfg, store, pick)
        tgt, bg_tgt = store.maps(cfg.target, [view])[:, None], store.maps(cfg.target, pick)[:, None]
        fed = {d: torch.from_numpy(store.norm(d).forward(store.maps(d, [view])).astype(np.float32))
               for d in feed if d in store.domains}
    dev = method.device
    a, b = normalised(cfg, src, cfg.source).to(dev), normalised(cfg, tgt, [cfg.target]).to(dev)
    bg_a, bg_b = normalised(cfg, bg_src, cfg.source).to(dev), normalised(cfg, bg_tgt, [cfg.target]).to(dev)
    fed = {d: x.to(dev) for d, x in fed.items()}
    empty = lambda domains: _empty(cfg, domains).to(dev)  # noqa: E731
    calls = 1 if what == "generator" else len(method.discriminators())
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{how} attributions", total=calls * (SHAP_CHUNKS if how == "shap" else 1))
        opts = {"nsamples": nsamples, "n_steps": n_steps, "seed": seed, "advance": lambda n: bar.advance(task, n)}
        return _explain((what, how, split, position, view), cfg, method, region, a, b, bg_a, bg_b, fed, empty, opts)


def _explain(args, cfg, method, region, a, b, bg_a, bg_b, fed, empty, opts) -> Explanation:
    """The attributions of :func:`explain_run` for the normalised maps on the method's device (cases
    keep CPU copies of their inputs)."""
    what, how, split, position, view = args
    exp = Explanation(what, how, split, position, view, [], [],
                      info={"method": cfg.method, "source": cfg.source, "target": cfg.target})
    if what == "generator":
        exp.box = parse_box(region, cfg.npix)
        with torch.no_grad():
            exp.generated = method.generate(a)[0, 0].cpu().numpy()
        exp.cases = [Case("generator", f"{'+'.join(cfg.source)} -> {cfg.target}", cfg.source, a[0].cpu())]
        exp.attributions = [attribute(RegionMean(method, exp.box), a, how, bg_a, empty(cfg.source), **opts)]
        return exp
    for side, disc in method.discriminators().items():
        judged = cfg.source if side == "source" else [cfg.target]
        real, other, bg = (a, b, bg_a) if side == "source" else (b, a, bg_b)
        gen = method.reverse() if side == "source" else method
        with torch.no_grad():
            fake = gen.generate(other)
        name = "+".join(judged)
        inputs = [(f"real {name}", real), (f"generated {name}", fake)]
        if len(judged) == 1:
            inputs += [(f"{d} as {name}", x[:, None]) for d, x in fed.items() if d != judged[0]]
        domains = judged
        if method.conditional_disc:  # judged maps stacked after the (real) source they are conditioned on
            inputs = [(label, torch.cat([a, x], 1)) for label, x in inputs]
            bg, domains = torch.cat([bg_a, bg], 1), [*cfg.source, *judged]
        cases = [Case(side, label, domains, x[0].cpu()) for label, x in inputs]
        exp.cases += cases
        exp.attributions.append(attribute(Realness(disc), torch.stack([x[0] for _, x in inputs]), how, bg,
                                          empty(domains), **opts))
    return exp


def _stem(exp: Explanation) -> str:
    return f"{exp.what}_{exp.how}_{exp.split}{exp.position}"


def write_explanation(exp: Explanation, out: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
    """``<what>_<attribution>_<split><position>.png`` (attribution over each input) and ``.npz`` (raw
    arrays, and the provenance as a JSON string)."""
    out = Path(out)
    png, npz = out / f"{_stem(exp)}.png", out / f"{_stem(exp)}.npz"
    for path in (png, npz):
        check_output(path, overwrite)
    values, per_case = exp.values, exp.scores()
    arrays = {"provenance": np.array(json.dumps(provenance())),
              "labels": np.array([c.label for c in exp.cases]), "sides": np.array([c.side for c in exp.cases]),
              "view": exp.view, **per_case}
    for i, case in enumerate(exp.cases):
        arrays[f"input_{i}"], arrays[f"attribution_{i}"] = case.x.numpy(), values[i]
        arrays[f"domains_{i}"] = np.array(case.domains)
    if exp.box is not None:
        arrays["box"], arrays["generated"] = np.array(exp.box), exp.generated
    with atomic_path(npz) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    with atomic_path(png) as tmp:
        _figure(exp, values, per_case).savefig(tmp, format="png", dpi=100)
    plt.close("all")
    return png, npz


def _figure(exp: Explanation, values: np.ndarray, per_case: dict) -> plt.Figure:
    """Rows: discriminators (or the generator); panels: the judged (or source) map in grey, its
    attribution over it in red (raises the output) and blue (lowers it), opaque where it is large."""
    sides = list(dict.fromkeys(c.side for c in exp.cases))
    rows = [[i for i, c in enumerate(exp.cases) if c.side == s] for s in sides]
    channels = len(exp.cases[0].domains) if exp.what == "generator" else 1
    ncols = max(len(r) for r in rows) * channels + (exp.what == "generator")
    fig, axes = plt.subplots(len(rows), ncols, figsize=(3.0 * ncols, 3.1 * len(rows)), squeeze=False)
    for r, cases in enumerate(rows):
        col = 0
        for i in cases:
            case = exp.cases[i]
            for c in range(-channels, 0):
                ax = axes[r, col]
                att = values[i, c]
                vmax = float(np.abs(att).max()) or 1.0
                ax.imshow(case.x[c].numpy(), origin="lower", cmap="gray")
                im = ax.imshow(att, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                               alpha=np.clip(2.0 * np.abs(att) / vmax, 0.0, 0.9))  # the input shows where it is small
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
                title = f"{case.label}" if exp.what == "discriminator" else f"input {case.domains[c]}"
                score = "D" if exp.what == "discriminator" else "region mean"
                ax.set_title(f"{title}\n{score} {per_case['output'][i]:.3g}"
                             + (f" (ref {per_case['reference'][i]:.3g})" if np.isfinite(per_case['reference'][i])
                                else ""), fontsize=8)
                col += 1
        for ax in axes[r, col:]:
            ax.axis("off")
    if exp.what == "generator":
        ax = axes[0, -1]
        ax.axis("on")
        ax.imshow(exp.generated, origin="lower", cmap="magma")
        y0, y1, x0, x1 = exp.box
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="cyan", lw=1.5))
        ax.set_title(f"generated {exp.info['target']} (normalised)\nexplained region", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    names = {"shap": "SHAP (expected gradients)", "saliency": "saliency |grad|",
             "integrated_gradients": "integrated gradients"}
    fig.suptitle(f"{exp.info['method']} {'+'.join(exp.info['source'])} -> {exp.info['target']}: {names[exp.how]}\nof the "
                 f"{exp.what}'s {'realness (mean patch logit)' if exp.what == 'discriminator' else 'region mean'}, "
                 f"{exp.split} view {exp.position} (store index {exp.view})\ngrey: normalised log input", fontsize=8)
    fig.tight_layout()
    return fig
