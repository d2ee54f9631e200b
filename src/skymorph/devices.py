"""Where torch computes: one resolution of the ``--device`` option for every command."""
from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' (CUDA when available, else the CPU), 'cpu', 'cuda' or 'cuda:N' as a torch device;
    ConfigError for another name or for CUDA without a GPU."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise ConfigError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N")
    if kind == "cuda" and int(index or 0) >= torch.cuda.device_count():
        have = torch.cuda.device_count()
        raise ConfigError(f"device {name!r} asked for, but " + (f"this machine has {have} CUDA GPU(s)" if have
                          else "no CUDA GPU is available") + "; use --device cpu or auto")
    return torch.device(name)
