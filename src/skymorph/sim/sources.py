"""Where galaxies come from: a folder of cutouts with a catalogue, or a TNG simulation folder.

A source lists galaxy ids and loads one :class:`Galaxy` (particles centred on the subhalo,
unwrapped periodically, physical units, with the catalogue's truth parameters of
:mod:`skymorph.sim.truth`). Sources hold paths and small per-galaxy catalogue rows, so they pickle
to workers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..hdf5 import open_hdf5
from . import units
from .particles import Header, ParticleSet, part_type_number
from .reader import (catalogue_field_names, chunk_with_type, fields_to_read, mass_table, object_range,
                     read_catalogue, read_cutout, read_field, read_header, read_particles, snapshot_files, to_particles)
from .truth import catalogue_truth, galaxy_truth, wanted_fields

CATALOG_NAME = "catalog.hdf5"


@dataclass
class Galaxy:
    """One subhalo's particles, centred on its position (physical kpc, Msun)."""

    id: int
    header: Header
    centre_kpc: np.ndarray
    particles: dict[str, ParticleSet]
    half_mass_radius: dict[str, float]  # kpc, from the catalogue (SubhaloHalfmassRadType)
    source: str  # the file(s) it came from, for messages
    snapshot: int = -1
    #: catalogue truth {name: (value, unit)} (:mod:`skymorph.sim.truth`); a truth it lacks is absent
    truth: dict[str, tuple[float, str]] = field(default_factory=dict)

    @property
    def straddles_edge(self) -> bool:
        """True when the particles reach across a face of the periodic box."""
        box = self.header.box_kpc
        return any(np.any(np.abs(ps.pos + self.centre_kpc - box / 2) > box / 2) for ps in self.particles.values())


def _catalog_rows(cat: dict, cu_len: float, ids) -> tuple[np.ndarray, np.ndarray]:
    return cat["SubhaloPos"][ids] * cu_len, cat["SubhaloHalfmassRadType"][ids] * cu_len


def _half_mass(row: np.ndarray) -> dict[str, float]:
    return {name: float(row[part_type_number(name)]) for name in ("gas", "dm", "stars")}


class CutoutFolder:
    """A folder of TNG web-API cutouts ``cutout_<id>.hdf5`` with a ``catalog.hdf5`` in group-catalogue layout."""

    kind = "cutouts"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.catalog_path = self.path / CATALOG_NAME
        if not self.path.is_dir():
            raise InputError(f"{self.path}: not a folder of cutouts")
        with open_hdf5(self.catalog_path) as f:
            self.header = read_header(self.catalog_path)
            self._cat = {name: read_field(f, self.catalog_path, "Subhalo", name)
                         for name in ("SubhaloPos", "SubhaloHalfmassRadType")}
            n = len(self._cat["SubhaloPos"])
            self._ids = (read_field(f, self.catalog_path, "Subhalo", "SubhaloID").astype(int)
                         if "SubhaloID" in f["Subhalo"] else np.arange(n))
            self._truth = catalogue_truth(_cutout_truth_fields(f, self.catalog_path, n),
                                          units.CodeUnits(self.header.a, self.header.h))
        self._row = {int(i): k for k, i in enumerate(self._ids)}
        missing = [path for path in map(self.cutout_path, self.ids) if not path.exists()]
        if missing:  # checked before any work, not when the build reaches them
            listed = ", ".join(p.name for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise InputError(f"{self.path}: {len(missing)} of the {len(self.ids)} galaxies of {CATALOG_NAME} have no "
                             f"cutout file: {listed}")

    def cutout_path(self, galaxy_id: int) -> Path:
        return self.path / f"cutout_{galaxy_id}.hdf5"

    @property
    def ids(self) -> list[int]:
        return [int(i) for i in self._ids]

    @property
    def description(self) -> dict:
        return {"kind": self.kind, "path": str(self.path.resolve())}

    def load(self, galaxy_id: int, parttypes=("gas", "dm", "stars"), require: dict | None = None) -> Galaxy:
        if galaxy_id not in self._row:
            raise InputError(f"{self.catalog_path}: subhalo {galaxy_id} not in the catalogue")
        path = self.cutout_path(galaxy_id)
        parts = read_cutout(path, parttypes, require)
        header = parts.pop("header")
        centre, rhalf = _catalog_rows(self._cat, header.a / header.h, self._row[galaxy_id])
        centred = {k: v.centred(centre, header.box_kpc) for k, v in parts.items()}
        return Galaxy(galaxy_id, header, centre, centred, _half_mass(rhalf), str(path),
                      truth=galaxy_truth(self._truth, self._row[galaxy_id]))


class TNGSimulation:
    """A TNG output folder (``basePath`` with snapdir_NNN/ and groups_NNN/), read like illustris_python."""

    kind = "tng"

    def __init__(self, base_path: str | Path, snapshot: int, subhalos=None):
        self.path = Path(base_path)
        self.snapshot = int(snapshot)
        self.header = read_header(snapshot_files(self.path, self.snapshot)[0])
        self._cat = read_catalogue(self.path, self.snapshot, "Subhalo", ["SubhaloPos", "SubhaloHalfmassRadType"])
        n = self._cat["count"]
        ids = np.arange(n) if subhalos is None else np.asarray(list(subhalos), dtype=int)
        missing = ids[(ids < 0) | (ids >= n)]
        if len(missing):
            raise InputError(f"{self.path}: subhalo {int(missing[0])} does not exist in snapshot "
                             f"{self.snapshot:03d} (it has {n} subhaloes)")
        self._ids = ids
        self._truth = _tng_truth(self.path, self.snapshot, ids, n, units.CodeUnits(self.header.a, self.header.h))
        self._truth_row = {int(i): k for k, i in enumerate(ids)}

    @property
    def ids(self) -> list[int]:
        return [int(i) for i in self._ids]

    @property
    def description(self) -> dict:
        return {"kind": self.kind, "path": str(self.path.resolve()), "snapshot": self.snapshot}

    def load(self, galaxy_id: int, parttypes=("gas", "dm", "stars"), require: dict | None = None) -> Galaxy:
        files = snapshot_files(self.path, self.snapshot)
        header = self.header
        with open_hdf5(files[0]) as f:
            table = mass_table(f, files[0])
        offset, length = object_range(self.path, self.snapshot, "Subhalo", galaxy_id)
        parts = {}
        for ptype in parttypes:
            num = part_type_number(ptype)
            group = f"PartType{num}"
            holder = chunk_with_type(files, num)  # field lists from a chunk that has the type, as illustris_python
            if holder is None:
                raise InputError(f"{files[0].parent}: missing part type {ptype} ({group}) in all {len(files)} chunks")
            with open_hdf5(holder) as f:
                names = fields_to_read(f, group, ptype, holder, (require or {}).get(ptype, ()))
            raw = read_particles(files, num, names, int(offset[num]), int(length[num]))
            if raw["count"] == 0:
                raise InputError(f"{self.path}: subhalo {galaxy_id} has no {ptype} particles ({group} is empty)")
            parts[ptype] = to_particles(raw, ptype, header, table, f"{self.path} subhalo {galaxy_id}")
        centre, rhalf = _catalog_rows(self._cat, header.a / header.h, galaxy_id)
        centred = {k: v.centred(centre, header.box_kpc) for k, v in parts.items()}
        truth = galaxy_truth(self._truth, self._truth_row[galaxy_id]) if galaxy_id in self._truth_row else {}
        return Galaxy(galaxy_id, header, centre, centred, _half_mass(rhalf), str(self.path), self.snapshot, truth)


def _cutout_truth_fields(f, path: Path, n: int) -> dict[tuple[str, str], np.ndarray]:
    """The fields of :func:`skymorph.sim.truth.wanted_fields` that a cutout catalogue has (all rows);
    /Truth and Subhalo fields must have one row per subhalo (``n``)."""
    out = {(group, name): read_field(f, path, group, name) for group, names in wanted_fields().items()
           if group in f for name in sorted(names) if name in f[group]}
    for (group, name), arr in out.items():
        if group != "Group" and len(arr) != n:
            raise InputError(f"{path}: field {group}/{name} has {len(arr)} rows for {n} subhaloes")
    grnr = out.get(("Subhalo", "SubhaloGrNr"))
    for (group, name), arr in out.items():
        if group == "Group" and grnr is not None and len(grnr) and not 0 <= grnr.min() <= grnr.max() < len(arr):
            raise InputError(f"{path}: field Subhalo/SubhaloGrNr points outside the {len(arr)} rows of Group/{name}")
    return out


def _tng_truth(base: Path, snap: int, ids: np.ndarray, n: int, cu: units.CodeUnits) -> dict:
    """Truth arrays of the subhaloes ``ids`` (in that order) from a chunked group catalogue of ``n``
    subhaloes: only the selected rows are kept (a full TNG catalogue has millions of subhaloes)."""
    fields = {}
    where = f"{base}/groups_{snap:03d}"
    for group, names in wanted_fields().items():
        have = sorted(names & catalogue_field_names(base, snap, group))
        if have:
            cat = read_catalogue(base, snap, group, have)
            for name in have:
                if group != "Group" and len(cat[name]) != n:
                    raise InputError(f"{where}: field {group}/{name} has {len(cat[name])} rows for {n} subhaloes")
                fields[(group, name)] = cat[name]
    if ("Subhalo", "SubhaloGrNr") in fields:  # rows of the selected subhaloes, and of their groups only
        grnr = fields[("Subhalo", "SubhaloGrNr")][ids].astype(np.int64)
        for (group, name), arr in fields.items():
            if group == "Group" and len(grnr) and not 0 <= grnr.min() <= grnr.max() < len(arr):
                raise InputError(f"{where}: field Subhalo/SubhaloGrNr points outside the {len(arr)} rows of "
                                 f"Group/{name}")
        used, inverse = np.unique(grnr, return_inverse=True)
        for key in [k for k in fields if k[0] == "Group"]:
            fields[key] = fields[key][used]
        fields[("Subhalo", "SubhaloGrNr")] = inverse.reshape(grnr.shape)
    for key in [k for k in fields if k[0] != "Group" and k != ("Subhalo", "SubhaloGrNr")]:
        fields[key] = fields[key][ids]
    return catalogue_truth(fields, cu)


def parse_ids(spec: str | None):
    """'0-99' or '3,5,7' or '0-9,20' -> list of ints; None -> None (all)."""
    if spec is None:
        return None
    ids = []
    for part in str(spec).split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            ids.extend(range(int(lo), int(hi) + 1))
        elif part:
            ids.append(int(part))
    return ids


def open_source(path: str | Path, snapshot: int | None = None, subhalos=None):
    """A :class:`CutoutFolder` (folder with catalog.hdf5) or, with ``snapshot``, a :class:`TNGSimulation`."""
    if snapshot is not None:
        return TNGSimulation(path, snapshot, subhalos)
    src = CutoutFolder(path)
    if subhalos is not None:
        unknown = [i for i in subhalos if i not in src._row]
        if unknown:
            raise InputError(f"{src.catalog_path}: subhalo {unknown[0]} not in the catalogue")
        src._ids = np.asarray(list(subhalos), dtype=int)
    return src
