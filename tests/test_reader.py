"""TNG/Arepo readers: unit conversion at the boundary, periodic unwrapping, snapshots, bad input."""
import numpy as np
import pytest

from skymorph.errors import InputError
from skymorph.sim import loadSubhalo, loadSubhalos, loadSubset, read_cutout
from skymorph.sim.sources import TNGSimulation
from skymorph.sim.units import pressure_k
from tng_files import gas_fields, write_cutout, write_snapshot


def _stars(n, rng, centre=(1000.0, 1000.0, 1000.0)):
    return {"Coordinates": np.asarray(centre) + rng.normal(0, 3, (n, 3)), "Masses": np.full(n, 2e-5, np.float32),
            "GFM_StellarFormationTime": np.where(np.arange(n) < 5, -0.3, 0.4).astype(np.float32)}


def _dm(n, rng, centre=(1000.0, 1000.0, 1000.0)):
    return {"Coordinates": np.asarray(centre) + rng.normal(0, 10, (n, 3))}


@pytest.fixture
def cutout(tmp_path):
    rng = np.random.default_rng(0)
    return write_cutout(tmp_path / "cutout_0.hdf5", {"PartType0": gas_fields(200, rng), "PartType1": _dm(300, rng),
                                                     "PartType4": _stars(100, rng)})


def test_read_cutout_converts_with_the_files_a_and_h(cutout):
    import h5py
    p = read_cutout(cutout)
    a, h = 0.5, 0.7
    with h5py.File(cutout) as f:
        g = {k: f["PartType0"][k][()] for k in f["PartType0"]}
    gas = p["gas"]
    assert np.allclose(gas.pos, g["Coordinates"] * a / h)
    assert np.allclose(gas.mass, g["Masses"].astype(float) * 1e10 / h)
    rho = g["Density"].astype(float) * 1e10 * h**2 / a**3
    assert np.allclose(gas.fields["density"], rho)
    assert np.allclose(gas.hsml, 2.5 * (3 * gas.mass / (4 * np.pi * rho)) ** (1 / 3))
    assert np.allclose(gas.fields["bfield"], np.linalg.norm(g["MagneticField"].astype(float), axis=1) * h / a**2 * 2.6015e-6,
                       rtol=1e-4)
    neutral = 0.76 * gas.mass * g["NeutralHydrogenAbundance"]
    assert np.allclose(gas.fields["neutral_h_mass"], neutral)
    # the default HI model (BR06) splits it by the cell pressure (2/3) rho u / k_B
    np.testing.assert_allclose(gas.fields["pressure"], pressure_k(rho, g["InternalEnergy"].astype(float)), rtol=1e-12)
    np.testing.assert_allclose(gas.fields["hi_mass"] + gas.fields["h2_mass"], neutral, rtol=1e-6)
    ok = gas.fields["hi_mass"] > 0
    np.testing.assert_allclose(gas.fields["h2_mass"][ok] / gas.fields["hi_mass"][ok],
                               (gas.fields["pressure"][ok] / 4.3e4) ** 0.92, rtol=1e-6)
    assert np.array_equal(gas.fields["eos"] > 0, g["StarFormationRate"] > 0)
    # DM has no Masses: every particle weighs MassTable[1]
    assert np.allclose(p["dm"].mass, 2e-4 * 1e10 / h)
    # wind particles (formation time <= 0) are not stars
    assert len(p["stars"]) == 95
    # no SubfindHsml / StellarHsml: hsml is the distance to the 64th / 32nd neighbour
    from scipy.spatial import cKDTree
    d, _ = cKDTree(p["dm"].pos).query(p["dm"].pos, k=65)
    assert np.allclose(p["dm"].hsml, d[:, -1])


def test_hi_density_saturates_in_dense_star_forming_gas(tmp_path):
    """BR06: at P >> P0 the HI density of a cell grows only as rho^(1 - 0.92) while the neutral gas grows as
    rho; below P0 HI follows the neutral gas."""
    n = 7
    rho = np.logspace(-6, 0, n).astype(np.float32)  # code units: 1e-6 .. 1 -> P/k from ~1e1 to ~1e7 K cm^-3
    gas = {"Coordinates": np.full((n, 3), 1000.0) + np.arange(n)[:, None], "Masses": np.full(n, 1e-5, np.float32),
           "Density": rho, "InternalEnergy": np.full(n, 100.0, np.float32),
           "ElectronAbundance": np.full(n, 0.1, np.float32), "NeutralHydrogenAbundance": np.full(n, 0.9, np.float32),
           "StarFormationRate": np.full(n, 0.1, np.float32)}
    cells = read_cutout(write_cutout(tmp_path / "dense.hdf5", {"PartType0": gas}), parttypes=("gas",))["gas"]
    hi_density = cells.fields["hi_mass"] / (cells.mass / cells.fields["density"])
    p = cells.fields["pressure"]
    assert p[0] < 4.3e4 / 100 and p[-1] > 4.3e4 * 100
    slope = np.diff(np.log(hi_density)) / np.diff(np.log(cells.fields["density"]))
    assert slope[0] == pytest.approx(1.0, abs=0.02)  # atomic: HI follows the gas
    assert slope[-1] == pytest.approx(0.08, abs=0.02)  # molecular: HI saturates


def test_stored_smoothing_lengths_are_used(tmp_path):
    rng = np.random.default_rng(1)
    dm = _dm(100, rng)
    dm["SubfindHsml"] = np.full(100, 7.0, np.float32)
    path = write_cutout(tmp_path / "c.hdf5", {"PartType1": dm})
    assert np.allclose(read_cutout(path, ("dm",))["dm"].hsml, 7.0 * 0.5 / 0.7)


def test_periodic_unwrap_about_the_centre(tmp_path):
    rng = np.random.default_rng(2)
    box = 75000.0
    dm = _dm(400, rng, centre=(0.0, 0.0, box - 1.0))
    dm["Coordinates"] %= box  # straddles three faces of the box
    p = read_cutout(write_cutout(tmp_path / "c.hdf5", {"PartType1": dm}), ("dm",))
    centred = p["dm"].centred(np.array([0.0, 0.0, (box - 1.0) * 0.5 / 0.7]), box * 0.5 / 0.7)
    assert np.abs(centred.pos).max() < 60 * 0.5 / 0.7  # one compact galaxy, not split across the box
    assert np.allclose(np.median(centred.pos, axis=0), 0, atol=2.0)


@pytest.mark.parametrize("mutate, message", [
    (lambda g: g["PartType0"].pop("Density"), "PartType0/Density missing"),
    (lambda g: g.pop("PartType4"), "missing part type stars"),
    (lambda g: g["PartType0"]["Masses"].__setitem__(3, np.nan), "PartType0/Masses has 1 NaN"),
    (lambda g: g["PartType0"]["Masses"].__setitem__(3, -1.0), "PartType0/Masses has 1 negative"),
    (lambda g: g["PartType0"]["Density"].__setitem__(slice(0, 2), -1.0), "PartType0/Density has 2 negative"),
    (lambda g: g.__setitem__("PartType4", {k: v[:0] for k, v in g["PartType4"].items()}), "no stars particles"),
])
def test_bad_cutouts_name_the_file_and_field(tmp_path, mutate, message):
    rng = np.random.default_rng(3)
    parts = {"PartType0": gas_fields(50, rng), "PartType1": _dm(50, rng), "PartType4": _stars(50, rng)}
    mutate(parts)
    path = write_cutout(tmp_path / "bad.hdf5", parts)
    with pytest.raises(InputError, match=message) as err:
        read_cutout(path)
    assert "bad.hdf5" in str(err.value)


def test_missing_requested_field_is_named(cutout):
    with pytest.raises(InputError, match="PartType0/MagneticFieldDivergence missing"):
        read_cutout(cutout, ("gas",), {"gas": ["MagneticFieldDivergence"]})


def test_truncated_and_non_hdf5_files(tmp_path, cutout):
    data = cutout.read_bytes()
    (tmp_path / "trunc.hdf5").write_bytes(data[: len(data) // 3])
    (tmp_path / "text.hdf5").write_text("not hdf5")
    for name in ("trunc.hdf5", "text.hdf5", "absent.hdf5"):
        with pytest.raises(InputError, match=name):
            read_cutout(tmp_path / name)


@pytest.fixture
def snapshot(tmp_path):
    rng = np.random.default_rng(4)
    subs = []
    for i, c in enumerate([(100.0, 100, 100), (130.0, 100, 100), (5000.0, 5000, 5000)]):
        subs.append({0: gas_fields(30 + i, rng, c), 1: _dm(40 + 2 * i, rng, c), 4: _stars(20 + i, rng, c)})
    base = tmp_path / "output"
    write_snapshot(base, 99, subs, groups=[[0, 1], [2]], fuzz=7, n_chunks=3, rng=rng)
    return base, subs


def test_load_subset_concatenates_chunks(snapshot):
    base, subs = snapshot
    n_gas = sum(30 + i for i in range(3)) + 2 * 7
    assert loadSubset(base, 99, "gas", ["Masses"]).shape == (n_gas,)  # one field: the bare array
    both = loadSubset(base, 99, "gas", ["Masses", "Density"])
    assert both["count"] == n_gas and both["Density"].shape == (n_gas,)
    assert loadSubhalos(base, 99, "SubhaloLenType").shape == (3, 6)


@pytest.mark.parametrize("with_offsets", [False, True])
def test_load_subhalo_returns_exactly_its_particles(tmp_path, with_offsets):
    rng = np.random.default_rng(5)
    subs = [{0: gas_fields(30 + i, rng), 1: _dm(40 + i, rng), 4: _stars(20 + i, rng)} for i in range(4)]
    base = tmp_path / "output"
    write_snapshot(base, 33, subs, groups=[[0, 1, 2], [3]], fuzz=5, n_chunks=4, rng=rng, offsets_file=with_offsets)
    for sid in range(4):
        for pt, name in ((0, "gas"), (1, "dm"), (4, "stars")):
            got = loadSubhalo(base, 33, sid, name, ["Coordinates"])
            assert np.array_equal(got, subs[sid][pt]["Coordinates"])


def test_tng_source_matches_the_cutout_reader(snapshot, tmp_path):
    base, subs = snapshot
    src = TNGSimulation(base, 99, [1, 2])
    g = src.load(1)
    cut = read_cutout(write_cutout(tmp_path / "c1.hdf5", {f"PartType{k}": v for k, v in subs[1].items()}))
    for name in ("gas", "dm", "stars"):
        assert np.allclose(g.particles[name].mass, cut[name].mass)
        assert np.allclose(g.particles[name].pos + g.centre_kpc, cut[name].pos)
    assert g.half_mass_radius["gas"] == pytest.approx(3.0 * 0.5 / 0.7)


def test_unknown_subhalo_and_snapshot(snapshot):
    base, _ = snapshot
    with pytest.raises(InputError, match="subhalo 7 does not exist"):
        TNGSimulation(base, 99, [0, 7])
    with pytest.raises(InputError, match="subhalo 3 does not exist"):
        loadSubhalo(base, 99, 3, "gas", ["Masses"])
    with pytest.raises(InputError, match="no snapshot 098"):
        TNGSimulation(base, 98)


def _drop_attr(path, name):
    import h5py
    with h5py.File(path, "r+") as f:
        del f["Header"].attrs[name]
    return path


@pytest.mark.parametrize("name", ["Time", "HubbleParam", "BoxSize", "Omega0"])
def test_missing_header_attribute_for_the_conversion_is_named(cutout, name):
    with pytest.raises(InputError, match=f"cutout_0.hdf5: Header attribute '{name}' missing"):
        read_cutout(_drop_attr(cutout, name))


def test_missing_omega_baryon_warns_with_file_and_attribute(cutout):
    with pytest.warns(UserWarning, match="cutout_0.hdf5: Header attribute 'OmegaBaryon' missing; assuming TNG's 0.0486"):
        header = read_cutout(_drop_attr(cutout, "OmegaBaryon"), ("gas",))["header"]
    assert header.omega_b == 0.0486 and header.omega_m == 0.3  # the file's own Omega0 is kept


def test_dm_without_masses_needs_the_mass_table(cutout):
    with pytest.raises(InputError, match="cutout_0.hdf5: PartType1 has no Masses field and Header attribute 'MassTable'"):
        read_cutout(_drop_attr(cutout, "MassTable"), ("dm",))
    assert len(read_cutout(cutout, ("gas", "stars"))["gas"]) == 200  # species with Masses do not need it


def test_snapshot_chunk_without_particle_counts_is_named(snapshot):
    base, _ = snapshot
    _drop_attr(base / "snapdir_099" / "snap_099.1.hdf5", "NumPart_ThisFile")
    with pytest.raises(InputError, match=r"snap_099\.1\.hdf5: Header attribute 'NumPart_ThisFile' missing"):
        loadSubset(base, 99, "gas", "Masses")


@pytest.fixture
def no_stars_in_chunk0(tmp_path):
    """Three subhaloes over three chunks; chunk 0 has no PartType4 at all."""
    rng = np.random.default_rng(6)
    subs = [{0: gas_fields(40 + i, rng, c), 1: _dm(70 + i, rng, c), 4: _stars(30 + i, rng, c)}
            for i, c in enumerate([(100.0, 100, 100), (140.0, 100, 100), (3000.0, 3000, 3000)])]
    base = tmp_path / "output"
    write_snapshot(base, 50, subs, groups=[[0, 1], [2]], fuzz=4, n_chunks=3, rng=rng, skip_first=(4,))
    return base, subs


def test_tng_source_finds_the_part_types_beyond_chunk_0(no_stars_in_chunk0, tmp_path):
    import h5py
    base, subs = no_stars_in_chunk0
    with h5py.File(base / "snapdir_050" / "snap_050.0.hdf5") as f:
        assert "PartType4" not in f
    src = TNGSimulation(base, 50)
    for i, sub in enumerate(subs):
        g = src.load(i)
        cut = read_cutout(write_cutout(tmp_path / f"c{i}.hdf5", {f"PartType{k}": v for k, v in sub.items()}))
        for name in ("gas", "dm", "stars"):
            assert np.array_equal(g.particles[name].mass, cut[name].mass)
            assert np.allclose(g.particles[name].pos + g.centre_kpc, cut[name].pos)


def test_maps_build_from_a_snapshot_without_stars_in_chunk_0(no_stars_in_chunk0, tmp_path):
    from skymorph.data.build import build_dataset
    from skymorph.data.store import MapStore
    from skymorph.sim.sources import open_source
    base, subs = no_stars_in_chunk0
    out = build_dataset(open_source(base, 50), tmp_path / "maps.h5", domains="star,gas", size=16, rotations=0,
                        fov_ref="star", progress=False)
    with MapStore(out) as s:
        assert s.n == 3 and list(s.meta("galaxy_id")) == [0, 1, 2]
        assert (s.meta("n_particles")[:, 2] > 0).all()  # stars were projected
        assert (s.maps("star", 0) > 0).any()


def test_no_chunk_with_the_part_type(tmp_path):
    rng = np.random.default_rng(8)
    base = tmp_path / "output"
    write_snapshot(base, 51, [{0: gas_fields(20, rng), 1: _dm(30, rng)}], groups=[[0]], fuzz=2, n_chunks=3, rng=rng,
                   gc_chunks=[(1, 1)])
    assert len(TNGSimulation(base, 51).load(0, ("gas", "dm")).particles["dm"]) == 30
    with pytest.raises(InputError, match=r"snapdir_051: missing part type stars \(PartType4\) in all 3 chunks"):
        TNGSimulation(base, 51).load(0)


@pytest.mark.parametrize("first", ["skymorph.maps", "skymorph.maps.views", "skymorph.data.build"])
def test_maps_package_exports_import_without_cycles(first):
    import subprocess
    import sys
    code = (f"import {first}\nfrom skymorph.maps import (DOMAINS, REF_TYPES, Domain, ViewSet, face_on_rotation, "
            "get_domains, project_channels, project_mean, project_particles, render_views, view_rotations)\n"
            "from skymorph.maps import projection\nassert project_particles is projection.project_particles")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
