"""Campaigns on a Dask cluster: the same bytes as one process, retried failures, clear errors."""
import hashlib

import numpy as np
import pytest

from skymorph import parallel
from skymorph.cosmo.products import make_kappa_maps
from skymorph.data.build import build_dataset
from skymorph.errors import ConfigError, InputError
from skymorph.sim.sources import open_source


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FlakySource:
    """A source whose galaxy ``fail`` raises the first time it is loaded (a worker lost mid-task)."""

    def __init__(self, inner, fail: int, marker):
        self.inner, self.fail, self.marker = inner, fail, marker

    def __getattr__(self, name):  # only for attributes not set in __init__ (unpickling asks before it sets them)
        if name in ("inner", "fail", "marker"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def load(self, gid, *args, **kwargs):
        if gid == self.fail and not self.marker.exists():
            self.marker.write_text("failed once")
            raise RuntimeError("worker lost")
        return self.inner.load(gid, *args, **kwargs)


@pytest.mark.slow
def test_local_cluster_build_is_byte_identical_and_retries_a_failed_task(synth_dir, store_path, tmp_path):
    src = FlakySource(open_source(synth_dir), fail=2, marker=tmp_path / "marker")
    out = build_dataset(src, tmp_path / "dask.h5", size=32, rotations=2, seed=11, scheduler="local:2",
                        parts_dir=tmp_path / "shared", progress=False)
    assert (tmp_path / "marker").exists()  # the task failed once and was retried
    assert _sha(out) == _sha(store_path)  # same as --workers 1: nothing duplicated or missing
    assert not (tmp_path / "shared" / "dask.h5.parts").exists() and (tmp_path / "shared").exists()


@pytest.mark.slow
def test_local_cluster_lensing_campaign_matches_one_process(tmp_path):
    args = dict(omega_m="0.25:0.35", sigma8="0.8", n_maps=600, seed=2, simulator="lognormal", npix=16, progress=False)
    one = make_kappa_maps(tmp_path / "one.h5", workers=1, **args)
    two = make_kappa_maps(tmp_path / "two.h5", scheduler="local:2", **args)
    import h5py

    with h5py.File(one) as a, h5py.File(two) as b:
        for key in ("kappa", "params/Omega_m", "params/seed"):
            np.testing.assert_array_equal(a[key][()], b[key][()])


def test_bad_scheduler_and_parts_folder(tmp_path, monkeypatch, synth_dir):
    for bad in ("local:0", "local:x", "http://host:8786", "host:8786"):
        with pytest.raises(ConfigError, match="--scheduler"):
            parallel.check_scheduler(bad)
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(InputError, match=r"--scheduler tcp://127.0.0.1:9: no Dask scheduler answered within 1 s"):
        parallel.run_tasks(print, {0: ("x",)}, scheduler="tcp://127.0.0.1:9", progress=False)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(InputError, match="--parts .*a_file.*not a writable folder"):
        build_dataset(open_source(synth_dir), tmp_path / "m.h5", size=8, rotations=0, parts_dir=blocker / "sub",
                      progress=False)
    assert not (tmp_path / "m.h5").exists()
