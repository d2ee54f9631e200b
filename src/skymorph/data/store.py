"""The HDF5 map store (DESIGN.md section 6): reading, and the atomic writer of a finished build.

Layout: /maps/<domain> float32 (N, H, W), one map per chunk, compressed, attrs unit / description /
normalisation; /meta/<column> one row per view (galaxy_id, view, snapshot, redshift, rotation,
half_width_kpc, pixel_kpc, centre_kpc, n_particles, sf_gas_fraction, flags); /meta/truth_<name>
float64 (N,), attr ``unit``: the galaxy's hidden truth from its catalogue, the same value on every
view of a galaxy (names, units and sources in :data:`skymorph.sim.truth.TRUTH_TABLE`: e.g. log_m200
[log10(Msun)], concentration, spin, bulge_fraction, log_mstar, log_mhi, r200_kpc from a synthetic
catalogue's /Truth; log_mstar, log_mgas, log_m200 from a TNG catalogue's fields); a truth the
catalogue lacks for any galaxy of the build has no column (never NaN or zero);
/splits/{train,val,test} view indices (split by galaxy); root attrs: skymorph version, settings,
source, seed, units.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np

from .. import __version__
from ..atomic import atomic_path
from ..errors import InputError
from .normalise import LogStandardise

SPLITS = ("train", "val", "test")
#: prefix of the per-view truth columns in /meta
TRUTH_PREFIX = "truth_"
#: bits of /meta/flags
FLAG_EOS_GAS = 1  # the view holds star-forming gas: its temperature follows the effective EOS
FLAG_BOX_EDGE = 2  # the galaxy straddles the periodic box edge (unwrapped)


def split_by_galaxy(galaxy_ids: np.ndarray, seed: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, np.ndarray]:
    """View indices per split; every view of a galaxy falls into one split (no rotated-copy leaks)."""
    uniq = np.unique(galaxy_ids)
    order = np.random.default_rng([seed, 7]).permutation(uniq)
    n = len(uniq)
    n_val = int(round(fractions[1] * n)) if n >= 3 else 0
    n_test = int(round(fractions[2] * n)) if n >= 3 else 0
    n_val, n_test = (max(n_val, 1), max(n_test, 1)) if n >= 3 else (n_val, n_test)
    groups = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    return {k: np.flatnonzero(np.isin(galaxy_ids, v)).astype(np.int64) for k, v in groups.items()}


def write_store(path: Path, maps: dict[str, np.ndarray], meta: dict[str, np.ndarray], domains, attrs: dict,
                seed: int, fractions=(0.8, 0.1, 0.1), meta_units: dict[str, str] | None = None,
                splits: dict[str, np.ndarray] | None = None) -> None:
    """Write a complete store atomically: splits by galaxy (train, val, test ``fractions``) unless
    ``splits`` are given, normalisation from the train split; ``meta_units`` gives meta columns a
    ``unit`` attribute (every ``truth_<name>`` column must have one)."""
    meta_units = meta_units or {}
    splits = splits if splits is not None else split_by_galaxy(meta["galaxy_id"], seed, fractions)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for d in domains:
                arr = maps[d.name]
                ds = f.create_dataset(f"maps/{d.name}", data=arr, chunks=(1, *arr.shape[1:]), compression="gzip",
                                      compression_opts=4, shuffle=True)
                train = arr[splits["train"][:: max(1, len(splits["train"]) // 1024)]]
                ds.attrs.update({"unit": d.unit, "description": d.description,
                                 **LogStandardise.fit(train if len(train) else arr).as_attrs()})
            for k, v in meta.items():
                ds = f.create_dataset(f"meta/{k}", data=v)
                if k in meta_units:
                    ds.attrs["unit"] = meta_units[k]
            for k, v in splits.items():
                f.create_dataset(f"splits/{k}", data=v)
            f.attrs.update({"skymorph_version": __version__, "seed": seed, "n_views": len(meta["galaxy_id"]),
                            "n_galaxies": len(np.unique(meta["galaxy_id"])),
                            "units": json.dumps({d.name: d.unit for d in domains}),
                            "domains": ",".join(d.name for d in domains),
                            **{k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in attrs.items()}})


class MapStore:
    """Read access to a map store: ``store.maps(domain, idx)`` in physical units, meta, splits, norms."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: map store not found")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as exc:
            raise InputError(f"{self.path}: not a readable HDF5 map store: {exc}") from None
        for group in ("maps", "meta", "splits"):
            if group not in self._f:
                self._f.close()
                raise InputError(f"{self.path}: group /{group} missing: not a skymorph map store")
        order = str(self._f.attrs.get("domains", ""))
        self.domains = [d for d in order.split(",") if d in self._f["maps"]] or list(self._f["maps"].keys())
        first = self._f["maps"][self.domains[0]]
        self.n, self.npix = first.shape[0], first.shape[1]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._f.close()

    @property
    def attrs(self) -> dict:
        return dict(self._f.attrs)

    @property
    def settings(self) -> dict:
        return json.loads(self._f.attrs["settings"])

    def unit(self, domain: str) -> str:
        return str(self._dataset(domain).attrs["unit"])

    def _dataset(self, domain: str) -> h5py.Dataset:
        if domain not in self._f["maps"]:
            raise InputError(f"{self.path}: domain {domain!r} not in the store (it has {', '.join(self.domains)})")
        return self._f["maps"][domain]

    def maps(self, domain: str, index=slice(None)) -> np.ndarray:
        """Maps of one domain (physical units), by index, slice or sorted index array."""
        return self._dataset(domain)[index]

    def norm(self, domain: str) -> LogStandardise:
        return LogStandardise.from_attrs(self._dataset(domain).attrs)

    def meta(self, column: str, index=slice(None)) -> np.ndarray:
        if column not in self._f["meta"]:
            raise InputError(f"{self.path}: meta column {column!r} missing")
        return self._f["meta"][column][index]

    def truth_names(self) -> list[str]:
        """The truth columns the store holds, without the ``truth_`` prefix, sorted."""
        return sorted(k[len(TRUTH_PREFIX):] for k in self._f["meta"] if k.startswith(TRUTH_PREFIX))

    def _truth(self, name: str) -> h5py.Dataset:
        key = f"{TRUTH_PREFIX}{name}"
        if key not in self._f["meta"]:
            have = ", ".join(self.truth_names()) or "none"
            raise InputError(f"{self.path}: truth {name!r} missing (field /meta/{key} not in the store; "
                             f"its truths: {have})")
        return self._f["meta"][key]

    def truth(self, name: str, index=slice(None)) -> np.ndarray:
        """Truth ``name`` (e.g. 'log_m200') per view, float64, by index, slice or sorted index array."""
        return self._truth(name)[index]

    def truth_unit(self, name: str) -> str:
        """The unit of truth ``name`` ('' when dimensionless)."""
        return str(self._truth(name).attrs.get("unit", ""))

    def split(self, name: str) -> np.ndarray:
        if name not in self._f["splits"]:
            raise InputError(f"{self.path}: split {name!r} missing (have {', '.join(self._f['splits'])})")
        return self._f["splits"][name][()]

    def galaxies(self, split: str) -> np.ndarray:
        """Sorted galaxy ids of a split."""
        return np.unique(self.meta("galaxy_id", self.split(split)))

    @functools.cached_property
    def fingerprint(self) -> str:
        """16 hex digits identifying what a model trained on this store depends on: the galaxy ids of
        each split, the domains and their normalisations, the map size and the build settings. The
        same build moved or copied elsewhere keeps it; a rebuild with another seed or split does not."""
        parts = {"splits": {k: self.galaxies(k).tolist() for k in sorted(self._f["splits"])},
                 "domains": self.domains, "npix": int(self.npix),
                 "norms": {d: vars(self.norm(d)) for d in self.domains},
                 "settings": str(self._f.attrs.get("settings", ""))}
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=float).encode()).hexdigest()[:16]

    def check_index(self, index: int) -> int:
        if not 0 <= index < self.n:
            raise InputError(f"{self.path}: view index {index} outside 0..{self.n - 1}")
        return index
