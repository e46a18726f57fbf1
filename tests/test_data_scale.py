"""Thousands of labels: every MIMIC code (top_k=None/0) and the synthetic long-tailed generator."""

from __future__ import annotations

import numpy as np
import pytest

from sdl.data import dataset_options, load_dataset, synthetic
from tests.test_data_local import _write_mimic


@pytest.mark.parametrize("top_k", [None, 0])
def test_mimic_keeps_every_code(tmp_path, monkeypatch, top_k):
    monkeypatch.setenv("SDL_CACHE", str(tmp_path / "cache"))
    _write_mimic(tmp_path)
    splits = load_dataset("mimic", seed=0, root=str(tmp_path), top_k=top_k, features="tfidf", dim=4)
    # the fixture: 3 shared codes + one V code per admission (30 admissions), all kept
    names = splits.train.label_names
    assert names[:3] == ["4019", "4280", "99591"] and len(names) == 33
    assert set(names[3:]) == {f"V{h}" for h in range(100, 130)}
    for data in (splits.train, splits.test):
        for row, hadm in zip(data.labels, data.ids, strict=True):
            assert f"V{hadm}" in {names[i] for i in np.flatnonzero(row)}


@pytest.mark.parametrize("bad", [-1, 2.5, "50", True])
def test_mimic_bad_top_k_is_a_value_error(tmp_path, bad):
    _write_mimic(tmp_path)
    with pytest.raises(ValueError, match="top_k"):
        load_dataset("mimic", root=str(tmp_path), top_k=bad, features="tfidf")


def test_longtail_defaults_are_ten_thousand_labels():
    assert dataset_options("synthetic-longtail")["num_labels"] == 10_000


def test_longtail_label_law_is_zipf_like():
    rng = np.random.default_rng(0)
    _, labels, _ = synthetic.generate(20_000, 1000, 8, rng, zipf=1.0, extra_labels=0.0)
    # one draw per item: label c is drawn with probability (1/(c+1)) / H_1000
    harmonic = sum(1.0 / k for k in range(1, 1001))
    freq = labels.mean(axis=0)
    expected = 1.0 / np.arange(1, 1001) / harmonic
    assert labels.sum(axis=1).tolist() == [1] * 20_000
    np.testing.assert_allclose(freq[:5], expected[:5], rtol=0.08)
    # the tail: the last half of the labels share what the law gives them, ~9% of the draws
    np.testing.assert_allclose(freq[500:].sum(), expected[500:].sum(), rtol=0.1)


def test_longtail_label_counts_and_features_follow_the_labels():
    rng = np.random.default_rng(1)
    x, y, prototypes = synthetic.generate(500, 300, 32, rng, extra_labels=2.0, noise=0.1)
    assert x.dtype == np.float32 and y.dtype == np.uint8 and y.shape == (500, 300)
    assert y.sum(axis=1).min() >= 1 and y.sum(axis=1).max() <= 10
    # reference: the features, recomputed item by item from the prototypes, up to the noise
    for i in range(0, 500, 50):
        own = np.flatnonzero(y[i])
        clean = prototypes[own].sum(axis=0) / np.sqrt(len(own))
        assert np.linalg.norm(x[i] - clean) < 0.1 * np.sqrt(32) * 2
    # an item's own labels score above the others by prototype similarity
    scores = x @ prototypes.T
    own_mean = (scores * y).sum() / y.sum()
    other_mean = (scores * (1 - y)).sum() / (1 - y).sum()
    assert own_mean > other_mean + 0.3


def test_longtail_loader_splits_and_seeds():
    a = load_dataset("synthetic-longtail", seed=3, n_train=300, n_test=100, num_labels=2000)
    b = load_dataset("synthetic-longtail", seed=3, n_train=300, n_test=100, num_labels=2000)
    assert a.train.labels.shape == (300, 2000) and a.test.inputs.shape == (100, 64)
    np.testing.assert_array_equal(a.train.inputs, b.train.inputs)
    assert not set(a.train.ids) & set(a.test.ids)
    assert (a.test.labels.sum(axis=0) == 0).mean() > 0.5  # most labels have no test positive


@pytest.mark.parametrize(
    ("option", "value"), [("num_labels", 0), ("zipf", -1.0), ("n_train", 2.5), ("noise", "x")]
)
def test_longtail_bad_options_name_the_option(option, value):
    with pytest.raises(ValueError, match=option):
        load_dataset("synthetic-longtail", **{option: value})
