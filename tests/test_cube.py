"""HI spectral cubes: channel sums, line widths, a rotating disk's velocity field, units, bad input."""
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.errors import ConfigError, InputError
from skymorph.maps.cube import _KT_OVER_MH, channel_fractions, hi_cube, parse_velocity_range
from skymorph.maps.projection import project_particles
from skymorph.sim.derived import moment0_21cm
from skymorph.sim.particles import ParticleSet


def _cloud(n=400, temperature=1e4, seed=0, radius=2.0, velocity=None):
    rng = np.random.default_rng(seed)
    pos = rng.normal(0, radius, (n, 3))
    vel = np.zeros((n, 3)) if velocity is None else velocity(pos)
    fields = {"hi_mass": np.full(n, 1e5), "velocity": vel, "temperature": np.full(n, temperature)}
    return ParticleSet("gas", pos, np.full(n, 1.5e5), np.full(n, 1.5), fields)


def test_channel_sums_are_the_hi_map_and_moment0_its_21cm_column():
    gas = _cloud()
    cube = hi_cube(gas, np.eye(3), 32, 10.0, 2.0, (-100, 100), np.zeros(3))
    sel = np.abs(gas.pos[:, 2]) < 10.0
    ref = project_particles(gas.pos[sel, :2], gas.fields["hi_mass"][sel], gas.hsml[sel], 32, 10.0)
    np.testing.assert_allclose(cube.hi_mass_map, ref, rtol=1e-12, atol=1e-12 * ref.max())
    np.testing.assert_allclose(cube.moment0, moment0_21cm(cube.hi_mass_map), rtol=1e-9, atol=1e-9 * cube.moment0.max())
    assert cube.lost_fraction < 1e-12


def test_a_cold_cell_at_rest_fills_one_channel_or_splits_on_an_edge():
    edges = np.array([-10.0, -5.0, 0.0, 5.0, 10.0])
    f = channel_fractions(np.array([2.5, 0.0]), np.zeros(2), edges)
    np.testing.assert_array_equal(f[:, 0], [0, 0, 1, 0])
    np.testing.assert_array_equal(f[:, 1], [0, 0.5, 0.5, 0])


def test_thermal_width_of_a_uniform_cloud():
    t = 8000.0
    cube = hi_cube(_cloud(temperature=t), np.eye(3), 16, 10.0, 0.5, (-60, 60), np.zeros(3))
    spectrum = cube.tb.sum(axis=(1, 2))
    v = cube.velocities
    sigma = np.sqrt((spectrum * v ** 2).sum() / spectrum.sum())
    # the channel-integrated Gaussian adds the top-hat variance dv^2 / 12
    assert sigma ** 2 == pytest.approx(_KT_OVER_MH * t + 0.5 ** 2 / 12, rel=1e-3)
    assert np.sqrt(_KT_OVER_MH * t) == pytest.approx(8.13, rel=2e-3)  # km/s at 8000 K


def test_rotating_disk_velocity_field_is_antisymmetric_with_amplitude_vrot_sin_i():
    v_rot, incl = 200.0, np.radians(60.0)
    rng = np.random.default_rng(1)
    n = 20000
    r, phi = rng.uniform(2, 10, n), rng.uniform(0, 2 * np.pi, n)
    pos = np.column_stack([r * np.cos(phi), r * np.sin(phi), rng.normal(0, 0.05, n)])
    vel = v_rot * np.column_stack([-np.sin(phi), np.cos(phi), np.zeros(n)])
    gas = ParticleSet("gas", pos, np.full(n, 1e4), np.full(n, 0.6),
                      {"hi_mass": np.full(n, 1e4), "velocity": vel, "temperature": np.full(n, 100.0)})
    tilt = np.array([[1.0, 0, 0], [0, np.cos(incl), -np.sin(incl)], [0, np.sin(incl), np.cos(incl)]])
    cube = hi_cube(gas, tilt, 40, 11.0, 4.0, (-300, 300), np.zeros(3))
    m1 = cube.moment1
    both = np.isfinite(m1) & np.isfinite(m1[:, ::-1])
    assert both.sum() > 200
    asym = np.abs(m1[both] + m1[:, ::-1][both])  # mirror about the minor axis x = 0 (random cells: some noise)
    assert np.median(asym) < 2.0 and np.percentile(asym, 95) < 8.0
    major = m1[19:21]  # the rows through the centre: the kinematic major axis (x)
    assert np.nanmax(np.abs(major)) == pytest.approx(v_rot * np.sin(incl), rel=0.05)
    assert np.nanmax(np.abs(m1[np.isfinite(m1)])) < v_rot * np.sin(incl) * 1.05


def test_bad_cube_requests():
    gas = _cloud()
    with pytest.raises(ConfigError, match="whole number"):
        hi_cube(gas, np.eye(3), 8, 10.0, 7.0, (-100, 100), np.zeros(3))
    del gas.fields["velocity"]
    with pytest.raises(InputError, match="velocity"):
        hi_cube(gas, np.eye(3), 8, 10.0, 5.0, (-100, 100), np.zeros(3))
    for text in ("-100", "a:b", "100:-100"):
        with pytest.raises(ConfigError, match="--velocity-range"):
            parse_velocity_range(text)


def test_cli_cube_writes_fits_with_moments(synth_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cube.fits"
    res = runner.invoke(app, ["maps", "cube", str(synth_dir), "--index", "0", "--size", "16", "--channel-width", "10",
                              "--velocity-range", "-500:500", "--inclination", "45", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with fits.open(out) as h:
        assert h[0].data.shape == (100, 16, 16) and h[0].header["BUNIT"] == "K"
        assert [x.name for x in h[1:]] == ["MOM0", "NHI", "MOM1", "MOM2"]
        w = WCS(h[0].header)
        assert w.naxis == 3 and w.wcs.cunit[2] == "m/s"  # astropy normalises VELO to SI
        assert w.pixel_to_world_values(0, 0, 0)[2] == pytest.approx(-495e3)
        np.testing.assert_allclose(h["MOM0"].data, h[0].data.sum(axis=0) * 10.0, rtol=1e-5,
                                   atol=1e-6 * h["MOM0"].data.max())
    res = runner.invoke(app, ["maps", "cube", str(synth_dir), "--index", "0", "--out", str(out)])
    assert res.exit_code == 1 and "--overwrite" in res.stderr
    res = runner.invoke(app, ["maps", "cube", str(synth_dir), "--index", "0", "--velocity-range", "5",
                              "--out", str(tmp_path / "x.fits")])
    assert res.exit_code == 1 and "--velocity-range" in res.stderr and not (tmp_path / "x.fits").exists()
