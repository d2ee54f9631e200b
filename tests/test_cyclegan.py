"""CycleGAN: unpaired batches (training and validation), the image pool, cycle error falling in training
and choosing best.ckpt, both directions."""
import csv

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.data.dataset import PairedMaps
from skymorph.data.store import MapStore
from skymorph.errors import ConfigError
from skymorph.evaluate.runner import evaluate_run
from skymorph.methods import make_method
from skymorph.methods.apply import method_metrics, store_sources
from skymorph.methods.config import TrainConfig
from skymorph.methods.cyclegan import CycleGAN, ImagePool
from skymorph.methods.training import load_run, train

SMALL = {"base_channels": 8, "d_base": 8, "batch_size": 4, "seed": 5}


@pytest.fixture(scope="module")
def drawn():
    """(source view, target view) of every item the datasets returned while ``cyc_run`` trained."""
    return []


@pytest.fixture(scope="module")
def cyc_run(store_path, tmp_path_factory, drawn):
    cfg = TrainConfig.build({"method": "cyclegan", "data": store_path, "source": "gas", "target": "hi",
                             "max_epochs": 6, **SMALL})
    original = PairedMaps.__getitem__

    def recorded(self, item):
        out = original(self, item)
        drawn.append((out["index"], out["target_index"]))
        return out
    with pytest.MonkeyPatch.context() as mp, pytest.warns(UserWarning, match="the val split holds one galaxy"):
        mp.setattr(PairedMaps, "__getitem__", recorded)
        return train(cfg, tmp_path_factory.mktemp("runs") / "cyc", progress=False)


def test_unpaired_batches_take_targets_from_other_galaxies(store_path):
    ds = PairedMaps(store_path, ["gas"], "hi", "train", paired=False)
    with MapStore(store_path) as s:
        galaxy = s.meta("galaxy_id")
        torch.manual_seed(0)
        items = [ds[i % len(ds)] for i in range(40)]
        for it in items:
            assert galaxy[it["target_index"]] != galaxy[it["index"]]
            assert np.allclose(it["target"][0].numpy(), s.norm("hi").forward(s.maps("hi", it["target_index"])))
    assert len({galaxy[it["target_index"]] for it in items}) == len(np.unique(galaxy[ds.indices]))
    assert all(it["target_index"] == it["index"] for it in (PairedMaps(store_path, ["gas"], "hi")[i] for i in range(3)))
    assert make_method("cyclegan", 1).paired is False and make_method("pix2pix", 1).paired is True
    with pytest.raises(ConfigError, match="unpaired batches of the val split need target views of another galaxy"):
        PairedMaps(store_path, ["gas"], "hi", "val", paired=False)  # the test store's val split: one galaxy


def test_seeded_unpaired_views_are_fixed_and_can_come_from_another_split(store_path):
    ds = PairedMaps(store_path, ["gas"], "hi", "val", paired=False, target_split="train", seed=1)
    with MapStore(store_path) as s:
        galaxy, train_views = s.meta("galaxy_id"), set(s.split("train"))
    items = [ds[i] for i in range(len(ds))]
    assert [it["target_index"] for it in items] == [ds[i]["target_index"] for i in range(len(ds))]  # every epoch
    assert all(it["target_index"] in train_views and galaxy[it["target_index"]] != galaxy[it["index"]] for it in items)


def test_training_and_selection_never_see_a_pair(cyc_run, drawn, store_path):
    with MapStore(store_path) as s:
        galaxy, train_views, val_views = s.meta("galaxy_id"), set(s.split("train")), set(s.split("val"))
    sources = {i for i, _ in drawn}
    assert train_views <= sources and val_views <= sources  # training and validation batches were watched
    assert all(galaxy[i] != galaxy[j] for i, j in drawn)  # ... and no target came from its source's galaxy
    rows = list(csv.DictReader(open(cyc_run / "logs" / "csv" / "version_0" / "metrics.csv")))
    val = [(float(r["val_loss"]), float(r["val_cycle_error"]), int(r["epoch"])) for r in rows if r.get("val_loss")]
    assert all(loss == cycle for loss, cycle, _ in val)  # the selection signal is the cycle error
    best = torch.load(cyc_run / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["epoch"] == min(val)[2]


def test_image_pool_returns_past_fakes_once_full():
    torch.manual_seed(0)
    pool = ImagePool(4)
    seen = []
    first = torch.arange(4.0).reshape(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: the new fakes themselves
    seen += list(first)
    older = 0
    for step in range(1, 30):
        new = torch.full((2, 1, 1, 1), 10.0 * step)
        out = pool.query(new)
        assert all(any(torch.equal(o, s) for s in seen + list(new)) for o in out)
        older += sum(bool(o.item() < 10.0 * step) for o in out)
        seen += list(new)
        assert len(pool.images) == 4
    assert 10 < older < 50  # about half of the 58 answers come from the history


def test_identity_loss_only_when_channel_counts_match():
    batch = {"source": torch.randn(2, 1, 32, 32), "target": torch.randn(2, 1, 32, 32)}
    same = CycleGAN(1, 1, base_channels=4, depth=2, d_base=4)
    assert "loss_identity" in same.training_step(batch, lambda i, loss: None)
    two = CycleGAN(2, 1, base_channels=4, depth=2, d_base=4)
    losses = two.training_step({**batch, "source": torch.randn(2, 2, 32, 32)}, lambda i, loss: None)
    assert "loss_identity" not in losses and two.lambda_identity == 0 and torch.isfinite(losses["loss"])
    assert two.net_ba(batch["target"]).shape == (2, 2, 32, 32)  # B -> A restores both source channels


def test_cycle_error_falls_in_training_and_is_reported(cyc_run, store_path):
    rows = list(csv.DictReader(open(cyc_run / "logs" / "csv" / "version_0" / "metrics.csv")))
    cycle = [float(r["val_cycle_error"]) for r in rows if r.get("val_cycle_error")]
    assert len(cycle) == 6 and cycle[-1] < 0.95 * cycle[0]
    assert any(r.get("train_loss_identity_epoch") for r in rows)
    ev = evaluate_run(cyc_run, store_path, "test")
    # on the test split: the trained model against the same model at initialisation (same seed)
    cfg, _ = load_run(cyc_run)
    torch.manual_seed(cfg.seed)
    start = make_method("cyclegan", 1, 1, **cfg.method_options()).eval()
    with MapStore(store_path) as s:
        idx = np.sort(s.split("test"))
        initial = method_metrics(cfg, start, store_sources(cfg, s, idx), s.maps("hi", idx))["cycle_error"]
    assert ev.info["cycle_error"] < 0.95 * initial


def test_both_directions(cyc_run, store_path, tmp_path):
    cfg, fwd = load_run(cyc_run)
    rcfg, rev = load_run(cyc_run, reverse=True)
    assert (rcfg.source, rcfg.target) == (["hi"], "gas")
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(rev.translate(x)[0], fwd.net_ba(x)) and torch.equal(rev.reverse().translate(x)[0], fwd.net(x))
    # the cycle error counts both round trips, whichever way the model runs
    ev_f, ev_r = evaluate_run(cyc_run, store_path), evaluate_run(cyc_run, store_path, reverse=True)
    assert ev_r.info["target"] == "gas" and ev_r.info["cycle_error"] == pytest.approx(ev_f.info["cycle_error"], rel=1e-5)
    res = CliRunner().invoke(app, ["translate", str(cyc_run), "--data", str(store_path), "--out",
                                   str(tmp_path / "gas.h5"), "--reverse"])
    assert res.exit_code == 0, res.output
    import h5py
    with h5py.File(tmp_path / "gas.h5") as f:
        assert f["pred/gas"].attrs["unit"] == "Msun/kpc^2" and f.attrs["source"] == "hi"
    with pytest.raises(ConfigError, match="translates one way only"):
        make_method("unet", 1).reverse()
