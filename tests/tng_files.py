"""Writers of small hand-made TNG-format files for the tests (cutouts and chunked snapshots)."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

HEADER = {"BoxSize": 75000.0, "Time": 0.5, "Redshift": 1.0, "HubbleParam": 0.7, "Omega0": 0.3,
          "OmegaLambda": 0.7, "OmegaBaryon": 0.05, "MassTable": np.array([0, 2e-4, 0, 0, 0, 0.0])}


def write_header(f: h5py.File, counts, total=None, **override) -> None:
    """Snapshot/cutout Header: cosmology, NumPart_ThisFile = ``counts``, NumPart_Total = ``total`` (else ``counts``)."""
    attrs = {**HEADER, **override}
    for k, v in attrs.items():
        f["Header"].attrs[k] = v if k != "MassTable" else np.asarray(v, dtype=np.float64)
    f["Header"].attrs["NumPart_ThisFile"] = np.asarray(counts, dtype=np.int64)
    f["Header"].attrs["NumPart_Total"] = np.asarray(counts if total is None else total, dtype=np.uint32)
    f["Header"].attrs["NumPart_Total_HighWord"] = np.zeros(6, np.uint32)


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


def _spread(n: int, n_chunks: int, skip_first: bool) -> list[slice]:
    """Contiguous slices of n items over the chunks (none in chunk 0 with ``skip_first``)."""
    first = 1 if skip_first else 0
    cuts = [0] * first + [(c * n) // (n_chunks - first) for c in range(n_chunks - first + 1)]
    return [slice(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:])]


def write_snapshot(base: Path, snap: int, subhalo_parts: list[dict], groups: list[list[int]], fuzz: int,
                   n_chunks: int, rng, offsets_file: bool = False, skip_first=(), gc_chunks=None) -> None:
    """A chunked snapshot + group catalogue in Subfind order, with TNG's headers.

    ``subhalo_parts[i]`` maps part type number -> {field: array} for subhalo i; ``groups`` lists the
    subhaloes of each FoF group (an empty list: a halo without subhaloes, GroupFirstSub = -1); each
    group gets ``fuzz`` extra particles of every type after its subhaloes. Part types in
    ``skip_first`` have no particles (and no PartTypeN group) in chunk 0. ``gc_chunks`` lists
    (groups, subhaloes) per catalogue chunk (default: all but the last, then the last); an
    empty chunk has empty Group/Subhalo groups. ``offsets_file`` writes
    postprocessing/offsets/offsets_NNN.hdf5 as TNG does.
    """
    per_type: dict[int, dict[str, list]] = {}
    n_sub = len(subhalo_parts)
    group_len = np.zeros((len(groups), 6), np.int64)
    sub_len = np.zeros((n_sub, 6), np.int64)
    sub_pos = np.zeros((n_sub, 3))
    sub_grnr = np.zeros(n_sub, np.int32)
    for gi, subs in enumerate(groups):
        for si in subs:
            sub_grnr[si] = gi
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
    total = np.zeros(6, np.int64)
    spread = {}
    for pt, fs in arrays.items():
        total[pt] = len(fs["Coordinates"])
        spread[pt] = _spread(total[pt], n_chunks, pt in skip_first)
    snapdir = base / f"snapdir_{snap:03d}"
    snapdir.mkdir(parents=True)
    chunk_first = np.zeros((n_chunks, 6), np.int64)
    for c in range(n_chunks):
        counts = np.zeros(6, np.int64)
        with h5py.File(snapdir / f"snap_{snap:03d}.{c}.hdf5", "w") as f:
            f.create_group("Header")
            for pt, fs in arrays.items():
                sl = spread[pt][c]
                chunk_first[c, pt] = sl.start
                counts[pt] = sl.stop - sl.start
                if counts[pt]:
                    g = f.create_group(f"PartType{pt}")
                    for k, v in fs.items():
                        g[k] = v[sl]
            write_header(f, counts, total, NumFilesPerSnapshot=n_chunks)
    gdir = base / f"groups_{snap:03d}"
    gdir.mkdir()
    nsubs = np.array([len(s) for s in groups])
    first = np.where(nsubs > 0, np.cumsum(nsubs) - nsubs, -1)
    group_cat = {"GroupLenType": group_len, "GroupFirstSub": first.astype(np.int32), "GroupNsubs": nsubs.astype(np.int32),
                 "GroupPos": np.array([sub_pos[s[0]] if s else np.zeros(3) for s in groups]),
                 "GroupMass": (group_len * [1e-5, 2e-4, 0, 0, 2e-5, 1e-6]).sum(1).astype(np.float32)}
    sub_cat = {"SubhaloLenType": sub_len.astype(np.int32), "SubhaloPos": sub_pos, "SubhaloGrNr": sub_grnr,
               "SubhaloHalfmassRadType": np.full((n_sub, 6), 3.0, np.float32)}
    gc_chunks = gc_chunks or [(len(groups) - 1, n_sub - 1), (1, 1)]
    ng0, ns0 = np.cumsum([[0, 0]] + [list(c) for c in gc_chunks], axis=0).T
    for c, (ng, ns) in enumerate(gc_chunks):
        with h5py.File(gdir / f"fof_subhalo_tab_{snap:03d}.{c}.hdf5", "w") as f:
            f.create_group("Header")
            for k, v in {**{k: v for k, v in HEADER.items() if k != "MassTable"}, "NumFiles": len(gc_chunks),
                         "Ngroups_ThisFile": ng, "Ngroups_Total": len(groups),
                         "Nsubgroups_ThisFile": ns, "Nsubgroups_Total": n_sub}.items():
                f["Header"].attrs[k] = np.int32(v) if isinstance(v, (int, np.integer)) else v
            for name, cat, lo, n in (("Group", group_cat, ng0[c], ng), ("Subhalo", sub_cat, ns0[c], ns)):
                g = f.create_group(name)
                for k, v in cat.items():
                    if n:
                        g[k] = v[lo:lo + n]
    if offsets_file:
        odir = base.parent / "postprocessing" / "offsets"
        odir.mkdir(parents=True)
        goff = np.cumsum(group_len, 0) - group_len
        offs = np.zeros_like(sub_len)
        for gi, subs in enumerate(groups):
            run = goff[gi].copy()
            for si in subs:
                offs[si] = run
                run = run + sub_len[si]
        with h5py.File(odir / f"offsets_{snap:03d}.hdf5", "w") as f:
            f["FileOffsets/Group"] = ng0[:-1].astype(np.int64)
            f["FileOffsets/Subhalo"] = ns0[:-1].astype(np.int64)
            f["FileOffsets/SnapByType"] = chunk_first
            f["Group/SnapByType"] = goff
            f["Subhalo/SnapByType"] = offs
