"""Grid readers: Athena++ MeshBlock files assemble into the cube they were written from; FITS and the
cube store keep their units; bad files are refused in one line."""
import h5py
import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.errors import InputError
from skymorph.grid.readers import read_athdf
from skymorph.grid.store import read_cube

runner = CliRunner()
ROOT, BLOCK = 8, 4  # root grid 8^3 in 4^3 blocks; the block at logical (1, 0, 1) refined once


def _fine_truth():
    """Smooth fields on the level-1 grid (16^3), indexed (x3, x2, x1)."""
    z, y, x = np.meshgrid(*[(np.arange(2 * ROOT) + 0.5) / (2 * ROOT)] * 3, indexing="ij")
    rho = 1.0 + 0.5 * np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y) + 0.2 * z
    ec = np.exp(-((x - 0.6) ** 2 + (y - 0.3) ** 2 + (z - 0.7) ** 2) / 0.05)
    return {"rho": rho, "Ec": ec}


def _restrict(a):
    n = a.shape[0] // 2
    return a.reshape(n, 2, n, 2, n, 2).mean(axis=(1, 3, 5))


def write_athdf(path, truth, refined=(1, 0, 1), shuffle_seed=0, nan=False):
    """Blocks of the root grid from the restricted truth, the refined one's 8 children from the truth."""
    coarse = {k: _restrict(v) for k, v in truth.items()}
    blocks = []  # (level, (lx1, lx2, lx3), {name: (bx3, bx2, bx1)})
    nb = ROOT // BLOCK
    for l3 in range(nb):
        for l2 in range(nb):
            for l1 in range(nb):
                if (l1, l2, l3) == refined:
                    for c3 in range(2):
                        for c2 in range(2):
                            for c1 in range(2):
                                loc = (2 * l1 + c1, 2 * l2 + c2, 2 * l3 + c3)
                                sl = tuple(slice(loc[i] * BLOCK, (loc[i] + 1) * BLOCK) for i in (2, 1, 0))
                                blocks.append((1, loc, {k: v[sl] for k, v in truth.items()}))
                else:
                    sl = tuple(slice(x * BLOCK, (x + 1) * BLOCK) for x in (l3, l2, l1))
                    blocks.append((0, (l1, l2, l3), {k: v[sl] for k, v in coarse.items()}))
    order = np.random.default_rng(shuffle_seed).permutation(len(blocks))
    blocks = [blocks[i] for i in order]
    with h5py.File(path, "w") as f:
        f.attrs["RootGridSize"] = np.array([ROOT] * 3)
        f.attrs["MeshBlockSize"] = np.array([BLOCK] * 3)
        f.attrs["RootGridX1"] = f.attrs["RootGridX2"] = f.attrs["RootGridX3"] = np.array([0.0, 1.0, 1.0])
        f.attrs["MaxLevel"] = 1
        f.attrs["NumMeshBlocks"] = len(blocks)
        f.attrs["Time"] = 2.5
        f.attrs["DatasetNames"] = np.array([b"prim", b"uov"])
        f.attrs["NumVariables"] = np.array([1, 1])
        f.attrs["VariableNames"] = np.array([b"rho", b"Ec"])
        f["Levels"] = np.array([b[0] for b in blocks], dtype=np.int32)
        f["LogicalLocations"] = np.array([b[1] for b in blocks], dtype=np.int64)
        prim = np.stack([b[2]["rho"] for b in blocks])[None].astype(np.float32)
        if nan:
            prim[0, 3, 1, 1, 1] = np.nan
        f["prim"] = prim
        f["uov"] = np.stack([b[2]["Ec"] for b in blocks])[None].astype(np.float32)
    return path


def test_meshblocks_out_of_order_with_a_refined_level_assemble_into_the_cube(tmp_path):
    truth = _fine_truth()
    path = write_athdf(tmp_path / "run.out1.00010.athdf", truth)
    root = read_athdf(path, level="root")
    for k in truth:  # refined children restricted = the truth restricted, everywhere
        assert np.allclose(root.fields[k], _restrict(truth[k]), atol=1e-6)
    fine = read_athdf(path, ["rho"], level="finest")
    rho = fine.fields["rho"]
    assert rho.shape == (16, 16, 16) and root.time == 2.5
    refined = (slice(8, 16), slice(0, 8), slice(8, 16))  # (x3, x2, x1) of logical block (1, 0, 1)
    assert np.allclose(rho[refined], truth["rho"][refined], atol=1e-6)
    coarse = np.repeat(np.repeat(np.repeat(_restrict(truth["rho"]), 2, 0), 2, 1), 2, 2)
    mask = np.ones_like(rho, bool)
    mask[refined] = False
    assert np.allclose(rho[mask], coarse[mask], atol=1e-6)
    # volume averages are kept: the mean of the finest cube equals the root cube's
    assert rho.mean() == pytest.approx(root.fields["rho"].mean(), rel=1e-6)


def test_cli_read_writes_a_cube_store_with_units_and_refuses_bad_input(tmp_path):
    path = write_athdf(tmp_path / "run.athdf", _fine_truth())
    out = tmp_path / "cube.h5"
    res = runner.invoke(app, ["grid", "read", str(path), "--fields", "rho,Ec", "--units", "rho=g/cm^3",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    cube = read_cube(out)
    assert cube.units == {"rho": "g/cm^3", "Ec": "code units"} and cube.fields["rho"].shape == (8, 8, 8)
    # FITS: the cube and its BUNIT survive FITS -> store -> store
    fpath = tmp_path / "rho.fits"
    fits.PrimaryHDU(cube.fields["rho"], header=fits.Header([("BUNIT", "g/cm3")])).writeto(fpath)
    res = runner.invoke(app, ["grid", "read", str(fpath), "--out", str(tmp_path / "f.h5")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["grid", "read", str(tmp_path / "f.h5"), "--out", str(tmp_path / "g.h5")])
    assert res.exit_code == 0, res.output
    back = read_cube(tmp_path / "g.h5")
    assert back.units == {"rho": "g/cm3"} and np.array_equal(back.fields["rho"], cube.fields["rho"])
    bad_nan = write_athdf(tmp_path / "nan.athdf", _fine_truth(), nan=True)
    other = tmp_path / "x.txt"
    other.write_text("not a simulation")
    not_athena = tmp_path / "plain.athdf"
    with h5py.File(not_athena, "w") as f:
        f["x"] = 1
    for args, message in [([str(path), "--fields", "Bcc1"], "field 'Bcc1' not in the file (it has rho, Ec)"),
                          ([str(bad_nan)], "nan.athdf: rho has NaN or infinite values"),
                          ([str(other)], "x.txt: not an Athena++ (.athdf), FITS (.fits) or skymorph cube"),
                          ([str(not_athena)], "plain.athdf: not an Athena++ .athdf file"),
                          ([str(path), "--units", "B=G"], "'B' is not one of the fields read"),
                          ([str(path)], "--overwrite")]:
        target = out if message == "--overwrite" else tmp_path / "o.h5"
        res = runner.invoke(app, ["grid", "read", *args, "--out", str(target)])
        assert res.exit_code == 1 and message in res.stderr, (args, res.output)
        assert not (tmp_path / "o.h5").exists()


def test_gaps_in_the_meshblocks_are_refused(tmp_path):
    path = write_athdf(tmp_path / "gap.athdf", _fine_truth())
    with h5py.File(path, "r+") as f:
        loc, lev = f["LogicalLocations"][()], f["Levels"][()]
        a, b = np.flatnonzero(lev == 0)[:2]
        loc[a] = loc[b]  # two root blocks in one place, one place empty
        f["LogicalLocations"][...] = loc
    with pytest.raises(InputError, match="do not tile the domain"):
        read_athdf(path)
    with h5py.File(path, "r+") as f:
        loc[a] = (5, 0, 0)  # beyond the 2 x 2 x 2 root blocks
        f["LogicalLocations"][...] = loc
    with pytest.raises(InputError, match=r"MeshBlock \d+ \(level 0, logical location \(5, 0, 0\)\) lies outside"):
        read_athdf(path)


def test_a_2d_run_refines_only_its_two_dimensions(tmp_path):
    """nx3 = 1: blocks (4, 4, 1), one refined into 4 children; the cube is (1, 8, 8) at the root."""
    y, x = np.meshgrid((np.arange(16) + 0.5) / 16, (np.arange(16) + 0.5) / 16, indexing="ij")
    fine = (1 + x + 2 * y**2)[None]  # (1, 16, 16)
    coarse = fine.reshape(1, 8, 2, 8, 2).mean(axis=(2, 4))
    blocks = []
    for l2 in range(2):
        for l1 in range(2):
            if (l1, l2) == (0, 1):
                for c2 in range(2):
                    for c1 in range(2):
                        lx, ly = 2 * l1 + c1, 2 * l2 + c2
                        blocks.append((1, (lx, ly, 0), fine[:, ly * 4:(ly + 1) * 4, lx * 4:(lx + 1) * 4]))
            else:
                blocks.append((0, (l1, l2, 0), coarse[:, l2 * 4:(l2 + 1) * 4, l1 * 4:(l1 + 1) * 4]))
    blocks = blocks[::-1]
    path = tmp_path / "flat.athdf"
    with h5py.File(path, "w") as f:
        f.attrs.update({"RootGridSize": np.array([8, 8, 1]), "MeshBlockSize": np.array([4, 4, 1]), "MaxLevel": 1,
                        "DatasetNames": np.array([b"prim"]), "NumVariables": np.array([1]),
                        "VariableNames": np.array([b"rho"])})
        f["Levels"] = np.array([b[0] for b in blocks])
        f["LogicalLocations"] = np.array([b[1] for b in blocks])
        f["prim"] = np.stack([b[2] for b in blocks])[None]
    assert np.allclose(read_athdf(path).fields["rho"], coarse, atol=1e-6)
    finest = read_athdf(path, level="finest").fields["rho"]
    assert finest.shape == (1, 16, 16) and np.allclose(finest[:, 8:, :8], fine[:, 8:, :8], atol=1e-6)
