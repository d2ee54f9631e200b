"""Reading input files: one clear error for a missing or corrupt HDF5 file, or a field with NaN."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .errors import InputError


def open_hdf5(path: str | Path) -> h5py.File:
    """``h5py.File(path, "r")``; InputError naming the file when it is missing or unreadable."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {exc}") from None


def check_finite(path, name: str, arr: np.ndarray) -> np.ndarray:
    """``arr``, or InputError naming the file, the field and how many values are NaN or infinite."""
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise InputError(f"{path}: {name} has {bad} NaN or infinite values")
    return arr
