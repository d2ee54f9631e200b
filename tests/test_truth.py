"""Catalogue truth in map stores (/meta/truth_<name>): synthetic /Truth, TNG catalogue fields, absences."""
import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.data.build import build_dataset
from skymorph.data.store import MapStore
from skymorph.errors import InputError
from skymorph.sim.sources import open_source
from skymorph.sim.synth import draw_params, synthesize
from skymorph.sim.truth import TRUTH_TABLE
from tng_files import HEADER, gas_fields, write_snapshot

SEED = 4
#: the store name -> the generator's GalaxyParams.truth() name and whether the store holds its log10
FROM_GENERATOR = {"log_m200": ("M200", True), "r200_kpc": ("R200", False), "v200_kms": ("V200", False),
                  "concentration": ("Concentration", False), "axis_ratio_ba": ("AxisRatioBA", False),
                  "axis_ratio_ca": ("AxisRatioCA", False), "spin": ("Spin", False),
                  "bulge_fraction": ("BulgeFraction", False), "disk_scale_length_kpc": ("DiskScaleLength", False),
                  "log_mstar": ("MStar", True), "log_mhi": ("MHI", True), "log_mhot": ("MHotHalo", True)}


@pytest.fixture(scope="module")
def synth_store(tmp_path_factory):
    base = tmp_path_factory.mktemp("truth")
    synthesize(base / "galaxies", 3, 1000, seed=SEED, progress=False)
    out = build_dataset(open_source(base / "galaxies"), base / "maps.h5", domains="gas,star", size=16, rotations=2,
                        seed=5, progress=False)
    return base / "galaxies", out


def test_truth_columns_equal_the_generators_truth(synth_store):
    galaxies, out = synth_store
    with h5py.File(galaxies / "catalog.hdf5", "r") as f:
        m200 = f["Truth/M200"][()]
    with MapStore(out) as s:
        gid = s.meta("galaxy_id")
        assert s.n == 9 and set(FROM_GENERATOR) | {"log_mgas"} == set(s.truth_names())
        for g in range(3):
            # the generator's own parameters of galaxy g, drawn again from its seed
            truth = draw_params(np.random.default_rng([SEED, g]), 0.0, near_corner=(g == 1)).truth()
            views = np.flatnonzero(gid == g)
            assert len(views) == 3
            for name, (key, log) in FROM_GENERATOR.items():
                got = s.truth(name, views)
                assert got.dtype == np.float64
                assert np.all(got == got[0])  # every view of a galaxy the same value
                want = np.log10(truth[key][0]) if log else truth[key][0]
                assert got[0] == pytest.approx(want, rel=1e-12), name
            assert s.truth("log_m200", views[1]) == pytest.approx(np.log10(m200[g]), rel=1e-14)
        assert s.truth("log_m200", slice(0, 2)).shape == (2,)
        # log_mgas: the synthetic catalogue has no /Truth total gas, so it comes from SubhaloMassType
        with h5py.File(galaxies / "catalog.hdf5", "r") as f:
            mgas = f["Subhalo/SubhaloMassType"][:, 0].astype(np.float64) * 1e10 / f["Header"].attrs["HubbleParam"]
        assert np.allclose(s.truth("log_mgas"), np.log10(mgas[gid]), rtol=1e-12)
    units = {spec.name: spec.unit for spec in TRUTH_TABLE}
    with h5py.File(out, "r") as f:
        for name in FROM_GENERATOR:
            assert f[f"meta/truth_{name}"].attrs["unit"] == units[name]
        assert f["meta/truth_log_m200"].attrs["unit"] == "log10(Msun)"
        assert f["meta/truth_r200_kpc"].attrs["unit"] == "kpc"
        assert f["meta/truth_spin"].attrs["unit"] == ""
        assert f["meta/truth_log_m200"].shape == (9,)


def test_missing_truth_names_the_file_field_and_what_is_there(synth_store):
    _, out = synth_store
    with MapStore(out) as s:
        with pytest.raises(InputError, match=r"maps\.h5: truth 'omega_m' missing \(field /meta/truth_omega_m "
                                             r"not in the store; its truths: axis_ratio_ba.*log_m200.*spin"):
            s.truth("omega_m")
        assert s.truth_unit("v200_kms") == "km/s"


def test_maps_info_lists_truths_with_units_and_ranges(synth_store):
    _, out = synth_store
    res = CliRunner().invoke(app, ["maps", "info", str(out)])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("log_m200 "))
    assert "log10(Msun)" in line
    with MapStore(out) as s:
        lo, hi = s.truth("log_m200").min(), s.truth("log_m200").max()
    assert f"{lo:.4g}" in line and f"{hi:.4g}" in line


# --------------------------------------------------------------------------- a TNG catalogue without /Truth

def _stars(n, rng, c):
    return {"Coordinates": np.asarray(c) + rng.normal(0, 3, (n, 3)), "Masses": np.full(n, 2e-5, np.float32),
            "GFM_StellarFormationTime": np.full(n, 0.4, np.float32)}


def _dm(n, rng, c):
    return {"Coordinates": np.asarray(c) + rng.normal(0, 10, (n, 3))}


#: SubhaloMassType (code units, 1e10 Msun/h) of the three subhaloes; subhalo 2 has no gas mass
MASS_TYPE = np.array([[0.4, 30.0, 0, 0, 1.5, 0], [0.1, 4.0, 0, 0, 0.25, 0], [0.0, 2.0, 0, 0, 0.08, 0]], np.float32)
M_CRIT200 = np.array([50.0, 3.0], np.float32)  # per FoF group (code units)


def _tng(tmp_path, with_m200: bool):
    rng = np.random.default_rng(9)
    subs = [{0: gas_fields(60, rng, c), 1: _dm(80, rng, c), 4: _stars(50, rng, c)}
            for c in [(100.0, 100, 100), (130.0, 100, 100), (5000.0, 5000, 5000)]]
    base = tmp_path / "output"
    write_snapshot(base, 99, subs, groups=[[0, 1], [2]], fuzz=3, n_chunks=2, rng=rng)
    sub0 = grp0 = 0
    for path in sorted((base / "groups_099").glob("*.hdf5")):  # add the fields chunk by chunk
        with h5py.File(path, "r+") as f:
            ns, ng = len(f["Subhalo/SubhaloLenType"]), len(f["Group/GroupLenType"])
            f["Subhalo/SubhaloMassType"] = MASS_TYPE[sub0:sub0 + ns]
            if with_m200:
                f["Group/Group_M_Crit200"] = M_CRIT200[grp0:grp0 + ng]
            sub0, grp0 = sub0 + ns, grp0 + ng
    return base


def _build(base, tmp_path, subhalos=None, name="tng.h5"):
    return build_dataset(open_source(base, 99, subhalos), tmp_path / name, domains="gas,star", size=16, rotations=1,
                         fov_ref="star", progress=False)


def test_tng_catalogue_gives_log_mstar_converted_with_h(tmp_path):
    base = _tng(tmp_path, with_m200=True)
    h = HEADER["HubbleParam"]
    out = _build(base, tmp_path, [0, 1])
    with MapStore(out) as s:
        gid = s.meta("galaxy_id")
        assert list(gid) == [0, 0, 1, 1]
        # subhaloes 0 and 1 have gas: all three catalogue truths, and nothing from /Truth
        assert s.truth_names() == ["log_m200", "log_mgas", "log_mstar"]
        assert np.allclose(s.truth("log_mstar"), np.log10(MASS_TYPE[gid, 4].astype(np.float64) * 1e10 / h), rtol=1e-12)
        assert np.allclose(s.truth("log_mgas"), np.log10(MASS_TYPE[gid, 0].astype(np.float64) * 1e10 / h), rtol=1e-12)
        # both subhaloes are in FoF group 0: its M200
        assert np.allclose(s.truth("log_m200"), np.log10(float(M_CRIT200[0]) * 1e10 / h), rtol=1e-12)
        assert s.truth_unit("log_mstar") == "log10(Msun)"
        with pytest.raises(InputError, match="truth 'concentration' missing"):
            s.truth("concentration")
    # subhalo 2 (FoF group 1) has no gas: log10(0) is absent, so the store has no log_mgas column
    out = _build(base, tmp_path, [1, 2], "with_gasless.h5")
    with MapStore(out) as s:
        assert s.truth_names() == ["log_m200", "log_mstar"]
        assert np.allclose(s.truth("log_m200", [2, 3]), np.log10(float(M_CRIT200[1]) * 1e10 / h), rtol=1e-12)
    with h5py.File(out, "r") as f:
        assert "truth_log_mgas" not in f["meta"]


def test_tng_catalogue_without_group_m200_has_no_log_m200(tmp_path):
    base = _tng(tmp_path, with_m200=False)
    with MapStore(_build(base, tmp_path, [0])) as s:
        assert s.truth_names() == ["log_mgas", "log_mstar"]
        with pytest.raises(InputError, match=r"tng\.h5: truth 'log_m200' missing .*its truths: log_mgas, log_mstar"):
            s.truth("log_m200")
