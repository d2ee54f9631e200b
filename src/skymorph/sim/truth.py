"""Per-galaxy truth parameters from a catalogue, for inference of p(parameters | map) (DESIGN.md section 13).

:data:`TRUTH_TABLE` is the one place that says where each truth comes from. Every name is looked up
in order: first the synthetic generator's ``/Truth`` group (physical units, see
:meth:`skymorph.sim.synth.GalaxyParams.truth`), then, for catalogues without it (real TNG group
catalogues), a TNG catalogue field in code units, converted with the catalogue's own a and h
(:class:`skymorph.sim.units.CodeUnits`). ``Group`` fields are read for the subhalo's FoF group,
``SubhaloGrNr``.

======================  ==============  ===================  ===========================================
name                    unit            /Truth dataset       TNG catalogue field (code units)
======================  ==============  ===================  ===========================================
log_m200                log10(Msun)     M200                 Group/Group_M_Crit200[SubhaloGrNr]
r200_kpc                kpc             R200                 Group/Group_R_Crit200[SubhaloGrNr]
v200_kms                km/s            V200                 -
concentration           (none)          Concentration        -
axis_ratio_ba           (none)          AxisRatioBA          -
axis_ratio_ca           (none)          AxisRatioCA          -
spin                    (none)          Spin                 -
bulge_fraction          (none)          BulgeFraction        -
disk_scale_length_kpc   kpc             DiskScaleLength      -
log_mstar               log10(Msun)     MStar                Subhalo/SubhaloMassType[:, 4] (stars)
log_mhi                 log10(Msun)     MHI                  -
log_mhot                log10(Msun)     MHotHalo             -
log_mgas                log10(Msun)     -                    Subhalo/SubhaloMassType[:, 0] (gas)
======================  ==============  ===================  ===========================================

A truth the catalogue lacks (neither source present) is absent: no value, never NaN or zero. The
log of a zero (or negative) mass is absent for that galaxy too; a map store holds a truth column
only when every galaxy of the build has it (:func:`skymorph.data.build._assemble`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import units


@dataclass(frozen=True)
class TruthSpec:
    """Where one truth comes from: ``truth`` names a /Truth dataset (physical units); ``field`` is a
    (group, name, column) of a TNG catalogue in code units, ``convert`` its conversion ('mass':
    1e10 Msun/h -> Msun, 'length': ckpc/h -> physical kpc, None: none); ``log`` stores log10."""

    name: str
    unit: str
    truth: str | None = None
    field: tuple[str, str, int | None] | None = None
    convert: str | None = None
    log: bool = False


LOG_MSUN = "log10(Msun)"
TRUTH_TABLE: tuple[TruthSpec, ...] = (
    TruthSpec("log_m200", LOG_MSUN, "M200", ("Group", "Group_M_Crit200", None), "mass", log=True),
    TruthSpec("r200_kpc", "kpc", "R200", ("Group", "Group_R_Crit200", None), "length"),
    TruthSpec("v200_kms", "km/s", "V200"),
    TruthSpec("concentration", "", "Concentration"),
    TruthSpec("axis_ratio_ba", "", "AxisRatioBA"),
    TruthSpec("axis_ratio_ca", "", "AxisRatioCA"),
    TruthSpec("spin", "", "Spin"),
    TruthSpec("bulge_fraction", "", "BulgeFraction"),
    TruthSpec("disk_scale_length_kpc", "kpc", "DiskScaleLength"),
    TruthSpec("log_mstar", LOG_MSUN, "MStar", ("Subhalo", "SubhaloMassType", 4), "mass", log=True),
    TruthSpec("log_mhi", LOG_MSUN, "MHI", log=True),
    TruthSpec("log_mhot", LOG_MSUN, "MHotHalo", log=True),
    TruthSpec("log_mgas", LOG_MSUN, None, ("Subhalo", "SubhaloMassType", 0), "mass", log=True),
)
#: the subhalo -> FoF group index that Group fields are read through
GROUP_INDEX = ("Subhalo", "SubhaloGrNr")


def wanted_fields() -> dict[str, set[str]]:
    """Catalogue fields the table may use, by group ('Truth', 'Subhalo', 'Group')."""
    out: dict[str, set[str]] = {"Truth": set(), "Subhalo": set(), "Group": set()}
    for spec in TRUTH_TABLE:
        if spec.truth:
            out["Truth"].add(spec.truth)
        if spec.field:
            out[spec.field[0]].add(spec.field[1])
    out["Subhalo"].add(GROUP_INDEX[1])
    return out


def catalogue_truth(fields: dict[tuple[str, str], np.ndarray], code_units: units.CodeUnits
                    ) -> dict[str, tuple[np.ndarray, str]]:
    """Truth arrays over the catalogue's subhalo rows: {name: (float64 values, unit)}.

    ``fields`` holds the catalogue fields that exist, keyed (group, name): /Truth and Subhalo
    fields one row per subhalo, Group fields one row per FoF group. A name none of whose sources
    is present is left out; a log of a non-positive mass is NaN here, and :func:`galaxy_truth`
    leaves it out.
    """
    out = {}
    for spec in TRUTH_TABLE:
        if spec.truth and ("Truth", spec.truth) in fields:
            values = np.asarray(fields["Truth", spec.truth], dtype=np.float64)
        elif spec.field and _have(fields, spec.field):
            group, name, col = spec.field
            values = np.asarray(fields[group, name], dtype=np.float64)
            if col is not None:
                values = values[:, col]
            if group == "Group":
                values = values[np.asarray(fields[GROUP_INDEX], dtype=np.int64)]
            values = values * {"mass": code_units.mass_msun, "length": code_units.length_kpc, None: 1.0}[spec.convert]
        else:
            continue
        if values.ndim != 1:
            continue  # not a scalar per galaxy
        if spec.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
        out[spec.name] = (values, spec.unit)
    return out


def _have(fields, field) -> bool:
    group, name, _ = field
    return (group, name) in fields and (group != "Group" or GROUP_INDEX in fields)


def galaxy_truth(table: dict[str, tuple[np.ndarray, str]], row: int) -> dict[str, tuple[float, str]]:
    """One subhalo's truths {name: (value, unit)}, finite values only (a log of a zero mass is absent)."""
    out = {}
    for name, (values, unit) in table.items():
        v = float(values[row])
        if np.isfinite(v):
            out[name] = (v, unit)
    return out
