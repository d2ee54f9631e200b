"""Mass mapping: KS exactness, the Wiener filter and the posterior sampler against the exact Gaussian
posterior, the score prior's training and bad input through the CLI."""
import json
import math

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.cosmo.lensing import ARCMIN, ks_forward
from skymorph.cosmo.massmap import (GaussianPrior, Schedule, _fourier, _likelihood_score, coverage, ks_map, mode_power,
                                    ring_spectrum, sample_posterior, wiener)

runner = CliRunner()
NOISE = 0.01


def _spectrum(n: int, pixel_arcmin: float):
    """A smooth convergence-like C_ell (pixel std ~0.01) on the rings of an n^2 map."""
    ell = np.arange(n) * 2 * math.pi / (n * pixel_arcmin * ARCMIN)
    return ell, 2e-8 * (1 + ell / 300) ** -2.5


def _field(power: torch.Tensor, gen: torch.Generator, n_maps: int = 1) -> torch.Tensor:
    n = power.shape[-1]
    return _fourier(torch.randn(n_maps, n, n, generator=gen, dtype=torch.float64), power.sqrt())


def _noisy_shear(kappa, mask, gen):
    noise = torch.complex(*torch.randn((2,) + kappa.shape, generator=gen, dtype=torch.float64))
    return mask * (ks_forward(kappa) + NOISE * noise)


def _mask(n: int) -> torch.Tensor:
    m = torch.ones(n, n, dtype=torch.float64)
    m[5:12, 3:15] = 0
    m[n - 10:n - 7, n // 2:n - 2] = 0
    return m


def test_ks_recovers_kappa_exactly_without_noise_and_mask():
    gen = torch.Generator().manual_seed(0)
    kappa = _field(mode_power(*_spectrum(32, 4.0), 32, 4.0), gen, 3) + 0.003  # a non-zero k = 0 mode
    est = ks_map(ks_forward(kappa))
    assert torch.allclose(est, kappa - kappa.mean(dim=(-2, -1), keepdim=True), atol=1e-14)
    assert (ks_map(ks_forward(kappa), 2.0) - est).abs().max() > 1e-3  # smoothing does act


def test_ring_spectrum_of_white_noise_is_flat_and_mode_power_inverts_it():
    """White noise of variance v has C_ell = v A_pix at every ell; mode_power maps it back to S = v."""
    rng = np.random.default_rng(1)
    pix = 3.0
    maps = 0.02 * rng.standard_normal((400, 32, 32))
    ell, cl = ring_spectrum(maps, pix)
    flat = 0.02**2 * (pix * ARCMIN) ** 2
    assert np.allclose(cl[1:] / flat, 1.0, atol=0.25) and abs(cl[1:].mean() / flat - 1) < 0.01  # 1-mode corner rings: 7%
    s = mode_power(ell, np.full_like(cl, flat), 32, pix)
    assert torch.allclose(s, torch.full_like(s, 0.02**2))


def test_gaussian_score_sampler_matches_the_exact_masked_posterior():
    """With the analytic Gaussian score as the prior, the annealed Langevin posterior mean equals the
    Wiener filter within sampling error and its per-pixel std the analytic posterior std, inside and
    outside the mask (the dense posterior covariance is inverted exactly at 32^2)."""
    n, pix = 32, 4.0
    power = mode_power(*_spectrum(n, pix), n, pix)
    prior = GaussianPrior(power, 0.0)
    gen = torch.Generator().manual_seed(2)
    mask = _mask(n)
    gamma = _noisy_shear(_field(power, gen), mask, gen)
    eye = torch.eye(n * n, dtype=torch.float64).view(-1, n, n)
    q = _fourier(eye, 1 / power) - _likelihood_score(eye, torch.zeros(n, n, dtype=torch.complex128), mask, NOISE**2)
    cov = torch.linalg.inv(q.view(n * n, n * n))
    exact_mean = (cov @ _likelihood_score(torch.zeros(n, n, dtype=torch.float64), gamma[0], mask, NOISE**2).ravel())
    exact_mean, exact_std = exact_mean.view(n, n), cov.diagonal().sqrt().view(n, n)

    wf = wiener(gamma, mask, NOISE, prior)[0]
    assert torch.allclose(wf, exact_mean, atol=1e-6 * exact_mean.abs().max())

    k = 256  # rho = 0.9: the small discretisation bias of masked modes (~1% at the default 0.8) is negligible
    smp = sample_posterior(gamma, mask, NOISE, prior, k, Schedule(0.05, 1e-4, rho=0.9), seed=3, chains=k)[0]
    # whiten with the exact covariance: w = L^-1 (x - mean) must be iid N(0, 1) in all 1024 dimensions
    w = torch.linalg.solve_triangular(torch.linalg.cholesky(cov), (smp - wf).reshape(k, -1).T, upper=False)
    assert abs(k * w.mean(1).pow(2).mean() - 1) < 0.1  # chi^2 / dof of the sample mean: Wiener within sampling error
    assert abs(w.var(1).mean() - 1) < 0.01  # sampling error 0.3%
    ratio = smp.std(0) / exact_std
    observed = mask.bool()
    assert abs(ratio[observed].mean() - 1) < 0.03 and abs(ratio[~observed].mean() - 1) < 0.03
    truths = wf + (torch.linalg.cholesky(cov) @ torch.randn(n * n, 40, generator=gen, dtype=torch.float64)).T.view(-1, n, n)
    cover = coverage(smp.expand(40, k, n, n).numpy(), truths.numpy(), mask.numpy())  # truths from the exact posterior
    for level, tol in ((0.68, 0.03), (0.95, 0.015)):  # K = 256: nominal 175/257 = 0.681 and 245/257 = 0.953
        measured, nominal = cover[level]
        assert abs(nominal - level) < 0.005 and abs(measured.mean() - nominal) < tol


def test_sample_mean_rmse_removes_the_k_sample_noise_of_a_posterior_mean():
    """Posteriors with a known mean mu: the K = 4 sample mean's RMSE is inflated by the sample noise, the
    corrected one recovers |P(mu - t)| (P: masked mean removed, so a per-sample offset costs nothing)."""
    from skymorph.cosmo.massmap import masked_rmse, sample_mean_rmse
    from skymorph.errors import ConfigError

    rng = np.random.default_rng(0)
    n_maps, k, n = 400, 4, 12
    mask = np.ones((n, n))
    mask[:3, :5] = 0
    truth = rng.normal(size=(n_maps, n, n))
    mu = truth + 0.3 * rng.normal(size=(n_maps, n, n))
    samples = (mu[:, None] + 0.5 * rng.normal(size=(n_maps, k, n, n))
               + 10.0 * rng.normal(size=(n_maps, k, 1, 1)))  # offsets: no error once the masked mean is removed
    exact = masked_rmse(mu, truth, mask)
    naive = masked_rmse(samples.mean(1), truth, mask)
    corrected = sample_mean_rmse(samples, truth, mask)
    # E naive^2 = 0.09 + 0.25 / 4 per pixel (less the mean's share); the correction takes the 0.0625 off
    assert abs(np.mean(naive**2) / np.mean(exact**2) - (0.09 + 0.0625) / 0.09) < 0.05
    assert abs(np.mean(corrected**2) / np.mean(exact**2) - 1) < 0.02
    with pytest.raises(ConfigError, match="at least 2 samples"):
        sample_mean_rmse(samples[:, :1], truth, mask)


def _write_kappa_file(path, n_maps, npix, pixel_arcmin, seed, mask=None, mask_shape=None):
    """A kappa.h5 in the layout of 'skymorph lensing maps', with Gaussian random convergence maps."""
    gen = torch.Generator().manual_seed(seed)
    power = mode_power(*_spectrum(npix, pixel_arcmin), npix, pixel_arcmin)
    kappa = _field(power, gen, n_maps)
    msk = torch.ones(npix, npix, dtype=torch.float64) if mask is None else mask
    gamma = _noisy_shear(kappa, msk, gen)
    with h5py.File(path, "w") as f:
        f["kappa"] = kappa.float().numpy()
        f["gamma_obs"] = torch.stack([gamma.real, gamma.imag], 1).float().numpy()
        f["mask"] = np.ones(mask_shape or (npix, npix), np.float32) if mask_shape else msk.float().numpy()
        f["params/seed"] = np.arange(n_maps) + 1000 * seed
        f.attrs.update({"noise_std": NOISE, "pixel_arcmin": pixel_arcmin, "npix": npix})
    return path


@pytest.fixture(scope="module")
def prior_run(tmp_path_factory):
    """A 16^2 prior trained for one epoch (U-Net width 8) on 24 Gaussian maps, then resumed for a second."""
    root = tmp_path_factory.mktemp("prior")
    data = _write_kappa_file(root / "train.h5", 24, 16, 6.0, seed=1, mask=_mask(16))
    run = root / "run"
    common = ["--out", str(run), "--no-progress"]
    res = runner.invoke(app, ["lensing", "train-prior", "--data", str(data), "--max-epochs", "1", "--base-channels", "8",
                              "--batch-size", "8", *common])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["lensing", "train-prior", "--resume", "--max-epochs", "2", *common])
    assert res.exit_code == 0, res.output
    return root, run


def test_prior_trains_resumes_and_starts_from_the_gaussian_score(prior_run):
    from skymorph.cosmo.prior import PriorConfig, ScoreNet, load_prior

    root, run = prior_run
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1  # two epochs, resumed
    assert (run / "logs" / "csv" / "version_1" / "metrics.csv").exists()
    cfg, net = load_prior(run)
    fresh = ScoreNet(PriorConfig.load(run / "prior.yaml"))  # zero last layer: exactly the Gaussian score
    gauss = GaussianPrior(fresh.power, fresh.mean)
    x = 0.01 * torch.randn(4, 16, 16)
    with torch.no_grad():
        assert torch.allclose(fresh.score(x, 0.003), gauss.score(x, 0.003), rtol=1e-4, atol=1e-3)
        assert not torch.allclose(net.score(x, 0.003), gauss.score(x, 0.003), rtol=1e-4, atol=1e-3)  # it learned
    # the Gaussian baseline of the validation loss: stored with the prior, logged every epoch beside val_loss
    # on the same draws, and equal to the untrained network's loss (its last layer starts at zero)
    import csv

    from skymorph.cosmo.prior import _validation_loss, gain_line
    from torch.utils.data import DataLoader, TensorDataset

    with h5py.File(root / "train.h5") as f:
        val = torch.from_numpy(f["kappa"][-2:])  # val_fraction 0.1 of 24 maps
    loader = DataLoader(TensorDataset(val), cfg.batch_size)
    assert cfg.gaussian_val_loss == pytest.approx(_validation_loss(fresh, loader, gaussian=False), rel=1e-6)
    rows = [r for r in csv.DictReader(open(run / "logs" / "csv" / "version_1" / "metrics.csv")) if r["val_loss_gaussian"]]
    assert float(rows[-1]["val_loss_gaussian"]) == pytest.approx(cfg.gaussian_val_loss, rel=1e-5)
    assert "against the Gaussian prior's" in gain_line(run)


def test_massmap_cli_methods_and_benchmark(prior_run, tmp_path):
    root, run = prior_run
    test = _write_kappa_file(tmp_path / "test.h5", 3, 16, 6.0, seed=2, mask=_mask(16))
    for method in ("ks", "wiener"):
        res = runner.invoke(app, ["lensing", "massmap", "--shear", str(test), "--estimator", method, "--prior", str(run),
                                  "--out", str(tmp_path / f"{method}.h5")])
        assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "ks.h5") as f, h5py.File(test) as t:
        smooth = f.attrs["smoothing_arcmin"]
        g = t["gamma_obs"][()]
        expect = ks_map(torch.from_numpy(g[:, 0] + 1j * g[:, 1]).to(torch.complex128), smooth / 6.0).numpy()
        assert np.allclose(f["kappa"][()], expect, atol=1e-6)
    res = runner.invoke(app, ["lensing", "benchmark", "--data", str(test), "--prior", str(run), "--out",
                              str(tmp_path / "bench"), "--samples", "4", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "Wiener filter" in res.output and (tmp_path / "bench" / "massmap.png").exists()
    out = json.loads((tmp_path / "bench" / "results.json").read_text())
    wf, post = out["methods"]["Wiener filter"], out["methods"]["posterior mean, learned prior"]
    assert wf["rmse_k_inf"] == wf["rmse"] and post["rmse_k_inf"]["mean"] < post["rmse"]["mean"]  # 4-sample noise off
    md = (tmp_path / "bench" / "results.md").read_text()
    assert "Prior (wiener residual): best validation loss" in md and "Prior at the data's noise (the sampler" in md
    at_noise = out["prior_at_noise"]  # the trained test prior against its Gaussian start, on the same noisy maps
    assert at_noise["sigma"] == out["noise_std"] and at_noise["ratio_lo"] <= at_noise["ratio"] <= at_noise["ratio_hi"]
    # samples of a posterior whose chains did not run away are about as wide as the maps themselves
    spread = out["sample_rms_over_map_std"]
    assert all(0.6 < s["mean"] < 1.5 for s in spread.values()), spread
    # the RMSE ratio to Wiener is the geometric mean over maps of the per-map ratios
    v = next(v for v in out["verdicts"] if v["reference"] == "Wiener filter" and v["metric"] == "rmse")
    ratio = np.exp(np.mean(np.log(np.array(post["rmse"]["per_map"]) / wf["rmse"]["per_map"])))
    assert v["ratio"] == pytest.approx(ratio, rel=1e-12) and v["ratio_lo"] <= v["ratio"] <= v["ratio_hi"]
    assert "pearson" not in [w["metric"] for w in out["verdicts"] if "ratio" in w]
    cover = out["tweedie"]["coverage"]  # Tweedie's mean +- std against the truth, nominal the level itself
    assert set(cover) == {"Gaussian prior", "learned prior"} and cover["learned prior"]["0.95"]["nominal"] == 0.95
    assert all(c["0.68"]["mean"] < c["0.95"]["mean"] for c in cover.values())
    assert "| Tweedie, learned prior |" in md and "4 Hutchinson probes" in md


def test_bad_input_is_one_clear_line(prior_run, tmp_path):
    root, run = prior_run
    cases = [
        (["--shear", str(_write_kappa_file(tmp_path / "shape.h5", 2, 16, 6.0, 3, mask_shape=(8, 8))), "--estimator", "ks",
          "--smoothing", "0"], "different shapes"),
        (["--shear", str(_write_kappa_file(tmp_path / "pix.h5", 2, 16, 3.0, 3)), "--estimator", "wiener", "--prior", str(run)],
         "trained on 16^2 maps of 6 arcmin"),
        (["--shear", str(_write_kappa_file(tmp_path / "size.h5", 2, 32, 6.0, 3)), "--estimator", "posterior", "--prior",
          str(run)], "trained on 16^2 maps"),
        (["--shear", str(root / "train.h5"), "--estimator", "posterior", "--prior", str(run), "--samples", "0"],
         "--samples must be a positive integer"),
    ]
    loud = _write_kappa_file(tmp_path / "loud.h5", 2, 16, 6.0, 3)
    with h5py.File(loud, "a") as f:
        f.attrs["noise_std"] = 0.5  # far above the prior's sigma_max: its score was never trained there
    cases += [(["--shear", str(loud), "--estimator", "tweedie", "--prior", str(run)], "outside the prior's trained range"),
              (["--shear", str(root / "train.h5"), "--estimator", "tweedie", "--prior", str(run), "--samples", "0"],
               "--samples must be a positive integer")]
    for args, message in cases:
        res = runner.invoke(app, ["lensing", "massmap", *args, "--out", str(tmp_path / "r.h5")])
        assert res.exit_code == 1 and message in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not (tmp_path / "r.h5").exists()  # refused before anything is written
    res = runner.invoke(app, ["lensing", "benchmark", "--data", str(root / "train.h5"), "--prior", str(run), "--out",
                              str(tmp_path / "b")])
    assert res.exit_code == 1 and "trained on" in res.output  # the prior's own training maps are refused
    res = runner.invoke(app, ["lensing", "train-prior", "--data", str(root / "train.h5"), "--out", str(tmp_path / "p"),
                              "--residual", "dampd"])
    assert res.exit_code == 2 and "Invalid value for '--residual'" in " ".join(res.output.split())
    assert not (tmp_path / "p").exists()  # refused before anything is written


def test_the_prior_and_posterior_sampling_take_a_device(prior_run, tmp_path, trainer_options):
    from conftest import TrainerAsked

    from skymorph.cosmo.prior import load_prior, train_prior
    from skymorph.errors import ConfigError

    root, run = prior_run
    _, net = load_prior(run, device="cpu")
    assert net.power.device == torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    mask = _mask(16)
    gamma = _noisy_shear(_field(net.power.double(), gen), mask, gen)
    sched = Schedule(0.05, 1e-3, levels=2, steps=1)
    here = sample_posterior(gamma, mask, NOISE, net, 2, sched, seed=1)  # None: the prior's device
    assert torch.equal(here, sample_posterior(gamma, mask, NOISE, net, 2, sched, seed=1, device="cpu"))
    assert here.device == torch.device("cpu") and here.dtype == net.power.dtype
    for call in (lambda: sample_posterior(gamma, mask, NOISE, net, 2, sched, device="gpu"),
                 lambda: load_prior(run, device="gpu"),
                 lambda: train_prior(root / "train.h5", tmp_path / "p", device="gpu")):
        with pytest.raises(ConfigError, match="unknown device 'gpu'"):
            call()
    assert not (tmp_path / "p").exists()  # refused before the run folder is made

    with pytest.raises(TrainerAsked):
        train_prior(root / "train.h5", tmp_path / "q", device="cpu", deterministic=False, base_channels=8)
    asked = trainer_options
    assert (asked["deterministic"], asked["accelerator"], asked["devices"]) == (False, "cpu", 1)


def test_a_prior_is_bound_to_its_training_maps(prior_run, tmp_path):
    """--resume reads a moved copy of the training maps (same fingerprint) and refuses other maps."""
    import shutil

    from skymorph.cosmo.prior import PriorConfig

    root, run = prior_run
    cfg = PriorConfig.load(run / "prior.yaml")
    assert cfg.data.is_absolute() and len(cfg.data_fingerprint) == 16
    moved = tmp_path / "moved" / "maps.h5"
    moved.parent.mkdir()
    shutil.copy(root / "train.h5", moved)
    other = _write_kappa_file(tmp_path / "other.h5", 24, 16, 6.0, seed=5, mask=_mask(16))
    res = runner.invoke(app, ["lensing", "train-prior", "--resume", "--data", str(other), "--max-epochs", "3",
                              "--out", str(run), "--no-progress"])
    assert res.exit_code == 1 and cfg.data_fingerprint in res.stderr and "fingerprint" in res.stderr
    res = runner.invoke(app, ["lensing", "train-prior", "--resume", "--data", str(moved), "--max-epochs", "3",
                              "--out", str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert PriorConfig.load(run / "prior.yaml").data == moved.resolve()


class _FixedResidual(torch.nn.Module):
    """A residual network that returns one fixed map whatever its input: the score is then linear in x
    and its equilibrium is known in closed form."""

    def __init__(self, r: torch.Tensor):
        super().__init__()
        self.r = r

    def forward(self, z, t):
        return self.r.expand(len(z), 1, *self.r.shape)


@pytest.mark.parametrize("sigma", [1e-3, 0.01, 0.05])
def test_a_damped_residual_moves_each_mode_by_its_width_and_a_white_one_by_more(sigma, tmp_path):
    """With the residual r fixed, score(x*) = 0 at F[x* - mu]_k = -sqrt(C_k + s^2) F[r]_k (damped),
    -s F[r]_k (wiener) and -(C_k + s^2)/s F[r]_k (white): the white form amplifies r by sqrt(C_k + s^2)/s
    in signal-dominated modes, the failure measured at 0.94' pixels; old prior.yaml files (no
    ``residual``) load as white."""
    from skymorph.cosmo.prior import PriorConfig, ScoreNet
    from skymorph.errors import ConfigError

    n, px = 16, 6.0
    ell, cl = _spectrum(n, px)
    r = torch.randn(n, n, generator=torch.Generator().manual_seed(3))
    shifts = {}
    for residual in ("damped", "wiener", "white"):
        cfg = PriorConfig(data=tmp_path / "k.h5", npix=n, pixel_arcmin=px, kappa_mean=0.002, kappa_std=0.01,
                          sigma_max=0.05, ell=ell.tolist(), cl=cl.tolist(), residual=residual)
        net = ScoreNet(cfg).double()
        net.net = _FixedResidual(r.double())
        width = torch.sqrt(net.power + sigma**2)
        gain = {"damped": width, "wiener": sigma * torch.ones_like(width), "white": width**2 / sigma}[residual]
        shift = -_fourier(r.double(), gain)
        with torch.no_grad():
            score = net.score((cfg.kappa_mean + shift)[None], sigma)
            scale = net.score((cfg.kappa_mean + 2 * shift)[None], sigma).abs().max()
        assert float(score.abs().max()) < 1e-9 * float(scale)
        shifts[residual] = torch.fft.fft2(shift).abs()
    # per mode: damped moves it by |r_k| widths exactly; white by sqrt(C_k + s^2)/s times more
    assert torch.allclose(shifts["white"], shifts["damped"] * width / sigma, rtol=1e-9)
    assert torch.allclose(shifts["damped"] / width, torch.fft.fft2(r.double()).abs(), rtol=1e-9)
    assert torch.allclose(shifts["wiener"], shifts["damped"] * sigma / width, rtol=1e-9)
    raw = PriorConfig(data=tmp_path / "k.h5", npix=n, pixel_arcmin=px).model_dump(mode="json")
    raw.pop("residual")
    (tmp_path / "old.yaml").write_text(__import__("yaml").safe_dump(raw))
    assert PriorConfig.load(tmp_path / "old.yaml").residual == "white"
    with pytest.raises(ConfigError, match="residual"):
        PriorConfig.validated({**raw, "residual": "dampd"}, "train-prior")


def test_the_prior_at_the_data_noise_is_tweedie_and_the_gaussian_one_the_unmasked_wiener_filter(tmp_path):
    """Each prior's posterior mean of kappa + white noise of the survey's noise_std: for the Gaussian
    prior y + s^2 score = mu + C (C + s^2)^-1 (y - mu) mode by mode (hand-computed here), which the
    untrained network (the Gaussian score exactly) reproduces; a residual that is wrong loses to it, with
    the verdict saying so; a noise outside the prior's trained sigma range is not measured."""
    from skymorph.cosmo.massbench import _gaussian, _prior_at_noise
    from skymorph.cosmo.massmap import masked_rmse
    from skymorph.cosmo.prior import PriorConfig, ScoreNet

    n, px, s = 16, 6.0, 0.02
    ell, cl = _spectrum(n, px)
    cfg = PriorConfig(data=tmp_path / "k.h5", npix=n, pixel_arcmin=px, kappa_mean=0.001, kappa_std=0.01,
                      sigma_max=0.05, ell=ell.tolist(), cl=cl.tolist())
    net, gauss = ScoreNet(cfg), _gaussian(cfg)
    truth = (cfg.kappa_mean + _field(gauss.power.double(), torch.Generator().manual_seed(1), 12)).numpy()
    out = _prior_at_noise(net, gauss, truth, cfg, s, seed=4)
    y = torch.from_numpy(truth) + s * torch.randn(truth.shape, generator=torch.Generator().manual_seed(4),
                                                  dtype=torch.float64)
    power = gauss.power.double()
    by_hand = cfg.kappa_mean + _fourier(y - cfg.kappa_mean, power / (power + s**2)).numpy()
    expect = masked_rmse(by_hand, truth, np.ones((n, n)))
    assert out["rmse"]["Gaussian prior"]["per_map"] == pytest.approx(expect.tolist(), rel=1e-10)
    assert out["rmse"]["Gaussian prior"]["mean"] < 0.8 * s  # it denoises
    assert out["ratio"] == pytest.approx(1.0, abs=1e-6)  # float32 network against float64: rounding apart
    net.net = _FixedResidual(torch.randn(n, n, generator=torch.Generator().manual_seed(5)))
    bad = _prior_at_noise(net, gauss, truth, cfg, s, seed=4)
    assert bad["ratio"] > 1.05 and bad["ratio_lo"] > 1 and bad["verdict"] == "worse"
    assert "outside the prior's trained range" in _prior_at_noise(net, gauss, truth, cfg, 0.5, seed=4)["skipped"]


def test_as_sigma_goes_to_zero_a_wiener_residual_leaves_the_gaussian_score_and_a_damped_one_a_finite_change():
    """The score minus the Gaussian score for a bounded residual r, per mode: -D r / sigma, i.e.
    -s r / (C + s^2) (wiener), -r / sqrt(C + s^2) (damped), -r / s (white). As sigma -> 0 the wiener
    form leaves the Gaussian prior itself in every mode with C >> s^2, whatever the network learned:
    the annealed chains end on the Gaussian posterior (why it ties Wiener, README); the damped form
    tends to the finite r / sqrt(C) a non-Gaussian prior needs; the white one diverges as 1 / s."""
    from skymorph.cosmo.prior import PriorConfig, ScoreNet

    n, px = 16, 6.0
    ell, cl = _spectrum(n, px)
    r = torch.randn(n, n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = 0.01 * torch.randn(1, n, n, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    change = {}
    for residual in ("wiener", "damped", "white"):
        cfg = PriorConfig(data="k.h5", npix=n, pixel_arcmin=px, kappa_std=0.01, sigma_max=0.05,
                          ell=ell.tolist(), cl=cl.tolist(), residual=residual)
        net = ScoreNet(cfg).double()
        net.net = _FixedResidual(r)
        gauss = GaussianPrior(net.power, net.mean)
        with torch.no_grad():
            change[residual] = [torch.fft.fft2(net.score(x, s) - gauss.score(x, s)).abs()[0] for s in (1e-4, 1e-5)]
    power, rk = net.power, torch.fft.fft2(r).abs()
    assert power.min() > 1e3 * 1e-4**2  # every mode signal-dominated at these sigmas
    w, d, h = change["wiener"], change["damped"], change["white"]
    assert torch.allclose(w[1], 0.1 * w[0], rtol=1e-3)  # falls with sigma: the Gaussian score is left
    assert torch.allclose(d[1], rk / power.sqrt(), rtol=1e-3)  # the finite limit r / sqrt(C)
    assert torch.allclose(h[1], 10 * h[0], rtol=1e-9)  # diverges as 1 / sigma


def test_tweedie_is_exact_without_a_mask_and_tends_to_the_wiener_filter_for_the_gaussian_prior(prior_run, tmp_path):
    """Unmasked, every draw is y + s^2 score(y, s) of the KS map y (mean mode set to the prior's), by hand,
    for a prior that is not Gaussian; masked, the Gaussian prior's mean over completions is the Wiener
    filter within the draws' own error; the CLI writes that mean."""
    from skymorph.cosmo.massmap import tweedie_moments, tweedie_posterior
    from skymorph.cosmo.lensing import ks_inverse
    from skymorph.cosmo.prior import load_prior

    root, run = prior_run
    cfg, net = load_prior(run)
    gen = torch.Generator().manual_seed(2)
    gauss = GaussianPrior(net.power.double(), net.mean)
    kappa = net.mean + _field(gauss.power, gen, 3)
    ones = torch.ones(16, 16, dtype=torch.float64)
    gamma = _noisy_shear(kappa, ones, gen)
    est, _ = tweedie_posterior(gamma, ones, NOISE, net, gauss, draws=2, seed=1)
    y = (ks_inverse(gamma).real + net.mean).float()
    with torch.no_grad():
        by_hand = (y + NOISE**2 * net.score(y, NOISE)).double()
    assert torch.allclose(est[:, 0], by_hand, atol=1e-7) and torch.equal(est[:, 0], est[:, 1])
    mask = _mask(16)
    masked = _noisy_shear(kappa, mask, gen)
    draws, variances = tweedie_posterior(masked, mask, NOISE, gauss, gauss, draws=256, seed=3)
    wf = wiener(masked, mask, NOISE, gauss)
    spread = draws.std(1) / 16  # the standard error of the mean of 256 draws, per pixel
    assert float(spread.max()) > 0  # the completions do differ
    assert float(((draws.mean(1) - wf) / spread.clamp_min(1e-12)).abs().max()) < 5
    # the law of total variance over completions gives the exact masked posterior variance (dense inverse at 16^2)
    n = 16
    eye = torch.eye(n * n, dtype=torch.float64).view(-1, n, n)
    q = _fourier(eye, 1 / gauss.power) - _likelihood_score(eye, torch.zeros(n, n, dtype=torch.complex128), mask, NOISE**2)
    exact = torch.linalg.inv(q.view(n * n, n * n)).diagonal().view(n, n)
    ratio = tweedie_moments(draws, variances)[1] / exact
    observed = mask.bool()
    assert abs(float(ratio[:, observed].mean()) - 1) < 0.03 and abs(float(ratio[:, ~observed].mean()) - 1) < 0.05
    unmasked_only = variances.mean(1) / exact  # without the completions' spread the masked pixels are too sure
    assert float(unmasked_only[:, ~observed].mean()) < 0.8
    res = runner.invoke(app, ["lensing", "massmap", "--shear", str(root / "train.h5"), "--estimator", "tweedie",
                              "--prior", str(run), "--samples", "3", "--maps", "0:2", "--out", str(tmp_path / "t.h5")])
    assert res.exit_code == 0 and "s per map (3 completions" in res.output, res.output
    with h5py.File(tmp_path / "t.h5") as f:
        assert f.attrs["method"] == "tweedie" and f.attrs["draws"] == 3 and f["kappa"].shape == (2, 16, 16)
        assert f["std"].shape == (2, 16, 16) and float(f["std"][()].min()) > 0 and f.attrs["probes"] == 4


def test_tweedie_variance_is_the_gaussian_posterior_variance_and_probes_find_a_learned_diagonal():
    """Var[kappa | y] = s^2 (1 + s^2 diag J) for y = kappa + s z: for the Gaussian prior exactly the unmasked
    posterior variance mean_k s^2 S / (S + s^2) at every pixel (no probes); for a prior with a diagonal
    non-Gaussian term (-a y^3 added to the score) exact per pixel with one probe; for a Fourier-diagonal
    residual -0.3 W / s^2 (W the Wiener fraction: total variance 0.7 s^2 mean W) right on average, with a
    probe noise that falls as 1 / sqrt(probes)."""
    from skymorph.cosmo.massmap import gaussian_coverage, tweedie_variance

    n, pix = 16, 4.0
    power = mode_power(*_spectrum(n, pix), n, pix)
    gauss = GaussianPrior(power, 0.0)
    gen = torch.Generator().manual_seed(4)
    y = _field(power, gen, 3) + NOISE * torch.randn(3, n, n, generator=gen, dtype=torch.float64)
    wiener_fraction = power / (power + NOISE**2)
    exact = float((NOISE**2 * wiener_fraction).mean())
    assert torch.allclose(tweedie_variance(gauss, y, NOISE), torch.full_like(y, exact), rtol=1e-10)

    class Extra:  # the Gaussian prior's score plus a known residual
        def __init__(self, residual):
            self.power, self.mean, self.residual = power, 0.0, residual

        def score(self, x, sigma):
            return gauss.score(x, sigma) + self.residual(x)

    a = 0.2 * float(wiener_fraction.mean()) / (3 * NOISE**2 * float(y.pow(2).max()))
    cubic = tweedie_variance(Extra(lambda x: -a * x**3), y, NOISE, probes=1)
    by_hand = NOISE**2 * (wiener_fraction.mean() - NOISE**2 * 3 * a * y**2)
    assert torch.allclose(cubic, by_hand, rtol=1e-9) and float((exact - cubic).max()) > 0.15 * exact
    linear = Extra(lambda x: -0.3 * _fourier(x, wiener_fraction.to(x)) / NOISE**2)
    few, many = (tweedie_variance(linear, y, NOISE, probes=p, seed=1) for p in (4, 64))
    assert float(many.mean()) == pytest.approx(0.7 * exact, rel=0.02)
    assert 2.5 < float(few.std() / many.std()) < 6  # sqrt(64 / 4) = 4

    truth, mask = np.array([[0.5, 1.5, -0.99, 2.5, 0.0]]), np.array([1, 1, 1, 1, 0])
    cover = gaussian_coverage(np.zeros_like(truth), np.ones_like(truth), truth, mask)
    assert cover[0.68].tolist() == [0.5] and cover[0.95].tolist() == [0.75]  # z = 0.994, 1.960; the masked pixel left out
