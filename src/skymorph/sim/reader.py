"""IllustrisTNG / Arepo HDF5 readers: snapshot chunks, group catalogues, web-API cutouts.

The public loaders are drop-ins for illustris_python's ``snapshot.loadSubset``, ``loadSubhalo``,
``loadHalo`` and ``groupcat.loadSubhalos``, ``loadHalos``, ``loadHeader`` (the catalogue's header),
``loadSingle``: same arguments, same code-unit values and return types (one field -> bare array,
several -> dict with 'count', nothing of the type -> ``{'count': 0}``). :func:`loadSnapHeader` is
the snapshot's header. Internal callers use :func:`read_particles`, :func:`read_catalogue` and
:func:`object_range`, which always return dicts / arrays. :func:`read_cutout` and
:func:`to_particles` convert once, at this boundary, to physical units using the file's own a and h.
"""
from __future__ import annotations

import glob
import warnings
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError
from ..hdf5 import open_hdf5
from ..sph import knn_distance
from . import units
from .derived import DEFAULT_HI_MODEL, neutral_hydrogen_mass, split_neutral
from .particles import Header, ParticleSet, part_type_name, part_type_number
from .relations import TNG_COSMOLOGY

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
#: illustris_python's part type names that particles.part_type_number does not know
_MORE_NAMES = {"cells": 0, "dmlowres": 2, "tracer": 3, "tracermc": 3, "trmc": 3, "wind": 4, "bhs": 5}
#: catalogue group -> (singular, plural) in messages
_NOUN = {"Subhalo": ("subhalo", "subhaloes"), "Group": ("halo", "haloes")}


def part_type(ptype: str | int) -> int:
    """Part type number from a name (any of illustris_python's), a number or a digit string ('4')."""
    key = str(ptype).strip().lower()
    try:
        return part_type_number(int(key) if key.isdigit() else _MORE_NAMES.get(key, key))
    except ValueError as exc:
        raise InputError(f"{exc}; illustris_python's names ({', '.join(_MORE_NAMES)}) work too") from None


def header_attrs(f: h5py.File, path) -> h5py.AttributeManager:
    if "Header" not in f:
        raise InputError(f"{path}: missing group 'Header'")
    return f["Header"].attrs


def header_attr(f: h5py.File, path, name: str):
    """One Header attribute; a missing one is an error naming the file and the attribute."""
    attrs = header_attrs(f, path)
    if name not in attrs:
        raise InputError(f"{path}: Header attribute {name!r} missing")
    return attrs[name]


def _header_from(f: h5py.File, path) -> Header:
    attrs = header_attrs(f, path)
    if "OmegaBaryon" in attrs:
        omega_b = float(attrs["OmegaBaryon"])
    else:  # no conversion or map uses it (only Header.cosmology.Ob0 would)
        omega_b = float(TNG_COSMOLOGY.Ob0)
        warnings.warn(f"{path}: Header attribute 'OmegaBaryon' missing; assuming TNG's {omega_b}", stacklevel=3)
    return Header(a=float(header_attr(f, path, "Time")), h=float(header_attr(f, path, "HubbleParam")),
                  box_size=float(header_attr(f, path, "BoxSize")), omega_m=float(header_attr(f, path, "Omega0")),
                  omega_b=omega_b)


def mass_table(f: h5py.File, path) -> np.ndarray | None:
    """Header MassTable (code units), None when the file has none (only needed for species without Masses)."""
    attrs = header_attrs(f, path)
    return np.asarray(attrs["MassTable"], dtype=np.float64) if "MassTable" in attrs else None


def read_field(f: h5py.File, path, group: str, name: str, sl=slice(None)) -> np.ndarray:
    try:
        return f[group][name][sl]
    except KeyError:
        raise InputError(f"{path}: field {group}/{name} missing") from None
    except IndexError:
        raise InputError(f"{path}: field {group}/{name} has no row {sl}") from None
    except OSError as exc:
        raise InputError(f"{path}: field {group}/{name} unreadable (truncated file?): {exc}") from None


def _squeezed(res: dict, sq: bool = True):
    """illustris_python's return convention: a single field as the bare array."""
    names = [k for k in res if k != "count"]
    return res[names[0]] if sq and len(names) == 1 else res


def _as_list(fields):
    return [fields] if isinstance(fields, str) else fields


def _nonempty(f: h5py.File, group: str) -> bool:
    return group in f and len(f[group]) > 0


# --------------------------------------------------------------------------- files

def _chunks(folder: Path, prefixes: tuple[str, ...], snap: int) -> list[Path]:
    for prefix in prefixes:
        files = sorted(glob.glob(str(folder / f"{prefix}_{snap:03d}.*.hdf5")), key=lambda p: int(p.rsplit(".", 2)[-2]))
        if files:
            return [Path(p) for p in files]
    return []


def _check_complete(files: list[Path], attr: str) -> list[Path]:
    """The chunks, if as many as the first one's Header ``attr`` announces."""
    with open_hdf5(files[0]) as f:
        n = header_attrs(f, files[0]).get(attr)
    if n is not None and int(n) != len(files):
        raise InputError(f"{files[0]}: Header {attr} = {int(n)} but {files[0].parent} holds {len(files)} chunks")
    return files


def snapshot_files(base_path: str | Path, snap: int) -> list[Path]:
    """Chunk files of snapshot ``snap``: snapdir_NNN/snap_NNN.C.hdf5 (or snapshot_NNN.C.hdf5, or one snap_NNN.hdf5)."""
    base = Path(base_path)
    files = _chunks(base / f"snapdir_{snap:03d}", ("snap", "snapshot"), snap)
    if not files and (base / f"snap_{snap:03d}.hdf5").exists():
        files = [base / f"snap_{snap:03d}.hdf5"]
    if not files:
        raise InputError(f"{base}: no snapshot {snap:03d} (expected snapdir_{snap:03d}/snap_{snap:03d}.N.hdf5)")
    return _check_complete(files, "NumFilesPerSnapshot")


def groupcat_files(base_path: str | Path, snap: int) -> list[Path]:
    """Chunk files of the group catalogue: groups_NNN/fof_subhalo_tab_NNN.C.hdf5 (or Illustris' groups_NNN.C.hdf5)."""
    base = Path(base_path)
    files = _chunks(base / f"groups_{snap:03d}", ("fof_subhalo_tab", "groups"), snap)
    if not files:
        raise InputError(f"{base}: no group catalogue for snapshot {snap:03d} "
                         f"(expected groups_{snap:03d}/fof_subhalo_tab_{snap:03d}.N.hdf5)")
    return _check_complete(files, "NumFiles")


def loadSnapHeader(basePath, snapNum: int) -> dict:  # noqa: N802,N803 (illustris_python's vocabulary)
    """Header attributes of the snapshot's first chunk."""
    path = snapshot_files(basePath, snapNum)[0]
    with open_hdf5(path) as f:
        return dict(header_attrs(f, path))


def loadHeader(basePath, snapNum: int) -> dict:  # noqa: N802,N803
    """Header attributes of the group catalogue's first chunk (Ngroups_Total, Nsubgroups_Total, ...)."""
    path = groupcat_files(basePath, snapNum)[0]
    with open_hdf5(path) as f:
        return dict(header_attrs(f, path))


# --------------------------------------------------------------------------- snapshots

def _type_layout(files: list[Path], num: int) -> tuple[list[int], Path | None]:
    """NumPart_ThisFile[num] of every chunk, and the first chunk holding part type ``num``."""
    counts, holder = [], None
    for p in files:
        with open_hdf5(p) as f:
            counts.append(int(header_attr(f, p, "NumPart_ThisFile")[num]))
            if holder is None and _nonempty(f, f"PartType{num}"):
                holder = p
    return counts, holder


def chunk_with_type(files: list[Path], ptype) -> Path | None:
    """The first chunk holding part type ``ptype`` (its field list is the snapshot's), None if none does."""
    group = f"PartType{part_type(ptype)}"
    for p in files:
        with open_hdf5(p) as f:
            if _nonempty(f, group):
                return p
    return None


def read_particles(files: list[Path], ptype, fields=None, start: int = 0, count: int | None = None,
                   mdi=None, float32: bool = False) -> dict:
    """``fields`` of part type ``ptype`` over the global index range [start, start+count), over all chunks.

    Returns {'count': n, field: array} ({'count': 0} for an empty range); no ``fields`` means all
    fields of the first chunk holding the type; ``mdi[i]`` picks one column of 2-D field i;
    ``float32`` reads float64 fields as float32.
    """
    if count == 0:
        return {"count": 0}
    num = part_type(ptype)
    group = f"PartType{num}"
    counts, holder = _type_layout(files, num)
    total = sum(counts)
    count = total - start if count is None else count
    if start < 0 or count < 0 or start + count > total:
        raise InputError(f"{files[0].parent}: particle range [{start}, {start + count}) of {group} "
                         f"outside the snapshot's {total} particles")
    if count == 0:
        return {"count": 0}
    if holder is None:
        raise InputError(f"{files[0].parent}: Header NumPart_ThisFile counts {total} particles of {group} "
                         f"but no chunk holds {group}")
    with open_hdf5(holder) as f:
        names = list(fields) if fields else list(f[group].keys())
        cols = [None] * len(names) if mdi is None else list(mdi)
        if len(cols) != len(names):
            raise InputError(f"mdi has {len(cols)} entries for {len(names)} fields")
        for name, col in zip(names, cols):
            if name not in f[group]:
                raise InputError(f"{holder}: field {group}/{name} missing")
            if col is not None and f[group][name].ndim != 2:
                raise InputError(f"{holder}: field {group}/{name} is not 2-D: mdi cannot pick a column")
    parts: dict[str, list] = {name: [] for name in names}
    first = 0
    for p, n in zip(files, counts):
        lo, hi = max(start, first), min(start + count, first + n)
        if hi > lo:
            with open_hdf5(p) as f:
                if group not in f:
                    raise InputError(f"{p}: missing part type {group} (Header NumPart_ThisFile says {n})")
                rows = slice(lo - first, hi - first)
                for name, col in zip(names, cols):
                    arr = read_field(f, p, group, name, rows if col is None else (rows, col))
                    parts[name].append(arr.astype(np.float32) if float32 and arr.dtype == np.float64 else arr)
        first += n
    return {"count": count, **{name: np.concatenate(v) for name, v in parts.items()}}


def loadSubset(basePath, snapNum: int, partType, fields=None, subset=None, mdi=None, sq: bool = True,  # noqa: N802,N803
               float32: bool = False):
    """All particles of one type (code units), or with ``subset`` ({'offsetType', 'lenType'} by type) a range.

    One field (and ``sq``) -> the bare array; several or none given (all) -> {'count', field: array};
    no particles -> {'count': 0}.
    """
    num = part_type(partType)
    start, count = (0, None) if subset is None else (int(subset["offsetType"][num]), int(subset["lenType"][num]))
    return _squeezed(read_particles(snapshot_files(basePath, snapNum), num, _as_list(fields), start, count,
                                    mdi, float32), sq)


# --------------------------------------------------------------------------- group catalogues

def read_catalogue(base_path, snap: int, group: str, fields=None) -> dict:
    """``fields`` of the catalogue's 'Group' or 'Subhalo' objects concatenated over chunks: {'count', field: array}.

    Chunks without objects of the kind are skipped; no ``fields`` means all fields of the first
    chunk holding objects; a catalogue without any -> {'count': 0}.
    """
    names = list(fields) if fields else None
    parts: dict[str, list] = {}
    for p in groupcat_files(base_path, snap):
        with open_hdf5(p) as f:
            if not _nonempty(f, group):
                continue
            names = names or list(f[group].keys())
            for name in names:
                parts.setdefault(name, []).append(read_field(f, p, group, name))
    if not parts:
        return {"count": 0}
    out = {name: np.concatenate(v) for name, v in parts.items()}
    return {"count": len(out[names[0]]), **out}


def catalogue_field_names(base_path, snap: int, group: str) -> set[str]:
    """Field names of the catalogue's ``group`` ('Group', 'Subhalo', ...) in the first chunk holding
    objects of it (the catalogue's field list); empty when no chunk does."""
    for p in groupcat_files(base_path, snap):
        with open_hdf5(p) as f:
            if _nonempty(f, group):
                return set(f[group].keys())
    return set()


def loadSubhalos(basePath, snapNum: int, fields=None):  # noqa: N802,N803
    """Subhalo fields of the group catalogue (code units); one field -> the bare array."""
    return _squeezed(read_catalogue(basePath, snapNum, "Subhalo", _as_list(fields)))


def loadHalos(basePath, snapNum: int, fields=None):  # noqa: N802,N803
    """FoF group fields of the group catalogue (code units); one field -> the bare array."""
    return _squeezed(read_catalogue(basePath, snapNum, "Group", _as_list(fields)))


def _locate(base_path, snap: int, group: str, obj_id: int) -> tuple[Path, int]:
    """The catalogue chunk holding object ``obj_id`` of ``group``, and its row there."""
    first = 0
    for p in groupcat_files(base_path, snap):
        with open_hdf5(p) as f:
            n = len(next(iter(f[group].values()))) if _nonempty(f, group) else 0
        if 0 <= obj_id - first < n:
            return p, obj_id - first
        first += n
    one, many = _NOUN[group]
    raise InputError(f"{base_path}: {one} {obj_id} does not exist in snapshot {snap:03d} (it has {first} {many})")


def loadSingle(basePath, snapNum: int, haloID: int = -1, subhaloID: int = -1) -> dict:  # noqa: N802,N803
    """Every catalogue field of one halo or one subhalo (give exactly one of the ids)."""
    if (haloID < 0) == (subhaloID < 0):
        raise InputError(f"loadSingle: give either haloID or subhaloID, not both or neither "
                         f"(got haloID={haloID}, subhaloID={subhaloID})")
    group, obj_id = ("Subhalo", subhaloID) if subhaloID >= 0 else ("Group", haloID)
    path, row = _locate(basePath, snapNum, group, obj_id)
    with open_hdf5(path) as f:
        return {name: read_field(f, path, group, name, row) for name in f[group]}


def _derived_offsets(base_path, snap: int, group: str) -> np.ndarray:
    """Offsets by part type of every halo or subhalo: particles are ordered by FoF group, then subhalo (Subfind)."""
    groups = read_catalogue(base_path, snap, "Group", ["GroupLenType", "GroupFirstSub", "GroupNsubs"])
    glen = groups["GroupLenType"].astype(np.int64)
    group_off = np.cumsum(glen, axis=0) - glen
    if group == "Group":
        return group_off
    lengths = read_catalogue(base_path, snap, "Subhalo", ["SubhaloLenType"])["SubhaloLenType"].astype(np.int64)
    offsets = np.zeros_like(lengths)
    for g in np.flatnonzero(groups["GroupNsubs"] > 0):
        first, n = int(groups["GroupFirstSub"][g]), int(groups["GroupNsubs"][g])
        sub = lengths[first:first + n]
        offsets[first:first + n] = group_off[g] + np.cumsum(sub, axis=0) - sub
    return offsets


def object_range(base_path, snap: int, group: str, obj_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(offset, length) by part type of halo ('Group') or subhalo ('Subhalo') ``obj_id`` in the snapshot.

    The offset comes from postprocessing/offsets/offsets_NNN.hdf5 ({group}/SnapByType) when present,
    as in illustris_python, otherwise from the catalogue's lengths in Subfind order.
    """
    path, row = _locate(base_path, snap, group, obj_id)
    with open_hdf5(path) as f:
        length = read_field(f, path, group, f"{group}LenType", row).astype(np.int64)
    offset_file = Path(base_path).parent / "postprocessing" / "offsets" / f"offsets_{snap:03d}.hdf5"
    if offset_file.exists():
        with open_hdf5(offset_file) as f:
            return read_field(f, offset_file, group, "SnapByType", obj_id).astype(np.int64), length
    return _derived_offsets(base_path, snap, group)[obj_id], length


def _object_particles(base_path, snap: int, group: str, obj_id: int, ptype, fields) -> dict:
    num = part_type(ptype)
    offset, length = object_range(base_path, snap, group, int(obj_id))
    return read_particles(snapshot_files(base_path, snap), num, _as_list(fields), int(offset[num]), int(length[num]))


def loadSubhalo(basePath, snapNum: int, id: int, partType, fields=None):  # noqa: N802,N803,A002
    """Particles of one type of one subhalo (code units), returned as :func:`loadSubset` does."""
    return _squeezed(_object_particles(basePath, snapNum, "Subhalo", id, partType, fields))


def loadHalo(basePath, snapNum: int, id: int, partType, fields=None):  # noqa: N802,N803,A002
    """Particles of one type of one FoF halo (code units), returned as :func:`loadSubset` does."""
    return _squeezed(_object_particles(basePath, snapNum, "Group", id, partType, fields))


# --------------------------------------------------------------------------- physical conversion

def _check_finite(path, group: str, name: str, arr: np.ndarray, nonnegative: bool = False) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InputError(f"{path}: field {group}/{name} has {int(bad.sum())} NaN or infinite values")
    if nonnegative and (arr < 0).any():
        raise InputError(f"{path}: field {group}/{name} has {int((arr < 0).sum())} negative values")


def to_particles(raw: dict, ptype: str, header: Header, mass_table: np.ndarray | None, source) -> ParticleSet:
    """Convert raw code-unit fields of one species into a physical :class:`ParticleSet`.

    Gas gets 'density' [Msun/kpc^3], 'temperature' [K], 'pressure' P/k_B [K cm^-3], 'eos' (star-forming:
    T and P from the effective equation of state), 'bfield' |B| [Gauss], 'neutral_h_mass' and, split by
    the default HI model (:mod:`skymorph.sim.derived`), 'hi_mass' and 'h2_mass' [Msun], 'sfr' [Msun/yr];
    wind particles (GFM_StellarFormationTime <= 0) are dropped from stars.
    """
    cu = units.CodeUnits(header.a, header.h)
    num = part_type_number(ptype)
    group = f"PartType{num}"
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
    elif mass_table is None:
        raise InputError(f"{source}: {group} has no Masses field and Header attribute 'MassTable' is missing")
    elif mass_table[num] <= 0:
        raise InputError(f"{source}: {group} has no Masses field and Header MassTable[{num}] is 0")
    else:
        mass = np.full(n, mass_table[num] * cu.mass_msun)
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
        if "InternalEnergy" in raw:
            fields["pressure"] = units.pressure_k(rho, raw["InternalEnergy"])
        if "InternalEnergy" in raw and "ElectronAbundance" in raw:
            fields["temperature"] = units.temperature(raw["InternalEnergy"], raw["ElectronAbundance"])
        if "StarFormationRate" in raw:
            fields["sfr"] = raw["StarFormationRate"].astype(np.float64)
            fields["eos"] = (raw["StarFormationRate"] > 0).astype(np.float64)
        if "MagneticField" in raw:
            fields["bfield"] = np.linalg.norm(raw["MagneticField"].astype(np.float64), axis=1) * cu.bfield_gauss
        if "NeutralHydrogenAbundance" in raw:
            fields["neutral_h_mass"] = neutral_hydrogen_mass(mass, raw["NeutralHydrogenAbundance"])
            if "pressure" in fields:
                fields["hi_mass"], fields["h2_mass"] = split_neutral(fields["neutral_h_mass"], fields["pressure"],
                                                                     DEFAULT_HI_MODEL)
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
        table = mass_table(f, path)
        for pt in parttypes:
            ptype = part_type_name(pt)
            group = f"PartType{part_type_number(ptype)}"
            if group not in f:
                raise InputError(f"{path}: missing part type {ptype} ({group}): the galaxy has no {ptype} particles")
            names = fields_to_read(f, group, ptype, path, require.get(ptype, ()))
            raw = {name: read_field(f, path, group, name) for name in names}
            ps = to_particles(raw, ptype, header, table, path)
            if len(ps) == 0:
                raise InputError(f"{path}: {group} is empty: the galaxy has no {ptype} particles")
            out[ptype] = ps
    return out


def read_header(path: str | Path) -> Header:
    """The :class:`Header` of one HDF5 file (snapshot chunk, cutout or catalogue)."""
    with open_hdf5(path) as f:
        return _header_from(f, path)

