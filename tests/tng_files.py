"""Writers of small hand-made TNG-format files for the tests (cutouts and chunked snapshots)."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

HEADER = {"BoxSize": 75000.0, "Time": 0.5, "Redshift": 1.0, "HubbleParam": 0.7, "Omega0": 0.3,
          "OmegaLambda": 0.7, "OmegaBaryon": 0.05, "MassTable": np.array([0, 2e-4, 0, 0, 0, 0.0])}


def write_header(f: h5py.File, counts, **override) -> None:
    attrs = {**HEADER, **override}
    for k, v in attrs.items():
        f["Header"].attrs[k] = v if k != "MassTable" else np.asarray(v, dtype=np.float64)
    f["Header"].attrs["NumPart_ThisFile"] = np.asarray(counts, dtype=np.int64)
    f["Header"].attrs["NumPart_Total"] = np.asarray(counts, dtype=np.int64)


def write_cutout(path: Path, parts: dict, **header) -> Path:
    """``parts`` maps 'PartTypeN' -> {field: array} in code units."""
    counts = np.zeros(6, np.int64)
    with h5py.File(path, "w") as f:
        f.create_group("Header")
        for group, fields in parts.items():
            g = f.create_group(group)
            for k, v in fields.items():
                g[k] = v
            counts[int(group[-1])] = len(next(iter(fields.values()))) if fields else 0
        write_header(f, counts, **header)
    return path


def gas_fields(n: int, rng, centre=(1000.0, 1000.0, 1000.0), spread=5.0) -> dict:
    return {"Coordinates": np.asarray(centre) + rng.normal(0, spread, (n, 3)),
            "Masses": np.full(n, 1e-5, np.float32), "Density": rng.uniform(1e-4, 1e-2, n).astype(np.float32),
            "InternalEnergy": rng.uniform(50, 5000, n).astype(np.float32),
            "ElectronAbundance": rng.uniform(0, 1.2, n).astype(np.float32),
            "NeutralHydrogenAbundance": rng.uniform(0, 1, n).astype(np.float32),
            "MagneticField": rng.normal(0, 1, (n, 3)).astype(np.float32),
            "StarFormationRate": np.where(rng.uniform(size=n) < 0.3, 0.1, 0.0).astype(np.float32)}


def write_snapshot(base: Path, snap: int, subhalo_parts: list[dict], groups: list[list[int]], fuzz: int,
                   n_chunks: int, rng, offsets_file: bool = False) -> None:
    """A chunked snapshot + group catalogue in Subfind order.

    ``subhalo_parts[i]`` maps part type number -> {field: array} for subhalo i; ``groups`` lists the
    subhaloes of each FoF group; each group gets ``fuzz`` extra gas/dm/star particles after its subhaloes.
    """
    per_type: dict[int, dict[str, list]] = {}
    group_len = np.zeros((len(groups), 6), np.int64)
    sub_len = np.zeros((len(subhalo_parts), 6), np.int64)
    sub_pos = np.zeros((len(subhalo_parts), 3))
    for gi, subs in enumerate(groups):
        for si in subs:
            for pt, fields in subhalo_parts[si].items():
                n = len(fields["Coordinates"])
                sub_len[si, pt] = n
                group_len[gi, pt] += n
                for k, v in fields.items():
                    per_type.setdefault(pt, {}).setdefault(k, []).append(v)
            sub_pos[si] = np.median(subhalo_parts[si][1]["Coordinates"], axis=0)
        for pt in per_type:
            template = per_type[pt]
            for k in template:
                example = template[k][-1]
                extra = rng.uniform(0, 75000, (fuzz, 3)) if k == "Coordinates" else np.repeat(example[:1], fuzz, 0)
                template[k].append(extra.astype(example.dtype))
            group_len[gi, pt] += fuzz
    arrays = {pt: {k: np.concatenate(v) for k, v in fs.items()} for pt, fs in per_type.items()}
    snapdir = base / f"snapdir_{snap:03d}"
    snapdir.mkdir(parents=True)
    for c in range(n_chunks):
        counts = np.zeros(6, np.int64)
        with h5py.File(snapdir / f"snap_{snap:03d}.{c}.hdf5", "w") as f:
            f.create_group("Header")
            for pt, fs in arrays.items():
                n = len(fs["Coordinates"])
                lo, hi = c * n // n_chunks, (c + 1) * n // n_chunks
                counts[pt] = hi - lo
                g = f.create_group(f"PartType{pt}")
                for k, v in fs.items():
                    g[k] = v[lo:hi]
            write_header(f, counts, NumFilesPerSnapshot=n_chunks)
    gdir = base / f"groups_{snap:03d}"
    gdir.mkdir()
    first = np.cumsum([0] + [len(s) for s in groups])[:-1]
    halfmass = np.full((len(subhalo_parts), 6), 3.0)
    for c in range(2):  # group catalogue in two chunks, the second holding the last subhalo/group only
        gsl = slice(0, len(groups) - 1) if c == 0 else slice(len(groups) - 1, None)
        ssl = slice(0, len(subhalo_parts) - 1) if c == 0 else slice(len(subhalo_parts) - 1, None)
        with h5py.File(gdir / f"fof_subhalo_tab_{snap:03d}.{c}.hdf5", "w") as f:
            f.create_group("Header")
            write_header(f, np.zeros(6))
            f["Group/GroupLenType"] = group_len[gsl]
            f["Group/GroupFirstSub"] = first[gsl]
            f["Group/GroupNsubs"] = np.array([len(s) for s in groups])[gsl]
            f["Subhalo/SubhaloLenType"] = sub_len[ssl]
            f["Subhalo/SubhaloPos"] = sub_pos[ssl]
            f["Subhalo/SubhaloHalfmassRadType"] = halfmass[ssl]
    if offsets_file:
        odir = base.parent / "postprocessing" / "offsets"
        odir.mkdir(parents=True)
        goff = np.concatenate([np.zeros((1, 6), np.int64), np.cumsum(group_len, 0)[:-1]])
        offs = np.zeros_like(sub_len)
        for gi, subs in enumerate(groups):
            run = goff[gi].copy()
            for si in subs:
                offs[si] = run
                run = run + sub_len[si]
        with h5py.File(odir / f"offsets_{snap:03d}.hdf5", "w") as f:
            f["Subhalo/SnapByType"] = offs
