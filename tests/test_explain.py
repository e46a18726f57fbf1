"""sdl.explain: what the dashboard explains, against the method's worked example and set loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdl import explain
from sdl.losses import compared_losses
from tests import dense_reference
from tests.set_reference import relation_number
from tests.test_relations import ref_dissimilarity, ref_similarity, ref_weight

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
        expected = [relation_number(sets[anchor], t) for t in sets]
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


def test_random_label_sets_draw_labels_as_sequential_weighted_sampling_does():
    """Given a set's size, its labels follow the law of drawing one label at a time in proportion
    to popularity (1/rank) without replacement: numpy's rng.choice(p=..., replace=False) is the
    reference, compared on how often each label appears in the sets of 3 labels."""
    classes, size = 8, 3
    drawn = np.concatenate(
        [explain.random_label_sets(512, classes, 3.0, seed=s) for s in range(60)]
    )
    ours = drawn[drawn.sum(1) == size]
    popularity = 1.0 / np.arange(1, classes + 1)
    popularity /= popularity.sum()
    rng = np.random.default_rng(123)
    reference = np.zeros((len(ours), classes))
    for row in reference:
        row[rng.choice(classes, size=size, replace=False, p=popularity)] = 1
    assert len(ours) > 5000
    # about 0.007 standard error per label at this count; top-k keys with normal noise in place
    # of Gumbel noise are off by 0.05, keys of popularity plus scaled Gumbel noise by 0.17
    np.testing.assert_allclose(ours.mean(0), reference.mean(0), atol=0.03)


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


# --- a batch's matrices once, an anchor's row from them ----------------------------------------


@pytest.mark.parametrize(
    "options",
    [{}, {"similarity": "jaccard", "dissimilarity": "ratio"}, {"components": "similarity"}],
)
def test_every_anchor_row_of_the_batch_matches_set_loops(options):
    """anchor_pairs_of reads rows of one batch_relations: each row against K^s, K^d, w by sets."""
    labels = explain.random_label_sets(40, 6, 2.5, seed=5)
    sets = [set(np.flatnonzero(r).tolist()) for r in labels]
    forms = {"similarity": "anchor", "dissimilarity": "count", "components": "both", **options}
    batch = explain.batch_relations(labels, options)
    for anchor in range(len(sets)):
        table = explain.anchor_pairs_of(batch, anchor).sort_values("sample")
        others = [j for j in range(len(sets)) if j != anchor]
        assert table["sample"].tolist() == others
        s = sets[anchor]
        expected = [relation_number(s, sets[j]) for j in others]
        assert table["relation"].tolist() == [f"R{r}" for r in expected]
        k_s = [ref_similarity(s, sets[j], forms["similarity"]) for j in others]
        k_d = [ref_dissimilarity(s, sets[j], forms["dissimilarity"]) for j in others]
        w = [ref_weight(s, sets[j], *forms.values()) for j in others]
        np.testing.assert_allclose(table["K^s"], k_s, atol=1e-6)
        np.testing.assert_allclose(table["K^d"], k_d, atol=1e-6)
        np.testing.assert_allclose(table["w"], w, atol=1e-6)


def _mean_weights_by_loop(sets, weights, anchor):
    """{(loss, relation): (mean weight, pairs)} over the anchor's row (or every pair), by loops."""
    sums: dict = {}
    anchors = range(len(sets)) if anchor is None else [anchor]
    for loss, w in weights.items():
        for i in anchors:
            for j in range(len(sets)):
                if i != j:
                    key = (loss, f"R{relation_number(sets[i], sets[j])}")
                    total, count = sums.get(key, (0.0, 0))
                    sums[key] = (total + float(w[i, j]), count + 1)
    return {k: (total / count, count) for k, (total, count) in sums.items()}


@pytest.mark.parametrize("anchor", [None, 0, 11, 29])
def test_weights_by_relation_of_matches_loops_over_pairs(anchor):
    labels = explain.random_label_sets(30, 5, 2.0, seed=8)
    sets = [set(np.flatnonzero(r).tolist()) for r in labels]
    weights = {
        loss: explain.comparable_weights(
            labels, loss, {"threshold": 0.3} if loss == "jaccard" else None
        )
        for loss in compared_losses()
    }
    relation = explain.batch_relations(labels).relation
    table = explain.weights_by_relation_of(relation, weights, anchor)
    got = {(r.loss, r.relation): (r.weight, r.pairs) for r in table.itertuples()}
    expected = _mean_weights_by_loop(sets, weights, anchor)
    assert set(got) == set(expected)
    for key, (weight, pairs) in expected.items():
        assert got[key][1] == pairs
        assert got[key][0] == pytest.approx(weight, abs=1e-6)


def test_anchor_loss_terms_of_match_the_dense_reference_loss():
    """Each anchor's row of batch_loss_terms against the frozen dense loss on the same batch."""
    rng = np.random.default_rng(3)
    labels = explain.random_label_sets(48, 6, 2.5, seed=4)
    embeddings = rng.normal(size=(48, 16)).astype(np.float32)
    for loss, options in [("sdl", {"symmetric": True}), ("mulsupcon", {}), ("jaccard", {})]:
        terms = explain.batch_loss_terms(embeddings, labels, loss, 0.2, options)
        reference = dense_reference.build_loss(loss, temperature=0.2, **options)
        x = torch.as_tensor(embeddings)
        out = reference.forward_detailed(x, torch.as_tensor(labels, dtype=torch.float32), True)
        unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        for anchor in (0, 17, 47):
            table, summary = explain.anchor_loss_terms_of(terms, anchor)
            others = [j for j in range(48) if j != anchor]
            assert table["sample"].tolist() == others
            np.testing.assert_allclose(table["cosine"], unit[others] @ unit[anchor], atol=1e-5)
            for column, matrix in [
                ("weight", out.weights),
                ("term", out.pair_terms()),
                ("gradient", out.logit_gradient()),
            ]:
                expected = matrix.detach()[anchor].numpy()[others]
                np.testing.assert_allclose(table[column], expected, atol=1e-5, err_msg=column)
            assert summary["anchor_loss"] == pytest.approx(float(out.per_anchor[anchor]), abs=1e-5)
            assert summary["loss"] == pytest.approx(float(out.loss), abs=1e-5)
            assert summary["anchor_has_positives"] == bool(out.has_positives[anchor])
            assert summary["anchors_without_positives"] == out.anchors_without_positives


def test_an_anchor_outside_the_batch_is_refused():
    labels = worked_labels()
    batch = explain.batch_relations(labels)
    for bad in (-1, 6, 2.5, True):
        with pytest.raises(ValueError, match="anchor"):
            explain.anchor_pairs_of(batch, bad)
    with pytest.raises(ValueError, match="between 0 and 5, got 6"):
        explain.weights_by_relation_of(batch.relation, {"sdl": batch.weight}, 6)
