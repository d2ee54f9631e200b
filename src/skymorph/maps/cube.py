"""HI spectral cubes: position-position-velocity cubes of a galaxy's atomic hydrogen and their moments.

Each gas cell in the view's cube (half-width ``half_width``, depth = width, as the maps) puts its HI
mass into the velocity channels by the integral of its Gaussian line over each channel,
0.5 [erf((v_hi - v) / (sqrt 2 s)) - erf((v_lo - v) / (sqrt 2 s))], and onto the pixels with the
project's mass-conserving kernel, so the channel sum of a cell whose line lies inside the velocity
range is its HI mass to round-off. The line centre v is the cell's line-of-sight velocity relative
to the galaxy's systemic velocity (mass-weighted mean of the loaded particles) plus the Hubble flow
across the cube, H(z) x (line-of-sight offset); the width s = sqrt(k_B T / m_H + s_turb^2), with the
star-forming cells' line width from T = ``eos_line_temperature`` (their stored temperature is that
of the effective equation of state, not of the line-emitting gas) and a turbulent floor s_turb.

Brightness temperature per channel (optically thin, rest frame): T_b [K] = N_HI / (1.823e18 dv);
moment 0 = sum T_b dv [K km/s] (and N_HI [cm^-2]), moment 1 = intensity-weighted mean velocity,
moment 2 = intensity-weighted dispersion [km/s] (NaN where there is no emission).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import constants as const
from astropy import units as u
from scipy.special import erf

from ..atomic import atomic_path, check_output
from ..errors import ConfigError, InputError
from ..sim.derived import DEFAULT_HI_MODEL, N_HI_PER_K_KMS, apply_hi_model, hi_column_density
from ..sim.particles import ParticleSet
from .projection import project_channels

__all__ = ["HICube", "channel_fractions", "hi_cube", "galaxy_cube", "systemic_velocity", "write_cube_fits",
           "parse_velocity_range"]

#: k_B / m_H [(km/s)^2 per K]: the thermal line width s^2 = this x T
_KT_OVER_MH = float((const.k_B / (1.00784 * u.u) * u.K).to((u.km / u.s) ** 2).value)
EOS_LINE_TEMPERATURE = 1e4  # K: line width of star-forming (effective-EOS) cells


@dataclass
class HICube:
    """T_b (C, npix, npix) [K] over channels of width ``dv`` [km/s] centred at ``velocities``; the
    field half-width [kpc]; moments; the HI mass outside the velocity range; the settings."""

    tb: np.ndarray
    velocities: np.ndarray
    dv: float
    half_width: float
    hi_mass_map: np.ndarray  # Msun / kpc^2, the same cells projected without velocities
    lost_fraction: float
    settings: dict = field(default_factory=dict)

    @property
    def moment0(self) -> np.ndarray:
        """Velocity-integrated T_b [K km/s]."""
        return self.tb.sum(axis=0) * self.dv

    @property
    def column_density(self) -> np.ndarray:
        """N_HI [cm^-2] in the velocity range."""
        return self.moment0 * N_HI_PER_K_KMS

    @property
    def moment1(self) -> np.ndarray:
        w = self.tb.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(w > 0, np.tensordot(self.velocities, self.tb, 1) / w, np.nan)

    @property
    def moment2(self) -> np.ndarray:
        w = self.tb.sum(axis=0)
        dev = (self.velocities[:, None, None] - self.moment1[None]) ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(w > 0, np.sqrt(np.nansum(dev * self.tb, axis=0) / w), np.nan)


def parse_velocity_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise ConfigError(f"--velocity-range {text!r}: expected LO:HI in km/s, e.g. -400:400") from None
    if not hi > lo:
        raise ConfigError(f"--velocity-range {text!r}: HI must exceed LO")
    return lo, hi


def channel_fractions(v: np.ndarray, sigma: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(C, N) fraction of each cell's Gaussian line (centre v, width sigma [km/s]) in each channel;
    a cell with sigma = 0 falls wholly into the channel that holds v (half and half on an edge)."""
    z = (edges[:, None] - v[None, :]) / (np.sqrt(2.0) * np.maximum(sigma, 1e-30)[None, :])
    cdf = 0.5 * (1.0 + erf(z))
    return np.diff(cdf, axis=0)


def systemic_velocity(particles: dict[str, ParticleSet]) -> np.ndarray:
    """Mass-weighted mean velocity [km/s] of all loaded particles that carry velocities."""
    m = [ps.mass for ps in particles.values() if "velocity" in ps.fields]
    v = [ps.fields["velocity"] for ps in particles.values() if "velocity" in ps.fields]
    if not m:
        raise InputError("no particle velocities in the source: a spectral cube needs gas Velocities")
    m, v = np.concatenate(m), np.concatenate(v)
    return (m[:, None] * v).sum(axis=0) / m.sum()


def hi_cube(gas: ParticleSet, rotation: np.ndarray, npix: int, half_width: float, channel_width: float,
            velocity_range: tuple[float, float], systemic: np.ndarray, hubble_kms_mpc: float = 0.0,
            turbulence: float = 0.0, eos_line_temperature: float = EOS_LINE_TEMPERATURE,
            threads: int | None = 1) -> HICube:
    """The HI cube of ``gas`` (fields 'hi_mass', 'velocity', 'temperature', optionally 'eos') seen
    along the rotated z axis. Velocities in km/s, lengths in kpc, H(z) in km/s/Mpc."""
    for name in ("hi_mass", "velocity", "temperature"):
        if name not in gas.fields:
            raise InputError(f"gas field {name!r} missing: a spectral cube needs HI masses, velocities and "
                             f"temperatures")
    if not channel_width > 0 or turbulence < 0 or not half_width > 0:
        raise ConfigError("--channel-width and the field must be positive, --turbulence >= 0")
    lo, hi = velocity_range
    nchan = int(round((hi - lo) / channel_width))
    if nchan < 1 or abs(nchan * channel_width - (hi - lo)) > 1e-6 * channel_width:
        raise ConfigError(f"--velocity-range {lo:g}:{hi:g} is not a whole number of {channel_width:g} km/s channels")
    edges = lo + channel_width * np.arange(nchan + 1)
    pos = gas.pos @ rotation.T
    inside = (np.abs(pos[:, 2]) < half_width) & np.all(np.abs(pos[:, :2]) < half_width + gas.hsml[:, None], axis=1)
    vel = (gas.fields["velocity"][inside] - systemic) @ rotation.T
    v_los = vel[:, 2] + hubble_kms_mpc * pos[inside, 2] * 1e-3
    temp = gas.fields["temperature"][inside]
    if "eos" in gas.fields:
        temp = np.where(gas.fields["eos"][inside] > 0, eos_line_temperature, temp)
    sigma = np.sqrt(_KT_OVER_MH * temp + turbulence ** 2)
    m_hi = gas.fields["hi_mass"][inside]
    frac = channel_fractions(v_los, sigma, edges)
    xy, h = pos[inside, :2], gas.hsml[inside]
    weights = np.vstack([m_hi[None, :] * frac, m_hi[None, :]])
    img = project_channels(xy, h, weights, npix, half_width, threads=threads)  # Msun / kpc^2 per channel
    sigma_hi = img[:-1]
    tb = hi_column_density(sigma_hi) / (N_HI_PER_K_KMS * channel_width)
    total = m_hi.sum()
    lost = float(1.0 - (m_hi * frac.sum(axis=0)).sum() / total) if total > 0 else 0.0
    return HICube(tb, 0.5 * (edges[1:] + edges[:-1]), float(channel_width), float(half_width), img[-1], lost,
                  {"turbulence_kms": turbulence, "eos_line_temperature_K": eos_line_temperature,
                   "hubble_kms_mpc": hubble_kms_mpc, "cells": int(inside.sum())})


def write_cube_fits(cube: HICube, out, header_extra: dict | None = None, overwrite: bool = False) -> Path:
    """FITS: primary HDU the T_b cube (BUNIT K) with a linear kpc x kpc x km/s coordinate system; image
    extensions MOM0 (K km/s), NHI (cm^-2), MOM1 and MOM2 (km/s)."""
    from astropy.io import fits

    out = check_output(out, overwrite)
    npix = cube.tb.shape[-1]
    pix = 2.0 * cube.half_width / npix
    hdr = fits.Header()
    for ax, (name, unit, ref, step, crpix) in enumerate(
            (("X", "kpc", 0.0, pix, (npix + 1) / 2), ("Y", "kpc", 0.0, pix, (npix + 1) / 2),
             ("VELO", "km/s", float(cube.velocities[0]), cube.dv, 1.0)), start=1):
        hdr[f"CTYPE{ax}"], hdr[f"CUNIT{ax}"] = name, unit
        hdr[f"CRVAL{ax}"], hdr[f"CDELT{ax}"], hdr[f"CRPIX{ax}"] = ref, step, crpix
    hdr["BUNIT"] = ("K", "21 cm T_b, optically thin, rest frame")
    hdr["LOSTFRAC"] = (cube.lost_fraction, "HI mass fraction outside the velocity range")
    for k, v in {**cube.settings, **(header_extra or {})}.items():
        hdr[k[:8].upper()] = v
    hdus = [fits.PrimaryHDU(cube.tb.astype(np.float32), header=hdr)]
    for name, data, unit in (("MOM0", cube.moment0, "K km s-1"), ("NHI", cube.column_density, "cm-2"),
                             ("MOM1", cube.moment1, "km s-1"), ("MOM2", cube.moment2, "km s-1")):
        ext = fits.ImageHDU(np.asarray(data, np.float32), name=name)
        for ax in (1, 2):
            for key in ("CTYPE", "CUNIT", "CRVAL", "CDELT", "CRPIX"):
                ext.header[f"{key}{ax}"] = hdr[f"{key}{ax}"]
        ext.header["BUNIT"] = unit
        hdus.append(ext)
    with atomic_path(out) as tmp:
        fits.HDUList(hdus).writeto(tmp)
    return out


def galaxy_cube(galaxy, npix: int, channel_width: float, velocity_range: tuple[float, float], fov: float = 1.0,
                fov_ref: str = "gas", inclination: float | None = None, turbulence: float = 5.0,
                hi_model: str = DEFAULT_HI_MODEL, threads: int | None = 1) -> HICube:
    """The HI cube of a loaded :class:`~skymorph.sim.sources.Galaxy`: field half-width fov x the
    half-mass radius of ``fov_ref`` (as the maps); seen along the simulation's z axis, or with
    ``inclination`` [deg] from face-on (stellar spin onto +z, then tilted about x)."""
    from .domains import REF_TYPES
    from .views import face_on_rotation

    gas = galaxy.particles.get("gas")
    if gas is None or not len(gas):
        raise InputError(f"{galaxy.source}: galaxy {galaxy.id} has no gas cells")
    if "velocity" not in gas.fields:
        raise InputError(f"{galaxy.source}: field PartType0/Velocities missing: a spectral cube needs gas velocities")
    apply_hi_model(gas, hi_model)
    r_half = galaxy.half_mass_radius[REF_TYPES[fov_ref]]
    if not r_half > 0:
        raise InputError(f"{galaxy.source}: galaxy {galaxy.id} has no {fov_ref} half-mass radius")
    rot = np.eye(3)
    if inclination is not None:
        tilt = np.radians(inclination)
        c, s = np.cos(tilt), np.sin(tilt)
        rot = np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]]) @ face_on_rotation(galaxy)
    z = galaxy.header.redshift
    hubble = float(galaxy.header.cosmology.H(z).to(u.km / u.s / u.Mpc).value)
    cube = hi_cube(gas, rot, npix, fov * r_half, channel_width, velocity_range, systemic_velocity(galaxy.particles),
                   hubble, turbulence, threads=threads)
    cube.settings.update({"galaxy": int(galaxy.id), "redshift": float(z), "hi_model": hi_model,
                          **({} if inclination is None else {"inclination_deg": float(inclination)})})
    return cube
