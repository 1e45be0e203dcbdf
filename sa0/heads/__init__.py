"""Head models other than a user's FLAME, and which head a job uses.

Every head is a FLAME-format directory (sa0.flame.io loads it): FLAME itself (licensed; users bring
it), ICT-FaceKit Light (MIT; derived by sa0 and shipped in the package: sa0.heads.ict), and sa0's
synthetic head (sa0.flame.synthetic; for tests and the demo). A clip records the head its FLAME
parameters belong to (meta extras "head"), and an avatar package records the head it was bound to,
so jobs reading them pick the same head; `chosen_head` is the one rule every job uses.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from sa0.flame.io import FLAME_DIR_ENV, FlameFileError
from sa0.heads.ict import ICT_NAME, ict_dir, is_ict

SYNTHETIC_NAME = "synthetic"
FLAME_NAME = "flame"
ALIASES = {"ict": ICT_NAME, ICT_NAME: ICT_NAME, SYNTHETIC_NAME: SYNTHETIC_NAME}


def head_name(model_dir) -> str:
    """What the FLAME-format directory holds: ICT_NAME, SYNTHETIC_NAME or FLAME_NAME."""
    if is_ict(model_dir):
        return ICT_NAME
    if (Path(model_dir) / "synthetic.json").is_file():
        return SYNTHETIC_NAME
    return FLAME_NAME


@contextlib.contextmanager
def _directory_of(name_or_dir: str):
    name = ALIASES.get(name_or_dir)
    if name == ICT_NAME:
        yield str(ict_dir())
    elif name == SYNTHETIC_NAME:
        from sa0.flame.synthetic import write_synthetic_flame

        with tempfile.TemporaryDirectory() as tmp:
            yield str(write_synthetic_flame(tmp, seed=0))
    else:
        yield name_or_dir


@contextlib.contextmanager
def chosen_head(given: str | None = None, recorded: str | None = None, default: str = ICT_NAME):
    """The head directory a job uses, as a context (a synthetic head lives in a temporary directory
    for as long as the block) -> (directory, name).

    given: --flame-dir (a directory, or 'ict' / 'synthetic'); recorded: the head the job's input
    says it was made with (a clip's or an avatar package's "head"); default: the job's own choice.
    Order: given, else a recorded ICT or synthetic head, else $SA0_FLAME_DIR, else `default`. A given
    head that contradicts a recorded one is refused (their parameters do not mean the same thing)."""
    recorded = ALIASES.get(recorded, recorded)
    if given:
        name = ALIASES.get(given) or head_name(given)
        if recorded and recorded != name:
            raise FlameFileError(f"--flame-dir {given} is a {name} head, but the input was made with the {recorded} "
                                 "head; pass that head (or leave --flame-dir out)")
        choice = given
    elif recorded in (ICT_NAME, SYNTHETIC_NAME):
        choice = recorded
    elif os.environ.get(FLAME_DIR_ENV):
        choice = os.environ[FLAME_DIR_ENV]
    elif recorded == FLAME_NAME:
        raise FlameFileError(f"the input was made with FLAME: pass its directory as --flame-dir or set ${FLAME_DIR_ENV}")
    else:
        choice = default
    with _directory_of(choice) as directory:
        yield directory, head_name(directory)


__all__ = ["ALIASES", "FLAME_NAME", "ICT_NAME", "SYNTHETIC_NAME", "chosen_head", "head_name", "ict_dir"]
