"""Tasks over data that packages ship: Fashion-MNIST (Debian) and MNIST-1D (PyPI)."""

import gzip
import importlib.metadata
import re
import struct
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from lstm_jax import cli
from lstm_jax.tasks import MissingData, fashion, fashion_rows_task, get_task, mnist1d, mnist1d_task
from lstm_jax.tasks.fashion import read_idx
from tests.helpers import extra_requirement

SMALL = 500  # MNIST-1D signals generated in these tests: 400 train, 100 test


def write_idx(path: Path, array: np.ndarray, code: int = 0x08) -> Path:
    """A gzipped IDX file written by hand, independently of ``read_idx``."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as file:
        file.write(header + array.astype(array.dtype.newbyteorder(">")).tobytes())
    return path


def all_rows(batches) -> tuple[np.ndarray, np.ndarray]:
    """(xs, targets) of the weighted (real) rows of evaluation batches."""
    keep = [np.asarray(b.weights) > 0 for b in batches]
    return (np.concatenate([np.asarray(b.xs)[k] for b, k in zip(batches, keep)]),
            np.concatenate([np.asarray(b.targets)[k] for b, k in zip(batches, keep)]))


# ---- the IDX reader


@pytest.mark.parametrize("dtype, code", [(np.uint8, 0x08), (np.int16, 0x0B), (np.float32, 0x0D)])
def test_idx_round_trip(tmp_path, dtype, code):
    array = (np.arange(2 * 3 * 4).reshape(2, 3, 4) * 7).astype(dtype)  # up to 161
    read = read_idx(write_idx(tmp_path / "a.gz", array, code))
    assert read.dtype == dtype and read.shape == (2, 3, 4)
    np.testing.assert_array_equal(read, array)


def test_idx_of_the_wrong_length_names_the_file_and_sizes(tmp_path):
    path = write_idx(tmp_path / "a.gz", np.zeros((3, 5), np.uint8))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-1]))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} holds 26 bytes but its header \(3, 5\) of "
                                         r"uint8 needs 27$"):
        read_idx(path)
    path.write_bytes(gzip.compress(raw + b"\0"))  # trailing bytes are refused too
    with pytest.raises(ValueError, match=r"holds 28 bytes but its header \(3, 5\) of uint8 needs 27$"):
        read_idx(path)
    path.write_bytes(gzip.compress(raw[:6]))  # cut inside the sizes
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} is truncated: its header announces 2 dimensions$"):
        read_idx(path)


def test_idx_foreign_files_are_refused(tmp_path):
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(b"PK\x03\x04rest"))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} is not an IDX file \(its magic number is 504b0304\)$"):
        read_idx(path)
    path.write_bytes(gzip.compress(bytes([0, 0, 0x07, 1, 0, 0, 0, 0])))  # no such dtype code
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(path)
    path.write_bytes(b"\0\0\x08\x01\0\0\0\0")  # IDX, but not gzipped
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} is not a readable gzip file"):
        read_idx(path)
    path.write_bytes(gzip.compress(bytes(100))[:20])  # a gzip stream cut short
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} is not a readable gzip file"):
        read_idx(path)


# ---- Fashion-MNIST


def fake_fashion(folder: Path, train: int = 6, test: int = 4) -> dict[str, np.ndarray]:
    """The four files of the release holding a few random images, labelled 0, 1, 2, ..."""
    rng = np.random.default_rng(0)
    images = {prefix: rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
              for prefix, n in (("train", train), ("t10k", test))}
    for prefix, array in images.items():
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", array)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(len(array), dtype=np.uint8))
    return images


def test_fashion_rows_reads_rows_scaled_to_unit_range(tmp_path):
    images = fake_fashion(tmp_path)
    task = fashion_rows_task(str(tmp_path))
    assert (task.input_size, task.output_size, task.train_size) == (28, 10, 6)
    batch = task.train_batch(jax.random.key(0), 0, 6)
    order = np.asarray(batch.targets)  # each label is its image's index
    assert sorted(order.tolist()) == [0, 1, 2, 3, 4, 5] and batch.xs.dtype == np.float32
    np.testing.assert_allclose(np.asarray(batch.xs), images["train"][order] / 255.0, rtol=1e-6)
    xs, targets = all_rows(task.eval_batches(None, 3, 0))  # t10k, padded to 2 batches of 3
    assert targets.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(xs, images["t10k"] / 255.0, rtol=1e-6)


def test_fashion_rows_missing_files_name_the_debian_package(tmp_path):
    with pytest.raises(MissingData, match=rf"^the fashion_rows task needs {re.escape(str(tmp_path))}/train-images-idx3-"
                                          r"ubyte.gz: sudo apt-get install dataset-fashion-mnist "
                                          r"\(or `make data`\)$"):
        fashion_rows_task(str(tmp_path))
    fake_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MissingData, match="t10k-labels-idx1-ubyte.gz: sudo apt-get"):
        fashion_rows_task(str(tmp_path))


def test_fashion_rows_labels_must_match_images(tmp_path):
    fake_fashion(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"t10k images \(4, 28, 28\) and labels \(3,\) do not match"):
        fashion_rows_task(str(tmp_path))


@pytest.mark.skipif(not Path(fashion.DATA_DIR).is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_rows_is_the_release_split():
    task = get_task("fashion_rows")
    assert (task.input_size, task.output_size, task.train_size) == (28, 10, 60_000)
    xs, targets = all_rows(task.eval_batches(None, 1000, 0))
    assert xs.shape == (10_000, 28, 28) and 0.0 <= xs.min() and xs.max() <= 1.0
    assert np.bincount(targets).tolist() == [1000] * 10  # t10k is balanced


# ---- MNIST-1D


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty on-disk cache and a cold in-process one."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    mnist1d.mnist1d_arrays.cache_clear()
    yield tmp_path / "lstm_jax"
    mnist1d.mnist1d_arrays.cache_clear()


def test_mnist1d_is_40_steps_of_one_value_with_the_packages_split(cache):
    task = mnist1d_task(num_samples=SMALL)
    assert (task.input_size, task.output_size, task.train_size) == (1, 10, 400)
    batch = task.train_batch(jax.random.key(0), 0, 32)
    assert batch.xs.shape == (32, 40, 1) and batch.xs.dtype == np.float32
    test_xs, test_ys = all_rows(task.eval_batches(None, 64, 0))
    assert test_xs.shape == (100, 40, 1) and test_ys.dtype == np.int32
    data = mnist1d.mnist1d_arrays(SMALL)
    train_rows = {row.tobytes() for row in data["x"]}
    assert not any(row.tobytes() in train_rows for row in data["x_test"])  # disjoint splits
    assert set(np.unique(data["y"])) == set(range(10))


def test_mnist1d_generation_is_reproducible_and_leaves_global_seeds_alone(cache):
    np.random.seed(7)
    expected = np.random.random()
    np.random.seed(7)
    first = mnist1d._generate(SMALL)
    assert np.random.random() == expected
    second = mnist1d._generate(SMALL)
    for name in ("x", "y", "x_test", "y_test"):
        np.testing.assert_array_equal(first[name], second[name])


def test_mnist1d_disk_cache_is_read_back(cache, monkeypatch):
    first = mnist1d.mnist1d_arrays(SMALL)
    version = importlib.metadata.version("mnist1d")
    assert [p.name for p in cache.iterdir()] == [f"mnist1d-{version}-{SMALL}.npz"]
    mnist1d.mnist1d_arrays.cache_clear()
    with monkeypatch.context() as patch:
        patch.setattr(mnist1d, "_generate", lambda n: pytest.fail("generated again"))
        again = mnist1d.mnist1d_arrays(SMALL)
    np.testing.assert_array_equal(first["x_test"], again["x_test"])
    (cache / f"mnist1d-{version}-{SMALL}.npz").write_bytes(b"damaged")  # generated again
    mnist1d.mnist1d_arrays.cache_clear()
    np.testing.assert_array_equal(mnist1d.mnist1d_arrays(SMALL)["x"], first["x"])
    assert [p.name for p in cache.iterdir()] == [f"mnist1d-{version}-{SMALL}.npz"]


def test_mnist1d_seeds_change_the_order_not_the_data(cache):
    task = mnist1d_task(num_samples=SMALL)
    a0, a1 = (task.train_batch(jax.random.key(s), 0, 400) for s in (0, 0))
    b = task.train_batch(jax.random.key(1), 0, 400)
    np.testing.assert_array_equal(a0.xs, a1.xs)
    assert not np.array_equal(a0.xs, b.xs)
    np.testing.assert_array_equal(np.sort(a0.xs.ravel()), np.sort(b.xs.ravel()))


def test_mnist1d_missing_package_names_the_extra(cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(MissingData) as missing:
        mnist1d_task(num_samples=SMALL)
    assert str(missing.value) == ("the mnist1d task needs the mnist1d package: pip install "
                                  f"'{extra_requirement('mnist1d')}'")

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(MissingData, match=r"^the mnist1d task needs the mnist1d package"):
        mnist1d_task(num_samples=SMALL)


def test_mnist1d_too_few_samples():
    with pytest.raises(ValueError, match=r"^`num_samples` must be at least 10 \(one per digit\), got 5$"):
        mnist1d_task(num_samples=5)


def test_cli_reports_missing_data_in_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch,
                                                                  cache):
    out = tmp_path / "run"
    code = cli.main(["train", "fashion_rows", "--task-options", f"data_dir={tmp_path}/none",
                     "--out", str(out)])
    assert code == 2 and not out.exists()
    assert capsys.readouterr().err == (f"lstm-jax: error: the fashion_rows task needs {tmp_path}/none/"
                                       "train-images-idx3-ubyte.gz: sudo apt-get install "
                                       "dataset-fashion-mnist (or `make data`)\n")
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    assert cli.main(["train", "mnist1d", "--task-options", "num_samples=20", "--out", str(out)]) == 2
    assert capsys.readouterr().err == ("lstm-jax: error: the mnist1d task needs the mnist1d "
                                       f"package: pip install '{extra_requirement('mnist1d')}'\n")
    assert not out.exists()


def test_mnist1d_unwritable_cache_still_gives_the_data(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    mnist1d.mnist1d_arrays.cache_clear()
    try:
        assert mnist1d.mnist1d_arrays(SMALL)["x"].shape == (400, 40)
    finally:
        mnist1d.mnist1d_arrays.cache_clear()
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "empty"])
def test_a_damaged_cache_file_is_made_again(tmp_path, monkeypatch, damage):
    from lstm_jax.tasks.cache import cache_dir, cached_arrays

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    make = lambda: {"x": np.arange(1000)}  # noqa: E731
    cached_arrays("data.npz", make)
    path = cache_dir() / "data.npz"
    whole = path.read_bytes()
    path.write_bytes({"truncated": whole[: len(whole) // 2], "not a zip": b"garbage" * 10,
                      "empty": b""}[damage])
    np.testing.assert_array_equal(cached_arrays("data.npz", make)["x"], np.arange(1000))
    np.testing.assert_array_equal(np.load(path)["x"], np.arange(1000))  # and stored whole again
