"""grid slices: buffered splits, layer averages, realisation hold-out, the map-store layout, bad input;
grid compare's statistics against hand-computed cases."""
import json

import h5py
import numpy as np
import pytest

from skymorph.data.normalise import LogStandardise
from skymorph.data.store import MapStore
from skymorph.errors import ConfigError, InputError, OutputExistsError
from skymorph.grid.slices import build_slices, slab_ranges
from skymorph.grid.statistics import power_spectrum, spectral_slope


def write_run(path, rho, label="mhd", seed=1, ec=None):
    """A file in the grid simulate layout: /snapshots/<field> (S, nz, ny, nx)."""
    with h5py.File(path, "w") as f:
        f["snapshots/rho"] = rho
        f["snapshots/rho"].attrs["unit"] = "code: rho0"
        f["snapshots/eb"] = 0.5 * rho ** 2
        f["snapshots/eb"].attrs["unit"] = "code: rho0 c_s^2"
        if ec is not None:
            f["snapshots/ec"] = ec
            f["snapshots/ec"].attrs["unit"] = "code: rho0 c_s^2"
        f["snapshots/time"] = np.arange(len(rho), dtype=float)
        f.attrs.update({"label": label, "seed": seed})
    return path


def _coded(shape, snaps=2, seed=0):
    """Positive fields whose value encodes the cell's x index (to recover where a tile came from)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    x = np.broadcast_to(np.arange(nx, dtype=float), (snaps, nz, ny, nx))
    return 1.0 + x + 0.01 * rng.random((snaps, nz, ny, nx))


def _periodic_gap(a, b, n):
    """Smallest periodic distance between cell sets a and b along one axis."""
    d = np.abs(np.asarray(a)[:, None] - np.asarray(b)[None, :]) % n
    return np.minimum(d, n - d).min()


def test_2d_tiles_keep_the_buffer_between_splits(tmp_path):
    n, size, buffer = 112, 16, 12
    run = write_run(tmp_path / "a.h5", _coded((1, n, n)))
    out = build_slices([run], tmp_path / "s.h5", axis="x", size=size, buffer=buffer, fractions=(0.5, 0.25, 0.25))
    with MapStore(out) as store:
        cols = {}
        for split in ("train", "val", "test"):
            idx = store.split(split)
            tiles = store.maps("rho", idx)
            assert len(idx) > 0
            cells = np.unique(np.floor(tiles).astype(int) - 1)  # the x index encoded in each value
            np.testing.assert_array_equal(np.sort(np.unique(store.meta("col", idx))), np.unique(
                store.meta("position", idx)))
            cols[split] = cells
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            assert _periodic_gap(cols[a], cols[b], n) > buffer
        assert json.loads(store.attrs["classes"]) == ["mhd"]
        assert store.unit("rho") == "code: rho0"
        train = store.maps("rho", store.split("train"))
        assert store.norm("rho").mean == pytest.approx(LogStandardise.fit(train).mean)


def test_3d_layers_are_means_of_adjacent_planes_and_split_along_the_axis(tmp_path):
    n = 32
    rng = np.random.default_rng(2)
    cube = np.exp(rng.standard_normal((1, n, n, n)))
    run = write_run(tmp_path / "c.h5", cube)
    out = build_slices([run], tmp_path / "s.h5", axis="z", size=16, buffer=4, layers=(1, 4), fractions=(1, 1, 1))
    with MapStore(out) as store:
        lay, pos = store.meta("layers"), store.meta("position")
        row, col = store.meta("row"), store.meta("col")
        for i in np.flatnonzero(lay == 4)[:5]:
            ref = cube[0, pos[i]:pos[i] + 4, row[i]:row[i] + 16, col[i]:col[i] + 16].mean(axis=0)
            np.testing.assert_allclose(store.maps("rho", i), ref, rtol=1e-6)
        slabs = json.loads(store.attrs["settings"])["slabs"]
        for split, (lo, hi) in slabs.items():
            idx = store.split(split)
            assert (pos[idx] >= lo).all() and (pos[idx] + lay[idx] <= hi).all()
        assert set(np.unique(lay)) == {1, 4}


def test_realisations_held_out_whole(tmp_path):
    runs = [write_run(tmp_path / f"{lab}{s}.h5", _coded((1, 64, 64), seed=s), label=lab, seed=s)
            for s, lab in ((1, "a"), (2, "a"), (3, "a"), (1, "b"), (2, "b"), (3, "b"))]
    out = build_slices(runs, tmp_path / "s.h5", size=16, buffer=4, fractions=(1, 1, 1), val_seeds=[2], test_seeds=[3])
    with MapStore(out) as store:
        for split, seeds in (("train", {1}), ("val", {2}), ("test", {3})):
            idx = store.split(split)
            assert set(store.meta("seed", idx)) == seeds
            assert set(store.meta("label", idx)) == {0, 1}
        gid = store.meta("galaxy_id")
        for a, b in (("train", "test"), ("val", "test")):
            assert not set(gid[store.split(a)]) & set(gid[store.split(b)])


def test_translation_pairs_line_up(tmp_path):
    rho = _coded((1, 48, 48))
    run = write_run(tmp_path / "a.h5", rho, ec=3.0 * rho)
    out = build_slices([run], tmp_path / "s.h5", size=16, buffer=0, fractions=(1, 1, 1))
    with MapStore(out) as store:
        assert store.domains == ["rho", "ec", "eb"]
        np.testing.assert_allclose(store.maps("ec"), 3.0 * store.maps("rho"), rtol=1e-6)


def test_bad_input(tmp_path):
    run = write_run(tmp_path / "a.h5", _coded((1, 64, 64)))
    with pytest.raises(ConfigError, match="slab is .* cells wide.*empty"):
        build_slices([run], tmp_path / "s.h5", size=16, buffer=10, fractions=(1, 1, 1))
    with pytest.raises(ConfigError, match="no cells"):
        slab_ranges(30, 10, (1, 1, 1))
    with pytest.raises(InputError, match=r"a\.h5.*'ec' not in the file"):
        build_slices([run], tmp_path / "s.h5", fields=["rho", "ec"])
    with pytest.raises(ConfigError, match="layers need a 3D cube"):
        build_slices([run], tmp_path / "s.h5", size=16, buffer=2, layers=(1, 4))
    with pytest.raises(ConfigError, match="val split is empty.*seeds"):
        build_slices([run], tmp_path / "s.h5", size=16, buffer=2, fractions=(1, 1, 1), test_seeds=[9])
    bad = _coded((1, 64, 64))
    bad[0, 0, 3, 3] = np.nan
    nan_run = write_run(tmp_path / "n.h5", bad)
    with pytest.raises(InputError, match=r"n\.h5.*/snapshots/rho"):
        build_slices([nan_run], tmp_path / "s.h5", size=16, buffer=2, fractions=(1, 1, 1))
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(InputError, match="neither a grid simulation"):
        build_slices([tmp_path / "other.h5"], tmp_path / "s.h5")
    (tmp_path / "exists.h5").write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        build_slices([run], tmp_path / "exists.h5", size=16, buffer=2, fractions=(1, 1, 1))
    assert (tmp_path / "exists.h5").read_bytes() == b"keep"
    assert not (tmp_path / "s.h5").exists()


def test_power_spectrum_of_a_single_mode_and_a_power_law():
    n = 64
    x = np.arange(n) / n
    rho = 1.0 + 0.1 * np.cos(2 * np.pi * 5 * x)[None, :] * np.ones((n, 1))
    k, p = power_spectrum(rho)
    assert k[np.argmax(p)] == 5
    kx = np.fft.fftfreq(n, 1 / n)
    in_shell = (np.rint(np.sqrt(kx[:, None] ** 2 + kx[None, :] ** 2)) == 5).sum()
    assert p[4] * in_shell == pytest.approx(2 * 0.05 ** 2, rel=1e-10)  # two cells of |0.1 / 2|^2 in shell 5
    rng = np.random.default_rng(0)
    kk = np.sqrt(kx[:, None] ** 2 + kx[None, :] ** 2)
    amp = np.where(kk > 0, kk, 1.0) ** (-3.0 / 2)  # P ~ k^-3
    field = np.fft.ifft2(amp * np.fft.fft2(rng.standard_normal((n, n)))).real
    k, p = power_spectrum(1.0 + 0.01 * field / field.std())
    assert spectral_slope(k, p) == pytest.approx(-3.0, abs=0.3)


def test_cli_simulate_slices_compare_classify(tmp_path):
    """The chain a user runs, on tiny runs: exit codes, outputs, one-line errors that name the problem."""
    from typer.testing import CliRunner

    from skymorph.cli import app

    runner = CliRunner()
    runs = []
    for model, extra in (("mhd", []), ("cr_advect", [])):
        out = tmp_path / f"{model}.h5"
        res = runner.invoke(app, ["grid", "simulate", "--model", model, *extra, "--n", "24", "--snapshots", "2",
                                  "--spinup", "0.2", "--every", "0.2", "--out", str(out), "--no-progress"])
        assert res.exit_code == 0 and f"wrote {out}" in res.output, res.output
        runs.append(str(out))
    res = runner.invoke(app, ["grid", "simulate", "--model", "mhd", "--kappa", "1", "--out", str(tmp_path / "k.h5")])
    assert res.exit_code == 1 and "--kappa 1" in res.stderr and not (tmp_path / "k.h5").exists()
    for flags, message in ((["--smoothing", "4"], "--smoothing: only cr_stream"), (["--cr-ratio", "2"], "no cosmic rays")):
        res = runner.invoke(app, ["grid", "simulate", "--model", "mhd", *flags, "--out", str(tmp_path / "k.h5")])
        assert res.exit_code == 1 and message in res.stderr
    res = runner.invoke(app, ["grid", "simulate", "--model", "mhd", "--n", "16", "--out", runs[0]])
    assert res.exit_code == 1 and "--overwrite" in res.stderr
    store = tmp_path / "s.h5"
    res = runner.invoke(app, ["grid", "slices", *runs, "--size", "8", "--buffer", "0", "--fractions", "1,1,1",
                              "--out", str(store)])
    assert res.exit_code == 0 and "classes cr_advect, mhd" in res.output, res.output
    res = runner.invoke(app, ["grid", "slices", *runs, "--size", "8", "--buffer", "4", "--out", str(tmp_path / "b.h5")])
    assert res.exit_code == 1 and "split would be empty" in res.stderr
    res = runner.invoke(app, ["grid", "compare", *runs, "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0 and "sigma(ln rho)" in res.output and (tmp_path / "cmp.png").exists()
    run = tmp_path / "cls"
    res = runner.invoke(app, ["classify", "train", "--data", str(store), "--out", str(run), "--max-epochs", "1",
                              "--batch-size", "4", "--no-progress"])
    assert res.exit_code == 0 and "1 epochs" in res.output, res.output
    res = runner.invoke(app, ["classify", "evaluate", str(run), "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0 and "accuracy" in res.output
    res = runner.invoke(app, ["classify", "probe", str(run), "--probe", "blur", "--levels", "0,2",
                              "--out", str(tmp_path / "pb")])
    assert res.exit_code == 0 and "sigma_px" in res.output
    res = runner.invoke(app, ["classify", "explain", str(run), "--out", str(tmp_path / "ex")])
    assert res.exit_code == 0 and "completeness gap" in res.output
    res = runner.invoke(app, ["classify", "probe", str(run), "--probe", "noise", "--out", str(tmp_path / "pn")])
    assert res.exit_code == 1 and "--probe 'noise'" in res.stderr
