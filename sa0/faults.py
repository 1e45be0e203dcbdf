"""Fault injection for tests of recovery paths (a crashed refinement task, a killed train worker).

SA0_FAULT_INJECT="<unit>:<point>:<marker file>" makes the process die (os._exit, no cleanup, as a
killed process would) the first time `maybe_crash(unit, point)` is reached; the marker file records
that it already happened, so the retried process runs through. Unset, it costs one getenv.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "SA0_FAULT_INJECT"


def maybe_crash(unit: str, point: str) -> None:
    parts = os.environ.get(ENV, "").split(":", 2)
    if len(parts) == 3 and parts[0] == unit and parts[1] == point and not Path(parts[2]).exists():
        Path(parts[2]).write_text("crashed once\n")
        os._exit(1)
