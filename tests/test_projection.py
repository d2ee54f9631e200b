"""Projected cubic-spline kernel and the mass-conserving SPH deposit (skymorph.maps)."""
from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy.integrate import quad

from skymorph.errors import InputError, SkymorphError
from skymorph.maps import kernel as K
from skymorph.maps.projection import project_channels, project_mean, project_particles
from skymorph.sph import cubic_spline_3d


def _los_integral(R: float) -> float:
    """Direct numerical integral of the 3D kernel (h = 1) along the line of sight."""
    zmax = np.sqrt(max(1.0 - R * R, 0.0))
    pts = [np.sqrt(0.25 - R * R)] if R < 0.5 else None
    val, _ = quad(lambda z: cubic_spline_3d(np.hypot(R, z), 1.0), 0.0, zmax, points=pts,
                  epsabs=1e-14, epsrel=1e-13, limit=200)
    return 2.0 * val


def _centres(npix: int, hw: float) -> np.ndarray:
    dx = 2.0 * hw / npix
    return -hw + (np.arange(npix) + 0.5) * dx


# ----------------------------------------------------------------------------- the kernel


def test_central_value_matches_hand_computation():
    # 8/pi * 2 * [int_0^1/2 (1 - 6z^2 + 6z^3) dz + int_1/2^1 2 (1-z)^3 dz]
    inner = 0.5 - 6.0 * 0.5**3 / 3.0 + 6.0 * 0.5**4 / 4.0  # 11/32
    outer = 2.0 * 0.5**4 / 4.0  # 1/32
    f0 = 8.0 / np.pi * 2.0 * (inner + outer)
    assert f0 == pytest.approx(6.0 / np.pi, rel=1e-15)
    assert K.F_CENTRAL == pytest.approx(f0, rel=1e-15)
    assert K.projected_kernel(0.0)[0] == pytest.approx(f0, rel=1e-13)
    # the table differs from the exact F only by interpolation error (< ~2e-6)
    assert K.projected_kernel_table(0.0) == pytest.approx(f0, rel=2e-6)


@pytest.mark.parametrize("R", [0.0, 0.1, 0.3, 0.49, 0.5, 0.51, 0.7, 0.9, 0.99])
def test_kernel_matches_line_of_sight_integral(R):
    ref = _los_integral(R)
    assert K.projected_kernel(R)[0] == pytest.approx(ref, rel=1e-11, abs=1e-15)
    assert abs(K.projected_kernel_table(R) - ref) < 3e-6


def test_kernel_vanishes_outside_support():
    q = np.array([1.0, 1.0 + 1e-12, 1.5, 10.0])
    assert np.all(K.projected_kernel(q) == 0.0)
    assert np.all(K.projected_kernel_table(q[:1]) == 0.0)


def test_kernel_integrates_to_one_over_unit_disk():
    # exact closed form: int F 2 pi q dq = 1
    val, _ = quad(lambda q: 2.0 * np.pi * q * K.projected_kernel(q)[0], 0.0, 1.0, points=[0.5],
                  epsabs=1e-14, epsrel=1e-13, limit=200)
    assert val == pytest.approx(1.0, abs=1e-10)
    # the tabulated interpolant, which is what the deposit uses: it is linear in s = q^2 on
    # each table interval, and int F d^2q = pi int_0^1 F ds; the trapezoid rule on a grid
    # that refines every table interval 64 times is exact for it
    s = np.linspace(0.0, 1.0, 64 * K.TABLE_SIZE + 1)
    f = K.projected_kernel_table(np.sqrt(s))
    integral = np.pi * np.sum(0.5 * (f[1:] + f[:-1]) * np.diff(s))
    assert integral == pytest.approx(1.0, abs=1e-12)
    # the renormalisation of the table only absorbs its (tiny) interpolation error
    assert abs(K.TABLE_RENORM - 1.0) < 1e-6


# ----------------------------------------------------------------------------- mass conservation


def _inside_particles(rng, n, npix, hw, hmin_px, hmax_px):
    """Random particles whose support disk lies wholly inside the field."""
    dx = 2.0 * hw / npix
    h = np.exp(rng.uniform(np.log(hmin_px), np.log(hmax_px), n)) * dx
    lim = hw - h
    keep = lim > 0
    h = h[keep]
    xy = (rng.random((h.size, 2)) * 2.0 - 1.0) * lim[keep, None]
    m = rng.uniform(0.5, 2.0, h.size) * 1e8
    return xy, m, h


def test_mass_conserved_for_particles_inside_field():
    rng = np.random.default_rng(42)
    npix, hw = 128, 10.0
    dx = 2 * hw / npix
    xy, m, h = _inside_particles(rng, 4000, npix, hw, 0.01, 50.0)
    assert (h / dx).min() < 0.05 and (h / dx).max() > 30  # sub-pixel to very large
    img = project_particles(xy, m, h, npix, hw, threads=1)
    assert img.sum() * dx * dx / m.sum() == pytest.approx(1.0, rel=1e-10)
    assert img.min() >= 0.0


def test_each_particle_deposits_exactly_its_mass():
    rng = np.random.default_rng(7)
    npix, hw = 32, 1.0
    dx = 2 * hw / npix
    for hpx in np.geomspace(0.01, 50.0, 25):
        if hpx * dx >= hw:
            hpx = 0.999 * hw / dx
        h = hpx * dx
        xy = (rng.random((1, 2)) * 2 - 1) * (hw - h)
        img = project_particles(xy, np.array([3.0]), np.array([h]), npix, hw)
        assert img.sum() * dx * dx == pytest.approx(3.0, rel=1e-12), hpx


def test_large_particle_mass_conserved():
    # beyond the buffered regime (> 64 px), normalised by an exact second sweep
    npix, hw = 512, 1.0
    dx = 2 * hw / npix
    h = np.array([100.0, 180.0]) * dx
    xy = np.array([[0.1, -0.2], [-0.05, 0.03]])
    img = project_particles(xy, np.array([1.0, 2.0]), h, npix, hw)
    assert img.sum() * dx * dx == pytest.approx(3.0, rel=1e-12)


# ----------------------------------------------------------------------------- profiles


def test_point_mass_projected_profile():
    """One particle at the field centre (a pixel corner): map = m/h^2 F(R/h) at pixel centres."""
    npix, hw = 96, 1.0
    dx = 2 * hw / npix
    m, h = 5.0e9, 40 * dx
    img = project_particles(np.zeros((1, 2)), np.array([m]), np.array([h]), npix, hw)
    xc = _centres(npix, hw)
    R = np.hypot(xc[None, :], xc[:, None])
    expected = m / h**2 * K.projected_kernel(R / h)
    # residual differences: table interpolation (~1e-6) and the discrete normalisation
    # (sum of the kernel over pixel centres = (h/dx)^2 to ~1e-8 for h = 40 px)
    assert np.abs(img - expected).max() < 1e-5 * expected.max()
    assert np.all(img[R >= h] == 0.0)
    # radial symmetry of the point-mass image
    assert np.allclose(img, img[::-1, :], rtol=0, atol=1e-12 * img.max())
    assert np.allclose(img, img.T, rtol=0, atol=1e-12 * img.max())


def test_orientation_rows_along_y_columns_along_x():
    npix, hw = 16, 1.0
    dx = 2 * hw / npix
    # a small particle at x > 0, y < 0: right half of the columns, lower half of the rows
    x, y = 0.6, -0.35
    img = project_particles(np.array([[x, y]]), np.ones(1), np.array([0.01]), npix, hw)
    iy, ix = np.unravel_index(np.argmax(img), img.shape)
    assert ix == int((x + hw) / dx) and iy == int((y + hw) / dx)
    assert ix > npix // 2 and iy < npix // 2


def test_subpixel_particle_is_cloud_in_cell():
    npix, hw = 16, 1.0
    dx = 2 * hw / npix
    xc = _centres(npix, hw)
    # on a pixel centre: everything in that pixel
    img = project_particles(np.array([[xc[5], xc[9]]]), np.ones(1), np.array([0.1 * dx]), npix, hw)
    assert img[9, 5] * dx * dx == pytest.approx(1.0, rel=1e-14)
    # on a pixel corner: a quarter in each of the four pixels around it
    img = project_particles(np.array([[xc[5] + dx / 2, xc[9] + dx / 2]]), np.ones(1),
                            np.array([0.3 * dx]), npix, hw)
    np.testing.assert_allclose(img[9:11, 5:7] * dx * dx, 0.25, rtol=1e-14)
    # anywhere inside: the bilinear deposit preserves the centroid exactly
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = (rng.random(2) * 2 - 1) * (hw - dx)  # away from the clamped outer half-pixel
        img = project_particles(p[None, :], np.ones(1), np.array([0.2 * dx]), npix, hw)
        w = img / img.sum()
        assert np.sum(w * xc[None, :]) == pytest.approx(p[0], abs=1e-12)
        assert np.sum(w * xc[:, None]) == pytest.approx(p[1], abs=1e-12)


# ----------------------------------------------------------------------------- edges


def test_particle_on_edge_deposits_half_its_mass():
    npix, hw = 64, 1.0
    dx = 2 * hw / npix
    h = 20 * dx
    for pos, frac in [((-hw, 0.0), 0.5), ((0.0, hw), 0.5), ((-hw, -hw), 0.25), ((hw, hw), 0.25)]:
        img = project_particles(np.array([pos]), np.ones(1), np.array([h]), npix, hw)
        # the virtual pixels mirror the real ones about the edge: exactly half (a quarter)
        assert img.sum() * dx * dx == pytest.approx(frac, rel=1e-12), pos


def test_very_large_particle_on_edge_deposits_half_its_mass():
    # > 64 px: normalised by the continuum value of the lattice sum, exact to ~1e-9
    npix, hw = 256, 1.0
    dx = 2 * hw / npix
    for pos, frac in [((-hw, 0.1), 0.5), ((hw, -hw), 0.25)]:
        img = project_particles(np.array([pos]), np.ones(1), np.array([100 * dx]), npix, hw)
        assert img.sum() * dx * dx == pytest.approx(frac, rel=1e-7), pos


def test_straddling_particle_deposits_in_field_fraction_of_kernel():
    npix, hw = 128, 1.0
    dx = 2 * hw / npix
    h = 30 * dx
    d = 0.35  # centre outside the left edge by d h
    img = project_particles(np.array([[-hw - d * h, 0.1]]), np.ones(1), np.array([h]), npix, hw)
    # continuum fraction of the projected kernel beyond x = d (in units of h)
    frac, _ = quad(lambda x: quad(lambda y: K.projected_kernel(np.hypot(x, y))[0],
                                  -np.sqrt(1 - x * x), np.sqrt(1 - x * x), epsabs=1e-12)[0],
                   d, 1.0, epsabs=1e-12)
    assert 0.05 < frac < 0.4
    assert img.sum() * dx * dx == pytest.approx(frac, rel=3e-3)


def test_particle_wholly_outside_is_skipped():
    npix, hw = 32, 1.0
    dx = 2 * hw / npix
    xy = np.array([[-hw - 0.5, 0.0], [0.0, hw + 0.2], [hw + 1.0, hw + 1.0], [-hw - 0.3 * dx, 0.0]])
    h = np.array([0.49, 0.19, 1.2, 0.1 * dx])
    img = project_particles(xy, np.ones(4), h, npix, hw)
    assert np.all(img == 0.0)


# ----------------------------------------------------------------------------- mean maps


def test_mass_weighted_uniform_value_is_reproduced():
    rng = np.random.default_rng(11)
    npix, hw = 48, 5.0
    dx = 2 * hw / npix
    n = 600
    xy = rng.normal(0, 1.5, (n, 2))
    h = np.exp(rng.uniform(np.log(0.05), np.log(8.0), n)) * dx
    m = rng.uniform(0.1, 3.0, n)
    q = 3.7e4
    mean = project_particles(xy, m, h, npix, hw, values=np.full(n, q))
    sigma = project_particles(xy, m, h, npix, hw)
    has = sigma > 0
    assert has.sum() > npix * npix // 2 and (~has).sum() > 0
    np.testing.assert_allclose(mean[has], q, rtol=1e-12)
    assert np.all(mean[~has] == 0.0)


def test_mass_weighted_mean_of_two_overlapping_particles():
    npix, hw = 8, 1.0
    dx = 2 * hw / npix
    xc = _centres(npix, hw)
    # two sub-pixel particles in the same pixel: (m1 q1 + m2 q2) / (m1 + m2)
    xy = np.array([[xc[3], xc[4]], [xc[3], xc[4]]])
    mean = project_particles(xy, np.array([1.0, 3.0]), np.array([0.1, 0.1]) * dx, npix, hw,
                             values=np.array([10.0, 20.0]))
    assert mean[4, 3] == pytest.approx(17.5, rel=1e-14)
    assert np.count_nonzero(mean) == 1


def test_channels_and_mean_helpers_agree_with_single_projections():
    rng = np.random.default_rng(5)
    npix, hw = 40, 2.0
    n = 2000
    xy = rng.normal(0, 0.8, (n, 2))
    h = rng.uniform(0.01, 0.5, n)
    m = rng.uniform(1, 2, n)
    T = rng.uniform(1e4, 1e6, n)
    B = rng.uniform(1e-7, 1e-5, n)
    # five channels: a group of four and a single one in the deposit
    w = np.stack([m, 0.3 * m, m * T, m * B, 2.0 * m])
    chans = project_channels(xy, h, w, npix, hw)
    assert chans.shape == (5, npix, npix)
    sig = project_particles(xy, m, h, npix, hw)
    np.testing.assert_allclose(chans[0], sig, rtol=1e-13, atol=0)
    np.testing.assert_allclose(chans[1], 0.3 * sig, rtol=1e-13, atol=0)
    np.testing.assert_allclose(chans[4], 2.0 * sig, rtol=1e-13, atol=0)
    for c in (2, 3):
        np.testing.assert_allclose(chans[c], project_particles(xy, w[c], h, npix, hw), rtol=1e-13, atol=0)
    sig2, (tmap, bmap) = project_mean(xy, m, h, [T, B], npix, hw)
    np.testing.assert_allclose(sig2, sig, rtol=1e-13, atol=0)
    np.testing.assert_allclose(tmap, project_particles(xy, m, h, npix, hw, values=T), rtol=1e-13)
    np.testing.assert_allclose(bmap, project_particles(xy, m, h, npix, hw, values=B), rtol=1e-13)
    # temperature map values lie within the particle range
    assert T.min() * (1 - 1e-12) <= tmap[sig > 0].min() and tmap.max() <= T.max() * (1 + 1e-12)


# ----------------------------------------------------------------------------- symmetry, threads


def test_rotation_by_90_degrees_rotates_the_map():
    rng = np.random.default_rng(9)
    npix, hw = 64, 1.0
    n = 800
    # dyadic positions and sizes: the mirrored pixel coordinates are exact in floating point
    xy = np.round((rng.random((n, 2)) * 1.8 - 0.9) * 1024) / 1024
    h = np.round(np.exp(rng.uniform(np.log(0.005), np.log(0.5), n)) * 4096) / 4096
    m = rng.uniform(1, 2, n)
    a = project_particles(xy, m, h, npix, hw)
    b = project_particles(np.column_stack([-xy[:, 1], xy[:, 0]]), m, h, npix, hw)
    # (x, y) -> (-y, x) with image[iy, ix]: b[i, j] = a[npix - 1 - j, i]
    np.testing.assert_allclose(b, np.rot90(a, k=-1), rtol=0, atol=1e-10 * a.max())
    assert not np.allclose(b, a, rtol=0, atol=1e-3 * a.max())


def test_threads_give_the_same_map():
    rng = np.random.default_rng(13)
    npix, hw = 64, 1.0
    n = 30_000  # above the serial cut-off
    xy = rng.normal(0, 0.5, (n, 2))
    h = np.exp(rng.uniform(np.log(0.002), np.log(0.3), n))
    m = rng.uniform(1, 2, n)
    before = numba.get_num_threads()
    one = project_particles(xy, m, h, npix, hw, threads=1)
    every = project_particles(xy, m, h, npix, hw, threads=None)
    two = project_particles(xy, m, h, npix, hw, threads=2)
    assert numba.get_num_threads() == before
    np.testing.assert_allclose(every, one, rtol=1e-12, atol=1e-14 * one.max())
    np.testing.assert_allclose(two, one, rtol=1e-12, atol=1e-14 * one.max())


# ----------------------------------------------------------------------------- bad input


def _good(n=4):
    return np.zeros((n, 2)), np.ones(n), np.full(n, 0.1)


def test_bad_particle_input_messages():
    xy, m, h = _good()
    m_nan = m.copy()
    m_nan[2] = np.nan
    with pytest.raises(InputError, match=r"mass .*NaN"):
        project_particles(xy, m_nan, h, 16, 1.0)
    h_neg = h.copy()
    h_neg[1] = -0.1
    with pytest.raises(InputError, match=r"hsml must be non-negative.*index 1"):
        project_particles(xy, m, h_neg, 16, 1.0)
    with pytest.raises(InputError, match=r"mass must be non-negative"):
        project_particles(xy, -m, h, 16, 1.0)
    with pytest.raises(InputError, match=r"mass must have shape \(N,\) = \(4,\).*\(3,\)"):
        project_particles(xy, m[:3], h, 16, 1.0)
    with pytest.raises(InputError, match=r"xy must have shape \(N, 2\)"):
        project_particles(np.zeros((4, 3)), m, h, 16, 1.0)
    with pytest.raises(InputError, match=r"hsml must have shape"):
        project_particles(xy, m, h[:2], 16, 1.0)
    xy_inf = xy.copy()
    xy_inf[0, 1] = np.inf
    with pytest.raises(InputError, match=r"xy contains 1 non-finite"):
        project_particles(xy_inf, m, h, 16, 1.0)
    with pytest.raises(InputError, match=r"values"):
        project_particles(xy, m, h, 16, 1.0, values=np.array([1.0, np.nan, 1.0, 1.0]))
    with pytest.raises(InputError, match=r"weights must have shape \(C, N\)"):
        project_channels(xy, h, np.ones((2, 5)), 16, 1.0)


def test_bad_grid_messages():
    xy, m, h = _good()
    for npix in (0, -3):
        with pytest.raises(SkymorphError, match="npix") as exc:
            project_particles(xy, m, h, npix, 1.0)
        assert exc.type is SkymorphError
    for hw in (0.0, -1.0, np.nan):
        with pytest.raises(SkymorphError, match="half_width") as exc:
            project_particles(xy, m, h, 16, hw)
        assert exc.type is SkymorphError
    with pytest.raises(SkymorphError, match="threads"):
        project_particles(xy, m, h, 16, 1.0, threads=0)


def test_empty_input_gives_empty_map():
    img = project_particles(np.zeros((0, 2)), np.zeros(0), np.zeros(0), 8, 1.0)
    assert img.shape == (8, 8) and img.dtype == np.float64 and np.all(img == 0.0)
