"""Grid simulation readers: Athena++ ``.athdf`` MeshBlock files and FITS cubes into uniform cubes.

Athena++ (``vis/python/athena_read.py`` semantics): HDF5 attributes RootGridSize (nx1, nx2, nx3),
MeshBlockSize, RootGridX1..3 (min, max, ratio), MaxLevel, NumMeshBlocks, DatasetNames, NumVariables
(per dataset) and VariableNames (all datasets' variables in order), Time; datasets Levels (nblock,),
LogicalLocations (nblock, 3) (block index at its own level) and each of DatasetNames as
[nvar, nblock, nx3, nx2, nx1]. Blocks are placed by their logical location, in any order; a block
finer than the requested level is restricted (volume average of 2^d cells), a coarser one
prolongated (each cell repeated), d the dimensions with more than one root cell. Every output cell
must be covered exactly once. Cubes are (nx3, nx2, nx1), as Athena++ stores them; units are code
units unless the caller states them (Athena++ files carry none, as yt warns).

Written by hand (rather than through yt) because only the uniform-cube assembly is needed and the
tests write files in the layout directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skymorph.errors import ConfigError, InputError
from skymorph.hdf5 import check_finite, open_hdf5

__all__ = ["Cube", "read_athdf", "read_fits", "read_grid", "LEVELS"]

LEVELS = ("root", "finest")
_ATHDF_ATTRS = ("RootGridSize", "MeshBlockSize", "MaxLevel", "DatasetNames", "NumVariables", "VariableNames")


@dataclass
class Cube:
    """Uniform fields (nz, ny, nx) float32 with units, the domain edges (x1, x2, x3 min/max), time."""

    fields: dict
    units: dict
    edges: tuple
    time: float = float("nan")
    source: str = ""
    notes: dict = field(default_factory=dict)


def _names(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(values)]


def read_athdf(path, fields: list[str] | None = None, level: str = "root") -> Cube:
    """Assemble the requested variables (default all) of an Athena++ file at the root or finest level."""
    path = Path(path)
    if level not in LEVELS:
        raise ConfigError(f"--level {level!r}: expected one of {', '.join(LEVELS)}")
    with open_hdf5(path) as f:
        missing = [a for a in _ATHDF_ATTRS if a not in f.attrs]
        if missing or "Levels" not in f or "LogicalLocations" not in f:
            raise InputError(f"{path}: not an Athena++ .athdf file (missing {', '.join(missing) or 'Levels'})")
        root = np.asarray(f.attrs["RootGridSize"], dtype=int)
        block = np.asarray(f.attrs["MeshBlockSize"], dtype=int)
        levels = f["Levels"][()].astype(int)
        locs = f["LogicalLocations"][()].astype(int)
        datasets = _names(f.attrs["DatasetNames"])
        counts = np.asarray(f.attrs["NumVariables"], dtype=int)
        variables = _names(f.attrs["VariableNames"])
        where = {}
        start = 0
        for ds, n in zip(datasets, counts):
            for j, v in enumerate(variables[start:start + n]):
                where[v] = (ds, j)
            start += n
        fields = list(where) if not fields else fields
        unknown = [v for v in fields if v not in where]
        if unknown:
            raise InputError(f"{path}: field {unknown[0]!r} not in the file (it has {', '.join(where)})")
        target = int(f.attrs["MaxLevel"]) if level == "finest" else 0
        dims = root > 1  # refined dimensions
        shape = np.where(dims, root * 2**target, 1)
        out, covered = {}, np.zeros(shape[::-1], dtype=np.int32)
        for name in fields:
            ds, j = where[name]
            data = f[ds]
            cube = np.zeros(shape[::-1], dtype=np.float64)
            for b in range(len(levels)):
                vals = np.asarray(data[j, b], dtype=np.float64)  # (bx3, bx2, bx1)
                diff = target - levels[b]
                if diff >= 0:
                    s = 2**diff
                    for ax in range(3):
                        if dims[2 - ax]:
                            vals = np.repeat(vals, s, axis=ax)
                    size = np.where(dims, block * s, 1)
                    lo = np.where(dims, locs[b] * block * s, 0)
                else:
                    r = 2 ** (-diff)
                    sh = []
                    for ax in range(3):
                        n = vals.shape[ax]
                        sh += [n // r, r] if dims[2 - ax] else [n, 1]
                    vals = vals.reshape(sh).mean(axis=(1, 3, 5))
                    size = np.where(dims, block // r, 1)
                    lo = np.where(dims, locs[b] * block // r, 0)
                if np.any(lo < 0) or np.any(lo + size > shape):
                    raise InputError(f"{path}: MeshBlock {b} (level {levels[b]}, logical location "
                                     f"{tuple(int(v) for v in locs[b])}) lies outside the root grid")
                sl = tuple(slice(lo[i], lo[i] + size[i]) for i in (2, 1, 0))
                if not np.all(np.isfinite(vals)):
                    raise InputError(f"{path}: {name} has NaN or infinite values in MeshBlock {b}")
                cube[sl] = vals
                if name == fields[0]:
                    covered[sl] += 1
            out[name] = cube.astype(np.float32)
        if covered.min() != 1 or covered.max() != 1:
            raise InputError(f"{path}: the MeshBlocks do not tile the domain at the {level} level "
                             f"({int((covered == 0).sum())} cells uncovered, {int((covered > 1).sum())} overlapped)")
        edges = tuple(tuple(float(v) for v in f.attrs[f"RootGridX{i}"][:2]) if f"RootGridX{i}" in f.attrs
                      else (0.0, 1.0) for i in (1, 2, 3))
        time = float(f.attrs.get("Time", np.nan))
    return Cube(out, {k: "code units" for k in out}, edges, time, str(path),
                {"level": level, "max_level": int(levels.max()), "blocks": int(len(levels))})


def read_fits(path, name: str | None = None) -> Cube:
    """A FITS cube (primary HDU, 3D or 2D) as one field named ``name`` (default the file stem), unit BUNIT."""
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path) as hdul:
            data, header = hdul[0].data, hdul[0].header
    except OSError as exc:
        raise InputError(f"{path}: not a readable FITS file ({exc})") from None
    if data is None or data.ndim not in (2, 3):
        raise InputError(f"{path}: the primary HDU holds no 2D or 3D cube")
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        data = data[None]
    check_finite(path, "the cube", data)
    key = name or path.stem
    edges = tuple((0.0, float(n)) for n in data.shape[::-1])
    return Cube({key: data}, {key: str(header.get("BUNIT", "code units"))}, edges, source=str(path))


def read_grid(path, fields: list[str] | None = None, level: str = "root") -> Cube:
    """Athena++ (.athdf), FITS (.fits/.fit) or a skymorph cube store (.h5) by suffix; anything else is
    refused in one line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".athdf":
        return read_athdf(path, fields, level)
    if suffix in (".fits", ".fit"):
        if fields and len(fields) > 1:
            raise ConfigError(f"{path}: a FITS cube holds one field; --fields names {len(fields)}")
        return read_fits(path, fields[0] if fields else None)
    if suffix in (".h5", ".hdf5"):
        from skymorph.grid.store import read_cube

        cube = read_cube(path)
        unknown = [v for v in fields or [] if v not in cube.fields]
        if unknown:
            raise InputError(f"{path}: field {unknown[0]!r} not in the cube store (it has {', '.join(cube.fields)})")
        keep = fields or list(cube.fields)
        return Cube({k: cube.fields[k] for k in keep}, {k: cube.units[k] for k in keep}, cube.edges, cube.time,
                    cube.source, cube.notes)
    raise InputError(f"{path}: not an Athena++ (.athdf), FITS (.fits) or skymorph cube (.h5) file")
