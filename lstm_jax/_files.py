"""Files written whole or not at all: a reader, or a process killed mid-write, never
leaves or sees half a file (run records, summaries, RESULTS.md, data caches); and
folders found writable, or made, before the work that fills them."""

from __future__ import annotations

import errno
import itertools
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes | str) -> None:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` through a temporary file in
    the same folder (``staged``) and ``os.replace``; the folder is created if needed."""
    partial = staged(path, data)
    try:
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def staged(path: Path, data: bytes | str) -> Path:
    """``data`` (text is UTF-8 encoded) written whole to a new temporary file beside
    ``path`` (``PATH.XXXXXXXX.tmp``, the folder created if needed), whose path is returned:
    ``os.replace(partial, path)`` then puts it in place at once. The file gets the mode
    ``open()`` would give it (0o666 less the umask; ``mkstemp`` makes 0o600). A write
    that fails leaves nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o666 & ~_umask())
            file.write(data.encode("utf-8") if isinstance(data, str) else data)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return Path(partial)


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def writable_folder(path: Path, *, make: bool = False) -> list[Path]:
    """Check, before any work, that ``path`` can be a folder to write in: the nearest
    of it and its parents that exists must be a folder that takes a new entry. With
    ``make`` the folder is made (with the missing ones above it; making them is the
    new entry tried), else nothing is.

    Returns the folders made, deepest first, for ``remove_made``. Raises OSError whose
    ``filename`` is that nearest existing path, leaving nothing made:
    NotADirectoryError where it is a file, else the error of the folder's creation.
    """
    path = Path(path)
    missing = list(itertools.takewhile(lambda folder: not folder.exists(),
                                       (path, *path.parents)))
    existing = missing[-1].parent if missing else path
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
    made = missing if make else []
    try:
        if make and missing:
            path.mkdir(parents=True, exist_ok=True)
        else:  # path exists, or is only checked
            Path(tempfile.mkdtemp(dir=existing)).rmdir()  # a new entry, at once taken back
    except OSError as error:
        remove_made(made)
        raise OSError(error.errno, error.strerror, str(existing)) from None
    return made


def remove_made(folders: list[Path]) -> None:
    """Remove the ``folders`` that ``writable_folder`` made (deepest first) while they
    are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty, or already gone
            break
