"""classify train / evaluate / explain / probe on lognormal fields whose classes differ only in their
power spectrum: learnable from the images, mostly lost in phase-only images and under strong smoothing."""
import json

import numpy as np
import pytest
import torch

from skymorph.classify.evaluate import evaluate_runs, scores
from skymorph.classify.explain import ClassLogit, explain_image, probe_classifier
from skymorph.classify.network import flatten_spectrum
from skymorph.classify.train import load_classifier, load_images, train_classifier
from skymorph.data.store import MapStore
from skymorph.errors import ConfigError, InputError, OutputExistsError
from skymorph.grid.slices import build_slices
from test_grid_slices import write_run


def _lognormal(n, slope, snaps, rng):
    """exp(0.5 g), g a unit-variance Gaussian field with P(k) ~ k^slope."""
    k = np.fft.fftfreq(n, 1 / n)
    kk = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    amp = np.where(kk > 0, kk, np.inf) ** (slope / 2)
    g = np.fft.ifft2(amp * np.fft.fft2(rng.standard_normal((snaps, n, n)))).real
    g /= g.std(axis=(1, 2), keepdims=True)
    return np.exp(0.5 * g)[:, None]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cls")
    rng = np.random.default_rng(0)
    runs = [write_run(tmp / f"{lab}{s}.h5", _lognormal(64, slope, 6, rng), label=lab, seed=s)
            for lab, slope in (("shallow", -1.0), ("steep", -4.0)) for s in (1, 2, 3)]
    return build_slices(runs, tmp / "slices.h5", size=16, buffer=4, fractions=(1, 1, 1), val_seeds=[2],
                        test_seeds=[3])


@pytest.fixture(scope="module")
def run(store, tmp_path_factory):
    return train_classifier(store, tmp_path_factory.mktemp("run") / "cls", max_epochs=12, batch_size=16, seed=0)


def test_spectral_classes_are_learned_and_judged_with_intervals(run, store, tmp_path):
    res = evaluate_runs([run], out=tmp_path / "eval")
    acc = res["runs"][0]["accuracy"]
    assert acc["value"] > 0.9 and acc["lo"] <= acc["value"] <= acc["hi"]
    assert res["units"] == 12  # 2 classes x 1 test realisation x 6 snapshots
    assert sum(map(sum, res["runs"][0]["confusion"])) == res["images"]
    assert json.loads((tmp_path / "eval.json").read_text())["classes"] == ["shallow", "steep"]
    assert (tmp_path / "eval.png").read_bytes()[:4] == b"\x89PNG" and "recall" in (tmp_path / "eval.md").read_text()
    with pytest.raises(OutputExistsError):
        evaluate_runs([run], out=tmp_path / "eval")


def test_phase_only_images_lose_the_spectral_information(run, store, tmp_path):
    """A periodic Gaussian field's phases are uniform whatever its spectrum; tiles cut from it are not
    periodic, so their edges leak a little, and the phase-only classifier is well below the full one."""
    x = np.random.default_rng(1).standard_normal((3, 1, 16, 16))
    flat = flatten_spectrum(x)
    amp = np.abs(np.fft.fft2(flat))[..., 1:, 1:]
    assert amp.std() < 1e-4 * amp.mean()  # flat amplitudes
    np.testing.assert_allclose(np.angle(np.fft.fft2(flat))[..., 1:, 1:], np.angle(np.fft.fft2(x))[..., 1:, 1:],
                               atol=1e-4)
    phase_run = train_classifier(store, tmp_path / "phase", max_epochs=8, batch_size=16, flatten_spectrum=True)
    acc = evaluate_runs([phase_run])["runs"][0]["accuracy"]["value"]
    assert acc < evaluate_runs([run])["runs"][0]["accuracy"]["value"] - 0.2  # chance is 0.5


def test_scores_by_hand():
    labels = np.array([0, 0, 1, 1, 1])
    pred = np.array([0, 1, 1, 1, 0])
    s = scores(labels, pred, np.arange(5), ["a", "b"])
    assert s["accuracy"]["value"] == pytest.approx(3 / 5)
    assert s["recall"]["a"]["value"] == pytest.approx(1 / 2) and s["recall"]["b"]["value"] == pytest.approx(2 / 3)
    assert s["precision"]["a"]["value"] == pytest.approx(1 / 2) and s["precision"]["b"]["value"] == pytest.approx(2 / 3)
    assert s["confusion"] == [[1, 1], [1, 2]]


def test_explanations_are_complete_and_probes_start_from_the_plain_accuracy(run, tmp_path):
    res = explain_image(run, index=3, out=tmp_path / "ex")
    for c in res["classes"].values():
        assert abs(c["completeness_gap"]) < 1e-3 * max(1.0, abs(c["logit"] - c["baseline_logit"]))
        assert c["saliency_sum"] > 0
    net, cfg = load_classifier(run)
    with MapStore(cfg.data) as st:
        x = torch.from_numpy(load_images(st, cfg.input, "test")[0][3:4]).requires_grad_()
    ClassLogit(net, 1)(x).sum().backward()
    assert res["classes"]["steep"]["saliency_sum"] == pytest.approx(x.grad.abs().sum().item(), rel=1e-5)
    assert (tmp_path / "ex.png").exists()
    plain = evaluate_runs([run])["runs"][0]["accuracy"]["value"]
    blur = probe_classifier(run, "blur", levels=[0.0, 8.0])
    assert blur["levels"][0]["accuracy"]["value"] == plain
    assert blur["levels"][1]["accuracy"]["value"] < plain
    with pytest.raises(ConfigError, match="--probe"):
        probe_classifier(run, "noise")
    with pytest.raises(ConfigError, match="--index"):
        explain_image(run, index=10_000)


def test_training_resumes_and_refuses_bad_input(store, tmp_path):
    out = tmp_path / "r"
    train_classifier(store, out, max_epochs=1, batch_size=16)
    first = json.loads((out / "training.json").read_text())
    with pytest.raises(OutputExistsError):
        train_classifier(store, out, max_epochs=1)
    with pytest.raises(ConfigError, match="saved configuration"):
        train_classifier(store, out, resume=True, max_epochs=3)
    with pytest.raises(InputError, match="'ec' not in the store"):
        train_classifier(store, tmp_path / "x", ["ec"])
    with pytest.raises(ConfigError, match="unknown key"):
        train_classifier(store, tmp_path / "y", max_epoch=2)
    assert len(first["sessions"]) == 1
