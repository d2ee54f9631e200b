"""The domain registry: which particles, which quantity, how weighted, which unit (DESIGN.md section 5)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Domain:
    """One kind of map.

    ``weight`` is the per-particle quantity deposited ('mass' or a derived field such as 'hi_mass');
    with ``value`` set, the map is the ``weight``-weighted mean of that field instead of a surface density.
    ``requires`` lists the raw TNG fields of the species the map needs.
    """

    name: str
    ptype: str
    weight: str
    unit: str
    description: str
    value: str | None = None
    requires: tuple[str, ...] = ()


_HI = ("NeutralHydrogenAbundance", "InternalEnergy")  # the neutral fraction and the pressure of the HI/H2 split
DOMAINS: dict[str, Domain] = {d.name: d for d in (
    Domain("dm", "dm", "mass", "Msun/kpc^2", "dark-matter surface density"),
    Domain("star", "stars", "mass", "Msun/kpc^2", "stellar surface density"),
    Domain("gas", "gas", "mass", "Msun/kpc^2", "gas surface density"),
    Domain("hi", "gas", "hi_mass", "Msun/kpc^2", "HI surface density", requires=_HI),
    Domain("h2", "gas", "h2_mass", "Msun/kpc^2", "H2 surface density", requires=_HI),
    Domain("hi21", "gas", "hi_mass", "K km/s", "21 cm moment 0 (velocity-integrated brightness temperature, "
                                                "optically thin)", requires=_HI),
    Domain("temp", "gas", "mass", "K", "mass-weighted gas temperature", value="temperature",
           requires=("InternalEnergy", "ElectronAbundance")),
    Domain("bfield", "gas", "mass", "Gauss", "mass-weighted |B|", value="bfield", requires=("MagneticField",)),
)}
REF_TYPES = {"gas": "gas", "dm": "dm", "star": "stars", "stars": "stars"}


def get_domains(names) -> list[Domain]:
    """Domains by name ('dm,star,gas' or a list), in the given order; unknown names are an error."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in DOMAINS]
    if unknown or not names:
        raise ConfigError(f"unknown domain {unknown[0] if unknown else '(none given)'}; "
                          f"expected some of {', '.join(DOMAINS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"domain listed twice in {','.join(names)}")
    return [DOMAINS[n] for n in names]
