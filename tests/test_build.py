"""Map dataset builds: pairing, rotations, splits, determinism, resume, physical relations, FITS."""
import hashlib
import json
import shutil

import h5py
import numpy as np
import pytest
from astropy.io import fits
from scipy.stats import spearmanr

from skymorph.data.build import build_dataset, render_galaxy
from skymorph.data.fits import export_fits
from skymorph.data.store import MapStore
from skymorph.errors import InputError, OutputExistsError
from skymorph.maps.domains import get_domains
from skymorph.maps.projection import project_particles
from skymorph.maps.views import render_views
from skymorph.sim.derived import moment0_21cm
from skymorph.sim.sources import open_source


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_store_layout_units_and_splits_by_galaxy(store_path):
    with MapStore(store_path) as s:
        assert s.n == 15 and s.npix == 32
        assert s.domains == ["dm", "star", "gas", "hi", "hi21", "temp", "bfield"]  # registry order
        assert s.unit("hi21") == "K km/s" and s.unit("bfield") == "Gauss" and s.unit("dm") == "Msun/kpc^2"
        splits = {k: s.split(k) for k in ("train", "val", "test")}
        assert np.array_equal(np.sort(np.concatenate(list(splits.values()))), np.arange(15))
        gid = s.meta("galaxy_id")
        owners = {}
        for name, idx in splits.items():
            for g in gid[idx]:
                assert owners.setdefault(int(g), name) == name  # all views of a galaxy in one split
        assert len(splits["val"]) and len(splits["test"])
        # the normalisation inverts exactly and comes from the train split
        norm = s.norm("gas")
        x = s.maps("gas", 0)
        assert np.allclose(norm.inverse(norm.forward(x)), x, rtol=1e-9, atol=1e-9 * x.max())
        assert json.loads(s.attrs["units"])["temp"] == "K"


def test_views_are_paired_and_mass_weighted_maps_are_ratios(store_path, synth_dir):
    src = open_source(synth_dir)
    with MapStore(store_path) as s:
        i = 4  # galaxy 1, view 1: a random rotation
        gid, rot, hw = int(s.meta("galaxy_id", i)), s.meta("rotation", i), float(s.meta("half_width_kpc", i))
        gas = src.load(gid).particles["gas"]
        pos = gas.pos @ rot.T
        sel = np.abs(pos[:, 2]) < hw
        m = project_particles(pos[sel, :2], gas.mass[sel], gas.hsml[sel], 32, hw)
        mt = project_particles(pos[sel, :2], gas.mass[sel] * gas.fields["temperature"][sel], gas.hsml[sel], 32, hw)
        assert np.allclose(s.maps("gas", i), m, rtol=1e-5, atol=1e-6 * m.max())
        t = np.divide(mt, m, out=np.zeros_like(m), where=m > 0)
        assert np.allclose(s.maps("temp", i), t, rtol=1e-5)
        # hi21 is moment 0 of the optically thin line: N_HI / 1.823e18 K km/s, the same multiple of HI everywhere
        hi, t21 = s.maps("hi", i), s.maps("hi21", i)
        assert np.allclose(t21[hi > 0] / hi[hi > 0], moment0_21cm(1.0), rtol=1e-5)


def test_21cm_moment0_does_not_depend_on_the_field_of_view(synth_dir):
    """The old hi21 divided the HI column by the cube depth (2 x half-width), so doubling --fov halved it;
    moment 0 at the same pixel size changes only by the HI beyond the smaller cube."""
    g = open_source(synth_dir).load(0)
    small = render_views(g, get_domains("hi21"), 32, np.eye(3)[None], fov=1.0).maps["hi21"][0]
    large = render_views(g, get_domains("hi21"), 64, np.eye(3)[None], fov=2.0).maps["hi21"][0]
    centre = large[16:48, 16:48]  # the same 32 x 32 pixels of the same size
    assert centre.sum() == pytest.approx(small.sum(), rel=0.05)
    assert centre.sum() >= small.sum() * (1 - 1e-5)  # only gas is added along the longer line of sight


def test_h2_domain_and_the_hi_model_in_the_store(synth_dir, tmp_path):
    src = open_source(synth_dir)
    for model in ("simple", "br06"):
        out = build_dataset(src, tmp_path / f"{model}.h5", domains="hi,h2,gas", size=16, rotations=0, hi_model=model,
                            progress=False)
        with MapStore(out) as s:
            hi, h2 = s.maps("hi"), s.maps("h2")
            assert s.unit("h2") == "Msun/kpc^2" and s.attrs["hi_model"].startswith(model)
            if model == "simple":
                assert not h2.any()
                neutral = hi
            else:
                assert h2.sum() > 0 and hi.sum() < neutral.sum()
                np.testing.assert_allclose(hi + h2, neutral, rtol=1e-4, atol=1e-6 * neutral.max())


def test_rotation_about_line_of_sight_rotates_the_map(synth_dir):
    g = open_source(synth_dir).load(0)
    quarter = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # +90 deg about z
    vs = render_views(g, get_domains("dm,gas,temp"), 32, np.array([np.eye(3), quarter]))
    for d in ("dm", "gas", "temp"):
        a, b = vs.maps[d]
        assert a.sum() > 0
        assert np.allclose(b, np.rot90(a, k=-1), rtol=1e-5, atol=1e-6 * a.max())


def test_same_seed_bit_identical_whatever_the_workers(synth_dir, store_path, tmp_path):
    out = build_dataset(open_source(synth_dir), tmp_path / "again.h5", size=32, rotations=2, seed=11, workers=2,
                        progress=False)
    assert _sha(out) == _sha(store_path)
    other = build_dataset(open_source(synth_dir), tmp_path / "other.h5", domains="gas", size=32, rotations=2, seed=12,
                          progress=False)
    with MapStore(other) as s, MapStore(store_path) as ref:
        assert np.array_equal(s.maps("gas", 0), ref.maps("gas", 0))  # view 0 is unrotated: seed-independent
        assert not np.array_equal(s.meta("rotation"), ref.meta("rotation"))


def test_interrupted_build_resumes_without_duplicates(synth_dir, store_path, tmp_path, monkeypatch):
    import skymorph.data.build as build_mod

    src = open_source(synth_dir)
    out = tmp_path / "resumed.h5"
    # a killed build: two galaxies finished, one part file half-written (a temporary never renamed)
    ref_settings = MapStore(store_path).settings
    parts = tmp_path / "resumed.h5.parts"
    parts.mkdir()
    (parts / "settings.json").write_text(json.dumps(ref_settings))
    for gid in (0, 3):
        render_galaxy(src, gid, ref_settings, parts)
    (parts / ".galaxy_1.h5.abc.tmp").write_bytes(b"\x89HDF partial")
    rendered = []
    original = build_mod.render_galaxy
    monkeypatch.setattr(build_mod, "render_galaxy", lambda s, gid, *a: rendered.append(gid) or original(s, gid, *a))
    build_dataset(src, out, size=32, rotations=2, seed=11, progress=False)
    assert rendered == [1, 2, 4]  # only the missing galaxies
    assert _sha(out) == _sha(store_path)  # same views, no duplicates, same order
    assert not parts.exists()


def test_existing_output_is_refused_and_kept(synth_dir, tmp_path):
    out = tmp_path / "maps.h5"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="maps.h5"):
        build_dataset(open_source(synth_dir), out, domains="gas", size=16, rotations=0, progress=False)
    assert out.read_bytes() == b"precious"


def test_bad_galaxy_stops_the_build_with_nothing_left(synth_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(synth_dir, bad)
    with h5py.File(bad / "cutout_2.hdf5", "r+") as f:
        f["PartType0/Density"][5] = np.nan
    with pytest.raises(InputError, match=r"cutout_2.hdf5: field PartType0/Density has 1 NaN"):
        build_dataset(open_source(bad), tmp_path / "m.h5", domains="gas", size=16, rotations=0, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


def test_physical_relations_in_the_maps(store_path):
    """HI and B follow gas density; hot diffuse gas is where the gas column is low."""
    with MapStore(store_path) as s:
        gas, hi, temp, b = (s.maps(d) for d in ("gas", "hi", "temp", "bfield"))
    m = gas > 0
    assert spearmanr(gas[m], hi[m] / gas[m]).statistic > 0.3  # neutral fraction rises with column density
    assert spearmanr(gas[m], b[m]).statistic > 0.5  # |B| ∝ rho^(2/3)
    assert spearmanr(gas[m], temp[m]).statistic < -0.3  # dense disk ~1e4 K, diffuse halo near T_vir
    assert np.all(hi <= 0.76 * gas * (1 + 1e-5))  # HI cannot exceed the hydrogen mass


def test_fits_export_round_trip(store_path, tmp_path):
    with MapStore(store_path) as s:
        out = export_fits(s, 3, "hi21", tmp_path / "m.fits")
        img, hw = s.maps("hi21", 3), float(s.meta("half_width_kpc", 3))
        with pytest.raises(OutputExistsError):
            export_fits(s, 3, "hi21", out)
        with pytest.raises(InputError, match="view index 99"):
            export_fits(s, 99, "hi21", tmp_path / "n.fits")
    with fits.open(out) as hdul:
        assert np.array_equal(hdul[0].data, img)
        h = hdul[0].header
        assert h["BUNIT"] == "K km s-1" and h["CUNIT1"] == "kpc"
        assert h["CDELT1"] == pytest.approx(2 * hw / 32) and h["EXTENT"] == pytest.approx(2 * hw)


def test_face_on_and_edge_on_views(synth_dir):
    """The face-on stellar map of a disk is rounder than the edge-on one."""
    g = open_source(synth_dir).load(0)
    from skymorph.maps.views import view_rotations

    rots = view_rotations(0, np.random.default_rng(0), g, face_edge=True)
    assert len(rots) == 3 and np.allclose(rots[1] @ rots[1].T, np.eye(3))
    vs = render_views(g, get_domains("star"), 32, rots, fov=1.0, fov_ref="star")

    def axis_ratio(img):
        yy, xx = np.mgrid[:32, :32]
        w = img / img.sum()
        cx, cy = (w * xx).sum(), (w * yy).sum()
        cov = [[(w * (xx - cx) ** 2).sum(), (w * (xx - cx) * (yy - cy)).sum()],
               [(w * (xx - cx) * (yy - cy)).sum(), (w * (yy - cy) ** 2).sum()]]
        ev = np.linalg.eigvalsh(cov)
        return np.sqrt(ev[0] / ev[1])

    assert axis_ratio(vs.maps["star"][1]) > axis_ratio(vs.maps["star"][2]) + 0.2
