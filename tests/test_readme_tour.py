"""The README's commands and Python snippet, run as written in order at small sizes: a README
command that breaks fails the suite. Only sizes and budgets are rewritten (RULES); lines that need
data from elsewhere (a TNG folder) are left out."""
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skymorph.cli import app

README = Path(__file__).parent.parent / "README.md"
SECTIONS = ("## A tour", "### HI spectral cubes", "## The physics wing", "### Through the gradients", "### Mass mapping", "## Grid simulations",
            "## Point clouds", "## Inference")  # heading starts
RULES = [(r"--galaxies \d+", "--galaxies 5"), (r"--particles 10000", "--particles 300"),
         (r"--mesh 128 --particles 64", "--mesh 32 --particles 16"), (r"--size 64", "--size 32"),
         (r"--rotations 3", "--rotations 2"), (r"--workers 2", "--workers 1"), (r"--max-minutes [\d.]+", "--max-epochs 1"),
         (r"--max-epochs 200", "--max-epochs 2"), (r"--steps 1,2,5,10,20,50,100,1000", "--steps 1,2"),
         (r"--samples (8|16)", "--samples 2"), (r"--n-maps (640|384)", "--n-maps 8"),
         (r"--npix 128 --box 64 --mesh 128", "--npix 32 --box 64 --mesh 16"), (r"--n-maps (64|100)", "--n-maps 3"),
         (r"np.ones\(\(128, 128\)\); m\[20:40, 80:108\] = 0; m\[88:112, 16:38\] = 0",
          "np.ones((32, 32)); m[5:10, 20:27] = 0; m[22:28, 4:9] = 0"),
         (r"--mesh 64", "--mesh 16"), (r"(lensing maps (?!.*(--mesh|--simulator lognormal)))", r"\1--mesh 16 "),
         (r"--n-maps 20000", "--n-maps 300"), (r"--n-maps 300 --npix 64", "--n-maps 300 --npix 32"),
         (r"--n-maps 3000", "--n-maps 400"), (r"--n-maps 200", "--n-maps 50"), (r"--maps 0:24", "--maps 0:2"),
         (r"--nsamples \d+", "--nsamples 16"), (r"(skymorph benchmark (?!.*--max-epochs))", r"\1--max-epochs 1 "),
         (r"--n 64 ", "--n 24 "), (r"--snapshots 20 --every 0.25 --spinup 1.5", "--snapshots 2 --every 0.2 --spinup 0.2"),
         (r"--size 16 --buffer 5", "--size 8 --buffer 0"), (r"classify train --data", "classify train --batch-size 4 --data"),
         (r"--size 128 --out hi_cube", "--size 16 --out hi_cube"), (r"--n-in 1024 --n-out 1024", "--n-in 24 --n-out 24"),
         (r"--splits 0.65,0.1,0.25", "--splits 0.6,0.2,0.2"), (r"--seeds 3", "--seeds 1"),
         (r"--points (100000|8192)", "--points 300")]
runner = CliRunner()


def blocks(kind: str) -> list[str]:
    """The ``kind`` code blocks (bash or python) of the README sections the tour covers, in order."""
    text = README.read_text()
    out = []
    for title in SECTIONS:
        start = re.search(rf"^{re.escape(title)}.*$", text, flags=re.M).end()
        end = re.search(r"^###? ", text[start:], flags=re.M)
        section = text[start:start + end.start() if end else None]
        out += re.findall(rf"```{kind}\n(.*?)```", section, flags=re.S)
    return out


def commands() -> list[str]:
    lines, joined = [], ""
    for block in blocks("bash"):
        for raw in block.splitlines():
            line = raw.split("  #")[0].split(" # ")[0].rstrip() if not raw.lstrip().startswith("#") else ""
            joined += line[:-1] + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                if joined.strip():
                    lines.append(" ".join(joined.split()))
                joined = ""
    out = []
    for line in lines:
        if "/data/" in line:
            continue
        for pattern, repl in RULES:
            line = re.sub(pattern, repl, line)
        out.append(line)
    return out


@pytest.mark.slow
def test_the_readme_tour_runs_as_written(tmp_path, monkeypatch):
    import subprocess
    import sys

    cmds = commands()
    assert len(cmds) > 25 and any(c.startswith("skymorph explain") for c in cmds)
    monkeypatch.chdir(tmp_path)
    for cmd in cmds:
        if cmd.startswith("python -c "):
            subprocess.run([sys.executable, "-c", shlex.split(cmd)[2]], check=True)
            continue
        args = shlex.split(cmd)
        assert args[0] == "skymorph", cmd
        res = runner.invoke(app, [*args[1:], *(["--no-progress"] if _takes_progress(args) else [])])
        assert res.exit_code == 0, f"{cmd}\n{res.output}"
    for code in blocks("python"):
        exec(compile(code, "README.md", "exec"), {})


def _takes_progress(args: list[str]) -> bool:
    return runner.invoke(app, [*args[1:3], "--help"]).output.count("--no-progress") > 0 if args[1] in (
        "lensing", "maps", "cosmo", "infer", "clouds") else runner.invoke(app, [args[1], "--help"]).output.count("--no-progress") > 0
