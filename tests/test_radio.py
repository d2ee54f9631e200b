"""A simulated HI cube on the sky: WCS, distances, the HI mass-flux relation, the sky-model table."""
import numpy as np
import pytest
from astropy import units as u
from astropy.cosmology import Planck15
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.errors import ConfigError, InputError
from skymorph.maps.cube import hi_cube, write_cube_fits
from skymorph.radio import skymodel as sm
from skymorph.sim.particles import ParticleSet

C_KMS = 299792.458


@pytest.fixture(scope="module")
def cube_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 500
    pos = rng.normal(0, 3.0, (n, 3))
    gas = ParticleSet("gas", pos, np.full(n, 2e5), np.full(n, 2.0),
                      {"hi_mass": np.full(n, 1e5), "velocity": np.column_stack([np.zeros(n), np.zeros(n), 30 * pos[:, 0]]),
                       "temperature": np.full(n, 5000.0)})
    cube = hi_cube(gas, np.eye(3), 24, 12.0, 10.0, (-300, 300), np.zeros(3))
    in_field = float(cube.hi_mass_map.sum() * (24.0 / 24) ** 2)  # Msun: the map times the pixel area (1 kpc^2)
    return write_cube_fits(cube, tmp_path_factory.mktemp("c") / "cube.fits"), in_field, cube.lost_fraction


def test_hi_mass_flux_constant_from_the_line_physics():
    from astropy import constants as const

    derived = (16 * np.pi * (1.00784 * u.u) / (3 * 2.8843e-15 / u.s * const.h * const.c) * u.Mpc ** 2 * u.Jy * u.km / u.s)
    assert sm.HI_MASS_FLUX == 2.356e5 and derived.to(u.Msun).value == pytest.approx(2.356e5, rel=0.01)


def test_sky_cube_wcs_pixel_size_and_total_flux(cube_file, tmp_path):
    path, m_hi, lost = cube_file
    tb, pix, vel, dv = sm.read_cube_fits(path)
    for where in (sm.place(150.1, 2.2, distance="10 Mpc"), sm.place(30.0, -45.0, redshift=0.05)):
        out = sm.write_sky_cube(tb, pix, vel, dv, where, tmp_path / f"sky{where.redshift}.fits")
        with fits.open(out) as h:
            w, s = WCS(h[0].header), h[0].data.astype(np.float64)
            assert h[0].header["BUNIT"] == "Jy/pixel" and h[0].header["RESTFRQ"] == pytest.approx(1420405751.768)
        c = (tb.shape[-1] - 1) / 2
        ra, dec, freq = w.pixel_to_world_values(c, c, 0)
        assert ra == pytest.approx(where.ra) and dec == pytest.approx(where.dec)
        assert freq == pytest.approx(sm.NU21_HZ / ((1 + where.redshift) * (1 + vel[0] / C_KMS)), rel=1e-12)
        d_a = 10.0 if where.redshift == 0 else Planck15.angular_diameter_distance(0.05).to(u.Mpc).value
        assert abs(w.wcs.cdelt[1]) == pytest.approx(np.degrees(pix * 1e-3 / d_a), rel=1e-9)
        # M_HI = 2.356e5 / (1 + z) D_L^2 sum S dv
        m = sm.HI_MASS_FLUX / (1 + where.redshift) * where.d_l ** 2 * s.sum() * dv
        assert m == pytest.approx(m_hi * (1 - lost), rel=1e-3)  # lost: the mass-weighted fraction beyond the range


def test_flux_per_pixel_is_the_rayleigh_jeans_brightness(cube_file):
    path, _, _ = cube_file
    tb, pix, vel, dv = sm.read_cube_fits(path)
    where = sm.place(10.0, 10.0, distance="5 Mpc")
    s, freqs, pix_deg, _ = sm.sky_cube(tb, pix, vel, dv, where)
    omega = (np.radians(pix_deg) ** 2) * u.sr
    k = np.unravel_index(np.argmax(tb), tb.shape)
    rj = (tb[k] * u.K).to(u.Jy, u.brightness_temperature(sm.NU21_HZ * u.Hz, omega)).value
    assert s[k] == pytest.approx(rj, rel=1e-3)


def test_beam_conserves_flux_and_the_table_sums_to_the_cube(cube_file, tmp_path):
    path, _, _ = cube_file
    tb, pix, vel, dv = sm.read_cube_fits(path)
    plain = sm.place(150.0, 0.0, distance="20 Mpc")
    s, _, pix_deg, _ = sm.sky_cube(tb, pix, vel, dv, plain)
    beam = 3 * pix_deg * 3600
    sb, _, _, unit = sm.sky_cube(tb, pix, vel, dv, sm.place(150.0, 0.0, distance="20 Mpc", beam=f"{beam}arcsec"))
    sigma = 3 / np.sqrt(8 * np.log(2))
    assert unit == "Jy/beam"
    assert (sb.sum() / (2 * np.pi * sigma ** 2)) == pytest.approx(s.sum(), rel=1e-3)  # beams per pixel
    table = sm.sky_table(tb, pix, vel, dv, plain)
    assert list(table.colnames) == list(sm.SKY_COLUMNS)
    assert table["stokes_i"].sum() == pytest.approx(s.sum(), rel=1e-9)
    out = sm.write_sky_table(table, tmp_path / "sky.csv")
    back = Table.read(out, format="ascii.csv")
    assert back["stokes_i"].sum() == pytest.approx(s.sum(), rel=1e-6)
    assert np.allclose(back["observed_redshift"], (1 + 0) * (1 + np.repeat(vel, 1)[0] / C_KMS) - 1, atol=2e-3)
    with pytest.warns(UserWarning, match="smaller than a pixel"):
        sm.sky_cube(tb, pix, vel, dv, sm.place(150.0, 0.0, distance="20 Mpc", beam=f"{0.5 * pix_deg * 3600}arcsec"))


def test_bad_placements_and_inputs(tmp_path):
    for kwargs, match in (({"distance": "0 Mpc"}, "must be > 0"), ({"redshift": -0.1}, ">= 0"),
                          ({}, "--distance or --redshift"), ({"distance": "10 kg"}, "a length"),
                          ({"redshift": 0.0}, "zero distance")):
        with pytest.raises(ConfigError, match=match):
            sm.place(10.0, 10.0, **kwargs)
    with pytest.raises(ConfigError, match="--ra"):
        sm.place(400.0, 0.0, distance="1 Mpc")
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(tmp_path / "img.fits")
    with pytest.raises(InputError, match="not a skymorph HI cube"):
        sm.read_cube_fits(tmp_path / "img.fits")
    (tmp_path / "junk.fits").write_text("nope")
    with pytest.raises(InputError, match="junk.fits"):
        sm.read_cube_fits(tmp_path / "junk.fits")


def test_cli_skymodel(cube_file, tmp_path):
    path, _, _ = cube_file
    runner = CliRunner()
    out, table = tmp_path / "sky.fits", tmp_path / "sky.fits.csv"
    args = ["radio", "skymodel", str(path), "--ra", "150.1", "--dec", "2.2", "--redshift", "0.01", "--beam", "30arcsec",
            "--out", str(out), "--table", str(table)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "components" in res.output, res.output
    with fits.open(out) as h:
        assert h[0].header["BMAJ"] == pytest.approx(30 / 3600) and h[0].header["CTYPE3"] == "FREQ"
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "--overwrite" in res.stderr
    res = runner.invoke(app, ["radio", "skymodel", str(path), "--ra", "1", "--dec", "1", "--distance", "0Mpc",
                              "--out", str(tmp_path / "z.fits")])
    assert res.exit_code == 1 and "must be > 0" in res.stderr and not (tmp_path / "z.fits").exists()
