"""Map metrics on PHYSICAL values (DESIGN.md section 8): pixel, spectral, profile, morphology, PDF.

Conventions
-----------
- Inputs are maps in physical units (surface density in Msun/kpc^2, temperature in K, ...), one map
  ``(H, W)`` or a batch ``(N, H, W)``; ``pred`` and ``truth`` must have the same shape. Every metric
  returns a float for one map and a float64 array ``(N,)`` (one value per map) for a batch.
- Log maps: ``log10(max(x, 0) + eps)`` where ``eps`` is the floor added before the log, normally the
  dataset's normalisation eps (``LogStandardise.eps``), so metrics see the same log maps the models
  were trained on. Negative pixels (possible after inverting a normalisation in floating point) are
  clipped to 0 first, as physical maps are non-negative. ``eps = 0`` is allowed for strictly
  positive maps; a zero pixel with ``eps = 0`` raises :class:`~skymorph.errors.InputError`.
  Log metrics are in dex (mse in dex^2).
- ``pixel_kpc`` is the pixel side in kpc; wavenumbers are in rad/kpc, radii and offsets in kpc.
- Centres: spectra and radial profiles use the map (field-of-view) centre, i.e. the galaxy
  position the maps were projected about; ``center_offset`` and the morphology use each map's own
  intensity-weighted centroid (in pixel index coordinates, pixel ``[i, j]`` centred at ``(i, j)``).
- Degenerate inputs give NaN rather than an exception (e.g. an all-zero truth map for relative
  errors, a constant truth log map for PSNR / SSIM whose data range is then zero).

Every name in :data:`HIGHER_IS_BETTER` is better when larger; every other metric is an error
(lower is better, 0 = perfect).
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

from skymorph import fields, stats
from skymorph.errors import InputError

__all__ = [
    "HIGHER_IS_BETTER", "METRIC_NAMES",
    "log_map", "mse_log", "mae_log", "psnr", "ssim",
    "K_MAX_NYQUIST", "pk_err_dex", "pk_curves", "rk", "rk_curve", "profile_rel_err", "profile_curves",
    "mass_rel_err", "centroid", "center_offset",
    "asymmetry", "clumpiness", "concentration", "morphology",
    "asymmetry_err", "clumpiness_err", "concentration_err",
    "pdf_w1", "pdf_ks", "map_metrics", "map_metrics_batch", "summarise",
    "CALIBRATION_NAMES", "calibration", "calibration_nominal", "rank_counts", "spread_error_curve",
]

#: Metrics where a larger value is better (PSNR in dB, SSIM and r(k) at most 1).
HIGHER_IS_BETTER = frozenset({"psnr", "ssim", "rk"})

#: The keys of :func:`map_metrics`, in report order.
METRIC_NAMES = (
    "mse_log", "mae_log", "psnr", "ssim", "pk_err_dex", "rk", "profile_rel_err", "mass_rel_err",
    "center_offset", "asymmetry_err", "clumpiness_err", "concentration_err", "pdf_w1", "pdf_ks",
)

# SSIM settings of DESIGN.md section 8 (scikit-image's gaussian_weights=True defaults).
SSIM_SIGMA = 1.5
# Morphology apertures, in units of the half-light radius r50.
APERTURE_R50 = 1.5
CLUMP_SMOOTH_R50 = 0.25
CLUMP_INNER_R50 = 0.25


# ---------------------------------------------------------------------------------------------
# helpers


def _maps(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim not in (2, 3) or a.shape[-1] < 2 or a.shape[-2] < 2:
        raise InputError(f"{name}: expected a map (H, W) or a batch (N, H, W), got shape {a.shape}")
    return a


def _pair(pred, truth) -> tuple[np.ndarray, np.ndarray, bool]:
    """Both as (N, H, W) float64, and whether the input was a single map."""
    p = _maps(pred, "pred")
    t = _maps(truth, "truth")
    if p.shape != t.shape:
        raise InputError(f"pred {p.shape} and truth {t.shape} must have the same shape")
    single = p.ndim == 2
    return (p[None], t[None], True) if single else (p, t, False)


def _out(v, single: bool):
    v = np.asarray(v, dtype=np.float64)
    return float(v[0]) if single else v


def _check_pixel_kpc(pixel_kpc) -> float:
    d = float(pixel_kpc)
    if not np.isfinite(d) or d <= 0:
        raise InputError(f"pixel_kpc: expected a positive pixel size in kpc, got {pixel_kpc!r}")
    return d


def log_map(x, eps: float) -> np.ndarray:
    """log10(max(x, 0) + eps) in dex — the log maps every log metric here is computed on."""
    e = float(eps)
    if not np.isfinite(e) or e < 0:
        raise InputError(f"eps: expected a finite floor >= 0 added before log10, got {eps!r}")
    a = np.maximum(np.asarray(x, dtype=np.float64), 0.0) + e
    if not np.all(a > 0):
        raise InputError("log10(x + eps): the map has pixels <= 0 and eps = 0; pass the dataset's "
                         "normalisation eps (> 0)")
    return np.log10(a)


def _logs(pred, truth, eps):
    p, t, single = _pair(pred, truth)
    return log_map(p, eps), log_map(t, eps), single


# ---------------------------------------------------------------------------------------------
# pixel metrics on log maps


def mse_log(pred, truth, eps: float):
    """Mean squared error of the log maps, mean((log10(pred + eps) - log10(truth + eps))^2), dex^2."""
    lp, lt, single = _logs(pred, truth, eps)
    return _out(np.mean((lp - lt) ** 2, axis=(-2, -1)), single)


def mae_log(pred, truth, eps: float):
    """Mean absolute error of the log maps, mean|log10(pred + eps) - log10(truth + eps)|, dex."""
    lp, lt, single = _logs(pred, truth, eps)
    return _out(np.mean(np.abs(lp - lt), axis=(-2, -1)), single)


def _psnr_logs(lp, lt):
    mse = np.mean((lp - lt) ** 2, axis=(-2, -1))
    rng = lt.max(axis=(-2, -1)) - lt.min(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(rng**2 / mse)
    return np.where(rng > 0, out, np.nan)


def psnr(pred, truth, eps: float):
    """Peak signal-to-noise ratio of the log maps, in dB.

    PSNR = 10 log10(R^2 / MSE) with MSE the mean squared log error and
    R = max(truth_log) - min(truth_log) per map — the same number as
    ``skimage.metrics.peak_signal_noise_ratio(truth_log, pred_log, data_range=R)`` (the formula is
    evaluated here directly, vectorised over the batch). +inf for identical maps, NaN for a
    constant truth map.
    """
    lp, lt, single = _logs(pred, truth, eps)
    return _out(_psnr_logs(lp, lt), single)


def _ssim_logs(lp, lt):
    from skimage.metrics import structural_similarity  # scikit-image is the reference

    out = np.empty(lp.shape[0])
    for i in range(lp.shape[0]):
        rng = float(lt[i].max() - lt[i].min())
        if not rng > 0:
            out[i] = np.nan
            continue
        out[i] = structural_similarity(lt[i], lp[i], gaussian_weights=True, sigma=SSIM_SIGMA,
                                       use_sample_covariance=False, data_range=rng)
    return out


def ssim(pred, truth, eps: float):
    """Structural similarity (Wang et al. 2004) of the log maps, dimensionless, at most 1.

    ``skimage.metrics.structural_similarity(truth_log, pred_log, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=R)`` with R = max(truth_log) - min(truth_log): Gaussian
    window of 11 pixels (truncate 3.5), K1 = 0.01, K2 = 0.03, mean over the map minus a 5-pixel
    border. NaN for a constant truth map.
    """
    lp, lt, single = _logs(pred, truth, eps)
    return _out(_ssim_logs(lp, lt), single)


# ---------------------------------------------------------------------------------------------
# spectra


def pk_curves(pred, truth, pixel_kpc: float, nbins: int | None = None):
    """Per-bin power spectra for plots: ``(k, P_pred, P_truth)``.

    ``skymorph.fields.power_spectrum`` of the physical maps, mean-subtracted and Hann-windowed; k in
    rad/kpc, P in (map unit)^2 kpc^2, shapes (nbins,) and (nbins,) or (N, nbins).
    """
    p, t, single = _pair(pred, truth)
    d = _check_pixel_kpc(pixel_kpc)
    k, pp, _ = fields.power_spectrum(p, d, nbins)
    _, pt, _ = fields.power_spectrum(t, d, nbins)
    return (k, pp[0], pt[0]) if single else (k, pp, pt)


#: The resolved range of every spectral summary: bins centred at or below this fraction of the
#: Nyquist wavenumber pi / pixel. Fixed from the map geometry: above half Nyquist a map's power is
#: set by the projection kernel and the pixel window (features a few pixels wide), not by structure.
K_MAX_NYQUIST = 0.5


def _resolved_lnk_weights(k: np.ndarray, pixel_kpc: float) -> np.ndarray:
    """Weights dk / k of linear bins (each octave of scale counts equally) over the resolved range
    0 < k <= K_MAX_NYQUIST k_Nyquist (half a bin of tolerance); 0 elsewhere."""
    k_nyq = np.pi / pixel_kpc
    dk = np.nanmin(np.diff(k)) if k.size > 1 else k_nyq
    ok = np.isfinite(k) & (k > 0) & (k <= K_MAX_NYQUIST * k_nyq + 0.5 * dk)
    return np.where(ok, 1.0 / np.where(ok, k, 1.0), 0.0)


def _pk_dex(k, pp, pt, pixel_kpc):
    with np.errstate(divide="ignore", invalid="ignore"):
        dex = np.abs(np.log10(pp / pt))
    return _nanmean_rows(np.where(pt > 0, dex, np.nan), _resolved_lnk_weights(k, pixel_kpc))


def _nanmean_rows(a, weights=None):
    ok = np.isfinite(a)
    w = np.broadcast_to(1.0 if weights is None else weights, a.shape) * ok
    n = w.sum(axis=-1)
    s = np.where(ok, a, 0.0) * w
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, s.sum(axis=-1) / np.where(n > 0, n, 1.0), np.nan)


def pk_err_dex(pred, truth, pixel_kpc: float, nbins: int | None = None):
    """Mean over ln k of |log10 P_pred(k) / P_truth(k)|, in dex (0 = perfect).

    Symmetric in excess and deficit: twice and half the true power both give log10 2 = 0.301 dex.
    Spectra as in :func:`pk_curves` (mean-subtracted, Hann-windowed physical maps, linear bins of
    width k_f); each bin weighted by dk / k (each octave counts equally) over the resolved range
    k_f <= k <= k_Nyquist / 2 (:data:`K_MAX_NYQUIST`); bins where P_truth = 0 are skipped.
    """
    p, t, single = _pair(pred, truth)
    d = _check_pixel_kpc(pixel_kpc)
    k, pp, _ = fields.power_spectrum(p, d, nbins)
    _, pt, _ = fields.power_spectrum(t, d, nbins)
    return _out(_pk_dex(k, pp, pt, d), single)


def rk_curve(pred, truth, pixel_kpc: float, nbins: int | None = None):
    """Per-bin cross-correlation coefficient for plots: ``(k, r)``, r = P_pt / sqrt(P_pp P_tt)."""
    p, t, single = _pair(pred, truth)
    d = _check_pixel_kpc(pixel_kpc)
    k, r = fields.cross_correlation(p, t, d, nbins)
    return (k, r[0]) if single else (k, r)


def rk(pred, truth, pixel_kpc: float, nbins: int | None = None):
    """Mean over ln k of the cross-correlation coefficient r(k) (dimensionless, 1 = perfect).

    r(k) = P_pred,truth / sqrt(P_pred P_truth) of the mean-subtracted, Hann-windowed physical maps,
    weighted and ranged as :func:`pk_err_dex` (dk / k, up to half Nyquist); bins where an auto
    spectrum vanishes are skipped.
    """
    d = _check_pixel_kpc(pixel_kpc)
    k, r = rk_curve(pred, truth, d, nbins)
    return _out(_nanmean_rows(np.atleast_2d(r), _resolved_lnk_weights(k, d)), np.ndim(r) == 1)


# ---------------------------------------------------------------------------------------------
# radial profile, mass, centre


def profile_curves(pred, truth, pixel_kpc: float, nbins: int | None = None):
    """Azimuthally averaged profiles about the map centre for plots: ``(r, prof_pred, prof_truth)``.

    One-pixel-wide annuli (default ``min(H, W) // 2`` of them) out to the map half-width; r in kpc
    (mean pixel-centre radius per annulus), profiles in the map unit.
    """
    p, t, single = _pair(pred, truth)
    d = _check_pixel_kpc(pixel_kpc)
    r, pp = fields.radial_profile(p, d, nbins)
    _, pt = fields.radial_profile(t, d, nbins)
    return (r, pp[0], pt[0]) if single else (r, pp, pt)


def profile_rel_err(pred, truth, pixel_kpc: float, nbins: int | None = None, floor: float = 0.0):
    """Mean over radial bins of |profile_pred(r) / profile_truth(r) - 1| (dimensionless).

    Profiles as in :func:`profile_curves` (about the map centre, out to the half-width); annuli
    where the truth profile is not above ``floor`` are skipped (``map_metrics`` passes the log
    floor eps: far outskirts with a vanishing truth, e.g. no HI, would otherwise dominate the mean).
    """
    _, pp, pt = profile_curves(pred, truth, pixel_kpc, nbins)
    pp, pt = np.atleast_2d(pp), np.atleast_2d(pt)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(pt > floor, np.abs(pp / pt - 1.0), np.nan)
    return _out(_nanmean_rows(rel), np.ndim(pred) == 2)


def mass_rel_err(pred, truth):
    """|sum(pred) - sum(truth)| / sum(truth), dimensionless.

    For surface-density maps the relative error of the total mass (flux) in the field of view; for
    intensive maps (temperature, |B|) it is the relative error of the map mean. NaN if sum(truth) = 0.
    """
    p, t, single = _pair(pred, truth)
    sp, st = p.sum(axis=(-2, -1)), t.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(st != 0, np.abs(sp - st) / np.abs(st), np.nan)
    return _out(out, single)


def _centroids(x: np.ndarray) -> np.ndarray:
    """Intensity-weighted centroids (N, 2) as (y, x) pixel index coordinates; NaN for empty maps."""
    w = np.maximum(x, 0.0)
    tot = w.sum(axis=(-2, -1))
    iy = np.arange(x.shape[-2], dtype=np.float64)
    ix = np.arange(x.shape[-1], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cy = (w.sum(axis=-1) @ iy) / tot
        cx = (w.sum(axis=-2) @ ix) / tot
    c = np.stack([cy, cx], axis=-1)
    c[~(tot > 0)] = np.nan
    return c


def centroid(img):
    """Intensity-weighted centroid (centre of mass) ``(y, x)`` in pixel index coordinates.

    Negative pixels are clipped to 0. Returns shape (2,) or (N, 2); NaN for an all-zero map.
    """
    x = _maps(img, "img")
    c = _centroids(x if x.ndim == 3 else x[None])
    return c[0] if x.ndim == 2 else c


def center_offset(pred, truth, pixel_kpc: float):
    """Distance in kpc between the centres of mass (intensity-weighted centroids) of the maps."""
    p, t, single = _pair(pred, truth)
    d = _check_pixel_kpc(pixel_kpc)
    dc = _centroids(p) - _centroids(t)
    return _out(np.hypot(dc[:, 0], dc[:, 1]) * d, single)


# ---------------------------------------------------------------------------------------------
# morphology (Conselice 2003 / 2014 CAS, noise-free maps: no background terms)


def _morph_one(img: np.ndarray) -> tuple[float, float, float]:
    """(A, S, C) of one map; NaN for an empty map."""
    x = np.maximum(img, 0.0)
    tot = x.sum()
    if not tot > 0:
        return np.nan, np.nan, np.nan
    h, w = x.shape
    cy, cx = _centroids(x[None])[0]
    yy = np.arange(h, dtype=np.float64)[:, None] - cy
    xx = np.arange(w, dtype=np.float64)[None, :] - cx
    r = np.hypot(yy, xx)
    # Curve of growth about the centroid, normalised to the total in the map. Pixels sorted by
    # centre radius; the first i of them fill an area of i pixels, so their summed flux is assigned
    # to the area-equivalent radius sqrt(i / pi) (this removes the steps of the discrete pixel-centre
    # radii: exact to ~0.1 % for smooth profiles a few pixels wide). Beyond the largest circle
    # inside the map the plain pixel-centre radius is used; linear interpolation in between.
    rf = r.ravel()
    order = np.argsort(rf, kind="stable")
    rs = rf[order]
    cum = np.cumsum(x.ravel()[order])
    r_in = min(cy + 0.5, cx + 0.5, h - 0.5 - cy, w - 0.5 - cx) - 1.0
    req = np.sqrt(np.arange(1, rs.size + 1) / np.pi)
    rgrow = np.maximum.accumulate(np.where(rs < r_in, req, rs))
    r20, r50, r80 = np.interp([0.2, 0.5, 0.8], np.concatenate(([0.0], cum / tot)),
                              np.concatenate(([0.0], rgrow)))
    conc = 5.0 * np.log10(r80 / r20) if r20 > 0 else np.nan

    ap = r <= APERTURE_R50 * r50
    if not ap.any():
        return np.nan, np.nan, conc
    # Asymmetry: rotate by 180 degrees about the centroid, (y, x) -> (2 cy - y, 2 cx - x), bilinear
    # interpolation (exact when the centroid is on a pixel centre or corner); outside the map = 0.
    iy, ix = np.nonzero(ap)
    rot = ndi.map_coordinates(x, [2.0 * cy - iy, 2.0 * cx - ix], order=1, mode="constant", cval=0.0)
    ia = x[iy, ix]
    den = np.abs(ia).sum()
    asym = np.abs(ia - rot).sum() / den if den > 0 else np.nan
    # Clumpiness: positive residual from a Gaussian smoothing of sigma = 0.25 r50, within 1.5 r50,
    # excluding the central 0.25 r50.
    sig = CLUMP_SMOOTH_R50 * r50
    smooth = ndi.gaussian_filter(x, sig) if sig > 0 else x
    ann = ap & (r > CLUMP_INNER_R50 * r50)
    sden = x[ann].sum()
    clump = np.clip(x[ann] - smooth[ann], 0.0, None).sum() / sden if sden > 0 else np.nan
    return asym, clump, conc


def _morph(x: np.ndarray) -> np.ndarray:
    """(N, 3) array of (A, S, C)."""
    return np.array([_morph_one(m) for m in x], dtype=np.float64).reshape(len(x), 3)


def morphology(img) -> dict:
    """Asymmetry, clumpiness and concentration of a map (or batch) as a dict of floats (or arrays).

    See :func:`asymmetry`, :func:`clumpiness`, :func:`concentration`.
    """
    x = _maps(img, "img")
    single = x.ndim == 2
    m = _morph(x[None] if single else x)
    return {name: _out(m[:, i], single) for i, name in enumerate(("asymmetry", "clumpiness", "concentration"))}


def asymmetry(img):
    """Conselice rotational asymmetry A = sum|I - I_180| / sum|I| (dimensionless, 0 = symmetric).

    Sums over pixels within 1.5 r50 of the map's intensity-weighted centroid, r50 the half-light
    radius of the curve of growth about that centroid (normalised to the map total); I_180 is the
    map rotated by 180 degrees about the centroid (bilinear interpolation, zero outside the map).
    No centre minimisation and no background term (the maps are noise-free). Ranges 0 to 2.
    """
    return morphology(img)["asymmetry"]


def clumpiness(img):
    """Clumpiness S = sum (I - I_smooth)_+ / sum I (dimensionless; without Conselice's factor 10).

    I_smooth is the map convolved with a Gaussian of sigma = 0.25 r50; both sums run over the annulus
    0.25 r50 < r <= 1.5 r50 about the centroid (r50 as in :func:`asymmetry`). A smooth profile is not
    exactly 0: its concave centre leaves a residual ~ (sigma^2 / 2) |lap I| (S ~ 0.04 for a
    Gaussian); clumps raise S.
    """
    return morphology(img)["clumpiness"]


def concentration(img):
    """Concentration C = 5 log10(r80 / r20) of the curve of growth about the centroid.

    r20, r80 enclose 20 % and 80 % of the total in the map (pixels sorted by centre radius, the first i
    of them placed at the area-equivalent radius sqrt(i / pi) while inside the map's inscribed
    circle, linear interpolation). Analytic values: exponential disk 2.80 (r20 = 0.824 Rd,
    r80 = 2.994 Rd), Gaussian 2.15, de Vaucouleurs ~5.2 (within a map that holds all the flux).
    """
    return morphology(img)["concentration"]


def _morph_err(pred, truth, col: int):
    p, t, single = _pair(pred, truth)
    return _out(np.abs(_morph(p)[:, col] - _morph(t)[:, col]), single)


def asymmetry_err(pred, truth):
    """|A(pred) - A(truth)|, see :func:`asymmetry`."""
    return _morph_err(pred, truth, 0)


def clumpiness_err(pred, truth):
    """|S(pred) - S(truth)|, see :func:`clumpiness`."""
    return _morph_err(pred, truth, 1)


def concentration_err(pred, truth):
    """|C(pred) - C(truth)|, see :func:`concentration`."""
    return _morph_err(pred, truth, 2)


# ---------------------------------------------------------------------------------------------
# pixel PDF (log values)


def _w1_ks_sorted(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Wasserstein-1 and KS statistic of two sorted 1D samples (any sizes)."""
    allv = np.concatenate([a, b])
    allv.sort(kind="mergesort")
    ca = np.searchsorted(a, allv, side="right") / a.size
    cb = np.searchsorted(b, allv, side="right") / b.size
    ks = float(np.max(np.abs(ca - cb)))
    w1 = float(np.sum(np.abs(ca - cb)[:-1] * np.diff(allv)))
    return w1, ks


def _pdf(lp, lt):
    n = lp.shape[0]
    a = np.sort(lp.reshape(n, -1), axis=1)
    b = np.sort(lt.reshape(n, -1), axis=1)
    out = np.empty((n, 2))
    for i in range(n):
        out[i] = _w1_ks_sorted(a[i], b[i])
    return out


def pdf_w1(pred, truth, eps: float):
    """Wasserstein-1 distance between the pixel PDFs of the log maps, in dex.

    Equal to ``scipy.stats.wasserstein_distance(pred_log.ravel(), truth_log.ravel())``; a map
    scaled by a constant factor f gives |log10 f| (with eps = 0).
    """
    lp, lt, single = _logs(pred, truth, eps)
    return _out(_pdf(lp, lt)[:, 0], single)


def pdf_ks(pred, truth, eps: float):
    """Kolmogorov-Smirnov statistic (max |CDF difference|) between the log-map pixel PDFs.

    Equal to ``scipy.stats.ks_2samp(pred_log.ravel(), truth_log.ravel()).statistic``; in [0, 1].
    """
    lp, lt, single = _logs(pred, truth, eps)
    return _out(_pdf(lp, lt)[:, 1], single)


# ---------------------------------------------------------------------------------------------
# all at once


def _all(p: np.ndarray, t: np.ndarray, pixel_kpc: float, eps: float) -> dict[str, np.ndarray]:
    d = _check_pixel_kpc(pixel_kpc)
    lp, lt = log_map(p, eps), log_map(t, eps)
    out: dict[str, np.ndarray] = {}
    diff = lp - lt
    out["mse_log"] = np.mean(diff**2, axis=(-2, -1))
    out["mae_log"] = np.mean(np.abs(diff), axis=(-2, -1))
    out["psnr"] = _psnr_logs(lp, lt)
    out["ssim"] = _ssim_logs(lp, lt)
    k, pab, pp, pt, _ = fields._spectra(p, t, d, None, "hann", True, True)
    out["pk_err_dex"] = _pk_dex(k, pp, pt, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        den = np.sqrt(pp * pt)
        r = np.where(den > 0, pab / np.where(den > 0, den, 1.0), np.nan)
    out["rk"] = _nanmean_rows(r, _resolved_lnk_weights(k, d))
    _, prp = fields.radial_profile(p, d)
    _, prt = fields.radial_profile(t, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["profile_rel_err"] = _nanmean_rows(np.where(prt > eps, np.abs(prp / prt - 1.0), np.nan))
        sp, st = p.sum(axis=(-2, -1)), t.sum(axis=(-2, -1))
        out["mass_rel_err"] = np.where(st != 0, np.abs(sp - st) / np.abs(st), np.nan)
    dc = _centroids(p) - _centroids(t)
    out["center_offset"] = np.hypot(dc[:, 0], dc[:, 1]) * d
    mp, mt = _morph(p), _morph(t)
    out["asymmetry_err"] = np.abs(mp[:, 0] - mt[:, 0])
    out["clumpiness_err"] = np.abs(mp[:, 1] - mt[:, 1])
    out["concentration_err"] = np.abs(mp[:, 2] - mt[:, 2])
    pdf = _pdf(lp, lt)
    out["pdf_w1"] = pdf[:, 0]
    out["pdf_ks"] = pdf[:, 1]
    return {k: out[k] for k in METRIC_NAMES}


def map_metrics(pred, truth, pixel_kpc: float, eps: float) -> dict[str, float]:
    """All metrics for one map pair (H, W), keyed by :data:`METRIC_NAMES`.

    mse_log, mae_log [dex^2, dex], psnr [dB], ssim, pk_err_dex [dex], rk, profile_rel_err, mass_rel_err,
    center_offset [kpc], asymmetry_err, clumpiness_err, concentration_err, pdf_w1 [dex], pdf_ks.
    ``eps`` is the floor added before log10 (the dataset's normalisation eps), ``pixel_kpc`` the pixel
    side in kpc. Use :func:`map_metrics_batch` for (N, H, W).
    """
    p, t, single = _pair(pred, truth)
    if not single:
        raise InputError(f"map_metrics takes one map pair (H, W), got {p.shape}; use map_metrics_batch")
    return {k: float(v[0]) for k, v in _all(p, t, pixel_kpc, eps).items()}


def map_metrics_batch(pred, truth, pixel_kpc: float, eps: float) -> list[dict[str, float]]:
    """:func:`map_metrics` for every pair of a batch (N, H, W): a list of N dicts (rows for summarise)."""
    p, t, _ = _pair(pred, truth)
    res = _all(p, t, pixel_kpc, eps)
    return [{k: float(v[i]) for k, v in res.items()} for i in range(p.shape[0])]


# ---------------------------------------------------------------------------------------------
# ensembles of samples (stochastic methods)

#: Keys of :func:`calibration`: measured values per view; their nominal values (at the ensemble
#: size K actually used) come from :func:`calibration_nominal`.
CALIBRATION_NAMES = ("coverage68", "coverage95", "spread_skill")


def _log_ensemble(samples, truth, eps):
    s = log_map(samples, eps)
    t = log_map(truth, eps)
    if s.ndim != 4 or s.shape[1:] != t.shape or s.shape[0] < 2:
        raise InputError(f"calibration: samples {s.shape} must be (K >= 2, N, H, W) with truth (N, H, W) = {t.shape}")
    return s, t


def calibration(samples, truth, eps: float) -> dict[str, np.ndarray]:
    """Calibration of K samples (K, N, H, W) against the truth (N, H, W), per view, on log10 maps.

    coverage68 / coverage95: fraction of truth pixels inside the central order-statistic interval of
    the K samples chosen for 68% / 95% (:func:`skymorph.stats.interval_coverage`: ties with the truth,
    as at the floor of empty pixels, count by the truth's rank among them; at small K the exact
    nominal coverage differs from the level: read it against :func:`calibration_nominal`);
    spread_skill: RMS error of the ensemble mean over the RMS spread (nominal sqrt(1 + 1/K)).
    """
    s, t = _log_ensemble(samples, truth, eps)
    axes = (-2, -1)
    return {"coverage68": stats.interval_coverage(s, t, 0.68, axis=axes)[0],
            "coverage95": stats.interval_coverage(s, t, 0.95, axis=axes)[0],
            "spread_skill": stats.spread_skill(s, t, axis=axes)[0]}


def calibration_nominal(k: int) -> dict[str, float]:
    """What :func:`calibration` gives for a calibrated ensemble of ``k`` members, key by key."""
    return {"coverage68": stats.nominal_coverage(k, 0.68), "coverage95": stats.nominal_coverage(k, 0.95),
            "spread_skill": stats.nominal_spread_skill(k)}


def rank_counts(samples, truth, eps: float, seed: int = 0) -> dict:
    """Rank histogram of the truth among the samples over all pixels of all views, log10 maps:
    ``{"counts": [K + 1 ints], "chi2": ..., "p_value": ...}`` (pixels are correlated: read the p-value
    as a distance from flat, see :func:`skymorph.stats.rank_uniformity`)."""
    s, t = _log_ensemble(samples, truth, eps)
    counts = stats.rank_histogram(s, t, seed)
    chi2, p = stats.rank_uniformity(counts)
    return {"counts": counts.tolist(), "chi2": chi2, "p_value": p}


def spread_error_curve(samples, truth, eps: float, nbins: int = 12):
    """Binned spread-versus-error relation over all pixels: ``(spread, rms_error, counts)`` in dex.

    Pixels are binned by ensemble standard deviation (log-spaced bins); in each bin, the RMS error
    of the ensemble mean. A calibrated ensemble lies on rms_error = sqrt(1 + 1/K) spread.
    """
    s = log_map(samples, eps)
    t = log_map(truth, eps)
    spread = s.std(0, ddof=1).ravel()
    err2 = ((s.mean(0) - t) ** 2).ravel()
    pos = spread > 0
    if not np.any(pos):
        return np.full(nbins, np.nan), np.full(nbins, np.nan), np.zeros(nbins, int)
    edges = np.geomspace(np.percentile(spread[pos], 0.5), spread.max() * (1 + 1e-12), nbins + 1)
    which = np.digitize(spread, edges) - 1
    ok = (which >= 0) & (which < nbins)
    counts = np.bincount(which[ok], minlength=nbins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mid = np.bincount(which[ok], spread[ok], nbins) / counts
        rms = np.sqrt(np.bincount(which[ok], err2[ok], nbins) / counts)
    return mid, rms, counts


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per-metric statistics over rows of :func:`map_metrics` dicts.

    Returns ``{metric: {"mean", "median", "p16", "p84", "n"}}`` (numpy percentiles with linear
    interpolation). NaN values are left out (``n`` counts the values used); +inf (PSNR of identical
    maps) is kept. A metric with no values gets NaN statistics and n = 0. Metric order: first seen.
    """
    names: list[str] = []
    for row in rows:
        for k in row:
            if k not in names:
                names.append(k)
    out: dict[str, dict] = {}
    for k in names:
        v = np.array([float(row[k]) for row in rows if k in row], dtype=np.float64)
        v = v[~np.isnan(v)]
        if v.size == 0:
            out[k] = {"mean": np.nan, "median": np.nan, "p16": np.nan, "p84": np.nan, "n": 0}
            continue
        with np.errstate(invalid="ignore"):
            p16, med, p84 = np.percentile(v, [16, 50, 84])
        out[k] = {"mean": float(np.mean(v)), "median": float(med), "p16": float(p16),
                  "p84": float(p84), "n": int(v.size)}
    return out
