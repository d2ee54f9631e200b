"""Evaluation and benchmark: metrics.json contents, tables with the best in bold, a self-contained report."""
import json
import re

import pytest
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.evaluate.benchmark import parse_pairs, run_benchmark
from skymorph.evaluate.metrics import METRIC_NAMES
from skymorph.errors import ConfigError, InputError, OutputExistsError

runner = CliRunner()
KEYS = {"mse_log", "psnr", "ssim", "pk_err_dex", "rk", "profile_rel_err", "mass_rel_err", "center_offset",
        "asymmetry_err", "clumpiness_err", "concentration_err", "pdf_w1", "pdf_ks", "seconds_per_map", "nfe"}
OPTIONS = {"base_channels": 8, "batch_size": 4}


@pytest.fixture(scope="module")
def bench(store_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    res = run_benchmark(store_path, parse_pairs("gas:dm"), ["baseline", "unet"], out, None, max_epochs=1,
                        options=OPTIONS, progress=False)
    return out, res


def test_results_hold_every_metric_with_galaxy_intervals(bench, store_path):
    out, res = bench
    stored = json.loads((out / "results.json").read_text())
    methods = stored["pairs"]["gas-dm"]["methods"]
    for method in ("baseline", "unet"):
        m = methods[method]["metrics"]
        assert set(METRIC_NAMES) <= set(m)
        for k in METRIC_NAMES:
            c = m[k]
            assert c["lo"] <= c["median"] <= c["hi"] and c["galaxies"] == 1 and c["seeds"] == 1
            assert c["p16"] <= c["median"] <= c["p84"]
        per_view = methods[method]["per_view"]
        assert len(per_view["galaxy_id"]) == len(per_view["mse_log"][0]) == methods[method]["info"]["n_views"]
    info = methods["unet"]["info"]
    assert info["parameters"] > 1000 and info["train_minutes"] > 0 and info["unit"] == "Msun/kpc^2"
    assert info["nfe"] == 1 and methods["baseline"]["info"]["nfe"] == 0
    prov = stored["provenance"]
    assert prov["store_fingerprint"] and prov["options"] == OPTIONS and prov["seeds"] == 1 and prov["skymorph_version"]


def test_verdicts_rest_on_paired_galaxy_differences(bench):
    out, res = bench
    verdicts = res["pairs"]["gas-dm"]["verdicts"]
    assert {(v["method"], v["reference"], v["metric"]) for v in verdicts} == {("unet", "baseline", "mse_log"),
                                                                               ("unet", "baseline", "pk_err_dex")}
    for v in verdicts:
        # one test galaxy: the bootstrap cannot separate anything beyond that galaxy's own difference
        assert v["units"] == 1 and v["seeds"] == [1, 1] or v["seeds"] == (1, 1)
        assert v["verdict"] in ("better", "worse", "no significant difference")
    md = (out / "results.md").read_text()
    assert "1 galaxies, 1 + 1 training seeds" in md and "store_fingerprint" in md


def test_markdown_bolds_one_best_median_per_metric(bench):
    out, res = bench
    md = (out / "results.md").read_text()
    tables = [t for t in md.split("### ") if t.startswith("gas-dm: pixels")]
    rows = [line.split("|")[1:-1] for line in tables[0].splitlines() if line.startswith(("| baseline", "| unet"))]
    assert len(rows) == 2
    names = ["method", "mse_log", "mae_log", "psnr", "ssim"]
    cells = {r[0].strip(): {n: r[i].strip() for i, n in enumerate(names)} for r in rows}
    for metric, better in (("mse_log", min), ("ssim", max)):
        num = {m: res["pairs"]["gas-dm"]["methods"][m]["metrics"][metric]["median"] for m in cells}
        assert sum(cells[m][metric].startswith("**") for m in cells) <= 1
        if len(set(num.values())) > 1:
            assert cells[better(num, key=num.get)][metric].startswith("**")
    cost = [t for t in md.split("### ") if t.startswith("gas-dm: cost")][0]
    assert "**" not in cost  # cost is not a contest


def test_report_is_self_contained_and_states_its_provenance(bench):
    out, _ = bench
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert not re.search(r'(src|href)="(http|file|/)', page)
    assert "store_fingerprint" in page and "(unit)" not in page
    assert (out / "report.html").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    import os
    m = os.umask(0)
    os.umask(m)
    return m


def test_rerun_reuses_runs_with_the_same_key_and_retrains_on_any_change(bench, store_path):
    out, _ = bench
    ckpt = out / "runs" / "gas-dm" / "unet" / "seed_0" / "checkpoints" / "last.ckpt"
    before = ckpt.stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match="--overwrite"):
        run_benchmark(store_path, parse_pairs("gas:dm"), ["unet"], out, None, max_epochs=1, options=OPTIONS,
                      progress=False)
    run_benchmark(store_path, parse_pairs("gas:dm"), ["unet"], out, None, max_epochs=1, options=OPTIONS,
                  progress=False, overwrite=True)
    assert ckpt.stat().st_mtime_ns == before
    run_benchmark(store_path, parse_pairs("gas:dm"), ["unet"], out, None, max_epochs=1,
                  options={**OPTIONS, "lr": 5e-4}, progress=False, overwrite=True)
    changed = ckpt.stat().st_mtime_ns
    assert changed != before
    run_benchmark(store_path, parse_pairs("gas:dm"), ["unet"], out, None, max_epochs=1,
                  options={**OPTIONS, "lr": 5e-4}, progress=False, overwrite=True, retrain=True)
    assert ckpt.stat().st_mtime_ns != changed


def test_run_key_ignores_only_the_options_of_other_methods(tmp_path):
    from skymorph.evaluate.benchmark import run_key
    from skymorph.methods.config import TrainConfig

    def key(method, **kw):
        return run_key(TrainConfig.build({"method": method, "data": tmp_path / "a.h5", "source": "gas", "target": "dm",
                                          **kw}))
    # edm's noise levels mean nothing to a U-Net: adding (or setting) them keeps its finished runs reusable
    assert key("unet") == key("unet", p_mean=-0.5, sigma_max=40.0) != key("unet", lr=5e-4)
    assert key("edm") != key("edm", p_mean=-0.5) and key("edm") != key("score_sde")
    assert key("score_sde", beta_max=10.0) != key("score_sde") and key("unet", data=tmp_path / "b.h5") == key("unet")


def test_benchmark_validates_every_pair_and_option_before_training(store_path, tmp_path):
    out = tmp_path / "b"
    with pytest.raises(InputError, match="'dmm'"):
        run_benchmark(store_path, parse_pairs("gas:hi,gas:dmm"), ["baseline"], out, None, max_epochs=1)
    with pytest.raises(ConfigError, match="base_chanels"):
        run_benchmark(store_path, parse_pairs("gas:hi"), ["unet"], out, None, max_epochs=1, options={"base_chanels": 8})
    assert not out.exists()


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
    from skymorph.training.run import epochs_done

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


def test_trend_line_crosses_zero_where_the_hand_computed_line_does():
    from skymorph.evaluate.curve import crossing

    # diff = 0.3 - 0.1 log10(t): through (1, 0.3), (10, 0.2), (100, 0.1); zero at t = 1000
    c = crossing([10, 1, 100], [0.2, 0.3, 0.1])
    assert c["slope"] == pytest.approx(-0.1) and c["budget"] == pytest.approx(1000.0)
    assert crossing([1, 10], [0.1, 0.2])["budget"] is None  # widening: no crossing ahead
    assert crossing([1, 10], [-0.2, -0.1])["budget"] == pytest.approx(100.0)  # from below (higher-is-better metric)
    with pytest.raises(ConfigError, match="two different budgets"):
        crossing([4, 4], [0.1, 0.2])


def test_benchmark_curve_reads_budgets_in_order_and_refuses_what_it_cannot_join(store_path, tmp_path):
    one, two = tmp_path / "one_epoch", tmp_path / "two_epochs"
    res1, res2 = (run_benchmark(store_path, parse_pairs("gas:dm"), ["baseline", "unet"], out, None, max_epochs=n,
                                options=OPTIONS, progress=False) for n, out in ((1, one), (2, two)))
    r = runner.invoke(app, ["benchmark-curve", str(two), str(one), "--reference", "baseline", "--out",
                            str(tmp_path / "curve")])
    assert r.exit_code == 0, r.output
    curve = json.loads((tmp_path / "curve" / "curve.json").read_text())
    assert curve["budgets"] == [1.0, 2.0] and curve["unit"] == "epochs" and curve["pair"] == "gas-dm"
    for budget, res in zip(curve["budgets"], (res1, res2)):
        i = curve["budgets"].index(budget)
        for k in ("mse_log", "pk_err_dex"):
            assert curve["cells"]["unet"][k][i]["median"] == pytest.approx(res["pairs"]["gas-dm"]["methods"]["unet"]["metrics"][k]["median"])
            v = next(v for v in res["pairs"]["gas-dm"]["verdicts"] if (v["method"], v["metric"]) == ("unet", k))
            assert curve["versus"]["unet"][k]["points"][i]["diff"] == pytest.approx(v["diff"])
    assert (tmp_path / "curve" / "curve.png").stat().st_size > 0 and "| unet | mse_log |" in r.output
    for args, match in ((["benchmark-curve", str(one)], "at least two"),
                        (["benchmark-curve", str(one), str(one)], "same budget"),
                        (["benchmark-curve", str(one), str(tmp_path)], "results.json"),
                        (["benchmark-curve", str(one), str(two), "--metrics", "mse_lg"], "mse_lg"),
                        (["benchmark-curve", str(one), str(two), "--pair", "gas-hi"], "gas-hi"),
                        (["benchmark-curve", str(one), str(two), "--reference", "edm"], "'edm'"),
                        (["benchmark-curve", str(one), str(two)], "exists")):
        r = runner.invoke(app, args + ["--out", str(tmp_path / "curve")])
        assert r.exit_code == 1 and match in r.output, (args, r.output)
