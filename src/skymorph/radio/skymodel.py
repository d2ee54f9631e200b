"""A simulated galaxy's HI cube placed on the sky: a FITS cube with celestial + spectral WCS, and a
point-source sky model in the Karabo / OSKAR column order.

Input: a ``maps cube`` FITS file (T_b [K] over rest-frame velocity channels relative to the systemic
velocity, pixels in kpc). At redshift z with luminosity distance D_L and angular-diameter distance
D_A (astropy's Planck15, the cosmology of IllustrisTNG; ``distance`` alone means a nearby source,
D_L = D_A = D, z = 0 unless given):

- pixel size [rad] = pixel [kpc] / D_A;
- each channel's HI mass M (from T_b: N_HI = 1.823e18 T_b dv) gives its flux density from
  M_HI = 2.356e5 / (1 + z) (D_L / Mpc)^2 integral S dv [Jy km/s] (dv rest frame);
- observed frequency of a channel at velocity v: nu0 / ((1 + z)(1 + v / c)), written as a linear FREQ
  axis (the curvature over +-1000 km/s is < 1e-5 of a channel), RESTFRQ = 1420405751.768 Hz;
- BUNIT Jy/pixel, or Jy/beam after convolution with a Gaussian beam (BMAJ = BMIN, BPA = 0).

The sky model has one point component per pixel and channel above ``threshold`` [Jy]: ra, dec [deg],
Stokes I, Q, U, V [Jy], reference frequency [Hz], spectral index, rotation measure, major and minor
FWHM [arcsec], position angle [deg], true redshift, observed redshift = (1 + z)(1 + v / c) - 1. Karabo
installs through conda, not PyPI, so skymorph writes its format instead of depending on it (and does
not copy its convert_z_to_frequency, c / (0.21 m (1 + z)), 0.5% off the rest frequency).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import constants as const
from astropy import units as u
from astropy.cosmology import Planck15
from astropy.io import fits
from astropy.table import Table
from scipy.ndimage import gaussian_filter

from ..atomic import atomic_path, check_output
from ..errors import ConfigError, InputError
from ..hdf5 import check_finite
from ..sim.derived import N_HI_PER_K_KMS, hi_column_density

__all__ = ["NU21_HZ", "HI_MASS_FLUX", "Placement", "place", "read_cube_fits", "sky_cube", "sky_table",
           "write_sky_cube", "write_sky_table", "SKY_COLUMNS"]

NU21_HZ = 1420405751.768
#: M_HI [Msun] = HI_MASS_FLUX (D_L / Mpc)^2 integral S dv [Jy km/s] at z = 0: the literature value, consistent
#: with N_HI = 1.823e18 integral T_b dv (both from the same constants: the Rayleigh-Jeans flux of the cube's
#: T_b agrees to 0.05%); 16 pi m_H / (3 A10 h c) with today's A10 = 2.8843e-15 s^-1 gives 2.343e5 (0.5% less)
HI_MASS_FLUX = 2.356e5
SKY_COLUMNS = ("ra", "dec", "stokes_i", "stokes_q", "stokes_u", "stokes_v", "ref_freq", "spectral_index",
               "rotation_measure", "major", "minor", "pa", "true_redshift", "observed_redshift")
_UNITS = ("deg", "deg", "Jy", "Jy", "Jy", "Jy", "Hz", "", "rad / m2", "arcsec", "arcsec", "deg", "", "")


@dataclass
class Placement:
    """Where the galaxy sits: sky position [deg], redshift, distances [Mpc], beam FWHM [arcsec] or None."""

    ra: float
    dec: float
    redshift: float
    d_l: float
    d_a: float
    beam: float | None = None


def place(ra: float, dec: float, distance=None, redshift=None, beam=None) -> Placement:
    """A placement from a distance (a Quantity or string, e.g. '10 Mpc') and/or a redshift."""
    if distance is None and redshift is None:
        raise ConfigError("give --distance or --redshift")
    if redshift is not None and redshift < 0:
        raise ConfigError(f"--redshift {redshift:g}: must be >= 0")
    if not (0 <= ra < 360 and -90 <= dec <= 90):
        raise ConfigError(f"--ra {ra:g} --dec {dec:g}: expected 0 <= ra < 360 and -90 <= dec <= 90 degrees")
    z = 0.0 if redshift is None else float(redshift)
    if distance is not None:
        try:
            d = u.Quantity(distance).to(u.Mpc).value
        except (TypeError, ValueError, u.UnitsError):
            raise ConfigError(f"--distance {distance!r}: expected a length, e.g. 10Mpc") from None
        if not d > 0:
            raise ConfigError(f"--distance {distance}: must be > 0")
        d_l = d_a = float(d)
    else:
        if z == 0:
            raise ConfigError("--redshift 0 puts the galaxy at zero distance; give --distance")
        d_l, d_a = (float(Planck15.luminosity_distance(z).to(u.Mpc).value),
                    float(Planck15.angular_diameter_distance(z).to(u.Mpc).value))
    b = None
    if beam is not None:
        try:
            b = float(u.Quantity(beam).to(u.arcsec).value)
        except (TypeError, ValueError, u.UnitsError):
            raise ConfigError(f"--beam {beam!r}: expected an angle, e.g. 10arcsec") from None
        if not b > 0:
            raise ConfigError(f"--beam {beam}: must be > 0")
    return Placement(float(ra), float(dec), z, d_l, d_a, b)


def read_cube_fits(path) -> tuple[np.ndarray, float, np.ndarray, float]:
    """(T_b (C, N, N) [K], pixel [kpc], channel velocities [km/s], channel width [km/s]) of a maps cube file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        with fits.open(path) as h:
            hdr, data = h[0].header, h[0].data
    except OSError as exc:
        raise InputError(f"{path}: not a readable FITS file: {exc}") from None
    if data is None or data.ndim != 3 or hdr.get("CTYPE3") != "VELO" or hdr.get("CUNIT1") != "kpc" or \
            hdr.get("BUNIT") != "K":
        raise InputError(f"{path}: not a skymorph HI cube (expected T_b [K] on kpc x kpc x VELO axes: "
                         f"write one with skymorph maps cube)")
    tb = check_finite(path, "T_b", np.asarray(data, np.float64))
    nchan = tb.shape[0]
    v = hdr["CRVAL3"] + hdr["CDELT3"] * (np.arange(nchan) + 1 - hdr["CRPIX3"])
    return tb, float(abs(hdr["CDELT1"])), v, float(abs(hdr["CDELT3"]))


def _channel_mass(tb: np.ndarray, pixel_kpc: float, dv: float) -> np.ndarray:
    """HI mass [Msun] per channel and pixel."""
    n_hi = tb * N_HI_PER_K_KMS * dv  # cm^-2
    return n_hi / hi_column_density(1.0) * pixel_kpc ** 2


def sky_cube(tb, pixel_kpc, velocities, dv, where: Placement):
    """(S (C, N, N) in Jy/pixel or Jy/beam, frequencies [Hz], pixel [deg], BUNIT)."""
    flux = _channel_mass(tb, pixel_kpc, dv) * (1 + where.redshift) / (HI_MASS_FLUX * where.d_l ** 2 * dv)  # Jy
    pix_deg = float(np.degrees(pixel_kpc * 1e-3 / where.d_a))
    freqs = NU21_HZ / ((1 + where.redshift) * (1 + velocities / const.c.to(u.km / u.s).value))
    if where.beam is None:
        return flux, freqs, pix_deg, "Jy/pixel"
    fwhm_pix = where.beam / 3600.0 / pix_deg
    if fwhm_pix < 1:
        warnings.warn(f"--beam {where.beam:g} arcsec is smaller than a pixel ({pix_deg * 3600:.3g} arcsec)",
                      stacklevel=2)
    sigma = fwhm_pix / np.sqrt(8 * np.log(2))
    beam_pix = 2 * np.pi * sigma ** 2  # beam area in pixels
    return gaussian_filter(flux, (0, sigma, sigma), mode="constant") * beam_pix, freqs, pix_deg, "Jy/beam"


def _header(where: Placement, npix: int, pix_deg: float, freqs: np.ndarray, bunit: str) -> fits.Header:
    h = fits.Header()
    centre = (npix + 1) / 2
    for ax, (ctype, val, step) in enumerate((("RA---SIN", where.ra, -pix_deg), ("DEC--SIN", where.dec, pix_deg)), 1):
        h[f"CTYPE{ax}"], h[f"CRVAL{ax}"], h[f"CDELT{ax}"], h[f"CRPIX{ax}"], h[f"CUNIT{ax}"] = ctype, val, step, centre, "deg"
    h["CTYPE3"], h["CUNIT3"], h["CRPIX3"] = "FREQ", "Hz", 1.0
    h["CRVAL3"] = float(freqs[0])
    h["CDELT3"] = float((freqs[-1] - freqs[0]) / max(len(freqs) - 1, 1)) if len(freqs) > 1 else 1.0
    h["RESTFRQ"] = (NU21_HZ, "HI 21 cm rest frequency [Hz]")
    h["SPECSYS"] = "BARYCENT"
    h["RADESYS"], h["EQUINOX"] = "ICRS", 2000.0
    h["BUNIT"] = bunit
    h["ZTRUE"] = (where.redshift, "cosmological redshift of the galaxy")
    h["DL_MPC"], h["DA_MPC"] = (where.d_l, "luminosity distance [Mpc]"), (where.d_a, "angular-diameter distance [Mpc]")
    if where.beam is not None:
        h["BMAJ"] = h["BMIN"] = where.beam / 3600.0
        h["BPA"] = 0.0
    return h


def write_sky_cube(tb, pixel_kpc, velocities, dv, where: Placement, out, overwrite: bool = False) -> Path:
    out = check_output(out, overwrite)
    s, freqs, pix_deg, bunit = sky_cube(tb, pixel_kpc, velocities, dv, where)
    with atomic_path(out) as tmp:
        fits.PrimaryHDU(s.astype(np.float32), header=_header(where, tb.shape[-1], pix_deg, freqs, bunit)).writeto(tmp)
    return out


def sky_table(tb, pixel_kpc, velocities, dv, where: Placement, threshold: float = 0.0) -> Table:
    """Point components (Jy, no beam) of every pixel and channel above ``threshold`` Jy."""
    if threshold < 0:
        raise ConfigError(f"--threshold {threshold:g}: must be >= 0")
    flux, freqs, pix_deg, _ = sky_cube(tb, pixel_kpc, velocities, dv, Placement(**{**where.__dict__, "beam": None}))
    from astropy.wcs import WCS

    wcs = WCS(_header(where, tb.shape[-1], pix_deg, freqs, "Jy/pixel")).celestial
    c, iy, ix = np.nonzero(flux > threshold)
    ra, dec = wcs.pixel_to_world_values(ix, iy)
    zeros = np.zeros(len(c))
    z_obs = (1 + where.redshift) * (1 + velocities[c] / const.c.to(u.km / u.s).value) - 1
    cols = (np.mod(ra, 360.0), dec, flux[c, iy, ix], zeros, zeros, zeros, freqs[c], zeros, zeros, zeros, zeros, zeros,
            np.full(len(c), where.redshift), z_obs)
    table = Table(cols, names=SKY_COLUMNS)
    for name, unit in zip(SKY_COLUMNS, _UNITS):
        if unit:
            table[name].unit = unit
    return table


def write_sky_table(table: Table, out, overwrite: bool = False) -> Path:
    """CSV (header line of column names) or FITS table, by suffix."""
    out = check_output(out, overwrite)
    if out.suffix.lower() not in (".csv", ".fits"):
        raise ConfigError(f"--table {out}: expected a .csv or .fits file")
    with atomic_path(out) as tmp:
        table.write(tmp, format="ascii.csv" if out.suffix.lower() == ".csv" else "fits", overwrite=True)
    return out
