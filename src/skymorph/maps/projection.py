"""Mass-conserving SPH projection of particles onto a square pixel grid.

Each particle is spread with the line-of-sight-integrated cubic spline (``maps.kernel``):
Sigma(R) = m / h^2 F(R / h), h the kernel support radius (zero beyond h).

Image convention
----------------
The field covers [-half_width, half_width]^2 (kpc) with npix x npix square pixels of side
dx = 2 half_width / npix. A map is indexed ``image[iy, ix]``: the first (row) index runs
along +y and the second along +x, so row 0 is the strip at y = -half_width and column 0 is
at x = -half_width; pixel (iy, ix) is centred on

    x = -half_width + (ix + 1/2) dx,   y = -half_width + (iy + 1/2) dx.

This is the ``origin="lower"`` convention: ``plt.imshow(image, origin="lower",
extent=(-hw, hw, -hw, hw))`` shows +x to the right and +y up. (Note: swiftsimio returns
the transpose, ``image[ix, iy]``.) Rotating the particles by +90 degrees about the line of
sight ((x, y) -> (-y, x), counter-clockwise as displayed) gives ``np.rot90(image, k=-1)``
(numpy's k counts rotations from the first axis towards the second, i.e. from +y to +x).

Deposit (exact mass conservation)
---------------------------------
For each particle the projected kernel is evaluated at the centres of every pixel its
support disk covers -- including virtual pixels beyond the field -- the weights are
normalised to sum to one and only the in-field part is deposited. Hence a particle whose
support lies inside the field deposits exactly its mass (to round-off), a particle
straddling an edge deposits its in-field fraction, and a particle whose support lies
wholly outside is skipped. Dividing by the pixel area gives a surface density.

Sub-pixel particles: when the support radius is below half a pixel diagonal (h < dx/sqrt 2)
the disk may cover no pixel centre, or snap to one arbitrarily, so such a particle is
instead deposited bilinearly (cloud-in-cell) onto the four pixel centres surrounding it.
CIC keeps the particle's mass and centroid and varies continuously with its position (no
grid-snapping noise), and it matches the kernel deposit at the switch-over (a particle on a
pixel corner with h = dx/sqrt 2 gives 1/4 to each of the four pixels both ways; one on a
pixel centre gives all its mass to that pixel both ways). Such a particle is assigned to
the field by its centre: if its centre is in the field its bilinear position is clamped to
the outermost pixel centres so all its mass is deposited (its support is at most 0.71 px,
so it belongs to the edge pixel); if its centre is outside it is skipped.

Very large particles straddling an edge (support radius > ``_H_EXACT`` pixels) use the
continuum value of the normalisation, sum_pixels F = (h/dx)^2, instead of summing over the
(possibly huge) virtual part of their disk; for h > 64 px the lattice sum equals its
continuum value to ~1e-9 relative, far below the discretisation error, and it bounds the
cost of a particle to the pixels inside the field. Particles inside the field are always
normalised by the exact sum.

Mass-weighted maps are projected (m q) / projected (m); pixels without mass are 0.

Performance: numba, one kernel evaluation per pixel (stored in a small per-thread buffer,
summed, then scaled and added), table lookup in q^2 with linear interpolation, loop bounds
per row from the disk chord (computed ahead of the pixel loops), unsigned hot-loop indices
(no wraparound code), several channels deposited in one pass over the particles (in groups
of up to four per sweep), float64 accumulation. With several threads the particles are
split into cost-balanced contiguous ranges, each accumulated into its own image and summed
at the end. See ``benchmarks/projection.py`` for the comparison with swiftsimio.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from skymorph.errors import InputError, SkymorphError
from skymorph.maps.kernel import TABLE_A, TABLE_B

__all__ = ["project_particles", "project_channels", "project_mean"]

#: Below this support radius (pixels; half the pixel diagonal) particles are deposited
#: bilinearly (cloud-in-cell) rather than with the kernel at pixel centres.
_H_CIC = math.sqrt(0.5)
#: Support radius (pixels) up to which kernel weights are buffered (evaluated once per pixel)
#: and up to which straddling particles are normalised by the exact sum over their disk.
_H_EXACT = 64.0
#: Buffer length: the pixels of a disk of radius _H_EXACT (bounded by its bounding square).
_BUF_ROWS = 2 * int(_H_EXACT) + 3
_BUF_LEN = _BUF_ROWS * _BUF_ROWS
#: Below this many particles the serial kernel is used even when threads are allowed.
_MIN_PARALLEL = 5_000

# fastmath flags: reassociation (vectorised sums) and FMA contraction only; no
# assumptions about NaN/inf (inputs are validated in Python anyway).
_FM = {"reassoc", "contract", "nsz", "arcp"}
# Hot-loop indices are cast to unsigned so numba emits no negative-index wraparound code
# (which blocks vectorisation and costs ~30% in the table lookup).
_U = np.uint64
#: j as float64, so dx = (x0 - u) + j needs no int-to-float conversion in the hot loop.
_JF = np.arange(_BUF_ROWS + 1, dtype=np.float64)


@njit(cache=True, fastmath=_FM)
def _deposit_cic(u, v, wts, p, npix, img):
    """Bilinear (cloud-in-cell) deposit of particle p at pixel coordinates (u, v).

    The position is clamped to the outermost pixel centres, so all of the weight lands in
    the field (the caller only passes particles whose centre lies in the field).
    """
    last = npix - 1
    uc = min(max(u, 0.0), float(last))
    vc = min(max(v, 0.0), float(last))
    ix0 = min(int(uc), last)
    iy0 = min(int(vc), last)
    ix1 = min(ix0 + 1, last)
    iy1 = min(iy0 + 1, last)
    fx = uc - ix0
    fy = vc - iy0
    w00 = (1.0 - fx) * (1.0 - fy)
    w01 = fx * (1.0 - fy)
    w10 = (1.0 - fx) * fy
    w11 = fx * fy
    for c in range(wts.shape[0]):
        wc = wts[c, p]
        img[c, iy0, ix0] += wc * w00
        img[c, iy0, ix1] += wc * w01
        img[c, iy1, ix0] += wc * w10
        img[c, iy1, ix1] += wc * w11


@njit(cache=True, fastmath=_FM)
def _deposit_range(xy, hsml, wts, p0, p1, npix, half_width, img, buf, rx0, roff, ta, tb, jf):
    """Deposit particles [p0, p1) into img (C, npix, npix) as weight per pixel (no /area).

    ta, tb: the kernel table (F(s) = ta[i] + x tb[i], x = s * TABLE_SIZE, i = floor(x));
    buf, rx0, roff: scratch (kernel weights of one particle, first column and buffer offset
    of each of its rows); jf: float(j) for j = 0.._BUF_ROWS.
    """
    ftab = float(ta.shape[0] - 2)  # TABLE_SIZE; entries TABLE_SIZE, TABLE_SIZE + 1 are zero
    nch = wts.shape[0]
    inv_dx = npix / (2.0 * half_width)
    lo = -0.5
    hi = npix - 0.5
    last = npix - 1
    for p in range(p0, p1):
        # pixel coordinates: the centre of pixel i is at i, the field is [-1/2, npix - 1/2]
        u = (xy[p, 0] + half_width) * inv_dx - 0.5
        v = (xy[p, 1] + half_width) * inv_dx - 0.5
        hh = hsml[p] * inv_dx
        if hh < _H_CIC:
            if u >= lo and u <= hi and v >= lo and v <= hi:
                _deposit_cic(u, v, wts, p, npix, img)
            continue
        if u + hh <= lo or u - hh >= hi or v + hh <= lo or v - hh >= hi:
            continue  # support wholly outside the field
        h2 = hh * hh
        scale = ftab / h2
        if hh <= _H_EXACT:
            iy_lo = int(math.ceil(v - hh))
            iy_hi = int(math.floor(v + hh))
            jy0 = max(iy_lo, 0)
            jy1 = min(iy_hi, last)
            # pass 1: kernel weights at every covered pixel centre (virtual ones included),
            # row by row along the chords of the support disk. The row bounds are computed
            # first in their own loop (it pipelines the sqrt/ceil chains; ~25% faster).
            nrow = iy_hi - iy_lo + 1
            for r in range(nrow):
                dy = (iy_lo + r) - v
                c = math.sqrt(max(h2 - dy * dy, 0.0))
                x0 = int(math.ceil(u - c))
                rx0[_U(r)] = x0
                roff[_U(r)] = max(int(math.floor(u + c)) - x0 + 1, 0)
            k = 0
            for r in range(nrow):
                n = roff[_U(r)]
                roff[_U(r)] = k
                k += n
            roff[_U(nrow)] = k
            for r in range(nrow):
                dy = (iy_lo + r) - v
                dy2s = dy * dy * scale
                k0 = roff[_U(r)]
                n = roff[_U(r + 1)] - k0
                a = rx0[_U(r)] - u
                for j in range(n):
                    dx = a + jf[_U(j)]
                    x = dx * dx * scale + dy2s
                    i = _U(x)
                    buf[_U(k0 + j)] = ta[i] + x * tb[i]
            total = 0.0
            for j in range(k):
                total += buf[_U(j)]
            if total <= 0.0:
                # only possible for h == dx / sqrt(2) exactly on a pixel corner
                if u >= lo and u <= hi and v >= lo and v <= hi:
                    _deposit_cic(u, v, wts, p, npix, img)
                continue
            norm = 1.0 / total
            # pass 2: scale and add the in-field part
            if nch == 1:
                w0 = wts[0, p] * norm
                for iy in range(jy0, jy1 + 1):
                    r = _U(iy - iy_lo)
                    x0 = rx0[r]
                    n = roff[r + _U(1)] - roff[r]
                    xa = max(x0, 0)
                    m = min(x0 + n - 1, last) - xa + 1
                    src = roff[r] + xa - x0
                    for j in range(m):
                        img[0, _U(iy), _U(xa + j)] += w0 * buf[_U(src + j)]
                continue
            # several channels go in groups of up to four (one sweep over the rows and the
            # buffer per group, four independent streams)
            c0 = 0
            while c0 < nch:
                g = min(nch - c0, 4)
                w0 = wts[c0, p] * norm
                w1 = wts[c0 + 1, p] * norm if g > 1 else 0.0
                w2 = wts[c0 + 2, p] * norm if g > 2 else 0.0
                w3 = wts[c0 + 3, p] * norm if g > 3 else 0.0
                for iy in range(jy0, jy1 + 1):
                    r = _U(iy - iy_lo)
                    x0 = rx0[r]
                    n = roff[r + _U(1)] - roff[r]
                    xa = max(x0, 0)
                    m = min(x0 + n - 1, last) - xa + 1
                    src = roff[r] + xa - x0
                    if g == 1:
                        for j in range(m):
                            img[_U(c0), _U(iy), _U(xa + j)] += w0 * buf[_U(src + j)]
                    elif g == 2:
                        for j in range(m):
                            b = buf[_U(src + j)]
                            img[_U(c0), _U(iy), _U(xa + j)] += w0 * b
                            img[_U(c0 + 1), _U(iy), _U(xa + j)] += w1 * b
                    elif g == 3:
                        for j in range(m):
                            b = buf[_U(src + j)]
                            img[_U(c0), _U(iy), _U(xa + j)] += w0 * b
                            img[_U(c0 + 1), _U(iy), _U(xa + j)] += w1 * b
                            img[_U(c0 + 2), _U(iy), _U(xa + j)] += w2 * b
                    else:
                        for j in range(m):
                            b = buf[_U(src + j)]
                            img[_U(c0), _U(iy), _U(xa + j)] += w0 * b
                            img[_U(c0 + 1), _U(iy), _U(xa + j)] += w1 * b
                            img[_U(c0 + 2), _U(iy), _U(xa + j)] += w2 * b
                            img[_U(c0 + 3), _U(iy), _U(xa + j)] += w3 * b
                c0 += g
        else:
            # large particle (rare): evaluate twice instead of buffering. Bounds are clamped
            # to just beyond the field before the int conversion (no overflow for huge h).
            jy0 = max(int(math.ceil(max(v - hh, -1.0))), 0)
            jy1 = min(int(math.floor(min(v + hh, float(npix)))), last)
            if u - hh >= lo and u + hh <= hi and v - hh >= lo and v + hh <= hi:
                total = 0.0
                for iy in range(jy0, jy1 + 1):
                    dy = iy - v
                    dy2s = dy * dy * scale
                    c = math.sqrt(max(h2 - dy * dy, 0.0))
                    for ix in range(int(math.ceil(u - c)), int(math.floor(u + c)) + 1):
                        dx = ix - u
                        x = dx * dx * scale + dy2s
                        i = _U(x)
                        total += ta[i] + x * tb[i]
            else:
                total = h2  # continuum limit of the lattice sum (see module notes)
            norm = 1.0 / total
            for iy in range(jy0, jy1 + 1):
                dy = iy - v
                dy2s = dy * dy * scale
                c = math.sqrt(max(h2 - dy * dy, 0.0))
                xa = max(int(math.ceil(max(u - c, -1.0))), 0)
                xb = min(int(math.floor(min(u + c, float(npix)))), last)
                for ix in range(xa, xb + 1):
                    dx = ix - u
                    x = dx * dx * scale + dy2s
                    i = _U(x)
                    w = (ta[i] + x * tb[i]) * norm
                    for ch in range(nch):
                        img[_U(ch), _U(iy), _U(ix)] += wts[ch, p] * w


@njit(cache=True)
def _project_serial(xy, hsml, wts, npix, half_width, ta, tb, jf):
    img = np.zeros((wts.shape[0], npix, npix))
    buf = np.empty(_BUF_LEN)
    rx0 = np.empty(_BUF_ROWS + 1, dtype=np.int64)
    roff = np.empty(_BUF_ROWS + 1, dtype=np.int64)
    _deposit_range(xy, hsml, wts, 0, xy.shape[0], npix, half_width, img, buf, rx0, roff, ta, tb, jf)
    return img


@njit(cache=True)
def _balanced_bounds(hsml, npix, half_width, nchunks):
    """Split [0, N) into nchunks contiguous ranges of about equal deposit cost."""
    n = hsml.shape[0]
    inv_dx = npix / (2.0 * half_width)
    cap = 2.0 * npix * npix
    cum = np.empty(n + 1)
    cum[0] = 0.0
    for p in range(n):
        hh = hsml[p] * inv_dx
        cum[p + 1] = cum[p] + min(3.2 * hh * hh + 10.0 * hh + 20.0, cap)
    bounds = np.empty(nchunks + 1, dtype=np.int64)
    bounds[0] = 0
    bounds[nchunks] = n
    j = 0
    for c in range(1, nchunks):
        target = cum[n] * c / nchunks
        while j < n and cum[j] < target:
            j += 1
        bounds[c] = j
    return bounds


@njit(cache=True, parallel=True)
def _project_parallel(xy, hsml, wts, npix, half_width, ta, tb, jf, nchunks):
    nch = wts.shape[0]
    bounds = _balanced_bounds(hsml, npix, half_width, nchunks)
    parts = np.zeros((nchunks, nch, npix, npix))
    for t in prange(nchunks):
        buf = np.empty(_BUF_LEN)
        rx0 = np.empty(_BUF_ROWS + 1, dtype=np.int64)
        roff = np.empty(_BUF_ROWS + 1, dtype=np.int64)
        _deposit_range(xy, hsml, wts, bounds[t], bounds[t + 1], npix, half_width,
                       parts[t], buf, rx0, roff, ta, tb, jf)
    img = np.zeros((nch, npix, npix))
    for iy in prange(npix):
        for t in range(nchunks):
            for ch in range(nch):
                for ix in range(npix):
                    img[ch, iy, ix] += parts[t, ch, iy, ix]
    return img


# ----------------------------------------------------------------------------- validation


def _check_grid(npix, half_width) -> tuple[int, float]:
    if isinstance(npix, bool) or not isinstance(npix, (int, np.integer)):
        raise SkymorphError(f"npix must be an integer >= 1; got {npix!r}")
    if npix < 1:
        raise SkymorphError(f"npix must be >= 1; got {npix}")
    try:
        hw = float(half_width)
    except (TypeError, ValueError):
        raise SkymorphError(f"half_width must be a positive number (kpc); got {half_width!r}") from None
    if not math.isfinite(hw) or hw <= 0.0 or not math.isfinite(npix / (2.0 * hw)):
        raise SkymorphError(f"half_width must be a positive finite number (kpc); got {half_width!r}")
    return int(npix), hw


def _finite(name: str, a: np.ndarray) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        idx = np.flatnonzero(bad.ravel())[0]
        raise InputError(
            f"{name} contains {int(bad.sum())} non-finite value(s) (NaN or inf), "
            f"first at flat index {idx}: {a.ravel()[idx]!r}"
        )


def _as_float(name: str, a) -> np.ndarray:
    try:
        return np.ascontiguousarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a numeric array: {exc}") from None


def _check_particles(xy, hsml) -> tuple[np.ndarray, np.ndarray]:
    xy = _as_float("xy", xy)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InputError(f"xy must have shape (N, 2) (kpc, centred on the field); got shape {xy.shape}")
    n = xy.shape[0]
    hsml = _as_float("hsml", hsml)
    if hsml.shape != (n,):
        raise InputError(f"hsml must have shape (N,) = ({n},) to match xy; got shape {hsml.shape}")
    _finite("xy", xy)
    _finite("hsml", hsml)
    if n and hsml.min() < 0.0:
        i = int(np.argmin(hsml))
        raise InputError(f"hsml must be non-negative; got {hsml[i]!r} at index {i}")
    return xy, hsml


def _check_weights(name: str, w, n: int, nonneg: bool) -> np.ndarray:
    w = _as_float(name, w)
    if w.shape != (n,):
        raise InputError(f"{name} must have shape (N,) = ({n},) to match xy; got shape {w.shape}")
    _finite(name, w)
    if nonneg and n and w.min() < 0.0:
        i = int(np.argmin(w))
        raise InputError(f"{name} must be non-negative; got {w[i]!r} at index {i}")
    return w


def _nthreads(threads) -> int:
    if threads is None:
        return numba.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise SkymorphError(f"threads must be None or an integer >= 1; got {threads!r}")
    return int(min(threads, numba.config.NUMBA_NUM_THREADS))


def _run(xy, hsml, wts, npix, hw, threads) -> np.ndarray:
    nt = _nthreads(threads)
    if nt == 1 or xy.shape[0] < _MIN_PARALLEL:
        img = _project_serial(xy, hsml, wts, npix, hw, TABLE_A, TABLE_B, _JF)
    else:
        old = numba.get_num_threads()
        try:
            numba.set_num_threads(nt)
            img = _project_parallel(xy, hsml, wts, npix, hw, TABLE_A, TABLE_B, _JF, nt)
        finally:
            numba.set_num_threads(old)
    pixel_area = (2.0 * hw / npix) ** 2
    img /= pixel_area
    return img


# ----------------------------------------------------------------------------- public API


def project_channels(xy, hsml, weights, npix, half_width, threads=None) -> np.ndarray:
    """Project C weighted quantities of the same particles in one pass.

    Parameters
    ----------
    xy : (N, 2) float, kpc, relative to the field centre.
    hsml : (N,) float, kpc, kernel support radius h (the kernel is zero beyond h).
    weights : (C, N) float (or (N,) for one channel), e.g. mass, HI mass, m T, m |B|.
        Any finite sign is accepted (a channel of masses should be non-negative).
    npix : int >= 1, pixels per side.
    half_width : float > 0, kpc; the field is [-half_width, half_width]^2.
    threads : None (all numba threads) or int >= 1.

    Returns
    -------
    (C, npix, npix) float64: each channel's projected weight per kpc^2, indexed
    [channel, iy, ix] with iy along +y (row 0 at y = -half_width), ix along +x.
    The kernel weights are evaluated once per particle and pixel and shared by all channels.
    """
    npix, hw = _check_grid(npix, half_width)
    xy, hsml = _check_particles(xy, hsml)
    n = xy.shape[0]
    w = _as_float("weights", weights)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != n or w.shape[0] < 1:
        raise InputError(f"weights must have shape (C, N) with N = {n} to match xy; got shape {w.shape}")
    _finite("weights", w)
    return _run(xy, hsml, np.ascontiguousarray(w), npix, hw, threads)


def project_particles(xy, mass, hsml, npix, half_width, values=None, threads=None) -> np.ndarray:
    """Surface density (mass / kpc^2) or mass-weighted mean map of SPH particles.

    Parameters
    ----------
    xy : (N, 2) float, kpc, relative to the field centre.
    mass : (N,) float >= 0, e.g. Msun.
    hsml : (N,) float >= 0, kpc, kernel support radius h (zero beyond h).
    npix : int >= 1, pixels per side.
    half_width : float > 0, kpc; the field is [-half_width, half_width]^2.
    values : optional (N,) float q; if given, return projected(m q) / projected(m)
        (pixels with no mass are 0).
    threads : None (all numba threads) or int >= 1 (1 = serial).

    Returns
    -------
    (npix, npix) float64 indexed [iy, ix]: iy along +y (row 0 at y = -half_width),
    ix along +x (column 0 at x = -half_width); ``imshow(..., origin="lower")``.
    A particle whose support lies inside the field contributes exactly its mass:
    ``image.sum() * (2 half_width / npix)**2 == mass.sum()`` to round-off.
    """
    npix, hw = _check_grid(npix, half_width)
    xy, hsml = _check_particles(xy, hsml)
    n = xy.shape[0]
    m = _check_weights("mass", mass, n, nonneg=True)
    if values is None:
        return _run(xy, hsml, m[None, :], npix, hw, threads)[0]
    q = _check_weights("values", values, n, nonneg=False)
    maps = _run(xy, hsml, np.stack([m, m * q]), npix, hw, threads)
    return _mean(maps[0], maps[1])


def project_mean(xy, mass, hsml, values_list, npix, half_width, threads=None):
    """Surface density and several mass-weighted mean maps in a single pass.

    ``values_list`` is a sequence of (N,) arrays q_k. Returns (sigma, [mean_k]) where sigma is
    ``project_particles(xy, mass, hsml, ...)`` and mean_k equals
    ``project_particles(..., values=q_k)``.
    """
    npix, hw = _check_grid(npix, half_width)
    xy, hsml = _check_particles(xy, hsml)
    n = xy.shape[0]
    m = _check_weights("mass", mass, n, nonneg=True)
    qs = [_check_weights(f"values_list[{k}]", q, n, nonneg=False) for k, q in enumerate(values_list)]
    w = np.empty((1 + len(qs), n))
    w[0] = m
    for k, q in enumerate(qs):
        np.multiply(m, q, out=w[k + 1])
    maps = _run(xy, hsml, w, npix, hw, threads)
    return maps[0], [_mean(maps[0], maps[k + 1]) for k in range(len(qs))]


def _mean(sigma: np.ndarray, weighted: np.ndarray) -> np.ndarray:
    out = np.zeros_like(sigma)
    np.divide(weighted, sigma, out=out, where=sigma > 0.0)
    return out
