"""--subjects: a list file, or the subject ids themselves."""

import pytest

from sa0.refine.subjects import BadInput, parse_subjects


def test_subjects_from_a_file_with_comments(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("alice  # first\n\n# a comment line\nbob\n")
    assert parse_subjects(str(path)) == ["alice", "bob"]


def test_subjects_given_as_ids_when_no_such_file_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_subjects("me") == ["me"]
    assert parse_subjects("alice, bob") == ["alice", "bob"]
    (tmp_path / "me").write_text("carol\n")  # a file of that name wins: it is read as a list
    assert parse_subjects("me") == ["carol"]


def test_a_missing_list_file_or_an_empty_one_is_a_clear_error(tmp_path):
    with pytest.raises(BadInput, match="--subjects: .*lists.txt does not exist"):
        parse_subjects(str(tmp_path / "lists.txt"))
    with pytest.raises(BadInput, match="--subjects: nope.txt does not exist"):
        parse_subjects("nope.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(BadInput, match="lists no subjects"):
        parse_subjects(str(tmp_path / "empty.txt"))
    with pytest.raises(BadInput, match="names no subject"):
        parse_subjects(" , ")
