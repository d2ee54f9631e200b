"""Particle containers in physical units (kpc, Msun, K, Gauss, km/s)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy.cosmology import FlatLambdaCDM

PART_TYPES = {"gas": 0, "dm": 1, "tracers": 3, "stars": 4, "bh": 5}
PART_NAMES = {v: k for k, v in PART_TYPES.items()}
_ALIASES = {"stellar": "stars", "star": "stars", "darkmatter": "dm", "blackholes": "bh", "blackhole": "bh"}


def part_type_number(ptype: str | int) -> int:
    """Part type by name ('gas', 'dm', 'stars', 'bh', as illustris_python) or number -> number."""
    if isinstance(ptype, (int, np.integer)):
        if int(ptype) not in PART_NAMES and int(ptype) != 2:
            raise ValueError(f"unknown part type {ptype}")
        return int(ptype)
    name = _ALIASES.get(str(ptype).lower(), str(ptype).lower())
    if name not in PART_TYPES:
        raise ValueError(f"unknown part type {ptype!r}; expected one of {sorted(PART_TYPES)} or 0-5")
    return PART_TYPES[name]


def part_type_name(ptype: str | int) -> str:
    return PART_NAMES[part_type_number(ptype)]


@dataclass(frozen=True)
class Header:
    """What a snapshot/cutout header says about time, box and cosmology."""

    a: float
    h: float
    box_size: float  # ckpc/h, code units
    omega_m: float
    omega_b: float

    @property
    def redshift(self) -> float:
        return 1.0 / self.a - 1.0

    @property
    def box_kpc(self) -> float:
        """Box size in physical kpc."""
        return self.box_size * self.a / self.h

    @property
    def cosmology(self) -> FlatLambdaCDM:
        return FlatLambdaCDM(H0=100.0 * self.h, Om0=self.omega_m, Ob0=self.omega_b)


@dataclass
class ParticleSet:
    """One species in physical units.

    pos [kpc] (N, 3), mass [Msun] (N,), hsml [kpc] kernel support radius (N,);
    ``fields`` holds derived per-particle quantities by name (e.g. 'temperature' [K],
    'bfield' [Gauss], 'hi_mass' [Msun], 'density' [Msun/kpc^3], 'velocity' [km/s]).
    """

    ptype: str
    pos: np.ndarray
    mass: np.ndarray
    hsml: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.mass)

    def select(self, mask: np.ndarray) -> "ParticleSet":
        return ParticleSet(self.ptype, self.pos[mask], self.mass[mask], self.hsml[mask],
                           {k: v[mask] for k, v in self.fields.items()})

    def centred(self, centre_kpc: np.ndarray, box_kpc: float) -> "ParticleSet":
        """Positions relative to ``centre_kpc``, unwrapped periodically into [-box/2, box/2)."""
        d = self.pos - np.asarray(centre_kpc, dtype=np.float64)
        d -= box_kpc * np.round(d / box_kpc)
        return ParticleSet(self.ptype, d, self.mass, self.hsml, self.fields)


def half_mass_radius(r: np.ndarray, mass: np.ndarray) -> float:
    """Smallest particle radius [kpc] enclosing at least half of the total mass (0 for no particles)."""
    if len(r) == 0:
        return 0.0
    order = np.argsort(r, kind="stable")
    cum = np.cumsum(np.asarray(mass, dtype=np.float64)[order])
    return float(np.asarray(r)[order][np.searchsorted(cum, 0.5 * cum[-1])])
