"""skymorph.sim's loaders against illustris_python itself, on multi-chunk TNG-format folders.

Same arguments, same return types (bare array / dict / {'count': 0}), same dtypes and values, for
every part-type spelling and field form; on a folder whose chunk 0 holds no stars (black holes in
some subhaloes) and on one without black holes (a halo without subhaloes, an empty catalogue chunk).
Ours also runs without the offsets file (offsets derived from the catalogue) and must agree.
"""
import shutil

import numpy as np
import pytest

from skymorph.errors import InputError
from skymorph.sim import reader
from tng_files import gas_fields, write_snapshot

il = pytest.importorskip("illustris_python")

SNAP = 42
PT_FORMS = ["gas", "cells", 0, "0", "dm", "darkmatter", 1, "1", "dmlowres", 2, "tracers", "tracer", "tracermc", "trmc",
            3, "stars", "star", "stellar", "wind", 4, "4", np.int64(4), "bh", "bhs", "blackhole", "blackholes", 5, "5"]
FIELD_FORMS = [None, "ParticleIDs", ["ParticleIDs"], ["Coordinates", "ParticleIDs"]]
# layout: (subhaloes' part types, FoF groups, snapshot chunks, part types absent from chunk 0, catalogue chunks)
LAYOUTS = {
    "stars_not_in_chunk0": ([(0, 1, 4), (0, 1, 4, 5), (0, 1, 4), (0, 1, 4, 5)], [[0, 1], [2], [3]], 4, (4,),
                            [(2, 3), (1, 1)]),
    "no_black_holes": ([(0, 1, 4)] * 3, [[0], [], [1, 2]], 3, (), [(2, 1), (0, 0), (1, 2)]),
}


def _subhaloes(types, rng):
    ids = iter(range(1, 10**6))
    subs = []
    for i, pts in enumerate(types):
        c = np.array([100.0 + 40 * i, 100.0, 100.0])
        parts = {0: gas_fields(20 + i, rng, c), 1: {"Coordinates": c + rng.normal(0, 8, (30 + i, 3))},
                 4: {"Coordinates": c + rng.normal(0, 3, (10 + i, 3)), "Masses": np.full(10 + i, 2e-5, np.float32),
                     "GFM_StellarFormationTime": rng.uniform(-0.2, 0.9, 10 + i).astype(np.float32)},
                 5: {"Coordinates": c + rng.normal(0, 0.1, (2, 3)), "BH_Mass": np.full(2, 1e-3, np.float32)}}
        subs.append({pt: parts[pt] for pt in pts})
    for sub in subs:
        for fields in sub.values():
            fields["ParticleIDs"] = np.array([next(ids) for _ in fields["Coordinates"]], np.uint64)
    return subs


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """layout -> (basePath with the offsets file, the same folder without it)."""
    out = {}
    for name, (types, groups, n_chunks, skip_first, gc_chunks) in LAYOUTS.items():
        paths = []
        for offsets in (True, False):
            rng = np.random.default_rng(7)
            base = tmp_path_factory.mktemp(f"{name}_{offsets}") / "output"
            write_snapshot(base, SNAP, _subhaloes(types, rng), groups, fuzz=3, n_chunks=n_chunks, rng=rng,
                           offsets_file=offsets, skip_first=skip_first, gc_chunks=gc_chunks)
            paths.append(str(base))
        out[name] = tuple(paths)
    return out


def _calls(layout):
    types, groups, *_ = LAYOUTS[layout]
    calls = [("snapshot.loadSubset", (pt, f), {}) for pt in PT_FORMS for f in FIELD_FORMS]
    calls += [("snapshot.loadSubset", ("gas", ["Coordinates", "Masses"]), {"mdi": [1, None]}),
              ("snapshot.loadSubset", ("stars", "Coordinates"), {"float32": True}),
              ("snapshot.loadSubset", ("dm", ["Coordinates"]), {"sq": False}),
              ("snapshot.loadSubset", ("stars", ["ParticleIDs", "Masses"]), {"subset": ("Subhalo", 1)}),
              ("snapshot.loadSubset", ("gas", "ParticleIDs"), {"subset": ("Group", 0)})]
    for kind, n in (("snapshot.loadSubhalo", len(types)), ("snapshot.loadHalo", len(groups))):
        calls += [(kind, (i, pt, f), {}) for i in range(n) for pt in ("gas", 1, "stars", "4", "bh") for f in FIELD_FORMS]
    calls += [("groupcat.loadSubhalos", (f,), {}) for f in (None, "SubhaloPos", ["SubhaloPos"],
                                                            ["SubhaloPos", "SubhaloLenType"])]
    calls += [("groupcat.loadHalos", (f,), {}) for f in (None, "GroupFirstSub", ["GroupMass"], ["GroupPos", "GroupNsubs"])]
    calls += [("groupcat.loadHeader", (), {})]
    calls += [("groupcat.loadSingle", (), {"haloID": g}) for g in range(len(groups))]
    calls += [("groupcat.loadSingle", (), {"subhaloID": i}) for i in range(len(types))]
    return [(layout, *c) for c in calls]


CALLS = [c for layout in LAYOUTS for c in _calls(layout)]


def _assert_same(ours, theirs, where=""):
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{where}: got {type(ours).__name__}, illustris_python a dict"
        assert ours.keys() == theirs.keys(), where
        for k in theirs:
            if k == "count":
                assert int(ours[k]) == int(theirs[k]), where
            else:
                _assert_same(ours[k], theirs[k], f"{where}[{k}]")
    else:
        assert type(ours) is type(theirs), f"{where}: got {type(ours).__name__}, illustris_python {type(theirs).__name__}"
        ours, theirs = np.asarray(ours), np.asarray(theirs)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, where
        assert np.array_equal(ours, theirs), where


@pytest.mark.parametrize("layout, name, args, kwargs", CALLS,
                         ids=[f"{c[0]}-{c[1]}{c[2]}{c[3] or ''}" for c in CALLS])
def test_same_as_illustris_python(folders, layout, name, args, kwargs):
    module, func = name.split(".")
    with_offsets, without = folders[layout]
    if "subset" in kwargs:  # illustris_python's own offsets dict of that object
        kwargs = {"subset": il.snapshot.getSnapOffsets(with_offsets, SNAP, kwargs["subset"][1], kwargs["subset"][0])}
    theirs = getattr(getattr(il, module), func)(with_offsets, SNAP, *args, **kwargs)
    for base in (with_offsets, without):
        _assert_same(getattr(reader, func)(base, SNAP, *args, **kwargs), theirs, f"{func}{args}{kwargs} on {base}")


def test_halo_particles_are_its_subhaloes_then_its_fuzz(folders):
    base = folders["no_black_holes"][1]
    ids = [reader.loadSubhalo(base, SNAP, i, "stars", "ParticleIDs") for i in range(3)]
    halo = reader.loadHalo(base, SNAP, 2, "stars", "ParticleIDs")  # subhaloes 1 and 2, then 3 fuzz stars
    assert np.array_equal(halo[:len(ids[1]) + len(ids[2])], np.concatenate(ids[1:]))
    assert len(halo) == len(ids[1]) + len(ids[2]) + 3
    assert reader.loadHalo(base, SNAP, 1, "gas", "ParticleIDs").shape == (3,)  # a halo without subhaloes: fuzz only


def test_snapshot_header_is_chunk_zeros(folders):
    import h5py
    base = folders["stars_not_in_chunk0"][0]
    with h5py.File(f"{base}/snapdir_{SNAP:03d}/snap_{SNAP:03d}.0.hdf5") as f:
        expected = dict(f["Header"].attrs)
    _assert_same(reader.loadSnapHeader(base, SNAP), expected)
    assert reader.loadSnapHeader(base, SNAP)["NumPart_ThisFile"][4] == 0
    assert reader.loadHeader(base, SNAP)["Nsubgroups_Total"] == 4


def test_wrong_requests_are_errors_naming_file_and_field(folders):
    base = folders["stars_not_in_chunk0"][0]
    with pytest.raises(Exception):
        il.snapshot.loadSubset(base, SNAP, "dm", "Masses")
    with pytest.raises(InputError, match=r"snap_042\.0\.hdf5: field PartType1/Masses missing"):
        reader.loadSubset(base, SNAP, "dm", "Masses")
    with pytest.raises(InputError, match=r"snap_042\.1\.hdf5: field PartType4/Density missing"):
        reader.loadSubhalo(base, SNAP, 0, "stars", ["Coordinates", "Density"])  # stars first in chunk 1
    with pytest.raises(InputError, match=r"fof_subhalo_tab_042\.0\.hdf5: field Subhalo/SubhaloSpin missing"):
        reader.loadSubhalos(base, SNAP, "SubhaloSpin")
    with pytest.raises(InputError, match="unknown part type 'neutrinos'"):
        reader.loadSubset(base, SNAP, "neutrinos", "Coordinates")
    with pytest.raises(InputError, match="unknown part type 6"):
        reader.loadSubset(base, SNAP, "6", "Coordinates")
    with pytest.raises(InputError, match="subhalo 4 does not exist in snapshot 042 .it has 4 subhaloes"):
        reader.loadSubhalo(base, SNAP, 4, "gas", "Coordinates")
    with pytest.raises(InputError, match="halo 3 does not exist"):
        reader.loadSingle(base, SNAP, haloID=3)
    for ids in ({}, {"haloID": 0, "subhaloID": 0}):
        with pytest.raises(InputError, match="either haloID or subhaloID"):
            reader.loadSingle(base, SNAP, **ids)
    with pytest.raises(InputError, match="mdi has 1 entries for 2 fields"):
        reader.loadSubset(base, SNAP, "gas", ["Coordinates", "Masses"], mdi=[0])


def test_a_missing_chunk_is_an_error(folders, tmp_path):
    base = tmp_path / "output"
    shutil.copytree(folders["no_black_holes"][1], base)
    (base / f"snapdir_{SNAP:03d}" / f"snap_{SNAP:03d}.2.hdf5").unlink()
    with pytest.raises(InputError, match="NumFilesPerSnapshot = 3 but .*snapdir_042 holds 2 chunks"):
        reader.loadSubset(base, SNAP, "gas", "Masses")
