"""Torch datasets over a map store: lazy HDF5 reads, the store's invertible normalisation, augmentation."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from .normalise import LogStandardise
from .store import MapStore


def check_pair(store: MapStore, source: list[str], target: str) -> None:
    """Both domains exist in the store and the target is not among the sources."""
    for d in [*source, target]:
        store.unit(d)  # raises InputError naming the store and the missing domain
    if target in source:
        raise ConfigError(f"source and target are both {target!r}: translate one domain into another")


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Element k in 0..7 of the symmetry group of the square, on the last two axes."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


class PairedMaps(Dataset):
    """(source, target) views of one split, normalised: source (C, H, W), target (1, H, W) float32.

    The HDF5 file is opened lazily in each data-loader worker. With ``augment``, one random flip /
    90-degree rotation is applied identically to source and target. ``norms`` defaults to the
    store's own (train-split) normalisation; a trained run passes the one it was trained with.
    With ``paired=False`` the target is a view of another galaxy, from split ``target_split`` (default:
    the same split), augmented independently of the source (unpaired batches): drawn anew at every
    access, or with ``seed`` drawn once per view (a validation set, the same every epoch).
    """

    def __init__(self, path: str | Path, source: list[str], target: str, split: str = "train",
                 augment: bool = False, norms: dict[str, LogStandardise] | None = None, paired: bool = True,
                 target_split: str | None = None, seed: int | None = None):
        self.path = Path(path)
        self.source, self.target, self.augment, self.paired = list(source), target, augment, paired
        with MapStore(self.path) as store:
            check_pair(store, self.source, target)
            self.indices = store.split(split)
            if not paired:
                galaxy = store.meta("galaxy_id")
                self.galaxy = galaxy[self.indices]
                self.pool = store.split(target_split or split)
                self.pool_galaxy = galaxy[self.pool]
                if any(np.all(self.pool_galaxy == g) for g in np.unique(self.galaxy)):
                    raise ConfigError(f"{self.path}: unpaired batches of the {split} split need target views of "
                                      f"another galaxy in the {target_split or split} split")
            self.npix = store.npix
            self.norms = norms or {d: store.norm(d) for d in [*self.source, target]}
        self._file: h5py.File | None = None
        self.partner = None
        if not paired and seed is not None:
            rng = np.random.default_rng(seed)
            self.partner = [int(rng.choice(self.pool[self.pool_galaxy != g])) for g in self.galaxy]

    def __len__(self) -> int:
        return len(self.indices)

    def _maps(self, domain: str, i: int) -> np.ndarray:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self.norms[domain].forward(self._file["maps"][domain][i]).astype(np.float32)

    def __getitem__(self, item: int) -> dict:
        i = int(self.indices[item])
        j = i if self.paired else self.partner[item] if self.partner is not None else self._other_galaxy(item)
        src = torch.from_numpy(np.stack([self._maps(d, i) for d in self.source]))
        tgt = torch.from_numpy(self._maps(self.target, j)[None])
        if self.augment:
            k = int(torch.randint(8, ()))
            src, tgt = dihedral(src, k), dihedral(tgt, k if self.paired else int(torch.randint(8, ())))
        return {"source": src, "target": tgt, "index": i, "target_index": j}

    def _other_galaxy(self, item: int) -> int:
        """A random target view from a galaxy other than that of view ``item``."""
        others = np.flatnonzero(self.pool_galaxy != self.galaxy[item])
        return int(self.pool[others[int(torch.randint(len(others), ()))]])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None  # h5py handles do not cross process boundaries
        return state
