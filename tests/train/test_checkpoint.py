"""Checkpoint completion markers and the exported generator: incomplete ones are refused."""

import json

import pytest
import torch

from sa0.train.checkpoint import (COMPLETE, IncompleteCheckpointError, export_generator, is_exported, load_generator,
                                  verify_checkpoint, write_rank_marker)


def _two_rank_checkpoint(root):
    """What Ray's merge of two ranks' directories looks like: shared and per-rank files + markers."""
    for rank in (0, 1):
        part = root / f"rank{rank}"
        (part / "state").mkdir(parents=True)
        (part / "state" / f"zero_pp_rank_{rank}_optim_states.pt").write_bytes(b"x" * (10 + rank))
        if rank == 0:
            (part / "state" / "mp_rank_00_model_states.pt").write_bytes(b"m" * 7)
        write_rank_marker(part, rank, {"step": 5, "data": {"epoch": 0, "next": 5}})
    merged = root / "merged"
    merged.mkdir()
    for rank in (0, 1):
        for path in (root / f"rank{rank}").rglob("*"):
            if path.is_file():
                target = merged / path.relative_to(root / f"rank{rank}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    return merged


def test_complete_checkpoint_verifies_and_lists_each_ranks_files(tmp_path):
    merged = _two_rank_checkpoint(tmp_path)
    states = verify_checkpoint(merged, 2)
    assert [s["step"] for s in states] == [5, 5]
    assert set(states[0]["files"]) == {"state/zero_pp_rank_0_optim_states.pt", "state/mp_rank_00_model_states.pt"}
    assert set(states[1]["files"]) == {"state/zero_pp_rank_1_optim_states.pt"}


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "loop_rank1.json").unlink(), "rank 1's marker loop_rank1.json is missing"),
    (lambda d: (d / "state" / "zero_pp_rank_0_optim_states.pt").unlink(), "zero_pp_rank_0_optim_states.pt .* missing"),
    (lambda d: (d / "state" / "mp_rank_00_model_states.pt").write_bytes(b"m"), "should have 7 bytes, found 1"),
])
def test_incomplete_checkpoint_is_refused_naming_the_problem(tmp_path, damage, message):
    merged = _two_rank_checkpoint(tmp_path)
    damage(merged)
    with pytest.raises(IncompleteCheckpointError, match=message):
        verify_checkpoint(merged, 2)


def test_resuming_with_fewer_workers_than_wrote_the_checkpoint_is_refused(tmp_path):
    merged = _two_rank_checkpoint(tmp_path)
    with pytest.raises(IncompleteCheckpointError, match="written by 2 workers, this run has 1"):
        verify_checkpoint(merged, 1)


def test_ranks_at_different_steps_or_old_schema_are_refused(tmp_path):
    merged = _two_rank_checkpoint(tmp_path)
    marker = merged / "loop_rank1.json"
    state = json.loads(marker.read_text())
    marker.write_text(json.dumps({**state, "step": 6}))
    with pytest.raises(IncompleteCheckpointError, match=r"disagree on the step: \[5, 6\]"):
        verify_checkpoint(merged, 2)
    marker.write_text(json.dumps({**state, "schema_version": 0}))
    with pytest.raises(IncompleteCheckpointError, match="schema_version 0"):
        verify_checkpoint(merged, 2)


def test_exported_generator_round_trips_and_replaces_atomically(tmp_path):
    weights = {"a": torch.arange(3.0), "b": torch.ones(2, 2)}
    path = export_generator(tmp_path / "gen", weights, {"phase": 1})
    state, meta = load_generator(path)
    assert torch.equal(state["a"], weights["a"]) and meta["phase"] == 1 and is_exported(path)
    export_generator(path, {"a": torch.zeros(3)}, {"phase": 2})
    state, meta = load_generator(path)
    assert meta["phase"] == 2 and set(state) == {"a"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen"]  # no temporary or old copies left


def test_exported_generator_without_marker_is_refused(tmp_path):
    path = export_generator(tmp_path / "gen", {"a": torch.zeros(1)}, {})
    (path / COMPLETE).unlink()
    with pytest.raises(IncompleteCheckpointError, match="no COMPLETE marker"):
        load_generator(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_generator(tmp_path / "nothing")
