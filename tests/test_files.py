"""Files written whole or not at all (lstm_jax._files)."""

import os
import stat
from pathlib import Path

import pytest

from lstm_jax._files import remove_made, staged, writable_folder, write_atomically


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_file_gets_the_mode_open_gives_it(tmp_path, umask):
    old = os.umask(umask)
    try:
        (tmp_path / "plain.txt").write_text("x")  # as metrics.jsonl and the plots are made
        write_atomically(tmp_path / "config.json", "{}\n")
    finally:
        os.umask(old)
    assert mode(tmp_path / "config.json") == mode(tmp_path / "plain.txt") == 0o666 & ~umask
    assert os.umask(old) == old  # the umask is left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "plain.txt"]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "summary.json"
    write_atomically(path, "old")

    class Unencodable(str):
        def encode(self, *args):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(path, Unencodable("new"))
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_folder_is_checked_without_making_anything(tmp_path):
    (tmp_path / "a_file").write_text("")
    assert writable_folder(tmp_path / "runs" / "deep") == []
    assert writable_folder(tmp_path) == []  # an existing folder: a new entry is tried in it
    with pytest.raises(NotADirectoryError) as error:
        writable_folder(tmp_path / "a_file" / "runs")
    assert error.value.filename == str(tmp_path / "a_file")
    with pytest.raises(FileNotFoundError) as error:  # /proc takes no new entry
        writable_folder(Path("/proc/runs"))
    assert (error.value.filename, error.value.strerror) == ("/proc", "No such file or directory")
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]


def test_a_folder_made_is_removed_while_nothing_was_written_in_it(tmp_path):
    made = writable_folder(tmp_path / "a" / "b", make=True)
    assert made == [tmp_path / "a" / "b", tmp_path / "a"] and (tmp_path / "a" / "b").is_dir()
    (tmp_path / "a" / "kept.txt").write_text("x")
    remove_made(made)  # b is removed; a holds a file, so it stays
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["kept.txt"]
    assert writable_folder(tmp_path / "a", make=True) == []  # it exists: nothing made
    with pytest.raises(NotADirectoryError) as error:
        writable_folder(tmp_path / "a" / "kept.txt" / "c", make=True)
    assert error.value.filename == str(tmp_path / "a" / "kept.txt")
    with pytest.raises(FileNotFoundError) as error:  # it exists, but takes no new entry
        writable_folder(Path("/proc"), make=True)
    assert (error.value.filename, error.value.strerror) == ("/proc", "No such file or directory")


def test_a_staged_file_is_beside_the_path_and_leaves_it_as_it_was(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"old")
    partial = staged(path, b"new")
    assert partial.parent == tmp_path and partial.name.startswith("model.bin.")
    assert path.read_bytes() == b"old" and partial.read_bytes() == b"new"
    os.replace(partial, path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]
