"""Buffered slices of grid simulations into a map store (classification and translation data).

The box is cut along ``axis`` into train | buffer | val | buffer | test | buffer slabs (the last buffer
guards the periodic wrap back to train), the slab widths in the ratio ``fractions``. A 3D cube gives
planes perpendicular to the axis at every position of a slab, each the mean of ``L`` adjacent planes
for each L of ``layers`` (closer to an observation than one plane), tiled into ``size`` x ``size``
images; a 2D run gives tiles of its plane lying inside each strip. No cell of a tile is within
``buffer`` cells (along the axis, periodically) of a cell of a tile from another split, so no gas
structure crosses splits. Realisations may also be held out whole: with ``test_seeds`` (and
``val_seeds``) a run of such a seed gives only its test (val) slab and every other run only its train
slab, so train and test differ in realisation as well as in place.

The store is the project's map layout (:mod:`skymorph.data.store`): ``/maps/<field>`` (N, size, size)
with log10 + standardisation from the train split, so ``skymorph train/translate/evaluate`` work on it;
``/meta`` holds ``label`` (class index into the ``classes`` attribute), ``galaxy_id`` (the independent
unit: one snapshot of one run), ``sim``, ``seed``, ``snapshot``, ``time``, ``position`` (first cell
along the axis), ``row``/``col`` (tile corner), ``layers`` and ``pixel_kpc`` (the cell size, here in
code length units: the column keeps the translators' name).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skymorph.atomic import check_output
from skymorph.data.store import SPLITS, write_store
from skymorph.errors import ConfigError, InputError
from skymorph.hdf5 import check_finite, open_hdf5
from skymorph.maps.domains import Domain

__all__ = ["AXES", "read_run", "slab_ranges", "build_slices", "FIELD_NAMES"]

AXES = {"x": 2, "y": 1, "z": 0}  # array axis of each direction in (nz, ny, nx)
FIELD_NAMES = {"rho": "gas density", "ec": "cosmic-ray energy density", "eb": "magnetic energy density"}


def read_run(path, names: list[str] | None):
    """Snapshots (S, nz, ny, nx) of the requested fields from a ``grid simulate`` file or a cube store
    (one snapshot), with units, label, seed and times. A file without a label is named by its stem."""
    path = Path(path)
    with open_hdf5(path) as f:
        group = "snapshots" if "snapshots" in f else "fields" if "fields" in f else None
        if group is None:
            raise InputError(f"{path}: neither a grid simulation (/snapshots) nor a cube store (/fields)")
        g = f[group]
        have = [k for k in g if k != "time"]
        names = names or [k for k in ("rho", "ec", "eb") if k in have]
        missing = [k for k in names if k not in have]
        if missing:
            raise InputError(f"{path}: field {missing[0]!r} not in the file (it has {', '.join(have)})")
        data = {}
        for k in names:
            arr = np.asarray(g[k][()], np.float64)
            data[k] = check_finite(path, f"/{group}/{k}", arr if group == "snapshots" else arr[None])
        units = {k: str(g[k].attrs.get("unit", "code")) for k in names}
        times = g["time"][()] if "time" in g else np.array([float(f.attrs.get("time", np.nan))])
        return {"fields": data, "units": units, "label": str(f.attrs.get("label", path.stem)),
                "seed": int(f.attrs.get("seed", -1)), "time": np.asarray(times, np.float64), "n": data[names[0]].shape}


def slab_ranges(n: int, buffer: int, fractions) -> dict[str, tuple[int, int]]:
    """[start, stop) cells of the train, val and test slabs along an axis of n periodic cells."""
    usable = n - 3 * buffer
    if usable <= 0:
        raise ConfigError(f"--buffer {buffer}: three buffers leave no cells of the {n} along the axis")
    widths = np.floor(np.asarray(fractions, float) / sum(fractions) * usable).astype(int)
    out, start = {}, 0
    for name, w in zip(SPLITS, widths):
        out[name] = (start, start + int(w))
        start += int(w) + buffer
    return out


def _tiles(plane: np.ndarray, size: int, rows, cols):
    """Tiles (size x size) of a 2D plane with corners at the given rows and columns."""
    return [(r, c, plane[r:r + size, c:c + size]) for r in rows for c in cols]


def _cut(run_fields: dict, axis: int, size: int, layers, slab: tuple[int, int], names):
    """Yield (snapshot, position, layers, row, col, {field: tile}) for one slab of one run."""
    shape = run_fields[names[0]].shape[1:]
    lo, hi = slab
    if shape[0] == 1:  # 2D: the plane itself, tiles inside the strip along the axis
        ny, nx = shape[1:]
        if axis == 0:
            raise ConfigError("--axis z: a 2D run has no z extent; slice along x or y")
        along = range(lo, hi - size + 1, size)
        across = range(0, (ny if axis == 2 else nx) - size + 1, size)
        rows, cols = (across, along) if axis == 2 else (along, across)
        for s in range(run_fields[names[0]].shape[0]):
            per = {k: _tiles(run_fields[k][s, 0], size, rows, cols) for k in names}
            for i, (r, c, _) in enumerate(per[names[0]]):
                yield s, (c if axis == 2 else r), 1, r, c, {k: per[k][i][2] for k in names}
        return
    plane_shape = [m for a, m in enumerate(shape) if a != axis]
    rows, cols = range(0, plane_shape[0] - size + 1, size), range(0, plane_shape[1] - size + 1, size)
    for n_layers in layers:
        for p in range(lo, hi - n_layers + 1, n_layers):
            for s in range(run_fields[names[0]].shape[0]):
                planes = {k: np.take(run_fields[k][s], range(p, p + n_layers), axis=axis).mean(axis=axis)
                          for k in names}
                per = {k: _tiles(planes[k], size, rows, cols) for k in names}
                for i, (r, c, _) in enumerate(per[names[0]]):
                    yield s, p, n_layers, r, c, {k: per[k][i][2] for k in names}


def build_slices(inputs, out, axis: str = "x", size: int = 64, buffer: int = 16, layers=(1,),
                 fractions=(0.6, 0.2, 0.2), fields: list[str] | None = None, val_seeds=(), test_seeds=(),
                 overwrite: bool = False) -> Path:
    """Cut every run of ``inputs`` into buffered, tiled slices and write one map store ``out``."""
    out = check_output(out, overwrite)
    if axis not in AXES:
        raise ConfigError(f"--axis {axis!r}: expected x, y or z")
    if size < 8 or buffer < 0 or not layers or min(layers) < 1 or len(fractions) != 3 or min(fractions) <= 0:
        raise ConfigError("--size >= 8, --buffer >= 0, --layers >= 1 and three positive --fractions expected")
    if set(val_seeds) & set(test_seeds):
        raise ConfigError(f"--val-seeds and --test-seeds share {sorted(set(val_seeds) & set(test_seeds))}")
    ax = AXES[axis]
    runs = [read_run(p, fields) for p in inputs]
    names = fields or sorted(set.intersection(*[set(r["fields"]) for r in runs]), key=["rho", "ec", "eb"].index)
    if not names:
        raise InputError(f"{inputs[0]}: no field common to all inputs")
    shapes = {tuple(r["n"][1:]) for r in runs}
    if len(shapes) != 1:
        raise InputError(f"inputs have different grids {sorted(shapes)}: slice runs of one resolution together")
    shape = shapes.pop()
    if shape[0] == 1 and max(layers) > 1:
        raise ConfigError(f"--layers {max(layers)}: a 2D run has one plane; layers need a 3D cube")
    slabs = slab_ranges(shape[ax], buffer, fractions)
    need = size if shape[0] == 1 else max(layers)
    for name, (lo, hi) in slabs.items():
        if hi - lo < need:
            raise ConfigError(f"--buffer {buffer}: the {name} slab is {hi - lo} cells wide, fewer than the "
                              f"{need} a {'tile' if shape[0] == 1 else 'layer stack'} needs: the split would "
                              f"be empty")
    classes = sorted({r["label"] for r in runs})
    maps = {k: [] for k in names}
    meta = {k: [] for k in ("label", "galaxy_id", "sim", "seed", "snapshot", "time", "position", "row", "col",
                            "layers")}
    split_of = []
    n_snap = max(r["fields"][names[0]].shape[0] for r in runs)
    for i, run in enumerate(runs):
        if run["seed"] in test_seeds:
            use = ["test"]
        elif run["seed"] in val_seeds:
            use = ["val"]
        else:
            use = ["train"] if (test_seeds or val_seeds) else list(SPLITS)
        for split in use:
            for s, p, n_layers, r, c, tiles in _cut(run["fields"], ax, size, layers, slabs[split], names):
                for k in names:
                    maps[k].append(tiles[k].astype(np.float32))
                for k, v in (("label", classes.index(run["label"])), ("galaxy_id", i * n_snap + s), ("sim", i),
                             ("seed", run["seed"]), ("snapshot", s), ("time", run["time"][s]), ("position", p),
                             ("row", r), ("col", c), ("layers", n_layers)):
                    meta[k].append(v)
                split_of.append(split)
    split_of = np.asarray(split_of)
    empty = [s for s in SPLITS if not (split_of == s).any()]
    if empty:
        raise ConfigError(f"the {empty[0]} split is empty: check --test-seeds / --val-seeds against the runs' seeds "
                          f"({sorted({r['seed'] for r in runs})})")
    meta = {k: np.asarray(v) for k, v in meta.items()}
    meta["pixel_kpc"] = np.full(len(split_of), 1.0 / shape[-1])
    units = {k: runs[0]["units"][k] for k in names}
    domains = [Domain(k, "grid", "", units[k], FIELD_NAMES.get(k, k)) for k in names]
    settings = {"axis": axis, "size": size, "buffer": buffer, "layers": list(layers), "fractions": list(fractions),
                "slabs": slabs, "val_seeds": list(val_seeds), "test_seeds": list(test_seeds),
                "inputs": [str(p) for p in inputs]}
    write_store(out, {k: np.stack(v) for k, v in maps.items()}, meta, domains,
                {"settings": json.dumps(settings), "classes": json.dumps(classes), "source": "grid slices"},
                seed=0, meta_units={"pixel_kpc": "code: L", "time": "code: L / c_s"},
                splits={s: np.flatnonzero(split_of == s).astype(np.int64) for s in SPLITS})
    return out

