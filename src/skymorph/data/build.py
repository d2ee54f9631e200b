"""Build a paired multi-domain map dataset from a galaxy source, in parallel and resumably.

Each galaxy is rendered by a worker into its own part file ``<out>.parts/galaxy_<id>.h5``
(written atomically, so a galaxy is either done or not); a rerun after a kill renders only the
missing galaxies; when all are done the parts are assembled, in source order, into the store.
Each view carries its galaxy's catalogue truth as ``/meta/truth_<name>`` (:mod:`skymorph.sim.truth`).
Projection runs single-threaded inside each worker, so the result does not depend on ``workers``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np

from ..errors import ConfigError, SkymorphError
from ..maps.domains import REF_TYPES, get_domains
from ..maps.views import render_views, view_rotations
from ..sim.derived import DEFAULT_HI_MODEL, HI_MODELS, apply_hi_model, check_hi_model
from ..atomic import atomic_path, check_output
from ..parallel import check_scheduler, run_tasks, writable_folder
from .store import FLAG_BOX_EDGE, FLAG_EOS_GAS, TRUTH_PREFIX, write_store

ALL_DOMAINS = "dm,star,gas,hi,hi21,temp,bfield"


def _part_path(parts: Path, gid: int) -> Path:
    return parts / f"galaxy_{gid}.h5"


def render_galaxy(source, gid: int, settings: dict, parts: Path) -> int:
    """Render all views of galaxy ``gid`` into its part file (atomic). Returns the id.

    Its /meta holds, besides the view columns, ``truth_<name>`` float64 (the galaxy's catalogue truth
    repeated over its views, attribute ``unit``) for each truth the catalogue has for this galaxy."""
    domains = get_domains(settings["domains"])
    ptypes = sorted({d.ptype for d in domains} | {REF_TYPES[settings["fov_ref"]]} |
                    ({"stars"} if settings["face_edge"] else set()))
    require: dict[str, list] = {}
    for d in domains:
        require.setdefault(d.ptype, []).extend(d.requires)
    galaxy = source.load(gid, ptypes, require)
    if "gas" in galaxy.particles:
        apply_hi_model(galaxy.particles["gas"], settings["hi_model"])
    rng = np.random.default_rng([settings["seed"], gid])
    rots = view_rotations(settings["rotations"], rng, galaxy, settings["face_edge"])
    vs = render_views(galaxy, domains, settings["size"], rots, settings["fov"], settings["fov_ref"], threads=1)
    path = _part_path(parts, gid)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, arr in vs.maps.items():
                f.create_dataset(f"maps/{name}", data=arr)
            flags = (FLAG_EOS_GAS * (vs.sf_fraction > 0)) | (FLAG_BOX_EDGE * galaxy.straddles_edge)
            nv = len(rots)
            cols = {"galaxy_id": np.full(nv, gid), "view": np.arange(nv), "snapshot": np.full(nv, galaxy.snapshot),
                    "redshift": np.full(nv, galaxy.header.redshift), "rotation": vs.rotations,
                    "half_width_kpc": np.full(nv, vs.half_width), "pixel_kpc": np.full(nv, 2 * vs.half_width / settings["size"]),
                    "centre_kpc": np.tile(galaxy.centre_kpc, (nv, 1)), "n_particles": vs.counts,
                    "sf_gas_fraction": vs.sf_fraction, "flags": flags.astype(np.int32)}
            for k, v in cols.items():
                f.create_dataset(f"meta/{k}", data=v)
            for name, (value, unit) in sorted(galaxy.truth.items()):
                f.create_dataset(f"meta/{TRUTH_PREFIX}{name}", data=np.full(nv, value, dtype=np.float64)
                                 ).attrs["unit"] = unit
    return gid


def _assemble(parts: Path, ids: list[int], domains) -> tuple[dict, dict, dict]:
    """Maps, meta columns and meta units (the truth columns' ``unit``) of all parts, in ``ids`` order.

    A truth column is kept only when every galaxy has it: one galaxy without it (its catalogue
    lacks the field, or the log of a zero mass) drops the column from the store, never padded."""
    maps = {d.name: [] for d in domains}
    meta: dict[str, list] = {}
    meta_units: dict[str, str] = {}
    for gid in ids:
        with h5py.File(_part_path(parts, gid), "r") as f:
            for d in domains:
                maps[d.name].append(f["maps"][d.name][()])
            for k in f["meta"]:
                meta.setdefault(k, []).append(f["meta"][k][()])
                if "unit" in f["meta"][k].attrs:
                    meta_units[k] = str(f["meta"][k].attrs["unit"])
    meta = {k: v for k, v in meta.items() if not k.startswith(TRUTH_PREFIX) or len(v) == len(ids)}
    return ({k: np.concatenate(v) for k, v in maps.items()}, {k: np.concatenate(v) for k, v in meta.items()},
            {k: u for k, u in meta_units.items() if k in meta})


def check_splits(splits) -> tuple[float, float, float]:
    """Train, val and test fractions: three numbers, val and test positive, summing to 1."""
    f = tuple(float(x) for x in splits)
    if len(f) != 3 or min(f) < 0 or f[1] <= 0 or f[2] <= 0 or abs(sum(f) - 1.0) > 1e-6:
        raise ConfigError(f"--splits {','.join(f'{x:g}' for x in f)}: expected train,val,test fractions with val "
                          f"and test positive, summing to 1 (e.g. 0.8,0.1,0.1)")
    return f


def build_dataset(source, out: str | Path, domains: str = ALL_DOMAINS, size: int = 64, rotations: int = 3,
                  fov: float = 1.0, fov_ref: str = "gas", seed: int = 0, workers: int = 1, overwrite: bool = False,
                  face_edge: bool = False, progress: bool = True, splits=(0.8, 0.1, 0.1),
                  hi_model: str = DEFAULT_HI_MODEL, scheduler: str | None = None, parts_dir=None) -> Path:
    """Render every galaxy of ``source`` and write the map store ``out``; resumes an interrupted build.
    ``splits``: the train, val and test fractions of the galaxies; ``hi_model`` splits the neutral
    hydrogen into HI and H2 (:data:`skymorph.sim.derived.HI_MODELS`). Galaxies render in ``workers``
    processes or on the Dask ``scheduler`` (:func:`skymorph.parallel.run_tasks`), their part files in
    OUT.parts inside ``parts_dir`` if given (a folder every cluster worker can write), else beside OUT."""
    doms = get_domains(domains)
    check_hi_model(hi_model)
    for flag, value, ok, need in (("--size", size, size >= 4, "at least 4"),
                                  ("--rotations", rotations, rotations >= 0, "0 or more"),
                                  ("--fov", fov, fov > 0, "positive"), ("--workers", workers, workers >= 1, "at least 1")):
        if not ok:
            raise ConfigError(f"{flag} {value}: must be {need}")
    splits = check_splits(splits)
    if fov_ref not in REF_TYPES:
        raise ConfigError(f"unknown --fov-ref {fov_ref!r}; expected gas, dm or star")
    out = check_output(out, overwrite)
    settings = {"domains": ",".join(d.name for d in doms), "size": size, "rotations": rotations, "fov": fov,
                "fov_ref": fov_ref, "seed": seed, "face_edge": face_edge, "hi_model": hi_model,
                "source": source.description, "splits": list(splits)}
    check_scheduler(scheduler)
    parts = (writable_folder(parts_dir) if parts_dir is not None else out.parent) / (out.name + ".parts")
    settings_file = parts / "settings.json"
    if parts.exists() and settings_file.exists() and json.loads(settings_file.read_text()) != settings:
        if not overwrite:
            raise SkymorphError(f"{parts}: an interrupted build with other settings is there; "
                                f"rerun with its settings or use --overwrite to start afresh")
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(json.dumps(settings))
    ids = source.ids
    todo = [g for g in ids if not _part_path(parts, g).exists()]
    try:
        run_tasks(render_galaxy, {g: (source, g, settings, parts) for g in todo}, workers, scheduler, progress,
                  f"rendering {len(todo)} galaxies")
    except SkymorphError:
        shutil.rmtree(parts)  # bad input: resuming cannot help, leave nothing behind
        raise
    maps, meta, meta_units = _assemble(parts, ids, doms)
    write_store(out, maps, meta, doms, {"settings": settings, "source": source.description,
                                        "hi_model": f"{hi_model}: {HI_MODELS[hi_model]}"}, seed, splits, meta_units)
    shutil.rmtree(parts)
    return out
