"""Diffusion family: VP-SDE mathematics, samplers against an analytic score, InDI, and the chain
train -> translate -> evaluate -> benchmark (quality versus cost, calibration) with bad input."""
import json

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.errors import ConfigError
from skymorph.evaluate.benchmark import parse_pairs, run_benchmark
from skymorph.evaluate.metrics import calibration, calibration_nominal, rank_counts
from skymorph.evaluate.report import cost_answers
from skymorph.methods import make_method
from skymorph.methods import samplers as vp
from skymorph.methods.indi import iterate

runner = CliRunner()
M, S = 0.7, 0.5  # the Gaussian target of the analytic-score tests


def gaussian_eps(x, t):
    """Exact noise prediction E[eps | x_t] when x_0 ~ N(M, S^2) per pixel."""
    a, s = (v.view(-1, 1, 1, 1) for v in vp.marginal(t.double()))
    return (s * (x.double() - a * M) / (a**2 * S**2 + s**2)).float()


def test_vp_marginal_matches_the_forward_sde():
    """Integrate dx = -beta x / 2 dt + sqrt(beta) dW from x_0 = 1.5: mean and variance at t follow
    the closed form sqrt(abar) x_0 and 1 - abar."""
    gen = torch.Generator().manual_seed(0)
    x = torch.full((40000,), 1.5, dtype=torch.float64)
    n, checks = 2000, {600: None, 2000: None}
    for i in range(n):
        t = torch.tensor((i + 0.5) / n, dtype=torch.float64)
        b = vp.beta(t)
        x = x - 0.5 * b * x / n + torch.sqrt(b / n) * torch.randn(x.shape, generator=gen, dtype=torch.float64)
        if i + 1 in checks:
            a, s = vp.marginal(torch.tensor((i + 1) / n, dtype=torch.float64))
            assert float(x.mean()) == pytest.approx(float(a) * 1.5, abs=0.015)
            assert float(x.var()) == pytest.approx(float(s) ** 2, rel=0.03)
    assert float(vp.log_alpha_bar(torch.tensor(1.0))) == pytest.approx(-(0.1 + 0.5 * 19.9))


def test_discrete_schedule_is_the_vp_sde():
    abar = np.cumprod(1.0 - vp.discrete_betas())
    t = np.arange(1, vp.N_TRAIN + 1) / vp.N_TRAIN
    np.testing.assert_allclose(abar, np.exp(-(0.1 * t + 0.5 * 19.9 * t**2)), rtol=1e-9)


@pytest.mark.parametrize("sampler, steps", [("ode", 200), ("em", 300), ("pc", 200), ("ddim", 100), ("dpm++", 30),
                                            ("unipc", 30), ("heun", 30)])
def test_samplers_recover_a_gaussian_from_its_exact_score(sampler, steps):
    x = vp.sample(gaussian_eps, (4000, 1, 2, 2), sampler, steps, torch.Generator().manual_seed(1))
    assert float(x.mean()) == pytest.approx(M, abs=0.02)  # sampling error 0.004
    assert float(x.std()) == pytest.approx(S, rel=0.03)


@pytest.mark.parametrize("sampler", list(vp.SAMPLERS))
def test_nfe_counts_the_network_calls(sampler):
    calls = []

    def counting(x, t):
        calls.append(1)
        return gaussian_eps(x, t)
    for steps in (1, 4):
        calls.clear()
        vp.sample(counting, (2, 1, 2, 2), sampler, steps)
        assert len(calls) == vp.nfe(sampler, steps)
    assert vp.nfe("pc", 1000) == 2000  # score_sde_pytorch's default predictor-corrector


@pytest.mark.parametrize("sampler", list(vp.SAMPLERS))
def test_samplers_draw_on_the_asked_device_and_dtype(sampler):
    """A float64 stand-in for a model's dtype: noise, times and samples all follow it."""
    times = []

    def eps64(x, t):
        times.append((x.dtype, t.dtype, t.device))
        return gaussian_eps(x, t).double()
    draw = [vp.sample(eps64, (2, 1, 2, 2), sampler, 2, torch.Generator("cpu").manual_seed(0), "cpu", torch.float64)
            for _ in range(2)]
    assert draw[0].dtype == torch.float64 and draw[0].device.type == "cpu" and torch.equal(*draw)
    assert set(times) == {(torch.float64, torch.float64, torch.device("cpu"))}


@pytest.mark.parametrize("sampler, steps", [("em", 300), ("dpm++", 30)])
def test_samplers_follow_a_non_default_schedule(sampler, steps):
    sched = vp.VPSchedule(0.1, 30.0)  # samples under the default schedule miss the mean by 0.06 or more

    def eps(x, t):
        a, s = (v.view(-1, 1, 1, 1) for v in sched.marginal(t.double()))
        return (s * (x.double() - a * M) / (a**2 * S**2 + s**2)).float()
    assert float(sched.log_alpha_bar(torch.tensor(1.0))) == pytest.approx(-(0.1 + 0.5 * 29.9))
    x = vp.sample(eps, (4000, 1, 2, 2), sampler, steps, torch.Generator().manual_seed(1), schedule=sched)
    assert float(x.mean()) == pytest.approx(M, abs=0.02) and float(x.std()) == pytest.approx(S, rel=0.03)
    with pytest.raises(ConfigError, match="need 0 <= beta_min <= beta_max"):
        vp.VPSchedule(5.0, 1.0)


@pytest.mark.parametrize("method", ["indi", "score_sde"])
def test_diffusion_methods_draw_noise_in_the_maps_dtype(method):
    """float64 maps as a stand-in for a model's dtype (the network replaced by a linear map of x_t)."""
    m = make_method(method, 1, base_channels=8, depth=2, prior=False)
    seen = set()

    def stub(x, t, source):
        seen.add((x.dtype, t.dtype, x.device))
        return 0.5 * x
    setattr(m, "predict" if method == "indi" else "eps", stub)
    src = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    a = m.translate(src, steps=3, seed=0, n_samples=2)
    assert a.dtype == torch.float64 and torch.equal(a, m.translate(src, steps=3, seed=0, n_samples=2))
    assert m.validation_loss({"source": src, "target": src}).dtype == torch.float64
    assert seen == {(torch.float64, torch.float64, torch.device("cpu"))}


def test_indi_p_one_is_the_share_of_training_at_the_start_map():
    m = make_method("indi", 1, base_channels=8, depth=2, prior=False, p_one=1.0)
    torch.nn.init.normal_(m.net.out.weight, std=0.1)
    src, tgt = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16)
    with torch.no_grad():  # every t is 1: the objective is the regression from the start map, whatever the noise
        at_one = torch.nn.functional.l1_loss(m.predict(src, torch.ones(4), src), tgt)
        assert all(torch.allclose(m.objective(src, tgt, torch.Generator().manual_seed(k)), at_one) for k in range(3))
        m.p_one = 0.0
        assert not torch.allclose(m.objective(src, tgt, torch.Generator().manual_seed(0)), at_one)


def test_score_sde_samples_are_reproducible_and_independent():
    m = make_method("score_sde", 1, base_channels=8, depth=2, prior=False, sampler="dpm++")
    m.eps = lambda x, t, src: gaussian_eps(x, t)  # the exact score, so samples are N(M, S^2)
    src = torch.zeros(1, 1, 16, 16)
    a = m.translate(src, steps=20, seed=3, n_samples=48)
    assert torch.equal(a, m.translate(src, steps=20, seed=3, n_samples=48))
    assert not torch.equal(a, m.translate(src, steps=20, seed=4, n_samples=48))
    flat = a.reshape(48, -1).double()
    assert float(flat.mean()) == pytest.approx(M, abs=0.02) and float(flat.std()) == pytest.approx(S, rel=0.05)
    corr = torch.corrcoef(flat)
    off = corr[~torch.eye(48, dtype=bool)]
    assert float(off.abs().max()) < 0.3 and abs(float(off.mean())) < 0.02  # 256 pixels: sd 0.06


def test_indi_one_step_is_the_network_prediction():
    m = make_method("indi", 2, base_channels=8, depth=2, prior=False)
    torch.nn.init.normal_(m.net.out.weight, std=0.1)  # a network that does something
    src = torch.randn(3, 2, 16, 16)
    one = m.translate(src, steps=1, seed=0)[0]
    with torch.no_grad():
        direct = m.predict(src[:, :1], torch.ones(3), src)
    assert torch.equal(one, direct) and m.nfe(1) == 1
    many = m.translate(src, steps=4, seed=0, n_samples=2)
    assert not torch.equal(many[0], many[1])  # the bridge noise makes samples differ


def test_indi_with_the_exact_conditional_mean_reaches_the_clean_signal():
    """Toy linear problem: y = x + 0.8 xi with x ~ N(0, 1). With F = E[x | x_t, y], one step gives
    the posterior mean, and many steps sample the posterior N(y / 1.64, 0.64 / 1.64); for a known
    clean signal (point-mass prior) every step count lands on it exactly."""
    sy, e = 0.8, 0.5
    y = torch.full((20000, 1, 1, 1), 1.0)
    mu, v = y / (1 + sy**2), sy**2 / (1 + sy**2)

    def cond_mean(x, t):
        t, x = t.view(-1, 1, 1, 1).double(), x.double()
        den = ((1 - t) ** 2 * v + e**2 * t * (1 - t)).clamp_min(1e-300)
        return (mu + v * (1 - t) * (x - t * y - (1 - t) * mu) / den).float()
    one = iterate(cond_mean, y, 1, e)
    assert torch.allclose(one, mu)
    x = iterate(cond_mean, y, 400, e, torch.Generator().manual_seed(0))
    assert float(x.mean()) == pytest.approx(float(mu[0]), abs=0.02)
    assert float(x.var()) == pytest.approx(v, rel=0.04)
    clean = torch.linspace(-1, 2, 8).view(8, 1, 1, 1)
    for steps in (1, 3, 10):
        np.testing.assert_allclose(iterate(lambda x, t: clean, torch.zeros(8, 1, 1, 1), steps, e), clean, atol=1e-6)


def test_map_calibration_is_read_against_its_nominal_at_the_ensemble_size_used():
    """On log10 maps, per view: K = 8 calibrated samples cover at the order-statistic nominal 7/9 (not
    0.68), too narrow ones far below it."""
    rng = np.random.default_rng(0)
    eps = 1e-8
    centre = rng.normal(size=(4, 64, 64))
    truth = centre + rng.normal(size=centre.shape)
    samples = centre + rng.normal(size=(8, *centre.shape))
    phys = lambda logs: 10.0**logs - eps  # noqa: E731  (calibration works on log10(x + eps))
    nominal = calibration_nominal(8)
    assert nominal["coverage68"] == nominal["coverage95"] == pytest.approx(7 / 9)
    good = calibration(phys(samples), phys(truth), eps)
    assert np.allclose(good["coverage68"], 7 / 9, atol=0.03) and np.allclose(good["coverage95"], 7 / 9, atol=0.03)
    assert np.allclose(good["spread_skill"], nominal["spread_skill"], rtol=0.06)
    narrow = calibration(phys(centre + 0.3 * (samples - centre)), phys(truth), eps)
    assert np.all(narrow["coverage68"] < 0.35) and np.all(narrow["spread_skill"] > 3)
    ranks = rank_counts(phys(samples), phys(truth), eps)
    assert len(ranks["counts"]) == 9 and sum(ranks["counts"]) == truth.size


@pytest.fixture(scope="module")
def diffusion_bench(store_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("dbench")
    res = run_benchmark(store_path, parse_pairs("gas:hi"), ["unet", "indi", "score_sde"], out, None, max_epochs=1,
                        options={"base_channels": 8, "batch_size": 4, "depth": 2}, progress=False,
                        steps=[1, 3], samplers=["dpm++", "em", "indi"], n_samples=3, max_nfe=2)
    return out, res


def test_benchmark_sweeps_quality_against_cost(diffusion_bench):
    out, res = diffusion_bench
    pair = json.loads((out / "results.json").read_text())["pairs"]["gas-hi"]["methods"]
    assert [(p["sampler"], p["steps"], p["nfe"]) for p in pair["score_sde"]["sweep"]] == [
        ("dpm++", 1, 1), ("dpm++", 3, 3), ("em", 1, 1), ("em", 3, 3)]
    assert [(p["sampler"], p["nfe"]) for p in pair["indi"]["sweep"]] == [("indi", 1), ("indi", 3)]
    assert len(pair["unet"]["sweep"]) == 1 and "calibration" not in pair["unet"]
    # --max-nfe 2: the main evaluation and the calibration at 2 steps (defaults: 20 and 10)
    assert pair["score_sde"]["info"]["steps"] == pair["indi"]["info"]["steps"] == 2
    assert pair["indi"]["calibration"]["info"]["steps"] == 2 and pair["indi"]["calibration"]["info"]["nfe"] == 2 * 3
    cal = pair["indi"]["calibration"]
    assert 0 <= cal["metrics"]["coverage68"]["median"] <= cal["metrics"]["coverage95"]["median"] <= 1
    assert cal["nominal"]["coverage68"] == pytest.approx(0.5) and len(cal["rank"]["counts"]) == 4  # K = 3: j = 1
    answers = cost_answers("gas-hi", pair)
    assert len(answers) == 2 and all(a.count("NFE") >= 2 for a in answers)
    md = (out / "results.md").read_text()
    assert "quality versus cost" in md and "uncertainty" in md and "indi vs unet on pdf_w1" in md
    assert (out / "figures" / "gas-hi_quality_vs_cost.png").exists()
    assert (out / "figures" / "gas-hi_spread_error.png").exists()
    assert (out / "figures" / "gas-hi_rank_histogram.png").exists()


def test_translate_writes_samples_mean_and_spread(diffusion_bench, store_path, tmp_path):
    out, _ = diffusion_bench
    run = out / "runs" / "gas-hi" / "score_sde" / "seed_0"
    pred = tmp_path / "p.h5"
    res = runner.invoke(app, ["translate", str(run), "--data", str(store_path), "--out", str(pred), "--steps", "2",
                              "--sampler", "ddim", "--samples", "3", "--seed", "7"])
    assert res.exit_code == 0, res.output
    with h5py.File(pred) as f:
        s = f["samples/hi"][:]
        assert s.shape[0] == 3 and np.allclose(f["pred/hi"][:], s.mean(0), rtol=1e-5)
        assert np.allclose(f["std/hi"][:], s.std(0), rtol=1e-4, atol=1e-12)
        assert f.attrs["steps"] == 2
    again = tmp_path / "q.h5"
    runner.invoke(app, ["translate", str(run), "--data", str(store_path), "--out", str(again), "--steps", "2",
                        "--sampler", "ddim", "--samples", "3", "--seed", "7"])
    with h5py.File(pred) as f, h5py.File(again) as g:
        assert np.array_equal(f["samples/hi"][:], g["samples/hi"][:])


@pytest.mark.parametrize("method, extra, message", [
    ("score_sde", ["--steps", "0"], "--steps must be a positive integer, got 0"),
    ("indi", ["--steps", "-3"], "--steps must be a positive integer, got -3"),
    ("score_sde", ["--samples", "0"], "--samples must be a positive integer, got 0"),
    ("score_sde", ["--sampler", "rk45"], "'rk45' is not a sampler; method 'score_sde': valid samplers for it: dpm++"),
    ("indi", ["--sampler", "ddim"], "sampler 'ddim' does not fit method 'indi': valid samplers for it: indi"),
    ("unet", ["--sampler", "pc"], "sampler 'pc' does not fit method 'unet'"),
])
def test_bad_sampling_requests_are_one_clear_line(diffusion_bench, store_path, tmp_path, method, extra, message):
    out, _ = diffusion_bench
    res = runner.invoke(app, ["translate", str(out / "runs" / "gas-hi" / method / "seed_0"), "--data", str(store_path),
                              "--out", str(tmp_path / "p.h5"), *extra])
    assert res.exit_code == 1
    err = res.stderr.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not (tmp_path / "p.h5").exists()


def test_max_nfe_picks_the_most_steps_within_the_budget(tmp_path, store_path):
    from skymorph.evaluate.benchmark import steps_within
    from skymorph.methods.config import TrainConfig

    def cfg(method, **kw):
        return TrainConfig.build({"method": method, "data": tmp_path / "a.h5", "source": "gas", "target": "star", **kw})
    assert steps_within(cfg("edm"), 20) == 10  # Heun: 2 N - 1 calls
    assert steps_within(cfg("edm"), 100) == 18 and steps_within(cfg("edm"), None) is None  # never past the default
    assert steps_within(cfg("score_sde", sampler="pc"), 20) == 10 and steps_within(cfg("unet"), 1) is None
    with pytest.raises(ConfigError, match="--max-nfe 1: score_sde \\(pc\\) needs 2 network calls"):
        steps_within(cfg("score_sde", sampler="pc"), 1)
    with pytest.raises(ConfigError, match="--max-nfe must be a positive integer, got 0"):
        run_benchmark(store_path, parse_pairs("gas:hi"), ["indi"], tmp_path / "b", None, max_nfe=0)
    assert not (tmp_path / "b").exists()  # refused before anything is written


def test_benchmark_rejects_a_sampler_no_method_takes(store_path, tmp_path):
    with pytest.raises(ConfigError, match="--samplers: 'heun' fits none of the methods unet, indi"):
        run_benchmark(store_path, parse_pairs("gas:hi"), ["unet", "indi"], tmp_path, None, samplers=["heun"])


def gaussian_denoiser(x, sigma):
    """The exact denoiser E[x_0 | x_0 + sigma n] when x_0 ~ N(M, S^2) per pixel (the EDM sampler's test case)."""
    s = sigma.double().view(-1, 1, 1, 1)
    return (M + S**2 / (S**2 + s**2) * (x.double() - M)).float()


@pytest.mark.parametrize("steps, churn, tol", [(18, 0.0, 0.08), (40, 0.0, 0.03), (100, 0.0, 0.02), (40, 10.0, 0.05)])
def test_edm_sampler_recovers_a_gaussian_from_its_exact_denoiser(steps, churn, tol):
    """Mean and spread of N(M, S^2) from the exact denoiser; Heun's discretisation error on the spread:
    +6% at 18 steps (rho = 7 puts a factor-2 step across sigma ~ S), +1.3% at 40, +0.5% at 100."""
    from skymorph.methods.edm import edm_sample

    calls = []
    x = edm_sample(lambda x, s: calls.append(1) or gaussian_denoiser(x, s), (4000, 1, 2, 2), steps, churn=churn,
                   gen=torch.Generator().manual_seed(1))
    assert len(calls) == 2 * steps - 1  # Heun: two calls a step, one on the last (to sigma = 0)
    assert float(x.mean()) == pytest.approx(M, abs=0.02)
    assert float(x.std()) == pytest.approx(S, rel=tol)


def test_edm_preconditioning_has_karras_coefficients_and_starts_as_the_wiener_denoiser():
    from skymorph.methods.edm import karras_sigmas

    m = make_method("edm", 1, base_channels=8, depth=2, prior=False)
    m.data_moments.copy_(torch.tensor([M, S]))
    x, src = torch.randn(3, 1, 16, 16), torch.zeros(3, 1, 16, 16)
    sigma = torch.tensor([0.01, S, 5.0])
    # the output layer starts at zero: D = mu + c_skip (x - mu), the exact denoiser of N(M, S^2)
    assert torch.allclose(m.denoise(x, sigma, src), gaussian_denoiser(x, sigma), atol=1e-6)
    torch.nn.init.normal_(m.net.out.weight, std=0.1)
    f = m.net(torch.cat([(x - M) / torch.sqrt(sigma**2 + S**2).view(-1, 1, 1, 1), src], 1), torch.log(sigma) / 4)
    c_out = (sigma * S / torch.sqrt(sigma**2 + S**2)).view(-1, 1, 1, 1)  # at sigma = S: S / sqrt(2)
    assert torch.allclose(m.denoise(x, sigma, src) - gaussian_denoiser(x, sigma), c_out * f, atol=1e-5)
    s = karras_sigmas(18, 0.002, 80.0, 7.0)
    assert float(s[0]) == pytest.approx(80.0) and float(s[17]) == pytest.approx(0.002) and float(s[18]) == 0
    assert torch.all(s[1:] < s[:-1])
    with pytest.raises(ConfigError, match="edm needs 0 < sigma_min < sigma_max"):
        make_method("edm", 1, sigma_min=1.0, sigma_max=0.5)


def test_edm_trains_on_its_weighted_objective_and_samples_from_its_gaussian_start():
    """Untrained: samples are N(mu, sd^2) of the diffused maps; the weighted loss at init is ~1 at
    every noise level for Gaussian data (lambda(sigma) E|D_wiener - x0|^2 = 1)."""
    m = make_method("edm", 1, base_channels=8, depth=2, prior=False)
    gen = torch.Generator().manual_seed(0)
    tgt = M + S * torch.randn(64, 1, 16, 16, generator=gen)
    m.fit_prior(torch.zeros_like(tgt), tgt)
    assert m.data_moments.tolist() == pytest.approx([M, S], abs=0.01)
    assert float(m.objective(torch.zeros_like(tgt), tgt, gen)) == pytest.approx(1.0, rel=0.05)
    out = m.translate(torch.zeros(16, 1, 16, 16), steps=40, seed=3)
    assert float(out.mean()) == pytest.approx(M, abs=0.03) and float(out.std()) == pytest.approx(S, rel=0.05)
    assert m.nfe(10) == 19 and m.nfe() == 35 and m.samplers == ("edm",)


@pytest.mark.parametrize("method", ["edm", "corrdiff"])
def test_the_edm_family_trains_through_the_cli_and_translates(store_path, tmp_path, method):
    from skymorph.methods.training import load_run

    run = tmp_path / method
    res = runner.invoke(app, ["train", "--method", method, "--data", str(store_path), "--source", "gas", "--target",
                              "star", "--out", str(run), "--max-epochs", "1", "--base-channels", "8", "--batch-size",
                              "4", "--no-progress"])
    assert res.exit_code == 0, res.output
    if method == "corrdiff":  # the trained mean comes back from the checkpoint
        assert float(load_run(run)[1].regression.net.out.weight.abs().sum()) > 0
    # a refused option is refused before --overwrite clears the run, and a fresh folder is not made
    for target, extra in ((run, ["--overwrite"]), (tmp_path / "fresh", [])):
        res = runner.invoke(app, ["train", "--method", method, "--data", str(store_path), "--source", "gas", "--target",
                                  "star", "--out", str(target), "--max-epochs", "1", "--sampler", "dpm++", *extra])
        assert res.exit_code == 1 and "sampler 'dpm++' does not fit" in res.stderr
    assert (run / "checkpoints" / "last.ckpt").exists() and not (tmp_path / "fresh").exists()
    pred = tmp_path / "p.h5"
    res = runner.invoke(app, ["translate", str(run), "--data", str(store_path), "--out", str(pred), "--steps", "3",
                              "--samples", "2"])
    assert res.exit_code == 0, res.output
    with h5py.File(pred) as f:
        assert np.isfinite(f["samples/star"][:]).all() and f["samples/star"].shape[0] == 2
    res = runner.invoke(app, ["translate", str(run), "--data", str(store_path), "--out", str(tmp_path / "q.h5"),
                              "--sampler", "dpm++"])
    assert res.exit_code == 1 and f"sampler 'dpm++' does not fit method '{method}': valid samplers for it: edm" in res.stderr


def test_corrdiff_with_the_exact_mean_samples_a_linear_gaussian_conditional():
    """target = 0.8 source + 0.3 n: the monotone prior is the exact conditional mean, and the untrained
    denoiser is the Wiener denoiser of the residual N(0, 0.3^2), so samples follow p(target | source)
    exactly: the residual to 0.8 source has std 0.3 and no correlation with the source (without the
    mean added back its std would be 0.85)."""
    gen = torch.Generator().manual_seed(0)
    src = torch.randn(64, 1, 16, 16, generator=gen)
    m = make_method("corrdiff", 1, base_channels=8, depth=2)
    m.fit_prior(src.numpy(), (0.8 * src + 0.3 * torch.randn(src.shape, generator=gen)).numpy())
    assert m.data_moments.tolist() == pytest.approx([0.0, 0.3], abs=0.01)
    new = torch.randn(16, 1, 16, 16, generator=gen)
    r = m.translate(new, steps=40, seed=3)[0] - 0.8 * new
    assert float(r.mean()) == pytest.approx(0.0, abs=0.02) and float(r.std()) == pytest.approx(0.3, rel=0.05)
    assert abs(float(torch.corrcoef(torch.stack([r.ravel(), new.ravel()]))[0, 1])) < 0.05
    assert m.nfe(10) == 20 and m.samplers == ("edm",)  # 19 denoiser calls and the mean


def test_corrdiff_steps_the_mean_on_its_loss_and_the_denoiser_on_the_detached_residual():
    from skymorph.methods.training import count_parameters

    m = make_method("corrdiff", 1, base_channels=8, depth=2, prior=False)
    gen = torch.Generator().manual_seed(0)
    batch = {"source": torch.randn(4, 1, 16, 16, generator=gen), "target": torch.randn(4, 1, 16, 16, generator=gen)}
    m.objective(batch["source"], batch["target"]).backward()
    assert all(p.grad is None for p in m.regression.parameters())  # the diffusion loss leaves the mean alone
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.net.parameters())
    m.zero_grad()
    calls = []
    out = m.training_step(batch, lambda i, loss: calls.append((i, float(loss))))
    # the untrained mean (no prior) is zero: its L1 loss is the mean |target|; then the denoiser's step
    assert [i for i, _ in calls] == [1, 0] and calls[0][1] == pytest.approx(float(batch["target"].abs().mean()))
    assert float(out["mean_loss"]) == calls[0][1] and float(out["loss"]) == calls[1][1]
    opts = m.make_optimizers(None)
    assert [o.param_groups[0]["lr"] for o in opts] == [2e-4, 1e-3]
    assert {id(p) for p in opts[1].param_groups[0]["params"]} == {id(p) for p in m.regression.net.parameters()}
    sizes = [sum(p.numel() for p in n.parameters()) for n in (m.net, m.regression.net)]
    assert count_parameters(m) == sum(sizes) and count_parameters(m.regression) == sizes[1]


def test_edm_is_judged_against_score_sde_on_both_metric_lists():
    from skymorph.evaluate.benchmark import verdicts

    rng = np.random.default_rng(1)
    galaxy = np.repeat(np.arange(12), 2)
    per_view = {m: {k: rng.random((2, 24)) * 0.1 + shift for k in ("mse_log", "pk_err_dex", "pdf_w1")}
                for m, shift in (("baseline", 1.0), ("unet", 0.2), ("score_sde", 0.5), ("edm", 0.3), ("corrdiff", 0.1))}
    stochastic = {"baseline": False, "unet": False, "score_sde": True, "edm": True, "corrdiff": True}
    got = {(v["method"], v["reference"], v["metric"]): v["verdict"] for v in verdicts(per_view, galaxy, stochastic, 0)}
    assert {k[2] for k in got if k[:2] == ("edm", "score_sde")} == {"mse_log", "pk_err_dex", "pdf_w1"}
    assert got["edm", "score_sde", "pk_err_dex"] == "better" and ("score_sde", "edm", "mse_log") not in got
    assert got["edm", "unet", "pdf_w1"] == "worse"
    assert got["corrdiff", "edm", "mse_log"] == "better" and got["corrdiff", "unet", "pk_err_dex"] == "better"
    assert ("corrdiff", "score_sde", "mse_log") not in got
