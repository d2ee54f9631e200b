"""Opening HDF5 files for reading, with one clear error for a missing or corrupt file."""
from __future__ import annotations

from pathlib import Path

import h5py

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
