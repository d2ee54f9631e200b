"""Run configuration shared by every wing that trains: a pydantic model read from YAML and written
resolved beside its run, and the one rule for a run's epoch budget."""
from __future__ import annotations

import difflib
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

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


__all__ = ["RunConfig", "epoch_budget", "DEFAULT_EPOCHS", "EPOCH_CAP"]
