"""Field statistics on 2D maps (the ground floor: used by ``evaluate/`` and ``cosmo/``).

Conventions (shared by every function here)
-------------------------------------------
- A map is a real array ``(H, W)``; any leading batch axes ``(..., H, W)`` are carried through
  (statistics are computed over the last two axes). Square and non-square maps are accepted.
- ``pixel_size`` is the pixel side in physical length units (kpc for galaxy maps, Mpc/h for
  cosmology); the map covers ``L_y × L_x = (H d) × (W d)``.
- Wavenumbers are angular: ``k = 2 pi / wavelength`` in radians per unit length. The fundamental is
  ``k_f = 2 pi / (n d)`` with ``n = min(H, W)`` (the shorter side) and the Nyquist frequency is
  ``k_N = pi / d``.
- Fourier normalisation: with ``F(k) = sum_x f(x) w(x) exp(-i k.x)`` (the discrete FFT of the
  windowed map),

      P(k) = |F(k)|^2 * d^2 / (N_pix * <w^2>)

  so P has units field^2 × length^2 and is independent of map size: white noise of variance
  s^2 has the flat spectrum ``P = s^2 d^2`` (with or without the window, on average — dividing by
  the mean of w^2 compensates the power the window removes). The same convention gives Parseval
  ``sum over all modes of P = d^2 sum_x (f w)^2 / <w^2>``, i.e. ``var(f) = sum_k P(k) / (N_pix d^2)``
  for an unwindowed zero-mean map — the discrete form of ``int P(k) d^2k / (2 pi)^2``.
  :func:`gaussian_random_field` uses the same convention, so ``power_spectrum`` of a generated
  field (``window=None, subtract_mean=False``) recovers ``power_fn`` within sampling error.
- Spectrum bins: ``nbins`` (default ``n // 2``) bins of equal width in |k| with edges
  ``linspace(k_f / 2, k_N + k_f / 2, nbins + 1)``, so with the default the bin centres are
  ``k_f, 2 k_f, ..., k_N`` (one fundamental wide). The k = 0 mode and the "corner" modes beyond
  ``k_N + k_f / 2`` are not in any bin. The returned ``k`` is the mean |k| of the modes in each bin
  (not the bin centre), ``counts`` the number of Fourier modes in the bin counted over the full
  FFT plane (both members of each Hermitian pair, so the number of independent complex modes is
  about ``counts / 2`` and the relative scatter of a Gaussian field's binned P is
  ``~ 1 / sqrt(counts / 2)``). Empty bins (possible only with more bins than the default) are
  kept, with ``counts = 0`` and ``k = P = NaN``, so every map of a batch has the same bins.
- Window: ``"hann"`` is the 2D outer product of ``scipy.signal.windows.hann(n, sym=False)``
  (periodic Hann); ``None`` means no window; an array of shape ``(H, W)`` is used as given.
  ``subtract_mean`` removes each map's mean before windowing.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.signal

from skymorph.errors import InputError

__all__ = [
    "power_spectrum",
    "cross_spectrum",
    "cross_correlation",
    "radial_profile",
    "gaussian_random_field",
]


# ---------------------------------------------------------------------------------------------
# validation helpers


def _as_maps(field, name: str = "field") -> np.ndarray:
    x = np.asarray(field, dtype=np.float64)
    if x.ndim < 2:
        raise InputError(f"{name}: expected a map (H, W) or a batch (..., H, W), got shape {x.shape}")
    if x.shape[-2] < 2 or x.shape[-1] < 2:
        raise InputError(f"{name}: each map needs at least 2x2 pixels, got shape {x.shape}")
    return x


def _check_pixel_size(pixel_size) -> float:
    d = float(pixel_size)
    if not np.isfinite(d) or d <= 0:
        raise InputError(f"pixel_size: expected a positive finite length, got {pixel_size!r}")
    return d


def _check_nbins(nbins, default: int) -> int:
    if nbins is None:
        return max(int(default), 1)
    n = int(nbins)
    if n != nbins or n < 1:
        raise InputError(f"nbins: expected a positive integer, got {nbins!r}")
    return n


# ---------------------------------------------------------------------------------------------
# cached geometry


@lru_cache(maxsize=32)
def _window(shape: tuple[int, int], kind: str) -> tuple[np.ndarray, float]:
    wy = scipy.signal.windows.hann(shape[0], sym=False)
    wx = scipy.signal.windows.hann(shape[1], sym=False)
    w = np.outer(wy, wx)
    w.setflags(write=False)
    return w, float(np.mean(w**2))


def _resolve_window(window, shape: tuple[int, int]) -> tuple[np.ndarray | None, float]:
    if window is None:
        return None, 1.0
    if isinstance(window, str):
        if window.lower() != "hann":
            raise InputError(f"window: expected 'hann', None or an array, got {window!r}")
        return _window(shape, "hann")
    w = np.asarray(window, dtype=np.float64)
    if w.shape != shape:
        raise InputError(f"window: expected an array of shape {shape}, got {w.shape}")
    w2 = float(np.mean(w**2))
    if not w2 > 0:
        raise InputError("window: the window is zero everywhere")
    return w, w2


@lru_cache(maxsize=32)
def _kgrid_half(shape: tuple[int, int], d: float) -> np.ndarray:
    """|k| on the rfft half plane (H, W // 2 + 1), radians per unit length."""
    ky = 2.0 * np.pi * np.fft.fftfreq(shape[0], d)
    kx = 2.0 * np.pi * np.fft.rfftfreq(shape[1], d)
    k = np.hypot(ky[:, None], kx[None, :])
    k.setflags(write=False)
    return k


@lru_cache(maxsize=32)
def _kbins(shape: tuple[int, int], d: float, nbins: int):
    """Bin index per half-plane mode (-1 = no bin), Hermitian multiplicities, counts, mean |k|."""
    n = min(shape)
    kf = 2.0 * np.pi / (n * d)
    kn = np.pi / d
    edges = np.linspace(0.5 * kf, kn + 0.5 * kf, nbins + 1)
    k = _kgrid_half(shape, d)
    # Each rfft column except kx = 0 (and kx = Nyquist for even W) stands for two full-plane modes.
    mult = np.full(k.shape, 2.0)
    mult[:, 0] = 1.0
    if shape[1] % 2 == 0:
        mult[:, -1] = 1.0
    idx = np.searchsorted(edges, k.ravel(), side="right") - 1
    idx[(idx < 0) | (idx >= nbins)] = -1
    idx[k.ravel() == 0] = -1
    sel = idx >= 0
    idx_sel = idx[sel]
    mult_sel = mult.ravel()[sel]
    counts = np.bincount(idx_sel, weights=mult_sel, minlength=nbins)
    ksum = np.bincount(idx_sel, weights=mult_sel * k.ravel()[sel], minlength=nbins)
    with np.errstate(invalid="ignore", divide="ignore"):
        kmean = np.where(counts > 0, ksum / np.where(counts > 0, counts, 1), np.nan)
    counts = counts.astype(np.int64)
    for a in (sel, idx_sel, mult_sel, counts, kmean):
        a.setflags(write=False)
    return sel, idx_sel, mult_sel, counts, kmean


def _bin_half_plane(values: np.ndarray, shape, d, nbins) -> np.ndarray:
    """Mean over the full-plane modes of each |k| bin of a half-plane quantity (..., H, Wr)."""
    sel, idx_sel, mult_sel, counts, _ = _kbins(shape, d, nbins)
    lead = values.shape[:-2]
    v = values.reshape(-1, values.shape[-2] * values.shape[-1])[:, sel] * mult_sel
    m = v.shape[0]
    full_idx = (idx_sel[None, :] + nbins * np.arange(m)[:, None]).ravel()
    sums = np.bincount(full_idx, weights=v.ravel(), minlength=m * nbins).reshape(m, nbins)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan)
    return out.reshape(lead + (nbins,))


def _prepare(x: np.ndarray, window, subtract_mean: bool):
    shape = x.shape[-2:]
    if subtract_mean:
        x = x - x.mean(axis=(-2, -1), keepdims=True)
    w, w2 = _resolve_window(window, shape)
    if w is not None:
        x = x * w
    return x, w2


def _rfft2(x: np.ndarray) -> np.ndarray:
    return scipy.fft.rfftn(x, axes=(-2, -1))


# ---------------------------------------------------------------------------------------------
# spectra


def _spectra(a, b, pixel_size, nbins, window, subtract_mean, want_auto: bool):
    """Shared core: binned P_ab (and P_aa, P_bb when ``want_auto``)."""
    d = _check_pixel_size(pixel_size)
    shape = a.shape[-2:]
    nb = _check_nbins(nbins, min(shape) // 2)
    xa, w2 = _prepare(a, window, subtract_mean)
    fa = _rfft2(xa)
    norm = d * d / (shape[0] * shape[1] * w2)
    if b is None:
        pab = _bin_half_plane((fa.real**2 + fa.imag**2) * norm, shape, d, nb)
        return _kbins(shape, d, nb)[4].copy(), pab, None, None, _kbins(shape, d, nb)[3].copy()
    xb, _ = _prepare(b, window, subtract_mean)
    fb = _rfft2(xb)
    pab = _bin_half_plane((fa.real * fb.real + fa.imag * fb.imag) * norm, shape, d, nb)
    paa = pbb = None
    if want_auto:
        paa = _bin_half_plane((fa.real**2 + fa.imag**2) * norm, shape, d, nb)
        pbb = _bin_half_plane((fb.real**2 + fb.imag**2) * norm, shape, d, nb)
    _, _, _, counts, kmean = _kbins(shape, d, nb)
    return kmean.copy(), pab, paa, pbb, counts.copy()


def power_spectrum(field, pixel_size: float = 1.0, nbins: int | None = None, window="hann",
                   subtract_mean: bool = True):
    """Azimuthally averaged 2D power spectrum of a real map or a batch of maps.

    Parameters
    ----------
    field : array (H, W) or (..., H, W)
        Real map(s); the spectrum is taken over the last two axes.
    pixel_size : float
        Pixel side in length units (e.g. kpc).
    nbins : int, optional
        Number of linear |k| bins from the fundamental to Nyquist (default ``min(H, W) // 2``).
    window : "hann", None or array (H, W)
        Apodisation; its power loss is compensated (divided by the mean of w^2).
    subtract_mean : bool
        Remove each map's mean before windowing.

    Returns
    -------
    k : (nbins,)  mean |k| of the modes in each bin, radians per length unit.
    P : (..., nbins)  P(k) = <|FFT|^2> d^2 / (N_pix <w^2>), units field^2 × length^2.
    counts : (nbins,)  Fourier modes per bin over the full plane (empty bins: 0, with k = P = NaN).

    See the module docstring for the conventions (white noise of variance s^2 gives P = s^2 d^2).
    """
    x = _as_maps(field)
    k, p, _, _, counts = _spectra(x, None, pixel_size, nbins, window, subtract_mean, False)
    return k, p, counts


def cross_spectrum(a, b, pixel_size: float = 1.0, nbins: int | None = None, window="hann",
                   subtract_mean: bool = True):
    """Azimuthally averaged cross power spectrum Re<F_a F_b*> of two maps (or batches).

    Same conventions, arguments and returns ``(k, P_ab, counts)`` as :func:`power_spectrum`;
    ``cross_spectrum(a, a)`` equals ``power_spectrum(a)``. Units: field_a × field_b × length^2.
    """
    xa = _as_maps(a, "a")
    xb = _as_maps(b, "b")
    if xa.shape != xb.shape:
        raise InputError(f"cross_spectrum: maps a {xa.shape} and b {xb.shape} must have the same shape")
    k, pab, _, _, counts = _spectra(xa, xb, pixel_size, nbins, window, subtract_mean, False)
    return k, pab, counts


def cross_correlation(a, b, pixel_size: float = 1.0, nbins: int | None = None, window="hann",
                      subtract_mean: bool = True):
    """Cross-correlation coefficient r(k) = P_ab / sqrt(P_aa P_bb) per |k| bin (dimensionless).

    r = 1 for identical (or proportional) maps, ~0 for independent fields (scatter
    ~ 1 / sqrt(counts / 2)), -1 for anti-correlated ones. Returns ``(k, r)`` with ``r`` of shape
    (..., nbins); bins where either auto spectrum vanishes (or is empty) are NaN.
    """
    xa = _as_maps(a, "a")
    xb = _as_maps(b, "b")
    if xa.shape != xb.shape:
        raise InputError(f"cross_correlation: maps a {xa.shape} and b {xb.shape} must have the same shape")
    k, pab, paa, pbb, _ = _spectra(xa, xb, pixel_size, nbins, window, subtract_mean, True)
    with np.errstate(invalid="ignore", divide="ignore"):
        den = np.sqrt(paa * pbb)
        r = np.where(den > 0, pab / np.where(den > 0, den, 1.0), np.nan)
    return k, r


# ---------------------------------------------------------------------------------------------
# radial profile


@lru_cache(maxsize=32)
def _rbins(shape, d, nbins, rmax, centre):
    cy, cx = centre
    y = (np.arange(shape[0]) - cy) * d
    x = (np.arange(shape[1]) - cx) * d
    r = np.hypot(y[:, None], x[None, :]).ravel()
    edges = np.linspace(0.0, rmax, nbins + 1)
    idx = np.searchsorted(edges, r, side="right") - 1
    idx[r == rmax] = nbins - 1  # close the last annulus on the right
    sel = (idx >= 0) & (idx < nbins)
    idx_sel = idx[sel]
    counts = np.bincount(idx_sel, minlength=nbins).astype(np.float64)
    rsum = np.bincount(idx_sel, weights=r[sel], minlength=nbins)
    with np.errstate(invalid="ignore", divide="ignore"):
        rmean = np.where(counts > 0, rsum / np.where(counts > 0, counts, 1), np.nan)
    for a in (sel, idx_sel, counts, rmean):
        a.setflags(write=False)
    return sel, idx_sel, counts, rmean


def radial_profile(img, pixel_size: float = 1.0, nbins: int | None = None, rmax: float | None = None,
                   centre=None):
    """Azimuthally averaged mean of a map in circular annuli.

    Parameters
    ----------
    img : array (H, W) or (..., H, W)
    pixel_size : float
        Pixel side in length units; radii are returned in the same units.
    nbins : int, optional
        Number of annuli of equal width from r = 0 to ``rmax`` (default ``min(H, W) // 2``, i.e.
        one pixel wide out to the half-width).
    rmax : float, optional
        Outer radius in length units (default: the half-width of the shorter side,
        ``min(H, W) * pixel_size / 2``).
    centre : (y, x), optional
        Centre in pixel index coordinates (pixel ``[i, j]`` has its centre at ``(i, j)``);
        default the geometric map centre ``((H - 1) / 2, (W - 1) / 2)``.

    Returns
    -------
    r : (nbins,)  mean radius of the pixel centres in each annulus (exact pixel-centre radii).
    mean : (..., nbins)  mean pixel value per annulus; NaN for an annulus containing no pixel centre.
    """
    x = _as_maps(img, "img")
    d = _check_pixel_size(pixel_size)
    shape = x.shape[-2:]
    nb = _check_nbins(nbins, min(shape) // 2)
    if rmax is None:
        rmax = 0.5 * min(shape) * d
    rmax = float(rmax)
    if not np.isfinite(rmax) or rmax <= 0:
        raise InputError(f"radial_profile: rmax must be a positive length, got {rmax!r}")
    if centre is None:
        centre = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
    try:
        centre = (float(centre[0]), float(centre[1]))
    except (TypeError, IndexError, ValueError):
        raise InputError(f"radial_profile: centre must be (y, x) in pixel coordinates, got {centre!r}") from None
    sel, idx_sel, counts, rmean = _rbins(shape, d, nb, rmax, centre)
    lead = x.shape[:-2]
    v = x.reshape(-1, shape[0] * shape[1])[:, sel]
    m = v.shape[0]
    full_idx = (idx_sel[None, :] + nb * np.arange(m)[:, None]).ravel()
    sums = np.bincount(full_idx, weights=v.ravel(), minlength=m * nb).reshape(m, nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan)
    return rmean.copy(), prof.reshape(lead + (nb,))


# ---------------------------------------------------------------------------------------------
# Gaussian random fields


def gaussian_random_field(shape, power_fn, pixel_size: float = 1.0, seed=None) -> np.ndarray:
    """A real, zero-mean Gaussian random field with power spectrum ``power_fn(k)``.

    White Gaussian noise (unit variance per pixel) is Fourier transformed (``rfftn``, so Hermitian
    symmetry is exact), multiplied by ``sqrt(power_fn(|k|) / d^2)`` and transformed back. With the
    module's convention the expected ``power_spectrum(field, pixel_size, window=None,
    subtract_mean=False)`` equals the mean of ``power_fn`` over the modes of each bin.

    Parameters
    ----------
    shape : (H, W) or (..., H, W)
        Leading axes give independent realisations.
    power_fn : callable
        Vectorised P(k), k in radians per length unit, returning field^2 × length^2; it is called
        only at k > 0 (the k = 0 mode is set to zero, so every realisation has zero mean) and must
        return finite non-negative values.
    pixel_size : float
        Pixel side in length units.
    seed : int, numpy Generator or None

    Returns
    -------
    field : float64 array of ``shape``.
    """
    shape = tuple(int(s) for s in np.atleast_1d(shape))
    if len(shape) < 2 or min(shape) < 1 or shape[-1] < 2 or shape[-2] < 2:
        raise InputError(f"gaussian_random_field: shape must be (H, W) or (..., H, W) with H, W >= 2, got {shape}")
    d = _check_pixel_size(pixel_size)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    hw = shape[-2:]
    k = _kgrid_half(hw, d)
    pos = k > 0
    pk = np.asarray(power_fn(k[pos]), dtype=np.float64)
    if pk.shape != (int(pos.sum()),) or not np.all(np.isfinite(pk)) or np.any(pk < 0):
        raise InputError("gaussian_random_field: power_fn(k) must return finite, non-negative values "
                         "of the same shape as k (k > 0, radians per length unit)")
    amp = np.zeros(k.shape)
    amp[pos] = np.sqrt(pk) / d
    noise = rng.standard_normal(shape)
    f = _rfft2(noise) * amp
    return scipy.fft.irfftn(f, s=hw, axes=(-2, -1))
