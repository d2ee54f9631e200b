"""Run configuration shared by every wing that trains: a pydantic model read from YAML and written
resolved beside its run, and the one rule for a run's epoch budget."""
from __future__ import annotations

import difflib
from pathlib import Path

import yaml
from typing import Literal

from pydantic import BaseModel, ConfigDict, PositiveInt, ValidationError, model_validator

from ..errors import ConfigError


#: Epochs of a run given no --max-epochs: without --max-minutes a short default run; with it, the
#: minutes are the budget and the epochs only a cap. The one rule of train, benchmark and train-prior.
DEFAULT_EPOCHS, EPOCH_CAP = 30, 1000


def epoch_budget(max_epochs: int | None, max_minutes: float | None) -> int:
    """The epoch limit of a run: ``max_epochs`` when given, else 30 without a time budget and 1000 with one."""
    return max_epochs if max_epochs is not None else (EPOCH_CAP if max_minutes else DEFAULT_EPOCHS)


class RunConfig(BaseModel):
    """A validated config, written resolved as YAML beside the run it describes."""

    model_config = ConfigDict(extra="forbid")

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))

    @classmethod
    def validated(cls, raw: dict, origin="options"):
        """``cls(**raw)``; ConfigError naming ``origin`` and the first offending field otherwise (an
        unknown key before any other error: a misspelt ``methd`` is named, not the missing ``method``)."""
        try:
            return cls(**raw)
        except ValidationError as exc:
            errors = exc.errors()
            first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
            where = ".".join(map(str, first["loc"]))
            if first["type"] == "extra_forbidden":
                close = difflib.get_close_matches(where, cls.model_fields, 1)
                hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(cls.model_fields)}"
                raise ConfigError(f"{origin}: unknown key {where!r} ({hint})") from None
            msg = first["msg"].removeprefix("Value error, ")
            if not where:  # a check across fields: its message names them
                raise ConfigError(f"{origin}: {msg}") from None
            if origin == "options":  # command-line options: name the flag
                raise ConfigError(f"--{where.replace('_', '-')}: {first['msg']}") from None
            raise ConfigError(f"{origin}: {where}: {first['msg']}") from None


class BackboneConfig(RunConfig):
    """A run whose denoiser is a U-Net (``base_channels``, ``depth``) or a Diffusion Mamba (``dim_width``,
    ``dim_blocks``, ``patch_size``; :func:`skymorph.models.denoiser`): an option of the other backbone
    than the one chosen, set away from its default, is an error rather than ignored."""

    base_channels: int = 32
    depth: int = 4
    backbone: Literal["unet", "dim"] = "unet"
    dim_width: PositiveInt = 144  # DiM token width (144 with 9 blocks: the parameters of the 16-wide U-Net)
    dim_blocks: PositiveInt = 9  # DiM Mamba blocks (odd: in, middle, out joined by long skips)
    patch_size: PositiveInt = 4  # DiM pixels per token side (divides the map size)

    @model_validator(mode="after")
    def _backbone_options(self):
        other = ("base_channels", "depth") if self.backbone == "dim" else ("dim_width", "dim_blocks", "patch_size")
        clash = [k for k in other if getattr(self, k) != type(self).model_fields[k].default]
        if clash:
            raise ValueError(f"{clash[0]} (--{clash[0].replace('_', '-')}) is not an option of backbone "
                             f"{self.backbone!r}")
        return self

    def denoiser_options(self) -> dict:
        return {k: getattr(self, k) for k in ("base_channels", "depth", "dim_width", "dim_blocks", "patch_size")}


__all__ = ["RunConfig", "BackboneConfig", "epoch_budget", "DEFAULT_EPOCHS", "EPOCH_CAP"]
