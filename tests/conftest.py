import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tng_files helpers


class TrainerAsked(Exception):
    """Raised by the stand-in Trainer of :func:`trainer_options` once it has recorded its options."""


@pytest.fixture
def trainer_options(monkeypatch):
    """The keyword options the next ``lightning.Trainer(...)`` is built with: the Trainer is replaced by
    a stand-in that records them and raises :class:`TrainerAsked` (no training happens)."""
    import lightning

    asked = {}

    def trainer(**kwargs):
        asked.update(kwargs)
        raise TrainerAsked

    monkeypatch.setattr(lightning, "Trainer", trainer)
    return asked


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """Five small synthetic galaxies (300 particles per species) in TNG cutout format."""
    from skymorph.sim.synth import synthesize

    out = tmp_path_factory.mktemp("synth")
    synthesize(out, 5, 300, seed=3, progress=False)
    return out


@pytest.fixture(scope="session")
def store_path(synth_dir, tmp_path_factory):
    """A map store of all seven domains: 5 galaxies x (1 + 2 rotations), 32^2 pixels."""
    from skymorph.data.build import build_dataset
    from skymorph.sim.sources import open_source

    out = tmp_path_factory.mktemp("store") / "maps.h5"
    return build_dataset(open_source(synth_dir), out, size=32, rotations=2, seed=11, progress=False)
