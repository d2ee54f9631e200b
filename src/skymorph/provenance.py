"""How an output was made: recorded in every result file skymorph writes."""
from __future__ import annotations

import shlex
import sys
from datetime import datetime, timezone

from . import __version__


def provenance(**details) -> dict:
    """The command line, skymorph version and UTC date, plus ``details`` (resolved options, seeds,
    store fingerprint, ...)."""
    argv = [("skymorph" if i == 0 and a.endswith("skymorph") else a) for i, a in enumerate(sys.argv)]
    return {"command": shlex.join(argv), "skymorph_version": __version__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **details}
