"""Mosaic label structure a teacher can dial: grid, blanks, repeated label sets, the nested preset."""

from __future__ import annotations

import numpy as np
import pytest

from sdl.data import dataset_options, load_dataset
from sdl.data.mosaic import PRESETS, tile_mosaics
from tests.set_reference import relation_number


def _rebuild(images: np.ndarray, classes: np.ndarray, cells: np.ndarray, num_classes: int, grid):
    """Reference mosaics and label sets for a ``grid`` x ``grid`` layout, cell by cell."""
    h, w = images.shape[1:]
    mosaics = np.zeros((len(cells), grid * h, grid * w), dtype=np.uint8)
    labels = np.zeros((len(cells), num_classes), dtype=np.uint8)
    for m, row in enumerate(cells):
        for cell, source in enumerate(row):
            if source < 0:
                continue
            r, c = divmod(cell, grid)
            mosaics[m, r * h : (r + 1) * h, c * w : (c + 1) * w] = images[source]
            labels[m, classes[source]] = 1
    return mosaics, labels


def _relation_shares(labels: np.ndarray) -> dict[int, int]:
    """Pair counts per relation, by explicit set comparisons over every ordered pair."""
    sets = [frozenset(np.flatnonzero(row)) for row in labels]
    counts = dict.fromkeys(range(1, 6), 0)
    for i, s in enumerate(sets):
        for j, t in enumerate(sets):
            if i == j:
                continue
            counts[relation_number(s, t)] += 1
    return counts


@pytest.mark.timeout(30)
def test_near_one_empty_prob_returns_with_one_item_per_mosaic():
    # used to spin forever: every mosaic redrawn until one cell came out non-blank
    rng = np.random.default_rng(0)
    images = np.ones((6, 2, 2), dtype=np.uint8)
    _, labels, cells = tile_mosaics(images, np.arange(6), 6, 40, rng, empty_prob=0.999999999999)
    assert ((cells >= 0).sum(axis=1) >= 1).all()
    assert labels.sum(axis=1).min() >= 1


@pytest.mark.timeout(60)
def test_near_one_empty_prob_through_the_loader():
    splits = load_dataset("digits-mosaic", n_train=50, n_test=20, empty_prob=0.999999999999)
    assert splits.train.labels.sum(axis=1).min() == 1


@pytest.mark.parametrize("grid", [1, 3])
def test_grid_option_tiles_grid_by_grid_cells(grid):
    rng = np.random.default_rng(1)
    images = rng.integers(1, 256, size=(9, 3, 4), dtype=np.uint8)
    classes = np.array([0, 1, 2, 3, 4, 0, 1, 2, 3])
    mosaics, labels, cells = tile_mosaics(images, classes, 5, 60, rng, 0.3, grid=grid)
    assert mosaics.shape == (60, 3 * grid, 4 * grid) and cells.shape == (60, grid * grid)
    ref_mosaics, ref_labels = _rebuild(images, classes, cells, 5, grid)
    np.testing.assert_array_equal(mosaics, ref_mosaics)
    np.testing.assert_array_equal(labels, ref_labels)


def test_repeated_label_sets_differ_by_one_label_from_an_earlier_mosaic():
    rng = np.random.default_rng(2)
    images = rng.integers(1, 256, size=(40, 2, 2), dtype=np.uint8)
    classes = np.arange(40) % 8
    mosaics, labels, cells = tile_mosaics(images, classes, 8, 300, rng, 0.25, repeat_prob=1.0)
    ref_mosaics, ref_labels = _rebuild(images, classes, cells, 8, 2)
    np.testing.assert_array_equal(mosaics, ref_mosaics)
    np.testing.assert_array_equal(labels, ref_labels)
    # with repeat_prob=1 every mosaic after the first is one label away from some earlier one
    sets = [frozenset(np.flatnonzero(row)) for row in labels]
    for i in range(1, len(sets)):
        assert any(len(sets[i] ^ sets[j]) == 1 for j in range(i)), i


@pytest.mark.parametrize(
    ("option", "value"),
    [("grid", 0), ("grid", 2.5), ("repeat_prob", 1.5), ("repeat_prob", -0.1), ("empty_prob", 1.0)],
)
def test_bad_structure_options_are_value_errors_naming_the_option(option, value):
    with pytest.raises(ValueError, match=option):
        load_dataset("digits-mosaic", n_train=20, n_test=10, **{option: value})


def test_unknown_preset_is_a_value_error_listing_the_presets():
    with pytest.raises(ValueError, match=r"preset.*nested"):
        load_dataset("digits-mosaic", n_train=20, n_test=10, preset="nestd")


def test_nested_preset_gives_more_subset_and_superset_pairs():
    assert "nested" in PRESETS
    assert dataset_options("mnist-mosaic")["preset"] == "default"
    shares = {}
    for preset in ("default", "nested"):
        splits = load_dataset("digits-mosaic", seed=0, n_train=640, n_test=20, preset=preset)
        batch = splits.train.labels[np.random.default_rng(0).permutation(640)[:128]]
        counts = _relation_shares(batch)
        shares[preset] = {r: c / sum(counts.values()) for r, c in counts.items()}
    nested_r45 = shares["nested"][4] + shares["nested"][5]
    default_r45 = shares["default"][4] + shares["default"][5]
    assert nested_r45 > 2 * default_r45, shares
    assert shares["nested"][2] > shares["default"][2], shares


def test_explicit_options_override_the_preset():
    splits = load_dataset(
        "digits-mosaic", n_train=100, n_test=20, preset="nested", empty_prob=0.0, grid=2
    )
    # no blank cells at all: 4 items per mosaic, whatever the preset's blank chance
    assert (splits.info["train_cells"] >= 0).all()
    assert splits.info["grid"] == 2 and splits.info["preset"] == "nested"
