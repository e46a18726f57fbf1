"""sdl.explain: what the dashboard explains, against the method's worked example and set loops."""

from __future__ import annotations

import numpy as np
import pytest

from sdl import explain
from sdl.losses import compared_losses
from tests.test_relations import ref_relation

# docs/method.md's worked example: anchor {0,1,2} against R2, R4, R5, R3, R1 samples
WORKED = [{0, 1, 2}, {0, 1, 2}, {0, 1}, {0, 1, 2, 3}, {0, 3}, {3, 4}]


def multi_hot(sets: list[set[int]], width: int | None = None) -> np.ndarray:
    width = width or max(max(s) for s in sets if s) + 1
    out = np.zeros((len(sets), width), dtype=np.uint8)
    for i, s in enumerate(sets):
        out[i, sorted(s)] = 1
    return out


def worked_labels() -> np.ndarray:
    return multi_hot(WORKED)


def test_relations_to_anchor_match_set_logic():
    rng = np.random.default_rng(4)
    sets = [set(np.flatnonzero(rng.random(6) < 0.4).tolist()) or {0} for _ in range(40)]
    labels = multi_hot(sets, 6)
    for anchor in (0, 7, 13):
        expected = [ref_relation(sets[anchor], t) for t in sets]
        assert explain.relations_to_anchor(labels[anchor], labels).tolist() == expected


def test_mulsupcon_comparable_weights_against_a_loop():
    """w(i,j) = sum_{c in S n T} 1/|P_c| / sum_{c in S} 1/|P_c|, |P_c| = items carrying c - 1."""
    labels = explain.random_label_sets(30, 5, 2.0, seed=2)
    sets = [set(np.flatnonzero(r).tolist()) for r in labels]
    got = explain.comparable_weights(labels, "mulsupcon")
    carriers = labels.sum(0)
    for i, s in enumerate(sets):
        inverse = {c: 1 / (carriers[c] - 1) for c in s if carriers[c] > 1}
        full = sum(inverse.values())
        for j, t in enumerate(sets):
            expected = 0.0 if i == j or full == 0 else sum(inverse.get(c, 0) for c in s & t) / full
            assert got[i, j] == pytest.approx(expected, abs=1e-6)


def test_most_varied_anchor_prefers_r2_and_r5():
    labels = multi_hot([{3}, {0, 1}, {0, 1}, {0, 1, 2}, {0}, {4}])
    # item 1 sees R2 (item 2), R5 (item 3), R4 (item 4) and R1: the most varied row
    assert explain.most_varied_anchor(explain.batch_relations(labels).relation) == 1


def test_random_label_sets():
    labels = explain.random_label_sets(200, 8, 2.5, seed=3)
    assert labels.shape == (200, 8) and labels.dtype == np.uint8
    assert labels.sum(1).min() >= 1
    assert 2.0 < labels.sum(1).mean() < 3.0
    np.testing.assert_array_equal(labels, explain.random_label_sets(200, 8, 2.5, seed=3))
    for bad in [(0, 8, 2), (600, 8, 2), (10, 8, 9)]:
        with pytest.raises(ValueError):
            explain.random_label_sets(*bad)


def test_anchor_pairs_match_the_worked_example():
    table = explain.anchor_pairs(worked_labels(), 0)
    assert table["relation"].tolist() == ["R2", "R4", "R5", "R3", "R1"]
    np.testing.assert_allclose(table["w"], [1, 2 / 3, 1 / 2, 1 / 6, 0], atol=1e-6)
    np.testing.assert_allclose(table["K^s"], [1, 2 / 3, 1, 1 / 3, 0], atol=1e-6)


def test_batch_relations_follow_the_variant():
    labels = worked_labels()
    base = explain.batch_relations(labels)
    assert sum(base.counts.values()) == len(labels) * (len(labels) - 1)
    ratio = explain.batch_relations(labels, {"dissimilarity": "ratio"})
    assert ratio.k_d[0, 3] == pytest.approx(3 / 4)  # |S n T| / |T| for {0,1,2,3}
    sym = explain.batch_relations(labels, {"symmetric": True})
    np.testing.assert_allclose(sym.weight, sym.weight.T, atol=1e-6)


def test_weights_by_relation_show_the_r2_r5_gap():
    table = explain.weights_by_relation(worked_labels(), anchor=0)
    weight = {(r.loss, r.relation): r.weight for r in table.itertuples()}
    assert weight[("sdl", "R2")] == pytest.approx(1) and weight[("sdl", "R5")] == pytest.approx(0.5)
    # MulSupCon counts only the shared labels: a superset pulls like an identical sample
    assert weight[("mulsupcon", "R2")] == pytest.approx(1)
    assert weight[("mulsupcon", "R5")] == pytest.approx(1)
    assert weight[("all", "R5")] == 0 and weight[("any", "R5")] == 1
    assert all(weight[(loss, "R1")] == 0 for loss in compared_losses())
    batch = explain.weights_by_relation(worked_labels())
    assert set(batch["loss"]) == set(compared_losses())
    assert (batch["pairs"] > 0).all()


def test_comparable_weights_are_at_most_one():
    labels = explain.random_label_sets(64, 6, 2.5, seed=0)
    for loss in compared_losses():
        weights = explain.comparable_weights(labels, loss)
        assert weights.shape == (64, 64)
        assert weights.min() >= 0 and weights.max() <= 1 + 1e-6
        assert np.all(np.diag(weights) == 0)


def test_anchor_loss_terms_add_up_to_the_anchor_loss():
    rng = np.random.default_rng(0)
    labels = explain.random_label_sets(256, 10, 2.5, seed=1)
    embeddings = rng.normal(size=(256, 64)).astype(np.float32)
    table, summary = explain.anchor_loss_terms(embeddings, labels, 5, "sdl", 0.1)
    assert len(table) == 255
    assert table["term"].sum() == pytest.approx(summary["anchor_loss"], rel=1e-4)
    # disjoint samples only push (gradient > 0); weighted positives can pull
    assert (table.loc[table["relation"] == "R1", "gradient"] >= 0).all()
    for loss in compared_losses():
        explain.anchor_loss_terms(embeddings[:32], labels[:32], 0, loss, 0.2)
