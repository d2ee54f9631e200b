"""Point-cloud datasets: each view of each galaxy as a source cloud (e.g. dark matter) and a target
cloud (e.g. gas), in one HDF5 file split by galaxy.

Geometry is the map builder's, so clouds and maps of one galaxy describe the same matter: the same
view rotations (seeded per galaxy by ``--seed``), the cube of half-width ``fov`` x the ``fov_ref``
half-mass radius, positions in units of that half-width (``meta/half_width_kpc``). Velocities are
relative to the source species' mass-weighted mean in the cube, in units of :data:`VEL_UNIT` km/s.
Every point keeps the mass it stands for (``weight``, Msun: sums are unbiased) and each view the
unsampled totals (``meta/mass_in_cube_<side>``, ``meta/n_in_cube_<side>``).

Layout: /source/points (V, n_in, F), /source/weight (V, n_in), /target/points, /target/weight,
/meta/<column> (V, ...), /splits/{train,val,test} view indices; attrs: from, to, features (column
names, JSON), units (JSON), settings (JSON).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np

from ..atomic import atomic_path, check_output
from ..data.build import check_splits
from ..data.store import split_by_galaxy
from ..errors import ConfigError, InputError, SkymorphError
from ..hdf5 import open_hdf5
from ..maps.domains import REF_TYPES
from ..maps.views import view_rotations
from ..parallel import run_tasks
from .sampling import SAMPLINGS, subsample

VEL_UNIT = 100.0  # km/s
FEATURE_COLUMNS = {"pos": ("x", "y", "z"), "vel": ("vx", "vy", "vz"), "mass": ("log_mass",)}
SPECIES = ("dm", "gas", "star")


def parse_features(spec: str) -> list[str]:
    """'pos,vel,mass' -> ['pos', 'vel', 'mass'] (positions first and required)."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    bad = [p for p in parts if p not in FEATURE_COLUMNS]
    if bad or not parts or parts[0] != "pos" or len(set(parts)) != len(parts):
        raise ConfigError(f"--features {spec!r}: expected pos, optionally followed by vel and/or mass "
                          f"(e.g. pos, pos,mass, pos,vel,mass)")
    return parts


def feature_columns(features: list[str]) -> list[str]:
    return [c for f in features for c in FEATURE_COLUMNS[f]]


def _species(name: str, flag: str) -> str:
    if name not in SPECIES:
        raise ConfigError(f"{flag} {name!r}: expected one of {', '.join(SPECIES)}")
    return REF_TYPES[name]


def _galaxy_clouds(source, gid: int, settings: dict) -> dict:
    """Every view's source and target clouds of galaxy ``gid`` (arrays keyed as in the file)."""
    sides = {"source": _species(settings["from"], "--from"), "target": _species(settings["to"], "--to")}
    ref = REF_TYPES[settings["fov_ref"]]
    needs_vel = "vel" in settings["features"]
    require = {p: ["Velocities"] for p in sides.values()} if needs_vel else None
    galaxy = source.load(gid, tuple(sorted({*sides.values(), ref})), require)
    hw = settings["fov"] * galaxy.half_mass_radius[ref]
    if not hw > 0:
        raise InputError(f"{galaxy.source}: galaxy {gid} has no {settings['fov_ref']} half-mass radius: "
                         f"cannot set the cube")
    rots = view_rotations(settings["rotations"], np.random.default_rng([settings["seed"], gid]))
    rng = np.random.default_rng([settings["seed"], gid, 1])
    out: dict[str, list] = {}
    for v, rot in enumerate(rots):
        vmean = None
        for side, ptype in sides.items():
            ps = galaxy.particles.get(ptype)
            what = f"{galaxy.source}: galaxy {gid} view {v} {settings[{'source': 'from', 'target': 'to'}[side]]}"
            if ps is None or len(ps) == 0:
                raise InputError(f"{what}: no particles (empty galaxy)")
            pos = ps.pos @ rot.T
            inside = np.all(np.abs(pos) < hw, axis=1)
            n = settings["n_in" if side == "source" else "n_out"]
            idx, weight = subsample(pos[inside] / hw, ps.mass[inside], n, settings["sampling"], rng,
                                    settings["replace"], f"{what} inside the {2 * hw:.3g} kpc cube")
            cols = [pos[inside][idx] / hw]
            if needs_vel:
                vel = ps.fields["velocity"][inside] @ rot.T
                if vmean is None:  # the source's mean motion is the frame of both clouds
                    vmean = np.average(vel, axis=0, weights=ps.mass[inside])
                cols.append((vel[idx] - vmean) / VEL_UNIT)
            if "mass" in settings["features"]:
                cols.append(np.log10(ps.mass[inside][idx])[:, None])
            points = np.concatenate(cols, axis=1)
            if not np.all(np.isfinite(points)):
                raise InputError(f"{what}: non-finite positions, velocities or masses")
            out.setdefault(f"{side}/points", []).append(points.astype(np.float32))
            out.setdefault(f"{side}/weight", []).append(weight.astype(np.float64))
            out.setdefault(f"meta/mass_in_cube_{side}", []).append(float(ps.mass[inside].sum()))
            out.setdefault(f"meta/n_in_cube_{side}", []).append(int(inside.sum()))
        out.setdefault("meta/galaxy_id", []).append(gid)
        out.setdefault("meta/view", []).append(v)
        out.setdefault("meta/rotation", []).append(rot)
        out.setdefault("meta/half_width_kpc", []).append(hw)
    return out


def write_part(source, gid: int, settings: dict, parts: Path) -> int:
    """Galaxy ``gid``'s clouds into ``parts``/galaxy_<gid>.npz (atomic)."""
    arrays = _galaxy_clouds(source, gid, settings)
    path = parts / f"galaxy_{gid}.npz"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k.replace("/", ":"): np.asarray(v) for k, v in arrays.items()})
    return gid


def build_clouds(source, out, from_: str = "dm", to: str = "gas", features: str = "pos", n_in: int = 4096,
                 n_out: int = 4096, sampling: str = "mass", rotations: int = 3, fov: float = 1.0, fov_ref: str = "gas",
                 seed: int = 0, splits=(0.8, 0.1, 0.1), replace: bool = False, overwrite: bool = False,
                 progress: bool = True, workers: int = 1, scheduler: str | None = None) -> Path:
    """Write the cloud store ``out`` from every galaxy of ``source`` (in ``workers`` processes or on the
    Dask ``scheduler``); galaxies are kept in OUT.parts as they finish, so a rerun resumes, and the
    store is written atomically at the end."""
    feats = parse_features(features)
    _species(from_, "--from")
    _species(to, "--to")
    if fov_ref not in REF_TYPES:
        raise ConfigError(f"unknown --fov-ref {fov_ref!r}; expected gas, dm or star")
    if sampling not in SAMPLINGS:
        raise ConfigError(f"unknown --sampling {sampling!r}; expected one of {', '.join(SAMPLINGS)}")
    for flag, value, ok in (("--n-in", n_in, n_in >= 1), ("--n-out", n_out, n_out >= 1),
                            ("--rotations", rotations, rotations >= 0), ("--fov", fov, fov > 0),
                            ("--workers", workers, workers >= 1)):
        if not ok:
            raise ConfigError(f"{flag} {value}: must be positive" + (" or 0" if flag == "--rotations" else ""))
    splits = check_splits(splits)
    out = check_output(out, overwrite)
    settings = {"from": from_, "to": to, "features": feats, "n_in": n_in, "n_out": n_out, "sampling": sampling,
                "rotations": rotations, "fov": fov, "fov_ref": fov_ref, "seed": seed, "replace": replace,
                "splits": list(splits)}
    parts = out.parent / (out.name + ".parts")  # one file per galaxy: an interrupted build resumes
    if parts.exists() and (parts / "settings.json").exists():
        if json.loads((parts / "settings.json").read_text()) != settings:
            if not overwrite:
                raise SkymorphError(f"{parts}: an interrupted build with other settings is there; rerun with its "
                                    f"settings or use --overwrite to start afresh")
            shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    (parts / "settings.json").write_text(json.dumps(settings))
    todo = {g: (source, g, settings, parts) for g in source.ids if not (parts / f"galaxy_{g}.npz").exists()}
    try:
        run_tasks(write_part, todo, workers, scheduler, progress, f"clouds of {len(todo)} galaxies")
    except SkymorphError:
        shutil.rmtree(parts)  # bad input: resuming cannot help
        raise
    arrays: dict[str, list] = {}
    for g in source.ids:
        with np.load(parts / f"galaxy_{g}.npz") as part:
            for k in part.files:
                arrays.setdefault(k.replace(":", "/"), []).extend(part[k])
    data = {k: np.asarray(v) for k, v in arrays.items()}
    units = {"x,y,z": "half_width_kpc of the view (meta/half_width_kpc)", "vx,vy,vz": f"{VEL_UNIT:g} km/s",
             "log_mass": "log10 Msun", "weight": "Msun", "mass_in_cube": "Msun", "half_width_kpc": "kpc"}
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            for k, v in data.items():
                f.create_dataset(k, data=v)
            for k, v in split_by_galaxy(data["meta/galaxy_id"], seed, splits).items():
                f.create_dataset(f"splits/{k}", data=v)
            f.attrs.update({"kind": "skymorph clouds", "from": from_, "to": to,
                            "features": json.dumps(feature_columns(feats)), "units": json.dumps(units),
                            "settings": json.dumps(settings), "source": json.dumps(source.description)})
    shutil.rmtree(parts)
    return out


class CloudStore:
    """Read access to a cloud store: ``clouds(side, split)`` -> (points, weights), meta columns, settings."""

    def __init__(self, path):
        self.path = Path(path)
        self._f = open_hdf5(self.path)
        if self._f.attrs.get("kind") != "skymorph clouds":
            self._f.close()
            raise InputError(f"{self.path}: not a skymorph cloud store (build one with skymorph clouds build)")
        self.settings = json.loads(self._f.attrs["settings"])
        self.columns = json.loads(self._f.attrs["features"])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def split(self, name: str) -> np.ndarray:
        if f"splits/{name}" not in self._f:
            raise InputError(f"{self.path}: no split {name!r}")
        return self._f[f"splits/{name}"][:]

    def clouds(self, side: str, idx) -> tuple[np.ndarray, np.ndarray]:
        """(points (V, n, F) float32, weights (V, n) Msun) of views ``idx`` on ``side`` ('source' or 'target')."""
        idx = np.sort(np.asarray(idx))
        return self._f[f"{side}/points"][idx], self._f[f"{side}/weight"][idx]

    def meta(self, name: str, idx=None) -> np.ndarray:
        if f"meta/{name}" not in self._f:
            raise InputError(f"{self.path}: no meta column {name!r}")
        d = self._f[f"meta/{name}"]
        return d[:] if idx is None else d[np.sort(np.asarray(idx))]

    @property
    def fingerprint(self) -> str:
        return f"{self._f.attrs['settings']}|{self._f.attrs['source']}|{len(self._f['meta/galaxy_id'])}"
