"""IllustrisTNG / Arepo HDF5 readers: snapshot chunks, group catalogues, web-API cutouts.

Low-level loaders mirror illustris_python (``loadSubset``, ``loadSubhalo``, ``loadSubhalos``,
``loadHeader``) and return raw code-unit arrays. :func:`read_cutout` and :func:`to_particles`
convert once, at this boundary, to physical units using the file's own a and h.
"""
from __future__ import annotations

import glob
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError
from ..sph import knn_distance
from . import units
from .derived import hi_mass
from .particles import Header, ParticleSet, part_type_name, part_type_number

#: raw fields every species needs (masses of DM come from the MassTable)
REQUIRED = {"gas": ("Coordinates", "Masses", "Density"), "dm": ("Coordinates",), "stars": ("Coordinates", "Masses")}
#: raw fields read when present, per species
OPTIONAL = {
    "gas": ("InternalEnergy", "ElectronAbundance", "NeutralHydrogenAbundance", "MagneticField",
            "StarFormationRate", "GFM_Metallicity", "Velocities"),
    "dm": ("Velocities", "SubfindHsml", "Masses"),
    "stars": ("GFM_StellarFormationTime", "GFM_Metallicity", "Velocities", "StellarHsml"),
}
GAS_KERNEL_FACTOR = 2.5  # kernel support / cell radius (TNG team's choice)
N_NGB = {"stars": 32, "dm": 64}


def open_hdf5(path: str | Path) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {exc}") from None


def _header_from(f: h5py.File, path) -> Header:
    if "Header" not in f:
        raise InputError(f"{path}: missing group 'Header'")
    attrs = f["Header"].attrs
    try:
        return Header(a=float(attrs["Time"]), h=float(attrs["HubbleParam"]), box_size=float(attrs["BoxSize"]),
                      omega_m=float(attrs["Omega0"]), omega_b=float(attrs.get("OmegaBaryon", 0.0486)))
    except KeyError as exc:
        raise InputError(f"{path}: Header attribute {exc.args[0]!r} missing") from None


def read_field(f: h5py.File, path, group: str, name: str, sl: slice = slice(None)) -> np.ndarray:
    try:
        return f[group][name][sl]
    except KeyError:
        raise InputError(f"{path}: field {group}/{name} missing") from None
    except OSError as exc:
        raise InputError(f"{path}: field {group}/{name} unreadable (truncated file?): {exc}") from None


# --------------------------------------------------------------------------- snapshots

def snapshot_files(base_path: str | Path, snap: int) -> list[Path]:
    """Chunk files of snapshot ``snap``: snapdir_NNN/snap_NNN.C.hdf5 (or a single snap_NNN.hdf5)."""
    base = Path(base_path)
    files = sorted(glob.glob(str(base / f"snapdir_{snap:03d}" / f"snap_{snap:03d}.*.hdf5")),
                   key=lambda p: int(p.rsplit(".", 2)[-2]))
    if not files and (base / f"snap_{snap:03d}.hdf5").exists():
        files = [str(base / f"snap_{snap:03d}.hdf5")]
    if not files:
        raise InputError(f"{base}: no snapshot {snap:03d} (expected snapdir_{snap:03d}/snap_{snap:03d}.N.hdf5)")
    return [Path(p) for p in files]


def groupcat_files(base_path: str | Path, snap: int) -> list[Path]:
    """Chunk files of the group catalogue: groups_NNN/fof_subhalo_tab_NNN.C.hdf5."""
    base = Path(base_path)
    files = sorted(glob.glob(str(base / f"groups_{snap:03d}" / f"fof_subhalo_tab_{snap:03d}.*.hdf5")),
                   key=lambda p: int(p.rsplit(".", 2)[-2]))
    if not files:
        raise InputError(f"{base}: no group catalogue for snapshot {snap:03d} "
                         f"(expected groups_{snap:03d}/fof_subhalo_tab_{snap:03d}.N.hdf5)")
    return [Path(p) for p in files]


def loadHeader(base_path: str | Path, snap: int) -> dict:  # noqa: N802 (illustris_python's name)
    """Header attributes of the snapshot's first chunk, as a dict."""
    path = snapshot_files(base_path, snap)[0]
    with open_hdf5(path) as f:
        return dict(f["Header"].attrs)


def _load_range(files: list[Path], ptype: str | int, fields, start: int = 0, count: int | None = None) -> dict:
    """Concatenate ``fields`` of part type ``ptype`` over the global index range [start, start+count)."""
    num = part_type_number(ptype)
    group = f"PartType{num}"
    counts = []
    for p in files:
        with open_hdf5(p) as f:
            counts.append(int(f["Header"].attrs["NumPart_ThisFile"][num]))
    total = sum(counts)
    count = total - start if count is None else count
    if start < 0 or start + count > total:
        raise InputError(f"{files[0].parent}: particle range [{start}, {start + count}) of {group} "
                         f"outside the snapshot's {total} particles")
    out = {"count": count}
    parts: dict[str, list] = {name: [] for name in fields}
    first = 0
    for p, n in zip(files, counts):
        lo, hi = max(start, first), min(start + count, first + n)
        if hi > lo:
            with open_hdf5(p) as f:
                if group not in f:
                    raise InputError(f"{p}: missing part type {part_type_name(num)} ({group})")
                for name in fields:
                    parts[name].append(read_field(f, p, group, name, slice(lo - first, hi - first)))
        first += n
    for name in fields:
        out[name] = np.concatenate(parts[name]) if parts[name] else np.zeros(0)
    return out


def loadSubset(base_path, snap: int, part_type, fields) -> dict:  # noqa: N802
    """All particles of one type in a snapshot (illustris_python semantics, code units)."""
    return _load_range(snapshot_files(base_path, snap), part_type, list(fields))


def _load_groupcat(base_path, snap: int, group: str, fields) -> dict:
    files = groupcat_files(base_path, snap)
    out: dict[str, list] = {name: [] for name in fields}
    for p in files:
        with open_hdf5(p) as f:
            if group not in f or not len(f[group].keys()):
                continue  # chunks without any object of this kind have an empty group
            for name in fields:
                out[name].append(read_field(f, p, group, name))
    res = {name: np.concatenate(v) for name, v in out.items() if v}
    res["count"] = len(next(iter(res.values()))) if res else 0
    return res


def loadSubhalos(base_path, snap: int, fields) -> dict:  # noqa: N802
    """Subhalo fields of the group catalogue (code units), concatenated over chunks."""
    return _load_groupcat(base_path, snap, "Subhalo", list(fields))


def loadHalos(base_path, snap: int, fields) -> dict:  # noqa: N802
    """FoF group fields of the group catalogue (code units), concatenated over chunks."""
    return _load_groupcat(base_path, snap, "Group", list(fields))


def subhalo_offsets(base_path, snap: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, lengths) per subhalo and part type into the snapshot's particle order.

    Uses postprocessing/offsets/offsets_NNN.hdf5 (Subhalo/SnapByType) when present, as
    illustris_python does; otherwise derives them from the group catalogue, whose particle
    order is by FoF group, then subhalo within the group (Subfind order).
    """
    lengths = loadSubhalos(base_path, snap, ["SubhaloLenType"])
    if lengths["count"] == 0:
        raise InputError(f"{base_path}: the group catalogue of snapshot {snap:03d} has no subhaloes")
    lengths = lengths["SubhaloLenType"].astype(np.int64)
    offset_file = Path(base_path).parent / "postprocessing" / "offsets" / f"offsets_{snap:03d}.hdf5"
    if offset_file.exists():
        with open_hdf5(offset_file) as f:
            return read_field(f, offset_file, "Subhalo", "SnapByType").astype(np.int64), lengths
    groups = loadHalos(base_path, snap, ["GroupLenType", "GroupFirstSub", "GroupNsubs"])
    group_off = np.concatenate([[np.zeros(6, np.int64)], np.cumsum(groups["GroupLenType"], axis=0)[:-1]])
    offsets = np.zeros_like(lengths)
    for g in np.flatnonzero(groups["GroupNsubs"] > 0):
        first, n = int(groups["GroupFirstSub"][g]), int(groups["GroupNsubs"][g])
        offsets[first:first + n] = group_off[g] + np.concatenate(
            [np.zeros((1, 6), np.int64), np.cumsum(lengths[first:first + n - 1], axis=0)])
    return offsets, lengths


def loadSubhalo(base_path, snap: int, subhalo_id: int, part_type, fields) -> dict:  # noqa: N802
    """Particles of one subhalo (illustris_python semantics, code units)."""
    offsets, lengths = subhalo_offsets(base_path, snap)
    if not 0 <= subhalo_id < len(lengths):
        raise InputError(f"{base_path}: subhalo {subhalo_id} does not exist in snapshot {snap:03d} "
                         f"(it has {len(lengths)} subhaloes)")
    num = part_type_number(part_type)
    return _load_range(snapshot_files(base_path, snap), num, list(fields),
                       int(offsets[subhalo_id, num]), int(lengths[subhalo_id, num]))


# --------------------------------------------------------------------------- physical conversion

def _check_finite(path, group: str, name: str, arr: np.ndarray, nonnegative: bool = False) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InputError(f"{path}: field {group}/{name} has {int(bad.sum())} NaN or infinite values")
    if nonnegative and (arr < 0).any():
        raise InputError(f"{path}: field {group}/{name} has {int((arr < 0).sum())} negative values")


def to_particles(raw: dict, ptype: str, header: Header, mass_table: np.ndarray, source) -> ParticleSet:
    """Convert raw code-unit fields of one species into a physical :class:`ParticleSet`.

    Gas gets 'density' [Msun/kpc^3], 'temperature' [K], 'eos' (star-forming: T from the effective
    equation of state, not physical), 'bfield' |B| [Gauss], 'hi_mass' [Msun], 'sfr' [Msun/yr];
    wind particles (GFM_StellarFormationTime <= 0) are dropped from stars.
    """
    cu = units.CodeUnits(header.a, header.h)
    group = f"PartType{part_type_number(ptype)}"
    for name, arr in raw.items():
        if name != "count":
            _check_finite(source, group, name, arr, nonnegative=name in ("Masses", "Density", "InternalEnergy"))
    if ptype == "stars" and "GFM_StellarFormationTime" in raw:
        keep = raw["GFM_StellarFormationTime"] > 0
        raw = {k: (v[keep] if k != "count" else int(keep.sum())) for k, v in raw.items()}
    n = len(raw["Coordinates"])
    pos = raw["Coordinates"].astype(np.float64) * cu.length_kpc
    if "Masses" in raw:
        mass = raw["Masses"].astype(np.float64) * cu.mass_msun
    else:
        if mass_table[1] <= 0:
            raise InputError(f"{source}: {group} has no Masses field and Header MassTable[1] is 0")
        mass = np.full(n, mass_table[1] * cu.mass_msun)
    fields: dict[str, np.ndarray] = {}
    if "Velocities" in raw:
        fields["velocity"] = raw["Velocities"].astype(np.float64) * cu.velocity_kms
    if "GFM_Metallicity" in raw:
        fields["metallicity"] = raw["GFM_Metallicity"].astype(np.float64)
    if ptype == "gas":
        rho = raw["Density"].astype(np.float64) * cu.density_msun_kpc3
        if n and (rho <= 0).any():
            raise InputError(f"{source}: field {group}/Density has {int((rho <= 0).sum())} non-positive values")
        fields["density"] = rho
        hsml = GAS_KERNEL_FACTOR * (3.0 * mass / (4.0 * np.pi * rho)) ** (1.0 / 3.0)
        if "InternalEnergy" in raw and "ElectronAbundance" in raw:
            fields["temperature"] = units.temperature(raw["InternalEnergy"], raw["ElectronAbundance"])
        if "StarFormationRate" in raw:
            fields["sfr"] = raw["StarFormationRate"].astype(np.float64)
            fields["eos"] = (raw["StarFormationRate"] > 0).astype(np.float64)
        if "MagneticField" in raw:
            fields["bfield"] = np.linalg.norm(raw["MagneticField"].astype(np.float64), axis=1) * cu.bfield_gauss
        if "NeutralHydrogenAbundance" in raw:
            fields["hi_mass"] = hi_mass(mass, raw["NeutralHydrogenAbundance"])
    else:
        own = {"stars": "StellarHsml", "dm": "SubfindHsml"}[ptype]
        if own in raw:
            hsml = raw[own].astype(np.float64) * cu.length_kpc
        else:
            hsml = knn_distance(pos, N_NGB[ptype])
    return ParticleSet(ptype, pos, mass, hsml, fields)


def fields_to_read(f: h5py.File, group: str, ptype: str, path, require=()) -> list[str]:
    """The required fields of ``ptype`` plus the optional ones present; a missing required one is an error."""
    present = set(f[group].keys())
    for name in (*REQUIRED[ptype], *require):
        if name not in present:
            raise InputError(f"{path}: field {group}/{name} missing")
    return list(REQUIRED[ptype]) + [x for x in OPTIONAL[ptype] if x in present]


def read_cutout(path: str | Path, parttypes=("gas", "dm", "stars"), require: dict | None = None) -> dict:
    """Read a TNG-format cutout (web-API layout) into physical :class:`ParticleSet` s.

    Returns {'header': Header, 'gas': ParticleSet, 'dm': ..., 'stars': ...} with absolute
    positions in physical kpc (centre with :meth:`ParticleSet.centred`). ``require`` maps a
    species to raw field names that must be present (e.g. {'gas': ['MagneticField']}).
    """
    require = require or {}
    out: dict = {}
    with open_hdf5(path) as f:
        header = _header_from(f, path)
        out["header"] = header
        mass_table = np.asarray(f["Header"].attrs.get("MassTable", np.zeros(6)), dtype=np.float64)
        for pt in parttypes:
            ptype = part_type_name(pt)
            group = f"PartType{part_type_number(ptype)}"
            if group not in f:
                raise InputError(f"{path}: missing part type {ptype} ({group}): the galaxy has no {ptype} particles")
            names = fields_to_read(f, group, ptype, path, require.get(ptype, ()))
            raw = {name: read_field(f, path, group, name) for name in names}
            ps = to_particles(raw, ptype, header, mass_table, path)
            if len(ps) == 0:
                raise InputError(f"{path}: {group} is empty: the galaxy has no {ptype} particles")
            out[ptype] = ps
    return out


def read_header(path: str | Path) -> Header:
    """The :class:`Header` of one HDF5 file (snapshot chunk, cutout or catalogue)."""
    with open_hdf5(path) as f:
        return _header_from(f, path)

