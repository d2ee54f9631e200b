"""Runs bound to their data, budgets refused before work, outputs with the user's permissions."""
import os
import shutil

import pytest
from typer.testing import CliRunner

from skymorph.cli import app
from skymorph.data.store import MapStore

runner = CliRunner()


@pytest.fixture(scope="module")
def baseline_run(store_path, tmp_path_factory):
    run = tmp_path_factory.mktemp("bound") / "run"
    res = runner.invoke(app, ["train", "--method", "unet", "--data", str(store_path), "--source", "gas", "--target",
                              "hi", "--out", str(run), "--max-epochs", "1", "--base-channels", "8", "--batch-size", "4",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    return run


@pytest.fixture(scope="module")
def other_store(synth_dir, tmp_path_factory):
    """The same galaxies rebuilt with another seed: other rotations and another split assignment."""
    from skymorph.data.build import build_dataset
    from skymorph.sim.sources import open_source

    return build_dataset(open_source(synth_dir), tmp_path_factory.mktemp("other") / "maps.h5", size=32, rotations=2,
                         seed=12, progress=False)


def test_a_rebuilt_store_is_refused_naming_both_fingerprints(baseline_run, store_path, other_store, tmp_path):
    with MapStore(store_path) as a, MapStore(other_store) as b:
        fa, fb = a.fingerprint, b.fingerprint
    assert fa != fb
    for cmd in (["evaluate", str(baseline_run), "--data", str(other_store), "--out", str(tmp_path / "e")],
                ["translate", str(baseline_run), "--data", str(other_store), "--out", str(tmp_path / "p.h5")],
                ["train", "--out", str(baseline_run), "--resume", "--data", str(other_store), "--max-epochs", "2"]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 1, res.output
        err = res.stderr.strip()
        assert err.startswith("error:") and fa in err and fb in err and "\n" not in err
    assert not (tmp_path / "e").exists() and not (tmp_path / "p.h5").exists()


def test_a_moved_store_is_found_by_its_fingerprint(baseline_run, store_path, tmp_path):
    moved = tmp_path / "elsewhere" / "renamed.h5"
    moved.parent.mkdir()
    shutil.copy(store_path, moved)
    res = runner.invoke(app, ["evaluate", str(baseline_run), "--data", str(moved), "--out", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", "--out", str(baseline_run), "--resume", "--data", str(moved), "--max-epochs", "2",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    from skymorph.methods.config import TrainConfig

    saved = TrainConfig.load(baseline_run / "config.yaml")
    assert saved.data == moved.resolve() and saved.data.is_absolute()


@pytest.mark.parametrize("flag, value", [("--max-epochs", "0"), ("--max-minutes", "-1")])
def test_non_positive_budgets_are_refused_before_any_work(flag, value, store_path, tmp_path):
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--method", "baseline", "--data", str(store_path), "--source", "gas",
                              "--target", "hi", "--out", str(run), flag, value])
    assert res.exit_code == 1 and flag in res.stderr and "greater than 0" in res.stderr
    assert not run.exists()


def test_benchmark_with_a_misspelt_pair_fails_before_training(store_path, tmp_path):
    out = tmp_path / "bench"
    res = runner.invoke(app, ["benchmark", "--data", str(store_path), "--pairs", "gas:hi,gas:dmm", "--methods",
                              "baseline", "--out", str(out)])
    assert res.exit_code == 1 and "'dmm'" in res.stderr
    assert not out.exists()


def test_outputs_have_the_permissions_of_the_umask(baseline_run, store_path, tmp_path):
    old = os.umask(0o027)
    try:
        res = runner.invoke(app, ["evaluate", str(baseline_run), "--data", str(store_path), "--out", str(tmp_path / "e")])
        assert res.exit_code == 0, res.output
        for name in ("metrics.json", "metrics_per_view.json", "spectra.png"):
            assert (tmp_path / "e" / name).stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_an_interrupted_training_keeps_its_time_says_how_to_resume_and_resumes(store_path, tmp_path, monkeypatch):
    """Ctrl-C twice (simulated in the training step), then a resume to the end: one line each time, and
    the training time is the sum of all three sessions."""
    import signal

    from skymorph.methods import training as T
    from skymorph.training import run as R

    orig, calls = T.TranslationModule.training_step, {"n": 0}

    def ctrl_c_in_the_second_epoch(self, batch, idx):  # 4 batches of 2 train views per epoch
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return orig(self, batch, idx)

    monkeypatch.setattr(T.TranslationModule, "training_step", ctrl_c_in_the_second_epoch)
    run = tmp_path / "run"
    first = ["train", "--method", "unet", "--data", str(store_path), "--source", "gas", "--target", "hi", "--out",
             str(run), "--max-epochs", "4", "--base-channels", "8", "--batch-size", "2", "--no-progress"]
    try:
        for args in (first, ["train", "--out", str(run), "--resume", "--max-epochs", "4", "--no-progress"]):
            calls["n"] = 0
            res = runner.invoke(app, args)
            assert res.exit_code == 130, res.output
            err = res.stderr.strip()
            assert err.startswith("interrupted:") and "--resume" in err and "kept" in err and "\n" not in err
        monkeypatch.setattr(T.TranslationModule, "training_step", orig)
        res = runner.invoke(app, ["train", "--out", str(run), "--resume", "--max-epochs", "4", "--no-progress"])
        assert res.exit_code == 0 and "4 epochs" in res.output and "reached --max-epochs" in res.output
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores SIGINT after an interrupt
    rec = R.training_record(run)
    assert [s["stop"] for s in rec["sessions"]] == ["interrupted", "interrupted", "epochs"] and rec["finished"]
    assert rec["seconds"] == sum(s["seconds"] for s in rec["sessions"]) and all(s["seconds"] > 0 for s in rec["sessions"])
    assert R.train_seconds(run) == rec["seconds"] and R.epochs_done(run) == 4


def test_a_missing_cutout_is_named_before_the_build_starts(synth_dir, tmp_path):
    folder = tmp_path / "cutouts"
    shutil.copytree(synth_dir, folder)
    (folder / "cutout_3.hdf5").unlink()
    res = runner.invoke(app, ["maps", "build", str(folder), "--out", str(tmp_path / "m.h5"), "--size", "16"])
    assert res.exit_code == 1 and "cutout_3.hdf5" in res.stderr and "1 of the 5 galaxies" in res.stderr
    assert not (tmp_path / "m.h5").exists() and not (tmp_path / "m.h5.parts").exists()


@pytest.mark.parametrize("args, message", [
    (["maps", "build", "{synth}", "--out", "{tmp}/m.h5", "--size", "-32"], "--size -32: must be at least 4"),
    (["maps", "build", "{synth}", "--out", "{tmp}/m.h5", "--splits", "0.8,0.2,0"], "--splits 0.8,0.2,0"),
    (["lensing", "maps", "--out", "{tmp}/k.h5", "--omega-m", "0.35:0.25"], "the range is reversed"),
])
def test_bad_options_are_named_by_their_flag(args, message, synth_dir, tmp_path):
    res = runner.invoke(app, [a.format(synth=synth_dir, tmp=tmp_path) for a in args])
    assert res.exit_code == 1 and message in res.stderr, res.output
    assert not any(tmp_path.iterdir())


def test_synth_names_the_overwrite_flag(tmp_path):
    args = ["synth", str(tmp_path), "--galaxies", "1", "--particles", "200"]
    assert runner.invoke(app, args).exit_code == 0
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "--overwrite" in res.stderr and "overwrite=True" not in res.stderr


def test_one_epoch_budget_rule_for_every_training_command():
    from skymorph.cosmo.prior import PriorConfig
    from skymorph.methods.config import TrainConfig
    from skymorph.training.config import epoch_budget

    assert (epoch_budget(None, None), epoch_budget(None, 2.5), epoch_budget(7, 2.5)) == (30, 1000, 7)
    assert TrainConfig.model_fields["max_epochs"].default is PriorConfig.model_fields["max_epochs"].default is None
    for cmd in (["train"], ["benchmark"], ["lensing", "train-prior"]):
        text = " ".join(runner.invoke(app, [*cmd, "--help"]).output.split())
        assert "default 30; with --max-minutes a cap of 1000" in text.replace("│ ", "").replace(" │", ""), cmd


def test_every_option_of_every_command_has_a_help_line():
    import click
    import typer.main

    def commands(cmd, path=()):
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from commands(sub, (*path, name))
        else:
            yield path, cmd

    missing = [f"{' '.join(path)} {p.opts[0]}" for path, cmd in commands(typer.main.get_command(app))
               for p in cmd.params if isinstance(p, click.Option) and p.name != "help" and not p.help]
    assert not missing, missing
