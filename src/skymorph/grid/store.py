"""skymorph's cube store: ``/fields/<name>`` (nz, ny, nx) float32 with a ``unit`` attribute each;
attributes ``source``, ``time`` (code units), ``x1``, ``x2``, ``x3`` (domain min, max), ``notes`` (JSON:
how the cube was assembled) and the provenance. Written atomically; an existing output needs
``overwrite``."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from skymorph.atomic import atomic_path, check_output
from skymorph.errors import InputError
from skymorph.hdf5 import open_hdf5
from skymorph.grid.readers import Cube
from skymorph.provenance import provenance

__all__ = ["write_cube", "read_cube", "parse_units"]


def parse_units(text: str | None, fields) -> dict:
    """'rho=g/cm^3,Ec=erg/cm^3' -> {field: unit}; every name must be one of ``fields``."""
    out = {}
    for part in [p for p in (text or "").split(",") if p]:
        name, sep, unit = part.partition("=")
        if not sep or not unit:
            raise InputError(f"--units {text!r}: expected name=unit,...")
        if name not in fields:
            raise InputError(f"--units: {name!r} is not one of the fields read ({', '.join(fields)})")
        out[name] = unit
    return out


def write_cube(cube: Cube, out, units: dict | None = None, overwrite: bool = False) -> Path:
    out = check_output(out, overwrite)
    units = {**cube.units, **(units or {})}
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        for name, data in cube.fields.items():
            d = f.create_dataset(f"fields/{name}", data=np.asarray(data, np.float32))
            d.attrs["unit"] = units[name]
        f.attrs.update({"source": cube.source, "time": cube.time, "notes": json.dumps(cube.notes),
                        "provenance": json.dumps(provenance()),
                        **{f"x{i + 1}": np.asarray(e, dtype=np.float64) for i, e in enumerate(cube.edges)}})
    return out


def read_cube(path) -> Cube:
    with open_hdf5(path) as f:
        if "fields" not in f:
            raise InputError(f"{path}: not a skymorph cube store (/fields missing)")
        fields = {k: f["fields"][k][()] for k in f["fields"]}
        units = {k: str(f["fields"][k].attrs["unit"]) for k in f["fields"]}
        edges = tuple(tuple(f.attrs[f"x{i}"]) for i in (1, 2, 3))
        return Cube(fields, units, edges, float(f.attrs["time"]), str(f.attrs["source"]),
                    json.loads(f.attrs["notes"]))
