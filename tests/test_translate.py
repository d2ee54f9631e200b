"""Translation methods: data pipeline, models, Lightning training and resume, translation, bad input."""
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from astropy.io import fits

from skymorph.data.dataset import PairedMaps, dihedral
from skymorph.data.fits import export_fits
from skymorph.data.store import MapStore
from skymorph.errors import ConfigError, InputError, SkymorphError
from skymorph.methods import make_method
from skymorph.methods.apply import translate_fits, translate_maps, translate_store
from skymorph.methods.config import TrainConfig
from skymorph.methods.training import load_run, train
from skymorph.training.run import epochs_done
from skymorph.models import PatchGAN, UNet

SMALL = {"base_channels": 8, "d_base": 8, "batch_size": 4, "seed": 5}


def _cfg(store, method="unet", source="gas", target="hi", **kw):
    return TrainConfig.build({"method": method, "data": store, "source": source, "target": target, **SMALL, **kw})


@pytest.fixture(scope="module")
def unet_run(store_path, tmp_path_factory):
    return train(_cfg(store_path, max_epochs=2), tmp_path_factory.mktemp("runs") / "unet", progress=False)


def test_augmentation_is_identical_for_source_and_target(store_path):
    aug = PairedMaps(store_path, ["gas"], "dm", "train", augment=True)
    plain = PairedMaps(store_path, ["gas"], "dm", "train")
    torch.manual_seed(0)
    seen = set()
    for i in range(24):
        a, p = aug[i % len(aug)], plain[i % len(aug)]
        ks = [k for k in range(8) if torch.equal(dihedral(p["source"], k), a["source"])]
        assert len(ks) == 1  # the source went through exactly one symmetry of the square ...
        assert torch.equal(dihedral(p["target"], ks[0]), a["target"])  # ... and the target through the same
        seen.add(ks[0])
    assert len(seen) >= 6  # all eight are drawn
    with MapStore(store_path) as s:
        raw = s.maps("gas", int(plain.indices[0]))
        assert np.allclose(s.norm("gas").inverse(plain[0]["source"][0].numpy()), raw, rtol=1e-4, atol=1e-6 * raw.max())


def test_pairs_are_checked(store_path):
    with pytest.raises(ConfigError, match="source and target are both 'gas'"):
        PairedMaps(store_path, ["gas"], "gas")
    with pytest.raises(InputError, match="domain 'xray' not in the store"):
        PairedMaps(store_path, ["gas"], "xray")


def test_patchgan_sees_70_pixel_patches():
    d = PatchGAN(1, base=4)
    for i, layer in enumerate(d.net):  # instance norm couples all pixels through its statistics
        if isinstance(layer, torch.nn.InstanceNorm2d):
            d.net[i] = torch.nn.Identity()
    x = torch.randn(1, 1, 128, 128, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).ravel()
    assert PatchGAN.receptive_field(3) == 70
    assert rows.max() - rows.min() + 1 == 70


def test_unet_rejects_indivisible_sizes():
    with pytest.raises(ValueError, match="not divisible"):
        UNet(1, 1, 4, depth=3)(torch.zeros(1, 1, 36, 36))


def test_baseline_recovers_a_monotone_relation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 1, 16, 16)).astype(np.float32)
    for sign in (1, -1):
        y = sign * (0.5 * x**3 + x)
        m = make_method("baseline", 1)
        m.fit_prior(x, y)
        xt = rng.normal(size=(3, 1, 16, 16)).astype(np.float32).clip(-2, 2)
        pred = m.translate(torch.from_numpy(xt))[0].numpy()
        assert np.allclose(pred, sign * (0.5 * xt**3 + xt), atol=0.05)
        assert m.nfe() == 0


def test_training_logs_checkpoints_and_resumes(unet_run, store_path):
    import csv
    assert (unet_run / "config.yaml").exists() and (unet_run / "checkpoints" / "last.ckpt").exists()
    rows = list(csv.DictReader(open(unet_run / "logs" / "csv" / "version_0" / "metrics.csv")))
    losses = [float(r["train_loss_epoch"]) for r in rows if r.get("train_loss_epoch")]
    assert len(losses) == 2 and np.isfinite(losses).all()
    assert any((unet_run / "logs" / "tb").rglob("events.out.tfevents*"))
    state = torch.load(unet_run / "checkpoints" / "last.ckpt", weights_only=True)
    steps_before = state["optimizer_states"][0]["state"][0]["step"].item()
    assert epochs_done(unet_run) == 2
    # resume: a run stopped after 2 epochs continues to 3 with its optimiser state
    resumed = shutil.copytree(unet_run, unet_run.parent / "resumed")
    train(_cfg(store_path, max_epochs=3), resumed, resume=True, progress=False)
    assert epochs_done(resumed) == 3
    after = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert after["optimizer_states"][0]["state"][0]["step"].item() == steps_before * 3 / 2


def test_translation_is_reproducible_and_physical(unet_run, store_path, tmp_path):
    cfg, method = load_run(unet_run)
    with MapStore(store_path) as s:
        src = np.stack([s.maps("gas", [0, 1])], 1)
    a, _ = translate_maps(cfg, method, src, seed=3)
    b, _ = translate_maps(cfg, *load_run(unet_run)[1:], src, seed=3)
    assert np.array_equal(a, b) and a.shape == (1, 2, 32, 32) and (a >= 0).all()
    with MapStore(store_path) as s:
        out = translate_store(cfg, method, s, "test", tmp_path / "pred.h5")
        import h5py
        with h5py.File(out) as f:
            idx = f["index"][()]
            assert np.array_equal(idx, np.sort(s.split("test")))
            assert f["pred/hi"].attrs["unit"] == "Msun/kpc^2"
            direct, _ = translate_maps(cfg, method, np.stack([s.maps("gas", idx)], 1))
            assert np.allclose(f["pred/hi"][()], direct[0])


def test_fits_translation_keeps_the_header(unet_run, store_path, tmp_path):
    cfg, method = load_run(unet_run)
    with MapStore(store_path) as s:
        gas_fits = export_fits(s, 2, "gas", tmp_path / "gas.fits")
        direct, _ = translate_maps(cfg, method, s.maps("gas", 2)[None, None].astype(np.float64))
    out = translate_fits(cfg, method, gas_fits, tmp_path / "hi.fits")
    with fits.open(out) as h, fits.open(gas_fits) as g:
        assert h[0].header["BUNIT"] == "solMass/kpc2" and h[0].header["DOMAIN"] == "hi"
        assert h[0].header["CDELT1"] == g[0].header["CDELT1"]
        assert np.allclose(h[0].data, direct[0, 0], rtol=1e-5)
    fits.PrimaryHDU(np.ones((20, 20), np.float32)).writeto(tmp_path / "small.fits")
    with pytest.raises(InputError, match=r"small.fits: image is \(20, 20\), the run expects \(32, 32\)"):
        translate_fits(cfg, method, tmp_path / "small.fits", tmp_path / "x.fits")


def test_bad_checkpoints(unet_run, store_path, tmp_path):
    p2p = train(_cfg(store_path, method="pix2pix", max_epochs=1), tmp_path / "p2p", progress=False)
    wrong = shutil.copytree(unet_run, tmp_path / "wrong")
    for name in ("last.ckpt", "best.ckpt"):
        shutil.copy(p2p / "checkpoints" / "last.ckpt", wrong / "checkpoints" / name)
    (wrong / "config.yaml").write_text((unet_run / "config.yaml").read_text().replace("source:\n- gas", "source:\n- gas\n- temp"))
    with pytest.raises(InputError, match="weights do not fit a 'unet' model with 2 source channel"):
        load_run(wrong)
    corrupt = shutil.copytree(unet_run, tmp_path / "corrupt")
    for name in ("last.ckpt", "best.ckpt"):
        ck = corrupt / "checkpoints" / name
        ck.write_bytes(ck.read_bytes()[:1000])
    with pytest.raises(InputError, match="corrupt or unreadable checkpoint"):
        load_run(corrupt)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(store_path, tmp_path, monkeypatch):
    from skymorph.methods.regression import UNetRegression

    calls = {"n": 0}
    original = UNetRegression.training_step

    def poisoned(self, batch, step):
        calls["n"] += 1
        if calls["n"] == 7:
            return original(self, {**batch, "target": batch["target"] * float("nan")}, step)
        return original(self, batch, step)

    monkeypatch.setattr(UNetRegression, "training_step", poisoned)
    run = tmp_path / "nan"
    with pytest.raises(SkymorphError, match="loss became nan at step 6"):
        train(_cfg(store_path, max_epochs=5, batch_size=4), run, progress=False)
    per_epoch = len(PairedMaps(store_path, ["gas"], "hi", "train")) // 4  # drop_last
    assert epochs_done(run) == 6 // per_epoch  # the epochs finished before step 6 are kept
    cfg, method = load_run(run)
    assert all(torch.isfinite(p).all() for p in method.parameters())


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(store_path, tmp_path):
    cmd = [sys.executable, "-m", "skymorph.cli", "train", "--method", "unet", "--data", str(store_path), "--source",
           "gas", "--target", "dm", "--out", str(tmp_path / "ddp"), "--max-epochs", "1", "--devices", "2",
           "--strategy", "ddp_spawn", "--accelerator", "cpu", "--base-channels", "8", "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert epochs_done(tmp_path / "ddp") == 1


def test_ema_weights_are_used_for_translation(store_path, tmp_path):
    run = train(_cfg(store_path, source="gas,temp", max_epochs=2, ema=True, ema_decay=0.5), tmp_path / "ema",
                progress=False)
    cfg, method = load_run(run)
    assert cfg.source == ["gas", "temp"] and method.in_channels == 2
    state = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    ema = {k[len("ema.module."):]: v for k, v in state.items() if k.startswith("ema.module.")}
    raw = {k[len("method.net."):]: v for k, v in state.items() if k.startswith("method.net.")}
    net = method.net.state_dict()
    assert all(torch.equal(net[k], ema[k]) for k in ema)
    assert any(not torch.equal(ema[k], raw[k]) for k in ema if ema[k].is_floating_point())
    _, raw_method = load_run(run, ema=False)
    assert all(torch.equal(raw_method.net.state_dict()[k], raw[k]) for k in raw)


def test_spectral_loss_is_the_metric_power_spectrum():
    from skymorph import fields
    from skymorph.methods.losses import SpectralLoss

    norm = {"eps": 1e-3, "mean": 1.0, "std": 0.7}
    loss = SpectralLoss(32, **norm)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 1, 32, 32, generator=g), torch.randn(4, 1, 32, 32, generator=g)
    assert loss(a, a).item() == 0.0
    xa, xb = (loss.physical(z)[:, 0].numpy() for z in (a, b))
    _, pa, _ = fields.power_spectrum(xa)
    _, pb, _ = fields.power_spectrum(xb)
    expected = np.mean(np.abs(np.log10(pa / pb)))
    assert loss(a, b).item() == pytest.approx(expected, rel=0.05)
    # a uniform shift of the normalised map by d scales the power of (x + eps) by 10^(2 d std)
    assert loss(a + 0.1, a).item() == pytest.approx(2 * 0.1 * norm["std"], rel=0.02)


def test_ema_is_on_by_default_for_the_diffusion_family_only(store_path):
    from skymorph.methods.training import fill_from_data

    assert fill_from_data(_cfg(store_path, method="indi")).ema is True
    assert fill_from_data(_cfg(store_path, method="score_sde")).ema is True
    assert fill_from_data(_cfg(store_path, method="unet")).ema is False
    assert fill_from_data(_cfg(store_path, method="indi", ema=False)).ema is False


def test_ema_warms_up_then_keeps_its_decay():
    """The first update copies the weights; update n (n >= 1) averages with decay min(d, (1 + n) / (10 + n))."""
    from skymorph.training.run import warm_ema

    net = torch.nn.Linear(1, 1, bias=False)
    ema = warm_ema(net, 0.9)
    expect = None
    for n, v in enumerate([1.0, 2.0, 3.0, 4.0, 5.0] + [0.0] * 200):
        net.weight.data.fill_(v)
        ema.update_parameters(net)
        d = min(0.9, (1 + n) / (10 + n))
        expect = v if expect is None else d * expect + (1 - d) * v
        assert ema.module.weight.item() == pytest.approx(expect, rel=1e-6, abs=1e-12)
    assert abs(ema.module.weight.item()) < 1e-6  # 200 steps at decay 0.9 forget the start


def test_method_options_are_strict_declared_once_and_configurable(store_path, tmp_path):
    from skymorph.methods import METHODS
    from skymorph.methods.samplers import VPSchedule

    with pytest.raises(ConfigError, match=r"method 'unet' has no option 'base_chanels'; its options: base_channels,"):
        make_method("unet", 1, base_chanels=8)
    fields = TrainConfig.model_fields
    for name, cls in METHODS.items():  # one default per option: the class's is the config's
        declared = {k: v for k, v in cls.option_defaults().items() if k != "target_norm"}  # target_norm: from norms
        assert {k: fields[k].default for k in declared} == declared, name
    cfg = _cfg(store_path, method="cyclegan", lambda_cycle=3.0, lambda_identity=0.2, pool_size=7, p_one=0.9)
    assert set(cfg.method_options()) == set(METHODS["cyclegan"].option_defaults())  # only its own: no p_one
    cyc = make_method("cyclegan", 1, **cfg.method_options())
    assert (cyc.lambda_cycle, cyc.lambda_identity, cyc.pool_a.size) == (3.0, 0.2, 7)
    indi = make_method("indi", 1, **_cfg(store_path, method="indi", p_one=0.9, indi_eps=0.1).method_options())
    assert (indi.p_one, indi.eps) == (0.9, 0.1)
    sde = make_method("score_sde", 1, **_cfg(store_path, method="score_sde", beta_max=5.0).method_options())
    assert sde.schedule == VPSchedule(0.1, 5.0)
    # set from a --config YAML, shown in the resolved config; a config.yaml without the new fields still loads
    cfg.save(tmp_path / "config.yaml")
    saved = TrainConfig.load(tmp_path / "config.yaml")
    assert (saved.lambda_cycle, saved.pool_size, saved.deterministic) == (3.0, 7, True)
    import yaml
    new = ("lambda_cycle", "lambda_identity", "pool_size", "p_one", "beta_min", "beta_max", "deterministic")
    old = {k: v for k, v in yaml.safe_load((tmp_path / "config.yaml").read_text()).items() if k not in new}
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(old))
    assert TrainConfig.load(tmp_path / "old.yaml").lambda_cycle == 10.0


def test_a_misspelt_config_key_is_named(tmp_path):
    (tmp_path / "c.yaml").write_text("methd: unet\ndata: maps.h5\nsource: gas\ntarget: hi\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'methd' \(did you mean 'method'\?\)$"):
        TrainConfig.load(tmp_path / "c.yaml")


def test_a_missing_best_checkpoint_is_refused(unet_run, tmp_path):
    run = shutil.copytree(unet_run, tmp_path / "nobest")
    (run / "checkpoints" / "best.ckpt").unlink()
    with pytest.raises(InputError, match="no checkpoints/best.ckpt"):
        load_run(run)
    assert load_run(run, which="last")[1].training is False


def test_devices_resolve_and_batches_go_to_the_method(unet_run, store_path, monkeypatch):
    from skymorph.methods.apply import method_metrics
    from skymorph.devices import resolve_device
    from skymorph.methods.base import TranslationMethod

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown device 'gpu'; expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    with pytest.raises(ConfigError, match="unknown device 'cpu:1'"):
        resolve_device("cpu:1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ConfigError, match="device 'cuda' asked for, but no CUDA GPU is available"):
        load_run(unet_run, device="cuda")
    cfg, method = load_run(unet_run, device="cpu")
    assert method.device == torch.device("cpu")

    seen = []

    class OnMeta(TranslationMethod):  # a stand-in device: what reaches the method is moved there
        device = torch.device("meta")

        def translate(self, source, steps=None, seed=None, n_samples=1):
            seen.append(source.device)
            return torch.zeros(n_samples, *source.shape)

        def validation_metrics(self, batch):
            seen.extend([batch["source"].device, batch["target"].device])
            return {"x": torch.tensor(1.0)}

    with MapStore(store_path) as s:
        src, truth = np.stack([s.maps("gas", [0, 1])], 1), s.maps("hi", [0, 1])
    pred, _ = translate_maps(cfg, OnMeta(1), src)
    assert pred.shape == (1, 2, 32, 32) and method_metrics(cfg, OnMeta(1), src, truth) == {"x": 1.0}
    assert seen == [torch.device("meta")] * 3


def test_deterministic_is_a_config_option_passed_to_the_trainer(store_path, tmp_path, trainer_options):
    from conftest import TrainerAsked

    for value in (False, True):
        with pytest.raises(TrainerAsked):
            train(_cfg(store_path, deterministic=value), tmp_path / str(value), progress=False)
        assert trainer_options["deterministic"] is value
