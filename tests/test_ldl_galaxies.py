"""LDL on galaxies: the view geometry against the store's own maps, the fit and the comparison CLI."""
import json

import numpy as np
import pytest
import scipy.ndimage as ndi
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.cosmo.ldl import LDLModel
from skymorph.data.store import MapStore
from skymorph.evaluate import ldl_galaxies as lg

runner = CliRunner()
IDENTITY = [{"alpha": 0.0, "gamma": 1.0, "k_h": 1.0, "k_l": 100.0, "n": 0.0}]
LINEAR = {"b1": 1.0, "mu": 1.0, "b0": 0.0}


def test_identity_layers_paint_the_views_dark_matter_where_the_store_has_it(store_path):
    """With no displacement and F = rho / rho_ref, the LDL map is the CIC projection of the view's
    DM: it keeps the mass inside the cube, and matches the store's SPH dm map pixel for pixel in
    orientation (rows along +y), not its transpose."""
    views = lg.load_views(store_path, "star", "train")
    model = LDLModel(views.npix, 1.0, IDENTITY, LINEAR, {"rho_ref_msun_kpc3": 1e6})
    maps = lg.predict(model, views)
    with MapStore(store_path) as store:
        dm = store.maps("dm", views.index).astype(np.float64)
    pixel_area = views.pixel**2
    corr = []
    for i in range(len(maps)):
        assert maps[i].sum() * pixel_area[i] == pytest.approx(views.mass[i].sum(), rel=1e-6)  # pixel_kpc is float32
        cic = ndi.gaussian_filter(maps[i], 1.5)  # 300 particles: CIC is noisy where SPH is smooth
        r = np.corrcoef(cic.ravel(), dm[i].ravel())[0, 1]
        assert r > np.corrcoef(cic.T.ravel(), dm[i].ravel())[0, 1]
        corr.append(r)
    assert np.median(corr) > 0.75


def test_fit_lowers_the_loss_and_the_cli_compares_with_a_run(store_path, tmp_path):
    views = lg.load_views(store_path, "star", "train", limit=2)
    assert len(np.unique(views.galaxy)) == len(views.index) == 2  # one view per galaxy
    model = lg.fit_galaxies(views, 1, 1.0, 4)
    assert model.n_params == 8 and model.record["final_loss"] < model.record["start_loss"]
    run = tmp_path / "base"
    res = runner.invoke(app, ["train", "--method", "baseline", "--data", str(store_path), "--source", "dm",
                              "--target", "star", "--out", str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "ldl"
    res = runner.invoke(app, ["cosmo", "ldl", "galaxies", "--data", str(store_path), "--target", "star",
                              "--out", str(out), "--layers", "1", "--fit-galaxies", "2", "--max-iter", "3",
                              "--against", str(run)])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "results.json").read_text())
    assert set(result["table"]) == {"ldl", f"baseline ({run})"}
    assert result["table"]["ldl"]["parameters"] == 8
    assert {v["metric"] for v in result["verdicts"]} == set(lg.TABLE_METRICS)
    assert all(v["verdict"] in ("better", "worse", "no significant difference") for v in result["verdicts"])
    assert "ldl vs baseline" in (out / "results.md").read_text()
    assert LDLModel.load(out).output is not None
    other = tmp_path / "gas_star"
    assert runner.invoke(app, ["train", "--method", "baseline", "--data", str(store_path), "--source", "gas",
                               "--target", "star", "--out", str(other), "--no-progress"]).exit_code == 0
    res = runner.invoke(app, ["cosmo", "ldl", "galaxies", "--data", str(store_path), "--target", "star",
                              "--out", str(tmp_path / "o2"), "--layers", "1", "--fit-galaxies", "1", "--max-iter", "1",
                              "--against", str(other)])
    assert res.exit_code == 1 and "translates gas -> star, not dm -> star" in res.stderr
    res = runner.invoke(app, ["cosmo", "ldl", "galaxies", "--data", str(store_path), "--target", "stars",
                              "--out", str(tmp_path / "o3")])
    assert res.exit_code == 1 and "no domain 'stars'" in res.stderr
