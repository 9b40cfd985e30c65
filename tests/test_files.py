"""Files written whole or not at all (lstm_jax._files)."""

import os
import stat

import pytest

from lstm_jax._files import write_atomically


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
