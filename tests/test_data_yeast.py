"""yeast: shape, labels, split, standardisation, and the missing-package message."""

from __future__ import annotations

import numpy as np
import pytest

from sdl.data import DatasetUnavailable, load_dataset, yeast


def test_yeast_shapes_labels_and_split():
    splits = load_dataset("yeast", seed=0)
    train, test = splits.train, splits.test
    assert len(train) + len(test) == 2417
    assert train.inputs.shape[1] == 103 and train.inputs.dtype == np.float32
    assert train.num_labels == 14 and train.labels.dtype == np.uint8
    assert train.kind == "tabular" and len(train.texts) == len(train)
    ids = np.concatenate([train.ids, test.ids])
    assert sorted(ids) == list(range(2417)), "ids are the source rows, each exactly once"
    labels = np.concatenate([train.labels, test.labels])
    assert 4.1 < labels.sum(axis=1).mean() < 4.35  # MULAN: 4.24 labels per gene
    np.testing.assert_allclose(train.inputs.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(train.inputs.std(axis=0), 1, atol=1e-3)


def test_yeast_rows_match_the_file():
    features, labels, names = yeast.read_yeast()
    splits = load_dataset("yeast", seed=2)
    row = splits.test.ids[0]
    np.testing.assert_array_equal(splits.test.labels[0], labels[row])
    mean, std = splits.info["feature_mean"], splits.info["feature_std"]
    np.testing.assert_allclose(splits.test.inputs[0], (features[row] - mean) / std, rtol=1e-5)
    assert names[0] == "Class1"


def test_yeast_split_depends_on_seed_only():
    a, b, c = (load_dataset("yeast", seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.test.ids, b.test.ids)
    assert not np.array_equal(a.test.ids, c.test.ids)
    assert not set(a.train.ids) & set(a.test.ids)


def test_yeast_missing_river(monkeypatch):
    monkeypatch.setattr(yeast, "PACKAGE", "no_such_package_sdl")
    with pytest.raises(DatasetUnavailable, match="pip install river"):
        load_dataset("yeast")
