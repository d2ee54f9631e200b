"""Evaluation and benchmark: metrics.json contents, tables with the best in bold, a self-contained report."""
import json
import re

import pytest
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.evaluate.benchmark import parse_pairs, run_benchmark
from skymorph.evaluate.metrics import METRIC_NAMES
from skymorph.errors import ConfigError

runner = CliRunner()
KEYS = {"mse_log", "psnr", "ssim", "pk_rel_err", "rk", "profile_rel_err", "mass_rel_err", "center_offset",
        "asymmetry_err", "clumpiness_err", "concentration_err", "pdf_w1", "pdf_ks", "seconds_per_map", "nfe"}


@pytest.fixture(scope="module")
def bench(store_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    res = run_benchmark(store_path, parse_pairs("gas:dm"), ["baseline", "unet"], out, None, max_epochs=1,
                        options={"base_channels": 8, "batch_size": 4}, progress=False)
    return out, res


def test_results_hold_every_metric_with_percentiles(bench, store_path):
    out, res = bench
    stored = json.loads((out / "results.json").read_text())
    for method in ("baseline", "unet"):
        m = stored["gas-dm"][method]["metrics"]
        assert KEYS <= set(m)
        for k in KEYS:
            assert m[k]["p16"] <= m[k]["median"] <= m[k]["p84"] or k == "nfe"
        assert m["nfe"]["median"] == (0 if method == "baseline" else 1)
    info = stored["gas-dm"]["unet"]["info"]
    assert info["parameters"] > 1000 and info["train_minutes"] > 0 and info["unit"] == "Msun/kpc^2"


def test_markdown_bolds_one_best_value_per_metric(bench):
    out, res = bench
    md = (out / "results.md").read_text()
    rows = [line.split("|")[1:-1] for line in md.splitlines() if line.startswith("| baseline") or line.startswith("| unet")]
    assert len(rows) == 2
    for col in range(1, 1 + len(METRIC_NAMES)):
        bold = [r[col].strip().startswith("**") for r in rows]
        assert sum(bold) <= 1
    # the bold one is the better one (full-precision medians): lower mse_log, higher ssim
    names = ["method", *METRIC_NAMES]
    cells = {r[0].strip(): {n: r[i].strip() for i, n in enumerate(names)} for r in rows}
    for metric, better in (("mse_log", min), ("ssim", max)):
        num = {m: res["gas-dm"][m]["metrics"][metric]["median"] for m in cells}
        if len(set(num.values())) > 1:
            assert cells[better(num, key=num.get)][metric].startswith("**")
    assert "beats baseline" in md or "does NOT beat baseline" in md


def test_report_is_self_contained(bench):
    out, _ = bench
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert not re.search(r'(src|href)="(http|file|/)', page)


def test_rerun_reuses_finished_runs(bench, store_path):
    out, _ = bench
    ckpt = out / "runs" / "gas-dm" / "unet" / "checkpoints" / "last.ckpt"
    before = ckpt.stat().st_mtime_ns
    run_benchmark(store_path, parse_pairs("gas:dm"), ["unet"], out, None, max_epochs=1,
                  options={"base_channels": 8, "batch_size": 4}, progress=False)
    assert ckpt.stat().st_mtime_ns == before


def test_pairs_are_parsed():
    assert parse_pairs("gas:hi,gas+temp:dm") == [(["gas"], "hi"), (["gas", "temp"], "dm")]
    with pytest.raises(ConfigError, match="expected source:target"):
        parse_pairs("gas-hi")


def test_cli_train_translate_evaluate(store_path, tmp_path):
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--method", "baseline", "--data", str(store_path), "--source", "gas",
                              "--target", "hi", "--out", str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", str(run), "--data", str(store_path), "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())["metrics"]
    assert KEYS <= set(metrics)
    assert all((tmp_path / "ev" / f).exists() for f in ("examples.png", "spectra.png", "profiles_pdf.png"))
    res = runner.invoke(app, ["translate", str(run), "--data", str(store_path), "--out", str(tmp_path / "p.h5")])
    assert res.exit_code == 0 and (tmp_path / "p.h5").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--method", "unet", "--data", "{store}", "--source", "gas", "--target", "gas", "--out", "{tmp}/r"],
     "source and target are both 'gas'"),
    (["train", "--method", "unet", "--data", "{store}", "--source", "gas", "--target", "xray", "--out", "{tmp}/r"],
     "domain 'xray' not in the store"),
    (["train", "--method", "gan", "--data", "{store}", "--source", "gas", "--target", "hi", "--out", "{tmp}/r"],
     "unknown method 'gan'"),
    (["train", "--method", "unet", "--source", "gas", "--target", "hi", "--out", "{tmp}/r"], "train needs --data"),
    (["train", "--out", "{tmp}/r", "--resume"], "config.yaml: unreadable config"),
    (["translate", "{tmp}/r", "--data", "{store}", "--out", "{tmp}/p.h5"], "not a skymorph run folder"),
    (["benchmark", "--data", "{store}", "--out", "{tmp}/b", "--pairs", "gas-hi"], "expected source:target"),
])
def test_cli_bad_input(args, message, store_path, tmp_path):
    res = runner.invoke(app, [a.format(store=store_path, tmp=tmp_path) for a in args])
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("error:") and message in res.stderr and "Traceback" not in res.output


def test_cli_resume_continues_and_refuses_another_pair(store_path, tmp_path):
    from skymorph.methods.training import epochs_done

    run = str(tmp_path / "run")
    base = ["train", "--method", "unet", "--data", str(store_path), "--source", "gas", "--target", "hi",
            "--out", run, "--base-channels", "8", "--batch-size", "4", "--no-progress"]
    assert runner.invoke(app, [*base, "--max-epochs", "1"]).exit_code == 0
    res = runner.invoke(app, ["train", "--out", run, "--resume", "--max-epochs", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert epochs_done(tmp_path / "run") == 2
    res = runner.invoke(app, ["train", "--out", run, "--resume", "--target", "dm", "--max-epochs", "3"])
    assert res.exit_code == 1 and "trained with target = hi, not dm" in res.stderr
    res = runner.invoke(app, [*base, "--max-epochs", "1"])
    assert res.exit_code == 1 and "run folder exists" in res.stderr
