"""The command line: outputs written where asked, and one clear line (no traceback) for bad input."""
import pytest
from typer.testing import CliRunner

from skymorph.cli import app

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_info_show_and_fits(store_path, tmp_path):
    res = _run("maps", "info", store_path)
    assert res.exit_code == 0, res.output
    assert "15 views of 5 galaxies" in res.output and "hi21" in res.output and "K km/s" in res.output
    png = tmp_path / "v.png"
    assert _run("maps", "show", store_path, "--index", 2, "--out", png).exit_code == 0
    import matplotlib.image as mpimg
    img = mpimg.imread(png)
    assert img.shape[1] > 3 * img.shape[0]  # seven panels side by side
    assert _run("maps", "fits", store_path, "--index", 2, "--domain", "gas", "--out", tmp_path / "g.fits").exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["maps", "build", "{tmp}/nowhere", "--out", "{tmp}/m.h5"], "nowhere: not a folder of cutouts"),
    (["maps", "build", "{synth}", "--out", "{tmp}/m.h5", "--domains", "gas,xray"], "unknown domain xray"),
    (["maps", "build", "{synth}", "--out", "{tmp}/m.h5", "--subhalos", "0-2,9"], "subhalo 9 not in the catalogue"),
    (["maps", "build", "{tmp}/out", "--snapshot", "99", "--out", "{tmp}/m.h5"], "no snapshot 099"),
    (["maps", "show", "{store}", "--index", "500", "--out", "{tmp}/v.png"], "view index 500 outside"),
    (["maps", "fits", "{store}", "--domain", "xray", "--out", "{tmp}/v.fits"], "domain 'xray' not in the store"),
    (["maps", "info", "{synth}/cutout_0.hdf5"], "group /maps missing"),
    (["synth", "{tmp}/s", "--galaxies", "0"], "galax"),
])
def test_bad_input_is_one_clear_line(args, message, synth_dir, store_path, tmp_path):
    args = [a.format(tmp=tmp_path, synth=synth_dir, store=store_path) for a in args]
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    err = res.stderr.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert "Traceback" not in res.output
    assert not (tmp_path / "m.h5").exists() and not (tmp_path / "v.png").exists()


def test_existing_output_needs_overwrite(store_path, tmp_path):
    out = tmp_path / "v.png"
    out.write_bytes(b"keep")
    res = _run("maps", "show", store_path, "--out", out)
    assert res.exit_code == 1 and "--overwrite" in res.stderr and out.read_bytes() == b"keep"
    assert _run("maps", "show", store_path, "--out", out, "--overwrite").exit_code == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
