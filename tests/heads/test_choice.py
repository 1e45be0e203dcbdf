"""Which head a job uses: given, recorded by its input, $SA0_FLAME_DIR, the job's default."""

import pytest

from sa0.flame.io import FLAME_DIR_ENV, FlameFileError
from sa0.heads import FLAME_NAME, ICT_NAME, SYNTHETIC_NAME, chosen_head, head_name
from sa0.heads.ict import ict_dir


def test_order_of_choice(monkeypatch, synthetic_dir):
    monkeypatch.delenv(FLAME_DIR_ENV, raising=False)
    with chosen_head(None, None, ICT_NAME) as (directory, name):
        assert name == ICT_NAME and directory == str(ict_dir())
    with chosen_head(None, None, SYNTHETIC_NAME) as (directory, name):
        assert name == SYNTHETIC_NAME
    with chosen_head("ict", None, SYNTHETIC_NAME) as (_, name):
        assert name == ICT_NAME
    with chosen_head(None, ICT_NAME, SYNTHETIC_NAME) as (_, name):  # the clip's head beats the job's default
        assert name == ICT_NAME
    monkeypatch.setenv(FLAME_DIR_ENV, str(synthetic_dir))
    with chosen_head(None, None, ICT_NAME) as (directory, name):  # $SA0_FLAME_DIR beats a default
        assert directory == str(synthetic_dir) and name == SYNTHETIC_NAME
    with chosen_head(None, ICT_NAME, SYNTHETIC_NAME) as (_, name):  # ... but not what the input says
        assert name == ICT_NAME


def test_contradictions_are_refused(monkeypatch, synthetic_dir):
    monkeypatch.delenv(FLAME_DIR_ENV, raising=False)
    with pytest.raises(FlameFileError, match="made with the ict-facekit-light head"):
        with chosen_head(str(synthetic_dir), ICT_NAME):
            pass
    with pytest.raises(FlameFileError, match="made with FLAME"):
        with chosen_head(None, FLAME_NAME):
            pass
    assert head_name(synthetic_dir) == SYNTHETIC_NAME
