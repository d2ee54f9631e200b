"""Atomic file output: write to a temporary name in the same folder, then rename into place."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputExistsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; it replaces ``path`` when the block succeeds and is
    removed when it fails, so readers see the old file or the complete new one, never a partial one.
    The file gets the permissions of the user's umask (0644 typically), not the temporary file's 0600."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_png(fig, path: str | Path, dpi: int = 110) -> Path:
    """Lay out a matplotlib figure, write it to ``path`` as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return Path(path)


def check_output(path: str | Path, overwrite: bool) -> Path:
    """Refuse to overwrite ``path`` unless asked; make its folder."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: output exists (use --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
