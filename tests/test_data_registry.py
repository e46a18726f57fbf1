"""The dataset registry: names, options, errors and the summary table."""

from __future__ import annotations

import numpy as np
import pytest

import sdl.data as data
from sdl.data import (
    DATASETS,
    DatasetInfo,
    DatasetUnavailable,
    dataset_options,
    dataset_table,
    load_dataset,
)
from tests.set_reference import relation_of

EXPECTED = {
    "digits-mosaic",
    "mnist-mosaic",
    "fashion-mosaic",
    "yeast",
    "hpo",
    "coco",
    "voc",
    "mimic",
    "table",
    "iu-xray",
    "synthetic-longtail",
}


def test_registry_lists_every_dataset_with_a_kind():
    assert set(DATASETS) == EXPECTED
    for name, info in DATASETS.items():
        assert info.name == name and info.kind in data.KINDS and info.description


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'.*digits-mosaic"):
        load_dataset("cifar")


def test_unknown_option_is_a_value_error_listing_the_options():
    with pytest.raises(ValueError, match=r"'n_trian'.*n_train"):
        load_dataset("digits-mosaic", n_trian=10)
    assert dataset_options("digits-mosaic")["preset"] == "default"


def test_local_file_datasets_say_what_to_pass(tmp_path):
    for name in ("coco", "voc", "mimic", "table"):
        assert DATASETS[name].missing(None)
        with pytest.raises(DatasetUnavailable, match=r"root|path"):
            load_dataset(name)
    with pytest.raises(DatasetUnavailable, match=str(tmp_path)):
        load_dataset("voc", root=str(tmp_path))


def test_dataset_table_rows(monkeypatch):
    def missing(root):
        return "install the thing"

    def load(seed=0, root=None):
        raise AssertionError("an unavailable dataset must not be loaded")

    fake = DatasetInfo("fake", "text", "a fake", load, missing)
    monkeypatch.setattr(
        data, "DATASETS", {"digits-mosaic": DATASETS["digits-mosaic"], "fake": fake}
    )
    monkeypatch.setattr(data, "_TABLE_CACHE", {})
    rows = {row["name"]: row for row in dataset_table()}
    keys = {"name", "kind", "available", "train", "test", "labels", "labels_per_item", "note"}
    keys |= {"R1", "R2", "R3", "R4", "R5"}
    assert keys <= set(rows["digits-mosaic"]) and keys <= set(rows["fake"])
    digits = rows["digits-mosaic"]
    assert digits["available"] is True and (digits["train"], digits["test"]) == (1000, 250)
    assert digits["labels"] == 10 and 2.5 < digits["labels_per_item"] < 2.9
    assert sum(digits[k] for k in ("R1", "R2", "R3", "R4", "R5")) == pytest.approx(1.0)
    assert rows["fake"] == rows["fake"] | {"available": False, "note": "install the thing"}
    # a second call is served from the in-process cache
    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: pytest.fail("reloaded"))
    assert dataset_table()[0] == digits


def test_same_seed_same_items_for_every_bundled_dataset():
    for name in ("digits-mosaic", "yeast"):
        a, b = load_dataset(name, seed=3), load_dataset(name, seed=3)
        np.testing.assert_array_equal(a.train.ids, b.train.ids)
        np.testing.assert_array_equal(a.test.inputs, b.test.inputs)


def test_relation_mix_matches_explicit_set_comparisons():
    from sdl.data import relation_mix

    sets = [{0}, {0, 1}, {0, 1}, {2}, {1, 2}, {0, 1, 2}]
    labels = np.zeros((len(sets), 3), np.uint8)
    for row, labels_of in enumerate(sets):
        labels[row, sorted(labels_of)] = 1
    expected = dict.fromkeys(("R1", "R2", "R3", "R4", "R5"), 0)
    for i, s in enumerate(sets):
        for j, t in enumerate(sets):
            if i != j:
                expected[relation_of(s, t)] += 1
    # one batch holding every row: the shares are exactly the pair counts over n(n-1)
    mix = relation_mix(labels, batch_size=len(sets), batches=1)
    assert mix == pytest.approx({k: v / 30 for k, v in expected.items()})
    assert sum(relation_mix(labels, batch_size=4, batches=3).values()) == pytest.approx(1.0)
