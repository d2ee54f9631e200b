"""Explanations and probes: SHAP local accuracy, integrated-gradients completeness, locality of
attributions, probes that reproduce the unprobed metrics at level zero, outputs and bad input."""
import json

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.evaluate.metrics import METRIC_NAMES
from skymorph.evaluate.runner import evaluate_run
from skymorph.explain import attribute, explain_run, perturb, probe_run
from skymorph.methods.config import TrainConfig
from skymorph.methods.training import train

runner = CliRunner()
SMALL = {"base_channels": 8, "d_base": 8, "batch_size": 4, "seed": 2}


@pytest.fixture(scope="module")
def runs(store_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    made = {}
    for method, epochs in (("cyclegan", 2), ("baseline", 1)):
        cfg = TrainConfig.build({"method": method, "data": store_path, "source": "gas", "target": "hi",
                                 "max_epochs": epochs, **SMALL})
        made[method] = train(cfg, out / method, progress=False)
    return made


def test_shap_values_add_up_to_output_minus_expected_output(runs, store_path):
    exp = explain_run(runs["cyclegan"], store_path, 0, "discriminator", "shap", n_background=6, nsamples=512)
    labels = [c.label for c in exp.cases]
    assert labels == ["real gas", "generated gas", "dm as gas", "star as gas",
                      "real hi", "generated hi", "dm as hi", "star as hi"]
    s = exp.scores()
    for side in ("source", "target"):
        i = [k for k, c in enumerate(exp.cases) if c.side == side]
        # local accuracy within the explainer's Monte Carlo error, which resolves the spread of outputs
        assert np.all(np.abs(s["gap"][i]) < 4 * s["stderr"][i])
        assert s["stderr"][i].max() < 0.2 * np.ptp(s["output"][i])
        assert np.allclose(s["reference"][i], s["reference"][i[0]])  # one expected value over the background
    assert np.allclose(exp.values.reshape(8, -1).sum(1), s["output"] - s["reference"] + s["gap"])


@pytest.mark.parametrize("method", ["cyclegan", "baseline"])  # baseline: through the monotone pixel map
def test_integrated_gradients_of_a_generator_region_are_complete(runs, store_path, method):
    s = explain_run(runs[method], store_path, 1, "generator", "integrated_gradients").scores()
    assert abs(s["output"][0] - s["reference"][0]) > 0.01  # the galaxy and an empty map differ
    assert abs(s["gap"][0]) < 0.01 * abs(s["output"][0] - s["reference"][0])


class LeftHalf(nn.Module):
    """A nonlinear score that reads only the left half of the map."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x):
        return torch.tanh(self.conv(x[..., : x.shape[-1] // 2])).pow(2).mean(dim=(1, 2, 3)).unsqueeze(1)


@pytest.mark.parametrize("how", ["shap", "saliency", "integrated_gradients"])
def test_a_model_reading_the_left_half_gets_no_attribution_on_the_right(how):
    g = torch.Generator().manual_seed(1)
    x, bg = torch.randn(2, 1, 16, 16, generator=g), torch.randn(5, 1, 16, 16, generator=g)
    att = attribute(LeftHalf().requires_grad_(False), x, how, bg, torch.zeros(1, 1, 16, 16), nsamples=64)
    assert np.all(att.values[..., 8:] == 0)
    assert np.count_nonzero(att.values[..., :8]) > 0.9 * att.values[..., :8].size


def test_probes_at_level_zero_reproduce_the_unprobed_metrics(runs, store_path):
    plain = evaluate_run(runs["cyclegan"], store_path).summary
    for probe, levels in (("blur", [0.0, 2.0]), ("phase", [0.0, 1.0]), ("noise", [0.0, 0.1])):
        res = probe_run(runs["cyclegan"], store_path, probe, levels=levels)
        assert all(res.summaries[0][m] == plain[m] or np.isnan(plain[m]["median"]) for m in METRIC_NAMES)
        assert res.summaries[1]["mse_log"] != plain["mse_log"]


def test_probe_perturbations_do_what_they_say():
    rng = np.random.default_rng(0)
    x = (1.0 + rng.random((2, 1, 16, 16))).astype(np.float32)
    blurred = perturb(x, "blur", 1.5, [1.0])
    assert np.allclose(blurred.sum((-2, -1)), x.sum((-2, -1)), rtol=1e-5)  # mass kept
    assert blurred.std() < 0.5 * x.std()
    # phase-only: the log map keeps its phases and mean, its Fourier amplitudes become flat
    f0 = np.fft.rfft2(np.log10(x.astype(np.float64) + 1.0))
    f1 = np.fft.rfft2(np.log10(perturb(x, "phase", 1.0, [1.0]).astype(np.float64) + 1.0))
    amp = np.abs(f1[0, 0]).ravel()[1:]
    assert amp.std() < 1e-3 * amp.mean() and np.isclose(f1[0, 0, 0, 0], f0[0, 0, 0, 0])
    assert np.allclose(np.angle(f1 * np.conj(f0)).ravel()[np.abs(f0).ravel() > 1e-3 * np.abs(f0).max()], 0, atol=1e-3)
    noisy = perturb(x, "noise", 0.05, [1.0], seed=3) - x
    assert np.isclose(noisy.std(), 0.05 * x.max(axis=(-2, -1)).mean(), rtol=0.1)


def test_cli_writes_figures_and_arrays_and_keeps_outputs(runs, store_path, tmp_path):
    args = ["explain", str(runs["cyclegan"]), "--data", str(store_path), "--position", "2", "--what", "generator",
            "--attribution", "saliency", "--out", str(tmp_path)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "generator_saliency_test2.npz") as z:
        assert z["attribution_0"].shape == z["input_0"].shape == (1, 32, 32) and str(z["domains_0"][0]) == "gas"
        assert (z["attribution_0"] >= 0).all() and tuple(z["box"]) == (12, 20, 12, 20)
    assert (tmp_path / "generator_saliency_test2.png").read_bytes()[:4] == b"\x89PNG"
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "--overwrite" in again.stderr
    res = runner.invoke(app, ["probe", str(runs["cyclegan"]), "--data", str(store_path), "--probe", "blur",
                              "--levels", "0,1", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    table = json.loads((tmp_path / "probe_blur.json").read_text())
    assert [lv["sigma_px"] for lv in table["levels"]] == [0, 1]
    assert (tmp_path / "probe_blur.md").read_text().count("\n| ") == 3 and (tmp_path / "probe_blur.png").exists()


@pytest.mark.parametrize("args, flag", [
    (["explain", "{cyc}", "--attribution", "lime", "--out", "{tmp}/e"], "--attribution"),
    (["probe", "{cyc}", "--probe", "wobble", "--out", "{tmp}/p"], "--probe"),
    (["explain", "{cyc}", "--split", "tset", "--out", "{tmp}/e"], "--split"),
])
def test_choices_are_validated_by_the_command_line(runs, store_path, tmp_path, args, flag):
    args = [a.format(cyc=runs["cyclegan"], tmp=tmp_path) for a in args]
    res = runner.invoke(app, [*args[:2], "--data", str(store_path), *args[2:]])
    assert res.exit_code == 2 and f"Invalid value for '{flag}'" in " ".join(res.output.split())
    assert not (tmp_path / "e").exists() and not (tmp_path / "p").exists()


@pytest.mark.parametrize("args, message", [
    (["explain", "{baseline}", "--what", "discriminator", "--out", "{tmp}/e"], "has no discriminator to explain"),
    (["explain", "{cyc}", "--position", "3", "--out", "{tmp}/e"], "--position 3 outside the test split (0..2)"),
    (["explain", "{cyc}", "--what", "generator", "--region", "0:40,0:8", "--out", "{tmp}/e"], "outside the 32x32"),
    (["probe", "{cyc}", "--probe", "phase", "--levels", "0,2", "--out", "{tmp}/p"], "and <= 1"),
    (["evaluate", "{baseline}", "--reverse", "--out", "{tmp}/e"], "translates one way only"),
])
def test_bad_input_is_one_clear_line(runs, store_path, tmp_path, args, message):
    args = [a.format(baseline=runs["baseline"], cyc=runs["cyclegan"], tmp=tmp_path) for a in args]
    res = runner.invoke(app, [*args[:2], "--data", str(store_path), *args[2:]])
    assert res.exit_code == 1
    err = res.stderr.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not (tmp_path / "e").exists() and not (tmp_path / "p").exists()
