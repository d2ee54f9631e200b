"""Synthetic galaxy generator writing IllustrisTNG web-API cutouts (DESIGN.md section 4).

Every galaxy is drawn from published relations with their scatter (see
:mod:`skymorph.sim.relations`) and written in TNG code units with TNG's group and field names,
so the reader path that serves real cutouts serves these too:

- halo: M200 log-uniform in [1e11, 5e12] Msun; c200 from Dutton & Macciò 2014 (0.11 dex);
  truncated NFW DM, stretched to axis ratios b/a, c/a ~ U(0.6, 1) at fixed volume and randomly
  oriented; isotropic Gaussian velocities with sigma(r) = V_c(r) / sqrt(2).
- stars: M* from Moster+13 (0.15 dex); spin lambda lognormal (Bullock+01); exponential disk with
  R_d = lambda R200 / sqrt(2) (Mo, Mao & White 98), sech^2 vertical profile, z0 = U(0.1, 0.2) R_d;
  Hernquist bulge with a = 0.2 R_d and B/T ~ U(0, 0.5); a weak young stellar spiral sharing the
  gas arms' phase; ~1 per cent wind particles (GFM_StellarFormationTime <= 0).
- gas: cold disk from the xGASS HI fraction (Catinella+18, 0.35 dex; M_cold = M_HI / (X_H 0.7)),
  R_gas = U(1.5, 2) R_d, flaring self-gravitating layer, logarithmic spiral arms and dense clumps;
  beta-model hot halo at T_vir; baryons capped at the cosmic share. Equal-mass cells (Arepo's
  target mass), split between hot halo / disk / clumps in proportion to mass. Density: the
  32-neighbour kernel estimate without the self term (:func:`cell_density`); hydrogen in
  ionisation equilibrium with self-shielding (Rahmati+13) and collisional ionisation;
  |B| ~ rho^(2/3); Springel & Hernquist SFR above n_H = 0.1 cm^-3; radial metallicity gradient
  about the Tremonti+04 mass-metallicity relation.

Catalogue (``catalog.hdf5``): TNG-like /Subhalo fields computed from the written particles
(SubhaloMassType and SubhaloLenType include the wind particles, as TNG's PartType4 does;
SubhaloHalfmassRadType excludes them) and /Truth in physical units, each with a ``unit``.

Galaxy i of a run is drawn from ``np.random.default_rng([seed, i])`` alone, so it does not depend
on how many galaxies are made, and equal seeds give byte-identical files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
from astropy import units as u

from skymorph import sph
from skymorph.atomic import atomic_path
from skymorph.errors import OutputExistsError, SkymorphError
from skymorph.sim import relations as rel
from skymorph.sim import units
from skymorph.sim.particles import half_mass_radius

__all__ = [
    "BOX_SIZE",
    "GalaxyParams",
    "SynthGalaxy",
    "draw_params",
    "sample_galaxy",
    "write_cutout",
    "synthesize",
    "cell_density",
    "enclosed_mass",
    "gas_scale_height",
]

#: Periodic box side [ckpc/h] (TNG100-1).
BOX_SIZE = 75000.0
#: Little h of the TNG cosmology.
HUBBLE = 0.6774
MIN_PARTICLES = 50
MAX_REDSHIFT = 5.0
#: Neighbours in the gas kernel density (a Voronoi cell's volume ~ m / rho).
N_NGB = 32
#: Truncation of the stellar disk and bulge [R_d] and of the cold gas disk [R_gas].
STAR_TRUNC_RD = 8.0
GAS_TRUNC_RG = 7.0
#: Share of star particles written as wind-phase particles.
WIND_FRACTION = 0.01
#: Mean neutral fraction assumed when turning the M_HI target into a cold-gas mass:
#: M_cold = M_HI / (X_H * F_NEUTRAL_COLD).
F_NEUTRAL_COLD = 0.7
#: Minimum number of gas cells per gas component (hot halo, smooth disk, clumps).
MIN_PER_COMPONENT = 4
GAS_DISK_SIGMA_KMS = 10.0
CLUMP_SIGMA_KMS = 5.0
#: Particle-ID stride between galaxies (IDs unique across a run).
ID_STRIDE = 2**32


# ---------------------------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GalaxyParams:
    """The hidden truth of one galaxy (physical units: Msun, kpc, km/s, K, Gauss, rad)."""

    redshift: float
    centre: np.ndarray  # (3,) box position [ckpc/h], exactly representable in float32
    bulk_velocity: np.ndarray  # (3,) peculiar velocity [km/s]
    m200: float
    r200: float
    v200: float
    concentration: float
    axis_ba: float
    axis_ca: float
    halo_rotation: np.ndarray  # (3, 3) principal frame -> box frame
    mstar: float
    spin: float
    bulge_fraction: float
    r_d: float
    z0: float
    disk_basis: np.ndarray  # (3, 3) rows e1, e2, n (n = disk normal)
    m_hi: float
    m_cold: float
    r_gas: float
    z0_gas: float  # cold-gas sech^2 scale height at R = r_gas (flaring, see gas_scale_height)
    m_hot: float
    r_core: float
    t_vir: float
    arms: int
    pitch_deg: float
    arm_phase: float
    arm_frac_gas: float
    arm_frac_star: float
    arm_kappa: float
    clump_frac: float
    n_clumps: int
    clump_size: float
    b0_gauss: float
    b_ordered: float
    z_ref: float  # gas metallicity (mass fraction) at R = 1.68 R_d
    z_grad_per_rd: float  # dex per R_d
    m_dm: float

    @property
    def disk_normal(self) -> np.ndarray:
        return self.disk_basis[2]

    def truth(self) -> dict[str, tuple[object, str]]:
        """Truth parameters as {name: (value, unit)}, the catalogue's /Truth group."""
        return {
            "M200": (self.m200, "Msun"),
            "R200": (self.r200, "kpc"),
            "V200": (self.v200, "km/s"),
            "Concentration": (self.concentration, ""),
            "AxisRatioBA": (self.axis_ba, ""),
            "AxisRatioCA": (self.axis_ca, ""),
            "MStar": (self.mstar, "Msun"),
            "Spin": (self.spin, ""),
            "BulgeFraction": (self.bulge_fraction, ""),
            "DiskScaleLength": (self.r_d, "kpc"),
            "DiskScaleHeight": (self.z0, "kpc"),
            "DiskNormal": (self.disk_normal, ""),
            "MHI": (self.m_hi, "Msun"),
            "MGasDisk": (self.m_cold, "Msun"),
            "GasDiskScaleLength": (self.r_gas, "kpc"),
            "GasDiskScaleHeight": (self.z0_gas, "kpc"),  # at R = R_gas (the layer flares)
            "MHotHalo": (self.m_hot, "Msun"),
            "HotHaloCoreRadius": (self.r_core, "kpc"),
            "VirialTemperature": (self.t_vir, "K"),
            "SpiralArms": (self.arms, ""),
            "PitchAngle": (self.pitch_deg, "deg"),
            "SpiralPhase": (self.arm_phase, "rad"),
            "ClumpMassFraction": (self.clump_frac, ""),
            "BField0": (self.b0_gauss, "Gauss"),
            "MetallicityGradient": (self.z_grad_per_rd / self.r_d, "dex/kpc"),
            "Redshift": (self.redshift, ""),
        }


@dataclass
class SynthGalaxy:
    """One sampled galaxy in physical units, positions relative to ``params.centre``.

    ``gas``: pos [kpc], vel [km/s], mass [Msun], rho [Msun/kpc^3], n_h [cm^-3], temperature [K],
    x_e, f_hi, bfield [Gauss] (N, 3), sfr [Msun/yr], metallicity, component (0 hot, 1 disk, 2 clump).
    ``dm``: pos, vel, mass. ``stars``: pos, vel, mass, a_form, metallicity,
    component (0 disk, 1 bulge, 2 young arm, 3 wind).
    """

    params: GalaxyParams
    gas: dict[str, np.ndarray] = field(default_factory=dict)
    dm: dict[str, np.ndarray] = field(default_factory=dict)
    stars: dict[str, np.ndarray] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Small geometric and sampling helpers
# ---------------------------------------------------------------------------------------------
def _unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform rotation on SO(3) from a normalised Gaussian quaternion."""
    q0, q1, q2, q3 = rng.normal(size=4)
    s = np.sqrt(q0**2 + q1**2 + q2**2 + q3**2)
    w, x, y, z = q0 / s, q1 / s, q2 / s, q3 / s
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _disk_basis(normal: np.ndarray) -> np.ndarray:
    """Rows e1, e2, n: e1 = z_hat x n normalised (x_hat if n is along z), e2 = n x e1.

    SpiralPhase is measured from e1 towards e2.
    """
    ref = np.array([0.0, 0.0, 1.0]) if abs(normal[2]) < 0.999 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(ref, normal)
    e1 /= np.linalg.norm(e1)
    return np.array([e1, np.cross(normal, e1), normal])


def _inverse_cdf(rng: np.random.Generator, n: int, x: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """Sample x from a tabulated, monotonic cumulative distribution (normalised here)."""
    return np.interp(rng.random(n), cdf / cdf[-1], x)


def _exp_disk_radius(rng, n, scale, trunc):
    """Radii of an exponential surface density Sigma ~ exp(-R / scale), truncated at trunc."""
    x = np.linspace(0.0, trunc / scale, 4096)
    return scale * _inverse_cdf(rng, n, x, 1.0 - (1.0 + x) * np.exp(-x))


def _sech2_height(rng, n, z0):
    """Heights of rho ~ sech^2(z / z0): z = z0 artanh(2u - 1)."""
    return z0 * np.arctanh(np.clip(2.0 * rng.random(n) - 1.0, -1 + 1e-12, 1 - 1e-12))


def _nfw_radius(rng, n, c, r200):
    """Radii of an NFW profile truncated at R200, by inverting mu(x) / mu(c) on a table."""
    x = np.concatenate([[0.0], np.geomspace(1e-4 * c, c, 4096)])
    return r200 / c * _inverse_cdf(rng, n, x, rel.nfw_mu(x))


def _beta_radius(rng, n, r_core, r_max):
    """Radii of a beta = 2/3 model rho ~ 1 / (1 + (r/rc)^2), M(<r) ~ x - arctan x, truncated."""
    x = np.concatenate([[0.0], np.geomspace(1e-4, r_max / r_core, 4096)])
    return r_core * _inverse_cdf(rng, n, x, x - np.arctan(x))


def _hernquist_radius(rng, n, a, r_max):
    """Radii of a Hernquist sphere truncated at r_max: M(<r) ~ (r / (r + a))^2, inverted exactly."""
    s = np.sqrt(rng.random(n)) * (r_max / (r_max + a))
    return a * s / (1.0 - s)


def _arm_azimuth(rng, radius, params: GalaxyParams, in_arm: np.ndarray) -> np.ndarray:
    """Azimuths: uniform, or (where in_arm) von Mises about trailing logarithmic arms.

    Arm k sits at phi_k(R) = phase - ln(R / R_gas) / tan(pitch) + 2 pi k / m (trailing for
    rotation in +phi); the offset m dphi ~ vonMises(0, kappa).
    """
    n = len(radius)
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    m = params.arms
    arm_centre = (params.arm_phase - np.log(np.maximum(radius, 1e-6) / params.r_gas)
                  / np.tan(np.radians(params.pitch_deg)))
    offset = (rng.vonmises(0.0, params.arm_kappa, n) + 2.0 * np.pi * rng.integers(0, m, n)) / m
    return np.mod(np.where(in_arm, arm_centre + offset, phi), 2.0 * np.pi)


def _disk_to_box(basis, radius, phi, z, v_r, v_phi, v_z):
    """Disk-frame cylindrical positions/velocities -> box-frame Cartesian (N, 3) arrays."""
    c, s = np.cos(phi), np.sin(phi)
    e1, e2, nrm = basis
    pos = (radius * c)[:, None] * e1 + (radius * s)[:, None] * e2 + z[:, None] * nrm
    vx = v_r * c - v_phi * s
    vy = v_r * s + v_phi * c
    vel = vx[:, None] * e1 + vy[:, None] * e2 + v_z[:, None] * nrm
    return pos, vel


def _allocate(n_total: int, weights, n_min: int) -> np.ndarray:
    """Split n_total particles proportionally to weights (largest remainder), at least n_min each."""
    w = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    k = len(w)
    share = n_min + w * (n_total - k * n_min)
    n = np.floor(share).astype(np.int64)
    rest = n_total - n.sum()
    order = np.argsort(-(share - n), kind="stable")
    n[order[:rest]] += 1
    return n


@lru_cache(maxsize=16)
def _cosmic_time_table(redshift: float) -> tuple[np.ndarray, np.ndarray]:
    """(scale factor, cosmic time [Gyr]) from a = 1e-3 to the snapshot's a."""
    a = np.geomspace(1e-3, 1.0 / (1.0 + redshift), 512)
    t = rel.TNG_COSMOLOGY.age(1.0 / a - 1.0).to(u.Gyr).value
    return a, t


def _scale_factor_at(t_gyr, redshift: float) -> np.ndarray:
    a, t = _cosmic_time_table(float(redshift))
    return np.interp(t_gyr, t, a)


# ---------------------------------------------------------------------------------------------
# Drawing the galaxy's parameters (the truth)
# ---------------------------------------------------------------------------------------------
def _hot_halo_fraction(m200: float, scatter: float) -> float:
    """Hot gas within R200 as a fraction of M200 (a plausible choice, not a fit).

    M_hot = 0.13 f_b (M200 / 1e12 Msun)^0.3 10^(0.15 N) M200: about an eighth of the cosmic
    baryon share of a Milky-Way halo, less in dwarfs (the 'missing baryons' of low-mass haloes).
    """
    f_b = rel.TNG_COSMOLOGY.Ob0 / rel.TNG_COSMOLOGY.Om0
    return 0.13 * f_b * (m200 / 1e12) ** 0.3 * 10.0 ** (0.15 * scatter)


def draw_params(rng: np.random.Generator, redshift: float = 0.0, near_corner: bool = False) -> GalaxyParams:
    """Draw one galaxy's parameters from the published relations, a fixed number of draws.

    ``near_corner`` puts the centre within 3 ckpc/h of the box corner so the galaxy straddles
    all three periodic boundaries.
    """
    z = float(redshift)
    u3 = rng.random(3)
    centre = np.mod(u3 * 6.0 - 3.0, BOX_SIZE) if near_corner else u3 * BOX_SIZE
    centre = np.where(centre >= BOX_SIZE, 0.0, centre).astype(np.float32).astype(np.float64)
    bulk = rng.normal(0.0, 150.0, 3)

    # halo
    m200 = 10.0 ** rng.uniform(11.0, np.log10(5e12))
    r200 = float(rel.r200_kpc(m200, z))
    v200 = float(rel.circular_velocity_kms(m200, r200))
    conc = float(rel.concentration_dutton_maccio14(m200, z, HUBBLE) * 10.0 ** (0.11 * rng.normal()))
    ba, ca = np.sort(rng.uniform(0.6, 1.0, 2))[::-1]
    halo_rot = _random_rotation(rng)

    # stars
    mstar = float(rel.moster13_stellar_mass(m200, z) * 10.0 ** (rel.MOSTER13_SCATTER_DEX * rng.normal()))
    spin = float(np.clip(rel.SPIN_MEDIAN * np.exp(rel.SPIN_SIGMA_LN * rng.normal()), 0.01, 0.15))
    bt = rng.uniform(0.0, 0.5)
    r_d = float(rel.mmw98_disk_scale_length(spin, r200))
    z0 = rng.uniform(0.1, 0.2) * r_d
    basis = _disk_basis(_unit_vectors(rng, 1)[0])

    # gas masses: cold disk from the xGASS HI fraction, hot halo; together with the stars they
    # stay within the cosmic baryon share (caps only the rare gas-rich tail of dwarfs)
    log_fhi = rel.catinella18_log_hi_fraction(mstar) + rel.CATINELLA18_SCATTER_DEX * rng.normal()
    m_hot = _hot_halo_fraction(m200, rng.normal()) * m200
    budget = rel.TNG_COSMOLOGY.Ob0 / rel.TNG_COSMOLOGY.Om0 * m200 - mstar
    m_cold = min(mstar * 10.0**log_fhi / (units.X_H * F_NEUTRAL_COLD), 0.75 * budget)
    m_hot = min(m_hot, budget - m_cold)
    m_hi = m_cold * units.X_H * F_NEUTRAL_COLD

    # cold disk structure
    r_gas = rng.uniform(1.5, 2.0) * r_d
    z0_gas = float(gas_scale_height(r_gas, (1.0 - bt) * mstar, r_d, m_cold, r_gas))
    arms = int(rng.integers(2, 4))
    pitch = rng.uniform(10.0, 30.0)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    arm_gas, arm_star = rng.uniform(0.3, 0.6), rng.uniform(0.05, 0.15)
    kappa = rng.uniform(2.5, 5.0)
    clump_frac = rng.uniform(0.05, 0.15)
    n_clumps = int(rng.integers(6, 17))
    clump_size = rng.uniform(0.02, 0.05) * r_gas

    # hot halo
    r_core = rng.uniform(0.05, 0.15) * r200
    t_vir = float(rel.virial_temperature_k(v200))

    # magnetic field, metallicity
    b0 = rng.uniform(2.0, 6.0) * 1e-6
    b_ord = rng.uniform(0.4, 0.8)
    z_ref = float(rel.metallicity_from_oh(rel.tremonti04_oxygen_abundance(mstar)) * 10.0 ** (0.1 * rng.normal()))
    z_grad = -0.175 + 0.04 * rng.normal()  # -0.05 dex/kpc for a Milky-Way R_d = 3.5 kpc

    return GalaxyParams(
        redshift=z, centre=centre, bulk_velocity=bulk, m200=m200, r200=r200, v200=v200,
        concentration=conc, axis_ba=float(ba), axis_ca=float(ca), halo_rotation=halo_rot,
        mstar=mstar, spin=spin, bulge_fraction=float(bt), r_d=r_d, z0=float(z0), disk_basis=basis,
        m_hi=m_hi, m_cold=float(m_cold), r_gas=float(r_gas), z0_gas=float(z0_gas), m_hot=float(m_hot),
        r_core=float(r_core), t_vir=t_vir, arms=arms, pitch_deg=float(pitch), arm_phase=float(phase),
        arm_frac_gas=float(arm_gas), arm_frac_star=float(arm_star), arm_kappa=float(kappa),
        clump_frac=float(clump_frac), n_clumps=n_clumps, clump_size=float(clump_size),
        b0_gauss=float(b0), b_ordered=float(b_ord), z_ref=z_ref, z_grad_per_rd=float(z_grad),
        m_dm=float(m200 - mstar - m_cold - m_hot),
    )


# ---------------------------------------------------------------------------------------------
# Mass model: surface densities, gas layer, spherical enclosed mass for circular speeds
# ---------------------------------------------------------------------------------------------
def _exp_surface_density(radius, mass, scale, trunc):
    """Sigma(R) [Msun/kpc^2] of an exponential disk of total mass [Msun] truncated at trunc [kpc]."""
    xt = trunc / scale
    return mass / (2 * np.pi * scale**2 * (1 - (1 + xt) * np.exp(-xt))) * np.exp(-np.asarray(radius) / scale)


def gas_scale_height(radius, m_star_disk, r_d, m_cold, r_gas):
    """Cold-gas sech^2 scale height z0(R) [kpc] of a self-gravitating isothermal layer (Spitzer 1942):

    z0 = sigma^2 / (pi G Sigma_disk(R)), sigma = 10 km/s, Sigma_disk = stellar + cold-gas disk
    surface density; the layer flares outwards. Clipped to [0.01, 0.25] R_gas.
    """
    sigma = (_exp_surface_density(radius, m_star_disk, r_d, STAR_TRUNC_RD * r_d)
             + _exp_surface_density(radius, m_cold, r_gas, GAS_TRUNC_RG * r_gas))
    z0 = GAS_DISK_SIGMA_KMS**2 / (np.pi * rel.G_KPC_KMS2_MSUN * sigma)
    return np.clip(z0, 0.01 * r_gas, 0.25 * r_gas)


def _gas_z0(radius, p: GalaxyParams):
    return gas_scale_height(radius, (1 - p.bulge_fraction) * p.mstar, p.r_d, p.m_cold, p.r_gas)


def enclosed_mass(r, p: GalaxyParams) -> np.ndarray:
    """Total mass [Msun] inside radius r [kpc]: NFW + Hernquist bulge + exponential disks
    (spherical approximation M_d [1 - (1 + x) e^-x]) + beta-model hot halo, all truncated as sampled."""
    r = np.asarray(r, dtype=np.float64)
    rs = p.r200 / p.concentration
    dm = p.m_dm * rel.nfw_mu(np.minimum(r, p.r200) / rs) / rel.nfw_mu(p.concentration)
    a, rt = 0.2 * p.r_d, STAR_TRUNC_RD * p.r_d
    m_b = p.bulge_fraction * p.mstar
    bulge = m_b * (np.minimum(r, rt) / (np.minimum(r, rt) + a)) ** 2 / (rt / (rt + a)) ** 2

    def exp_disk(mass, scale, trunc):
        x, xt = np.minimum(r, trunc) / scale, trunc / scale
        return mass * (1 - (1 + x) * np.exp(-x)) / (1 - (1 + xt) * np.exp(-xt))

    stars = exp_disk(p.mstar - m_b, p.r_d, rt)
    cold = exp_disk(p.m_cold, p.r_gas, min(GAS_TRUNC_RG * p.r_gas, p.r200))
    x, xt = np.minimum(r, p.r200) / p.r_core, p.r200 / p.r_core
    hot = p.m_hot * (x - np.arctan(x)) / (xt - np.arctan(xt))
    return dm + bulge + stars + cold + hot


def _vcirc(r, p: GalaxyParams) -> np.ndarray:
    r = np.maximum(np.asarray(r, dtype=np.float64), 1e-3)
    return rel.circular_velocity_kms(enclosed_mass(r, p), r)


# ---------------------------------------------------------------------------------------------
# Particle sampling per species
# ---------------------------------------------------------------------------------------------
def _sample_dm(rng, p: GalaxyParams, n: int) -> dict[str, np.ndarray]:
    r = _nfw_radius(rng, n, p.concentration, p.r200)
    sph_pos = r[:, None] * _unit_vectors(rng, n)
    stretch = np.array([1.0, p.axis_ba, p.axis_ca]) / np.cbrt(p.axis_ba * p.axis_ca)
    pos = (sph_pos * stretch) @ p.halo_rotation.T
    sigma = _vcirc(r, p) / np.sqrt(2.0)
    vel = rng.normal(size=(n, 3)) * sigma[:, None]
    return {"pos": pos, "vel": vel + p.bulk_velocity, "mass": np.full(n, p.m_dm / n)}


def _gas_metallicity(radius, p: GalaxyParams):
    """Gas Z(R) = Z_ref 10^(grad (R / R_d - 1.68)), Z_ref at the disk's effective radius."""
    return p.z_ref * 10.0 ** (p.z_grad_per_rd * (np.asarray(radius) / p.r_d - 1.68))


def _sample_stars(rng, p: GalaxyParams, n: int) -> dict[str, np.ndarray]:
    a_snap, t_obs = 1.0 / (1.0 + p.redshift), _cosmic_time_table(p.redshift)[1][-1]
    m_part = p.mstar / n
    n_bulge = int(round(p.bulge_fraction * n))
    n_disk = n - n_bulge
    rt = STAR_TRUNC_RD * p.r_d

    # disk: inside-out formation times, a young subset traces the gas arms
    radius = _exp_disk_radius(rng, n_disk, p.r_d, rt)
    young = rng.random(n_disk) < p.arm_frac_star
    phi = _arm_azimuth(rng, radius, p, young)
    zd = _sech2_height(rng, n_disk, p.z0)
    t_form = t_obs * (0.1 + 0.9 * rng.random(n_disk) ** np.exp(-radius / (2.0 * p.r_d)))
    young_age = np.minimum(rng.exponential(0.15, n_disk), min(1.0, 0.5 * t_obs))
    t_form = np.where(young, t_obs - young_age, t_form)
    age = t_obs - t_form
    # vertical equilibrium of an isothermal sheet (z0 = sigma_z^2 / (pi G Sigma)), sigma_R = 1.5
    # sigma_z, heating with age (sigma ~ age^(1/3)); asymmetric drift (Binney & Tremaine eq. 4.228)
    sigma_d = _exp_surface_density(radius, p.mstar - n_bulge * m_part, p.r_d, rt)
    sig_z = np.sqrt(np.pi * rel.G_KPC_KMS2_MSUN * sigma_d * p.z0)
    sig_z *= np.clip((age / t_obs) ** (1.0 / 3.0), 0.25, 1.0)
    sig_r = 1.5 * sig_z
    vc = _vcirc(radius, p)
    v_phi = np.sqrt(np.maximum(vc**2 - sig_r**2 * (2.0 * radius / p.r_d - 0.5), 0.0))
    pos_d, vel_d = _disk_to_box(
        p.disk_basis, radius, phi, zd,
        sig_r * rng.normal(size=n_disk), v_phi + sig_r / np.sqrt(2) * rng.normal(size=n_disk),
        sig_z * rng.normal(size=n_disk))
    z_d = _gas_metallicity(radius, p) * 10.0 ** (-0.3 * age / t_obs + 0.1 * rng.normal(size=n_disk))

    # bulge: old, isotropic
    rb = _hernquist_radius(rng, n_bulge, 0.2 * p.r_d, rt)
    pos_b = rb[:, None] * _unit_vectors(rng, n_bulge)
    vel_b = rng.normal(size=(n_bulge, 3)) * (_vcirc(rb, p) / np.sqrt(2.0))[:, None]
    t_b = t_obs * rng.uniform(0.05, 0.35, n_bulge)
    z_b = _gas_metallicity(rb, p) * 10.0 ** (-0.3 * (1 - t_b / t_obs) + 0.1 * rng.normal(size=n_bulge))

    # wind-phase particles: small masses, above/below the disk, flowing out
    n_w = max(1, int(round(WIND_FRACTION * n)))
    rw = _exp_disk_radius(rng, n_w, p.r_gas, GAS_TRUNC_RG * p.r_gas)
    zw = rng.choice([-1.0, 1.0], n_w) * rng.uniform(0.2, 2.0, n_w) * p.r_d
    v_out = np.sign(zw) * p.v200 * rng.uniform(0.5, 1.5, n_w)
    pos_w, vel_w = _disk_to_box(p.disk_basis, rw, rng.uniform(0, 2 * np.pi, n_w), zw,
                                20.0 * rng.normal(size=n_w), _vcirc(rw, p), v_out)
    a_w = -a_snap * rng.uniform(0.9, 1.0, n_w)

    comp = np.concatenate([np.where(young, 2, 0), np.ones(n_bulge, int), np.full(n_w, 3)]).astype(np.int8)
    return {
        "pos": np.concatenate([pos_d, pos_b, pos_w]),
        "vel": np.concatenate([vel_d, vel_b, vel_w]) + p.bulk_velocity,
        "mass": np.concatenate([np.full(n, m_part), m_part * rng.uniform(0.05, 0.3, n_w)]),
        "a_form": np.concatenate([_scale_factor_at(t_form, p.redshift),
                                  _scale_factor_at(t_b, p.redshift), a_w]),
        "metallicity": np.concatenate([z_d, z_b, _gas_metallicity(rw, p)]),
        "component": comp,
    }


def _sample_gas_positions(rng, p: GalaxyParams, n: int):
    """Positions, velocities, metallicities, temperatures and labels of the three gas phases."""
    n_hot, n_disk, n_clump = _allocate(
        n, [p.m_hot, p.m_cold * (1 - p.clump_frac), p.m_cold * p.clump_frac], MIN_PER_COMPONENT)
    # hot halo: beta model, virial temperature, turbulent isotropic motions
    rh = _beta_radius(rng, n_hot, p.r_core, p.r200)
    pos_h = rh[:, None] * _unit_vectors(rng, n_hot)
    vel_h = rng.normal(size=(n_hot, 3)) * 0.25 * p.v200
    t_h = p.t_vir * 10.0 ** np.clip(0.08 * rng.normal(size=n_hot), -0.2, 0.2)
    z_h = 0.25 * p.z_ref * 10.0 ** (0.15 * rng.normal(size=n_hot))

    # smooth cold disk with spiral arms, on circular orbits
    r_max = min(GAS_TRUNC_RG * p.r_gas, p.r200)
    rd = _exp_disk_radius(rng, n_disk, p.r_gas, r_max)
    phi = _arm_azimuth(rng, rd, p, rng.random(n_disk) < p.arm_frac_gas)
    dv = GAS_DISK_SIGMA_KMS * rng.normal(size=(3, n_disk))
    pos_d, vel_d = _disk_to_box(p.disk_basis, rd, phi, _sech2_height(rng, n_disk, _gas_z0(rd, p)),
                                dv[0], _vcirc(rd, p) + dv[1], dv[2])
    t_d = 10.0 ** np.clip(3.9 + 0.08 * rng.normal(size=n_disk), 3.6, 4.1)
    z_d = _gas_metallicity(rd, p) * 10.0 ** (0.05 * rng.normal(size=n_disk))

    # clumps: Gaussian knots centred mostly in the arms of the inner disk
    rc = _exp_disk_radius(rng, p.n_clumps, p.r_gas, min(3.0 * p.r_gas, r_max))
    phic = _arm_azimuth(rng, rc, p, rng.random(p.n_clumps) < 0.8)
    cpos, cvel = _disk_to_box(p.disk_basis, rc, phic, _sech2_height(rng, p.n_clumps, 0.5 * _gas_z0(rc, p)),
                              np.zeros(p.n_clumps), _vcirc(rc, p), np.zeros(p.n_clumps))
    member = rng.integers(0, p.n_clumps, n_clump)
    pos_c = cpos[member] + p.clump_size * rng.normal(size=(n_clump, 3))
    vel_c = cvel[member] + CLUMP_SIGMA_KMS * rng.normal(size=(n_clump, 3))
    t_c = 10.0 ** np.clip(3.2 + 0.15 * rng.normal(size=n_clump), 2.7, 3.7)
    z_c = _gas_metallicity(rc[member], p) * 10.0 ** (0.05 * rng.normal(size=n_clump))

    comp = np.concatenate([np.zeros(n_hot, int), np.ones(n_disk, int), np.full(n_clump, 2)]).astype(np.int8)
    return (np.concatenate([pos_h, pos_d, pos_c]), np.concatenate([vel_h, vel_d, vel_c]),
            np.concatenate([t_h, t_d, t_c]), np.concatenate([z_h, z_d, z_c]), comp)


def _magnetic_field(rng, pos, n_h, p: GalaxyParams) -> np.ndarray:
    """B [Gauss] (N, 3): |B| = B0 (n_H / 1 cm^-3)^(2/3) 10^(0.2 N) (flux freezing in isotropic
    collapse), direction = ordered toroidal (azimuthal about the disk normal, sense of rotation)
    mixed with a random turbulent direction."""
    n = len(pos)
    strength = p.b0_gauss * np.asarray(n_h) ** (2.0 / 3.0) * 10.0 ** (0.2 * rng.normal(size=n))
    nrm = p.disk_normal
    e_phi = np.cross(nrm, pos)
    norm = np.linalg.norm(e_phi, axis=1, keepdims=True)
    e_phi = np.where(norm > 0, e_phi / np.where(norm > 0, norm, 1.0), 0.0)
    direction = p.b_ordered * e_phi + (1.0 - p.b_ordered) * _unit_vectors(rng, n)
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-30)
    return strength[:, None] * direction


def cell_density(pos: np.ndarray, mass: np.ndarray, n_ngb: int = N_NGB) -> np.ndarray:
    """Density [mass / length^3] of randomly (Poisson) sampled cells: the 32-neighbour cubic-spline
    estimate of :func:`skymorph.sph.kernel_density` without the cell's own kernel weight.

    For Poisson points the self term m W(0, h) adds ~ 32 / (3 (n_ngb - 1)) = +34 per cent on
    average (a relaxed Voronoi mesh or glass has no such bias); leaving it out makes the estimate
    unbiased, so m / rho is the cell's volume and sum(m / rho) fills the sampled volume.
    """
    rho, h = sph.kernel_density(pos, mass, n_ngb)
    loo = rho - mass * sph.cubic_spline_3d(0.0, h)
    return np.where(loo > 0, loo, rho)  # (all neighbours on the support edge: keep the raw sum)


def _sample_gas(rng, p: GalaxyParams, n: int) -> dict[str, np.ndarray]:
    pos, vel, temp, metal, comp = _sample_gas_positions(rng, p, n)
    mass = np.full(n, (p.m_hot + p.m_cold) / n)
    rho = cell_density(pos, mass)
    n_h = units.hydrogen_number_density(rho)
    f_hi = rel.neutral_hydrogen_fraction(n_h, temp, p.redshift)
    x_e = rel.electron_abundance(f_hi, temp)
    cold = comp > 0  # only the cold phase forms stars; hot cells next to the disk do not
    return {
        "pos": pos, "vel": vel + p.bulk_velocity, "mass": mass, "rho": rho, "n_h": n_h,
        "temperature": temp, "x_e": x_e, "f_hi": f_hi,
        "bfield": _magnetic_field(rng, pos, n_h, p),
        "sfr": np.where(cold, rel.sfr_springel_hernquist(mass, n_h), 0.0),
        "metallicity": np.maximum(metal, 1e-6), "component": comp,
    }


def _check_sizes(n_particles: int, redshift: float) -> None:
    if int(n_particles) != n_particles or n_particles < MIN_PARTICLES:
        raise SkymorphError(
            f"n_particles must be an integer >= {MIN_PARTICLES} per species (got {n_particles!r}): "
            "fewer cells cannot resolve a disk, a bulge and a halo")
    if not (np.isfinite(redshift) and 0.0 <= redshift <= MAX_REDSHIFT):
        raise SkymorphError(
            f"redshift must be in [0, {MAX_REDSHIFT}] (got {redshift!r}): the relations used "
            "(Dutton & Macciò 2014, Rahmati+13 UV background) are calibrated there")


def sample_galaxy(rng: np.random.Generator, n_particles: int = 10_000, redshift: float = 0.0,
                  near_corner: bool = False) -> SynthGalaxy:
    """Draw one galaxy: parameters first (so the truth does not depend on n_particles), then
    n_particles DM particles, n_particles stars (+ ~1 per cent wind particles) and n_particles gas
    cells. Physical units; positions relative to the centre."""
    _check_sizes(n_particles, redshift)
    n = int(n_particles)
    p = draw_params(rng, redshift, near_corner)
    return SynthGalaxy(params=p, dm=_sample_dm(rng, p, n), stars=_sample_stars(rng, p, n),
                       gas=_sample_gas(rng, p, n))


# ---------------------------------------------------------------------------------------------
# Writing TNG-format files
# ---------------------------------------------------------------------------------------------
def _header_attrs(redshift: float) -> dict[str, object]:
    c = rel.TNG_COSMOLOGY
    return {
        "BoxSize": BOX_SIZE,
        "Time": 1.0 / (1.0 + redshift),
        "Redshift": float(redshift),
        "HubbleParam": HUBBLE,
        "Omega0": float(c.Om0),
        "OmegaLambda": float(c.Ode0),
        "OmegaBaryon": float(c.Ob0),
        "NumFilesPerSnapshot": np.int32(1),
        "MassTable": np.zeros(6, dtype=np.float64),
    }


def _box_coordinates(centre: np.ndarray, offset_kpc: np.ndarray, cu: units.CodeUnits) -> np.ndarray:
    """Absolute comoving coordinates [ckpc/h], wrapped into [0, BoxSize)."""
    x = np.mod(centre + offset_kpc / cu.length_kpc, BOX_SIZE)
    return np.where(x >= BOX_SIZE, x - BOX_SIZE, x)


def _code_arrays(g: SynthGalaxy, galaxy_id: int) -> tuple[dict[str, dict[str, np.ndarray]], float]:
    """The cutout's particle groups in code units (as written) and the DM particle mass."""
    p = g.params
    a = 1.0 / (1.0 + p.redshift)
    cu = units.CodeUnits(a=a, h=HUBBLE)
    f32 = np.float32
    gas, dm, st = g.gas, g.dm, g.stars
    n_gas, n_dm, n_st = len(gas["mass"]), len(dm["mass"]), len(st["mass"])
    ids = np.arange(1, n_gas + n_dm + n_st + 1, dtype=np.uint64) + np.uint64(galaxy_id) * np.uint64(ID_STRIDE)
    x_e = gas["x_e"]
    groups = {
        "PartType0": {
            "Coordinates": _box_coordinates(p.centre, gas["pos"], cu),
            "Masses": (gas["mass"] / cu.mass_msun).astype(f32),
            "Density": (gas["rho"] / cu.density_msun_kpc3).astype(f32),
            "InternalEnergy": units.internal_energy(gas["temperature"], x_e).astype(f32),
            "ElectronAbundance": x_e.astype(f32),
            "NeutralHydrogenAbundance": gas["f_hi"].astype(f32),
            "MagneticField": (gas["bfield"] / cu.bfield_gauss).astype(f32),
            "StarFormationRate": gas["sfr"].astype(f32),
            "GFM_Metallicity": gas["metallicity"].astype(f32),
            "Velocities": (gas["vel"] / cu.velocity_kms).astype(f32),
            "ParticleIDs": ids[:n_gas],
        },
        "PartType1": {
            "Coordinates": _box_coordinates(p.centre, dm["pos"], cu),
            "Velocities": (dm["vel"] / cu.velocity_kms).astype(f32),
            "ParticleIDs": ids[n_gas:n_gas + n_dm],
        },
        "PartType4": {
            "Coordinates": _box_coordinates(p.centre, st["pos"], cu),
            "Masses": (st["mass"] / cu.mass_msun).astype(f32),
            "GFM_StellarFormationTime": st["a_form"].astype(f32),
            "GFM_Metallicity": st["metallicity"].astype(f32),
            "Velocities": (st["vel"] / cu.velocity_kms).astype(f32),
            "ParticleIDs": ids[n_gas + n_dm:],
        },
    }
    return groups, float(dm["mass"][0] / cu.mass_msun)


def _atomic_write(path: Path, fill: Callable[[h5py.File], None]) -> None:
    """Write an HDF5 file to a temporary name in the same folder, then rename it into place."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            fill(f)


def _put(group: h5py.Group, name: str, data) -> h5py.Dataset:
    return group.create_dataset(name, data=data, track_times=False)


def _catalog_row(g: SynthGalaxy, groups: dict, m_dm_code: float) -> dict[str, np.ndarray]:
    """SubhaloPos / MassType / LenType / HalfmassRadType / Vel computed from the written arrays."""
    a = 1.0 / (1.0 + g.params.redshift)
    centre = g.params.centre
    mass_type, len_type, rhalf = np.zeros(6), np.zeros(6, dtype=np.int64), np.zeros(6)
    mom, mtot = np.zeros(3), 0.0
    for ptype, grp in ((0, "PartType0"), (1, "PartType1"), (4, "PartType4")):
        d = groups[grp]
        n = len(d["ParticleIDs"])
        m = d["Masses"].astype(np.float64) if "Masses" in d else np.full(n, m_dm_code)
        dx = np.mod(d["Coordinates"] - centre + 0.5 * BOX_SIZE, BOX_SIZE) - 0.5 * BOX_SIZE
        keep = d["GFM_StellarFormationTime"] > 0 if ptype == 4 else np.ones(n, bool)
        mass_type[ptype], len_type[ptype] = m.sum(), n
        rhalf[ptype] = half_mass_radius(np.linalg.norm(dx[keep], axis=1), m[keep])
        mom += (m[:, None] * d["Velocities"].astype(np.float64)).sum(axis=0) * np.sqrt(a)
        mtot += m.sum()
    gas = groups["PartType0"]
    m_hi = units.X_H * np.sum(gas["Masses"].astype(np.float64) * gas["NeutralHydrogenAbundance"])
    return {"SubhaloPos": centre, "SubhaloMassType": mass_type, "SubhaloLenType": len_type,
            "SubhaloHalfmassRadType": rhalf, "SubhaloVel": mom / mtot,
            "MHIParticles": m_hi * units.CodeUnits(a=a, h=HUBBLE).mass_msun}


def write_cutout(path, galaxy: SynthGalaxy, galaxy_id: int, overwrite: bool = False,
                 seed: int | None = None) -> dict[str, np.ndarray]:
    """Write one galaxy as a TNG web-API cutout (code units, absolute box coordinates).

    Returns the galaxy's catalogue row (SubhaloPos, SubhaloMassType, ... in code units).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: file exists (use --overwrite to replace it)")
    groups, m_dm_code = _code_arrays(galaxy, galaxy_id)
    header = _header_attrs(galaxy.params.redshift)
    header["MassTable"][1] = m_dm_code
    counts = np.zeros(6, dtype=np.int64)
    for k, grp in enumerate(("PartType0", "PartType1", "PartType4")):
        counts[(0, 1, 4)[k]] = len(groups[grp]["ParticleIDs"])
    header.update(NumPart_ThisFile=counts, NumPart_Total=counts, generator="skymorph.synth",
                  galaxy_id=np.int64(galaxy_id))
    if seed is not None:
        header["seed"] = np.int64(seed)

    def fill(f: h5py.File) -> None:
        hdr = f.create_group("Header")
        for k, v in header.items():
            hdr.attrs[k] = v
        for grp, fields in groups.items():
            h = f.create_group(grp)
            for name, arr in fields.items():
                _put(h, name, arr)

    _atomic_write(path, fill)
    return _catalog_row(galaxy, groups, m_dm_code)


def _write_catalog(path: Path, rows: list[dict], params: list[GalaxyParams], seed: int,
                   n_particles: int, redshift: float) -> None:
    header = _header_attrs(redshift)
    header.update(generator="skymorph.synth", seed=np.int64(seed), n_particles=np.int64(n_particles),
                  Nsubgroups_Total=np.int64(len(rows)), Nsubgroups_ThisFile=np.int64(len(rows)))
    f32 = np.float32

    def fill(f: h5py.File) -> None:
        hdr = f.create_group("Header")
        for k, v in header.items():
            hdr.attrs[k] = v
        sub = f.create_group("Subhalo")
        for name, dtype in (("SubhaloPos", f32), ("SubhaloHalfmassRadType", f32),
                            ("SubhaloMassType", f32), ("SubhaloVel", f32), ("SubhaloLenType", np.int32)):
            _put(sub, name, np.array([r[name] for r in rows]).astype(dtype))
        truth = f.create_group("Truth")
        for name, (_, unit) in params[0].truth().items():
            ds = _put(truth, name, np.array([np.asarray(pp.truth()[name][0], dtype=np.float64) for pp in params]))
            ds.attrs["unit"] = unit
        # what the written cells hold (X_H m f_HI): below MHI where the UV background ionises
        # diluted low-surface-density gas, e.g. in high-spin disks or at low resolution
        _put(truth, "MHIParticles", np.array([r["MHIParticles"] for r in rows])).attrs["unit"] = "Msun"

    _atomic_write(path, fill)


def synthesize(out_dir, n_galaxies: int, n_particles: int = 10_000, seed: int = 0,
               redshift: float = 0.0, overwrite: bool = False, progress: bool = True) -> Path:
    """Write ``cutout_<i>.hdf5`` (i = 0..n_galaxies-1) and ``catalog.hdf5`` into out_dir.

    Galaxy i is drawn from ``np.random.default_rng([seed, i])``; galaxy 1 straddles the box
    corner. Every write is atomic; existing files raise OutputExistsError before anything is
    written unless ``overwrite``. Returns the catalogue's path.
    """
    if int(n_galaxies) != n_galaxies or n_galaxies < 1:
        raise SkymorphError(f"n_galaxies must be an integer >= 1 (got {n_galaxies!r})")
    if int(seed) != seed or seed < 0:
        raise SkymorphError(f"seed must be a non-negative integer (got {seed!r})")
    _check_sizes(n_particles, redshift)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SkymorphError(f"{out}: output folder is an existing file")
    targets = [out / f"cutout_{i}.hdf5" for i in range(int(n_galaxies))] + [out / "catalog.hdf5"]
    if not overwrite:
        for t in targets:
            if t.exists():
                raise OutputExistsError(f"{t}: file exists (use --overwrite to replace it)")
    out.mkdir(parents=True, exist_ok=True)

    from rich.progress import track

    rows, params = [], []
    for i in track(range(int(n_galaxies)), description="Synthesizing galaxies", disable=not progress):
        g = sample_galaxy(np.random.default_rng([int(seed), i]), n_particles, redshift, near_corner=(i == 1))
        rows.append(write_cutout(targets[i], g, i, overwrite=True, seed=seed))
        params.append(g.params)
    _write_catalog(targets[-1], rows, params, int(seed), int(n_particles), float(redshift))
    return targets[-1]
