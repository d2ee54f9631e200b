"""The Diffusion Mamba backbone: scan orders, 2D structure, training through score_sde, bad input."""
import sys

import numpy as np
import pytest
import torch

from skymorph.errors import ConfigError
from skymorph.models import DiffusionMamba, denoiser
from skymorph.models.dim import SCANS, scan, sincos_2d, unscan

PAD = -1.0


def _index_grid(h, w):
    return torch.arange(h * w, dtype=torch.float32).view(1, h, w, 1)


def _order(h, w, order):
    """The token indices a scan visits, pads as -1."""
    pads = torch.full((2, 1), PAD)
    return scan(_index_grid(h, w), order, pads)[0, :, 0].long().tolist()


@pytest.mark.parametrize("order", range(4))
@pytest.mark.parametrize("h, w", [(3, 5), (4, 4), (1, 6)])
def test_every_scan_visits_every_token_once_and_inverts_exactly(order, h, w):
    seq = _order(h, w, order)
    tokens = [i for i in seq if i != PAD]
    assert sorted(tokens) == list(range(h * w))  # a permutation of the tokens
    assert seq.count(PAD) == (h if order < 2 else w)  # one pad per line
    x = torch.randn(2, h, w, 7)
    assert torch.equal(unscan(scan(x, order, torch.randn(2, 7)), order, h, w), x)


def test_the_four_orders_are_dims_raster_scans():
    assert SCANS == ("row forward", "row backward", "column forward", "column backward")
    p = PAD
    assert _order(2, 3, 0) == [0, 1, 2, p, 3, 4, 5, p]  # rows, each closed by its pad token
    assert _order(2, 3, 1) == [p, 5, 4, 3, p, 2, 1, 0]
    assert _order(2, 3, 2) == [0, 3, p, 1, 4, p, 2, 5, p]  # columns
    assert _order(2, 3, 3) == [p, 5, 2, p, 4, 1, p, 3, 0]


def test_scans_see_the_map_as_2d():
    """Shifting the map one row down shifts the row scan by one line (W + 1 tokens), and a column
    scan of a map is the row scan of its transpose (with the column pad): the scans keep the map's
    geometry, so the same weights read a map and its transpose alike."""
    x, pads = torch.randn(1, 4, 5, 3), torch.randn(2, 3)
    rolled = scan(torch.roll(x, 1, dims=1), 0, pads)
    assert torch.equal(rolled, torch.roll(scan(x, 0, pads), 5 + 1, dims=1))
    assert torch.equal(scan(x, 2, pads), scan(x.transpose(1, 2), 0, pads.flip(0)))
    assert torch.equal(scan(x, 3, pads), scan(x.transpose(1, 2), 1, pads.flip(0)))


def test_position_embedding_codes_rows_and_columns():
    emb = sincos_2d(4, 6, 16).view(4, 6, 16)
    assert torch.allclose(emb[:, :, :8], emb[:, :1, :8].expand(4, 6, 8))  # first half: the row only
    assert torch.allclose(emb[:, :, 8:], emb[:1, :, 8:].expand(4, 6, 8))  # second half: the column only
    assert len({tuple(v) for v in emb.reshape(24, 16).round(decimals=5).tolist()}) == 24  # all distinct


def test_an_untrained_dim_adds_nothing_and_learns_a_map():
    """Zero-initialised output (as the U-Net's); a few Adam steps fit a fixed target on 16^2 maps,
    so gradients reach the blocks through the scans."""
    torch.manual_seed(0)
    net = DiffusionMamba(2, 1, width=16, blocks=3, patch=2)
    x, t = torch.randn(4, 2, 16, 16), torch.rand(4)
    assert torch.equal(net(x, t), torch.zeros(4, 1, 16, 16))
    target = x[:, :1] * 0.5 + torch.roll(x[:, 1:], 1, dims=-1)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    first = None
    for _ in range(60):
        loss = torch.mean((net(x, t) - target) ** 2)
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.blocks.parameters() if p.requires_grad)


def test_dim_needs_a_patch_that_divides_the_map():
    net = DiffusionMamba(1, 1, width=16, blocks=1, patch=3)
    with pytest.raises(ConfigError, match="--patch-size 3 does not divide the map size 16x16"):
        net(torch.zeros(1, 1, 16, 16), torch.zeros(1))
    with pytest.raises(ConfigError, match="--dim-blocks must be odd"):
        DiffusionMamba(1, 1, width=16, blocks=4)


def test_missing_mambapy_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "mambapy.mamba", None)
    with pytest.raises(ConfigError, match="backbone 'dim' needs mambapy .*pip install mambapy"):
        denoiser("dim", 2, 1)


def test_backbone_options_are_checked_against_the_backbone():
    from skymorph.methods.config import TrainConfig

    base = {"data": "x.h5", "source": "gas", "target": "star"}
    with pytest.raises(ConfigError, match="backbone 'dim' fits the diffusion family .*not 'unet'"):
        TrainConfig.build({**base, "method": "unet", "backbone": "dim"})
    with pytest.raises(ConfigError, match=r"base_channels \(--base-channels\) is not an option of backbone 'dim'"):
        TrainConfig.build({**base, "method": "score_sde", "backbone": "dim", "base_channels": 8})
    with pytest.raises(ConfigError, match=r"patch_size \(--patch-size\) is not an option of backbone 'unet'"):
        TrainConfig.build({**base, "method": "indi", "patch_size": 2})


def test_dim_matches_the_16_wide_unet_in_parameters():
    count = lambda n: sum(p.numel() for p in n.parameters())  # noqa: E731
    dim, unet = count(denoiser("dim", 2, 1)), count(denoiser("unet", 2, 1, base_channels=16))
    assert abs(dim - unet) / unet < 0.01


def test_score_sde_on_dim_trains_and_samples_finite_maps(store_path, tmp_path):
    from typer.testing import CliRunner

    from skymorph.cli import app
    from skymorph.methods.training import load_run

    runner = CliRunner()
    args = ["train", "--method", "score_sde", "--data", str(store_path), "--source", "gas", "--target", "star",
            "--backbone", "dim", "--dim-width", "16", "--dim-blocks", "3", "--patch-size", "4", "--max-epochs", "2",
            "--batch-size", "4", "--no-progress"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    cfg, method = load_run(tmp_path / "run")
    assert cfg.backbone == "dim" and isinstance(method.net, DiffusionMamba)
    x = torch.zeros(2, 1, 32, 32)
    out = method.translate(x, steps=3, seed=1, n_samples=2).numpy()
    assert out.shape == (2, 2, 1, 32, 32) and np.isfinite(out).all() and out[0].std() > 0
    bad = runner.invoke(app, [*args[:-9], "--patch-size", "5", "--max-epochs", "1", "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 1 and "--patch-size 5 does not divide the map size 32x32" in bad.stderr
    assert not (tmp_path / "r2" / "checkpoints").exists()


def test_benchmark_entries_name_a_backbone_and_are_judged_against_the_default_one():
    from skymorph.evaluate.benchmark import method_of, verdicts

    assert method_of("score_sde@dim") == ("score_sde", {"backbone": "dim"}) and method_of("indi") == ("indi", {})
    with pytest.raises(ConfigError, match="'unet' has no backbone option"):
        method_of("unet@dim")
    with pytest.raises(ConfigError, match="unknown backbone 'vit'"):
        method_of("score_sde@vit")
    rng = np.random.default_rng(0)
    galaxy = np.repeat(np.arange(10), 2)
    per_view = {m: {k: rng.random((1, 20)) + shift for k in ("mse_log", "pk_err_dex", "pdf_w1")}
                for m, shift in (("baseline", 1.0), ("score_sde", 0.0), ("score_sde@dim", 0.5))}
    got = {(v["method"], v["reference"], v["metric"]) for v in verdicts(per_view, galaxy, {
        "baseline": False, "score_sde": True, "score_sde@dim": True}, seed=0)}
    assert ("score_sde@dim", "score_sde", "mse_log") in got and ("score_sde", "score_sde@dim", "mse_log") not in got
    assert ("score_sde@dim", "baseline", "pk_err_dex") in got


def test_the_lensing_prior_takes_the_dim_backbone(tmp_path):
    """train-prior --backbone dim trains a DiM score network that load_prior rebuilds; a patch that does
    not divide the maps is refused before training."""
    from test_massmap import _mask, _write_kappa_file
    from typer.testing import CliRunner

    from skymorph.cli import app
    from skymorph.cosmo.prior import load_prior, train_prior

    data = _write_kappa_file(tmp_path / "k.h5", 12, 16, 6.0, seed=1, mask=_mask(16))
    res = CliRunner().invoke(app, ["lensing", "train-prior", "--data", str(data), "--out", str(tmp_path / "run"),
                                   "--backbone", "dim", "--max-epochs", "1", "--batch-size", "4", "--no-progress"])
    assert res.exit_code == 0, res.output
    cfg, net = load_prior(tmp_path / "run")
    assert cfg.backbone == "dim" and isinstance(net.net, DiffusionMamba)
    x = torch.randn(2, 16, 16, dtype=net.power.dtype)
    assert torch.isfinite(net.eps(x, torch.full((2,), 0.1, dtype=x.dtype))).all()
    with pytest.raises(ConfigError, match="--patch-size 5 does not divide the map size 16x16"):
        train_prior(data, tmp_path / "r2", backbone="dim", patch_size=5)
