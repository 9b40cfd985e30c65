"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017) read row by row: 28 steps of 28 pixels.

The images come from Debian's ``dataset-fashion-mnist`` package, which installs the
gzipped IDX files of the original release under ``/usr/share/datasets/fashion-mnist``.
The test split is the release's own t10k (10,000 images); training uses the 60,000.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from lstm_jax.tasks.arrays import from_arrays
from lstm_jax.tasks.base import Task
from lstm_jax.tasks.digits import MissingData

DATA_DIR = "/usr/share/datasets/fashion-mnist"
INSTALL = "sudo apt-get install dataset-fashion-mnist (or `make data`)"
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array in a gzipped IDX file (LeCun's MNIST format), checked byte for byte.

    The header is two zero bytes, a dtype code, the number of dimensions D, then D
    big-endian uint32 sizes; the data that follow must fill exactly those sizes.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError, zlib.error) as error:  # not gzip, or a cut-off stream
        raise ValueError(f"{path} is not a readable gzip file: {error}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_DTYPES:
        magic = raw[:4].hex() or "missing"
        raise ValueError(f"{path} is not an IDX file (its magic number is {magic})")
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: its header announces {ndim} dimensions")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path} holds {len(raw)} bytes but its header {shape} of {dtype.name} "
                         f"needs {expected}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _split(data_dir: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) in [0, 1], labels (N,)) of ``train`` or ``t10k``."""
    images = read_idx(data_dir / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(data_dir / f"{prefix}-labels-idx1-ubyte.gz")
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(f"{data_dir}: {prefix} images {images.shape} and labels {labels.shape} "
                         f"do not match")
    return (images / np.float32(255)).astype(np.float32), labels.astype(np.int32)


def fashion_rows_task(data_dir: str = DATA_DIR) -> Task:
    """Classify each 28×28 Fashion-MNIST image read one row per step: T = 28, I = 28."""
    where = Path(data_dir)
    names = [f"{prefix}-{kind}-ubyte.gz" for prefix in ("train", "t10k")
             for kind in ("images-idx3", "labels-idx1")]
    missing = [name for name in names if not (where / name).is_file()]
    if missing:
        raise MissingData(f"the fashion_rows task needs {where / missing[0]}: {INSTALL}")
    xs, ys = _split(where, "train")
    test = _split(where, "t10k")
    return from_arrays(xs, ys, test=test, num_classes=10, name="fashion_rows")
