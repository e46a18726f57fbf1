"""Relations, factors and weights against plain-Python set references and docs/method.md's properties."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sdl import relations
from sdl.relations import Relation
from tests.set_reference import relation_number

UNIVERSE = 6


def as_sets(labels: np.ndarray) -> list[set[int]]:
    return [{int(c) for c in np.flatnonzero(row)} for row in labels]


def ref_similarity(s: set[int], t: set[int], form: str) -> float:
    if form == "anchor":
        return len(s & t) / len(s) if s else 0.0
    return len(s & t) / len(s | t) if s | t else 0.0


def ref_dissimilarity(s: set[int], t: set[int], form: str) -> float:
    if form == "count":
        return 1.0 / (1 + len(t - s))
    return len(s & t) / len(t) if t else 0.0


def ref_weight(s, t, similarity="anchor", dissimilarity="count", components="both") -> float:
    if not s & t:
        return 0.0
    k_s = ref_similarity(s, t, similarity)
    k_d = ref_dissimilarity(s, t, dissimilarity)
    return {"both": k_s * k_d, "similarity": k_s, "dissimilarity": k_d}[components]


def labels_of(*sets: set[int], classes: int = UNIVERSE) -> torch.Tensor:
    y = torch.zeros(len(sets), classes, dtype=torch.float64)
    for i, s in enumerate(sets):
        y[i, sorted(s)] = 1.0
    return y


label_sets = st.sets(st.integers(0, UNIVERSE - 1), max_size=UNIVERSE)


# --- against loop references -------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relation_matrix_matches_set_reference(tricky_labels, seed):
    y = tricky_labels(seed)
    sets = as_sets(y)
    got = relations.relation_matrix(torch.as_tensor(y))
    assert got.dtype == torch.int64
    for i, s in enumerate(sets):
        for j, t in enumerate(sets):
            expected = 2 if i == j else relation_number(s, t)
            assert int(got[i, j]) == expected, (i, j, s, t)


def test_empty_label_set_is_disjoint_to_everything_but_itself():
    y = labels_of(set(), set(), {0}, {0, 1})
    rel = relations.relation_matrix(y)
    off = ~torch.eye(4, dtype=torch.bool)
    assert (rel[0][off[0]] == Relation.DISJOINT).all()
    assert (rel[:, 0][off[:, 0]] == Relation.DISJOINT).all()
    assert rel[0, 1] == Relation.DISJOINT  # two empty sets do not match
    assert (rel.diagonal() == Relation.IDENTICAL).all()


def test_rectangular_relation_matrix_has_no_special_diagonal():
    anchors = labels_of({0, 1}, set())
    samples = labels_of({0, 1}, set(), {1})
    rel = relations.relation_matrix(anchors, samples)
    assert rel.tolist() == [[2, 1, 4], [1, 1, 1]]


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("similarity", relations.SIMILARITY_FORMS)
@pytest.mark.parametrize("dissimilarity", relations.DISSIMILARITY_FORMS)
@pytest.mark.parametrize("components", relations.WEIGHT_COMPONENTS)
@pytest.mark.parametrize("symmetric", [False, True])
def test_sd_weights_match_set_reference(
    tricky_labels, seed, similarity, dissimilarity, components, symmetric
):
    y = tricky_labels(seed)
    sets = as_sets(y)
    got = relations.sd_weights(
        torch.as_tensor(y, dtype=torch.float64), similarity, dissimilarity, components, symmetric
    )
    n = len(sets)
    ref = np.array(
        [
            [ref_weight(sets[i], sets[j], similarity, dissimilarity, components) for j in range(n)]
            for i in range(n)
        ]
    )
    if symmetric:
        ref = np.sqrt(ref * ref.T)
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("form", relations.SIMILARITY_FORMS)
def test_similarity_factor_matches_reference(tricky_labels, form):
    y = tricky_labels(5)
    sets = as_sets(y)
    got = relations.similarity_factor(torch.as_tensor(y, dtype=torch.float64), form)
    ref = [[ref_similarity(s, t, form) for t in sets] for s in sets]
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("form", relations.DISSIMILARITY_FORMS)
def test_dissimilarity_factor_matches_reference(tricky_labels, form):
    y = tricky_labels(6)
    sets = as_sets(y)
    got = relations.dissimilarity_factor(torch.as_tensor(y, dtype=torch.float64), form)
    ref = [[ref_dissimilarity(s, t, form) for t in sets] for s in sets]
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-12)


def test_pair_counts_match_set_sizes(tricky_labels):
    y = tricky_labels(7)
    sets = as_sets(y)
    c = relations.pair_counts(torch.as_tensor(y))
    for i, s in enumerate(sets):
        for j, t in enumerate(sets):
            assert c.inter[i, j] == len(s & t)
            assert c.extra[i, j] == len(t - s)
            assert c.missing[i, j] == len(s - t)
            assert c.union[i, j] == len(s | t)


def test_relation_counts_leave_out_the_diagonal():
    y = labels_of({0}, {0}, {1})
    counts = relations.relation_counts(relations.relation_matrix(y))
    assert counts[Relation.IDENTICAL] == 2
    assert counts[Relation.DISJOINT] == 4
    assert sum(counts.values()) == 6
    assert (
        relations.relation_counts(relations.relation_matrix(y), include_diagonal=True)[
            Relation.IDENTICAL
        ]
        == 5
    )


# --- the worked example, exactly ---------------------------------------------------------------
WORKED = [
    # T,            relation,            K^s,            K^d,            w
    ({0, 1, 2}, Relation.IDENTICAL, Fraction(1), Fraction(1), Fraction(1)),
    ({0, 1}, Relation.SUBSET, Fraction(2, 3), Fraction(1), Fraction(2, 3)),
    ({0, 1, 2, 3}, Relation.SUPERSET, Fraction(1), Fraction(1, 2), Fraction(1, 2)),
    ({0, 3}, Relation.PARTIAL, Fraction(1, 3), Fraction(1, 2), Fraction(1, 6)),
    ({3, 4}, Relation.DISJOINT, Fraction(0), Fraction(1, 3), Fraction(0)),
]


def test_worked_example_table():
    anchor = {0, 1, 2}
    y = labels_of(anchor, *(row[0] for row in WORKED), classes=5)
    rel = relations.relation_matrix(y)[0, 1:]
    k_s = relations.similarity_factor(y)[0, 1:]
    k_d = relations.dissimilarity_factor(y)[0, 1:]
    w = relations.sd_weights(y)[0, 1:]
    for k, (_, r, ks, kd, weight) in enumerate(WORKED):
        assert Relation(int(rel[k])) is r
        assert k_s[k].item() == pytest.approx(float(ks), abs=1e-15)
        assert k_d[k].item() == pytest.approx(float(kd), abs=1e-15)
        assert w[k].item() == pytest.approx(float(weight), abs=1e-15)


# --- docs/method.md properties ----------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(label_sets, label_sets)
def test_weight_properties(s, t):
    y = labels_of(s, t)
    w = relations.sd_weights(y)[0, 1].item()
    k_s = relations.similarity_factor(y)[0, 1].item()
    k_d = relations.dissimilarity_factor(y)[0, 1].item()
    rel = Relation(int(relations.relation_matrix(y)[0, 1]))
    assert 0.0 <= w <= 1.0
    assert (w == 1.0) == (rel is Relation.IDENTICAL)
    if s:  # K^s of an empty anchor is 0 by convention; the "iff" is about real anchors
        assert (k_s == 1.0) == (s <= t)
    assert (k_d == 1.0) == (t <= s)
    if rel is Relation.DISJOINT:
        assert w == 0.0
    elif rel is Relation.SUBSET:
        assert w == pytest.approx(len(t) / len(s), abs=1e-12)
        assert w < 1.0
    elif rel is Relation.SUPERSET:
        assert w == pytest.approx(1.0 / (1 + len(t - s)), abs=1e-12)
        assert w <= 0.5
    elif rel is Relation.PARTIAL:
        assert w < 0.5
    # positives are exactly the pairs that share a label
    assert (w > 0) == bool(s & t)


@settings(max_examples=200, deadline=None)
@given(label_sets, label_sets)
def test_relation_is_asymmetric_only_between_subset_and_superset(s, t):
    rel = relations.relation_matrix(labels_of(s, t))
    forward, backward = Relation(int(rel[0, 1])), Relation(int(rel[1, 0]))
    mirror = {
        Relation.DISJOINT: Relation.DISJOINT,
        Relation.IDENTICAL: Relation.IDENTICAL,
        Relation.PARTIAL: Relation.PARTIAL,
        Relation.SUBSET: Relation.SUPERSET,
        Relation.SUPERSET: Relation.SUBSET,
    }
    assert backward is mirror[forward]


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 5),  # |S|
    st.integers(1, 5),  # |S n T| (clipped to |S|)
    st.integers(0, 4),  # |T \ S|
)
def test_weight_rises_with_overlap_and_falls_with_extra_labels(size, shared, extra):
    shared = min(shared, size)
    classes = size + extra + 1
    anchor = set(range(size))

    def weight(shared: int, extra: int) -> float:
        sample = set(range(shared)) | set(range(size, size + extra))
        return relations.sd_weights(labels_of(anchor, sample, classes=classes))[0, 1].item()

    base = weight(shared, extra)
    assert base == pytest.approx(shared / size / (1 + extra), abs=1e-12)
    assert weight(shared, extra + 1) < base
    if shared < size:
        assert weight(shared + 1, extra) > base


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=2, max_size=12))
def test_single_label_weights_are_zero_or_one(classes):
    y = torch.nn.functional.one_hot(torch.tensor(classes), 5)
    w = relations.sd_weights(y)
    same = torch.tensor(classes)[:, None] == torch.tensor(classes)[None, :]
    assert torch.equal(w, same.float())


def test_symmetric_weights_are_symmetric_and_keep_r1_r2(tricky_labels):
    y = torch.as_tensor(tricky_labels(4))
    w = relations.sd_weights(y, symmetric=True)
    torch.testing.assert_close(w, w.T)
    rel = relations.relation_matrix(y)
    off = ~torch.eye(len(y), dtype=torch.bool)
    assert (w[(rel == Relation.DISJOINT) & off] == 0).all()
    assert (w[(rel == Relation.IDENTICAL) & off] == 1).all()


def test_r4_for_anchor_is_r5_for_the_other_with_its_own_weight():
    y = labels_of({0, 1, 2}, {0, 1})
    rel, w = relations.relation_matrix(y), relations.sd_weights(y)
    assert rel[0, 1] == Relation.SUBSET and rel[1, 0] == Relation.SUPERSET
    assert w[0, 1].item() == pytest.approx(2 / 3) and w[1, 0].item() == pytest.approx(1 / 2)
    assert not math.isclose(w[0, 1].item(), w[1, 0].item())


# --- bad input ---------------------------------------------------------------------------------
def test_labels_must_be_two_dimensional():
    with pytest.raises(ValueError, match="labels must be a"):
        relations.sd_weights(torch.ones(4))


def test_labels_must_be_zero_or_one():
    with pytest.raises(ValueError, match="labels must hold only 0 and 1"):
        relations.relation_matrix(torch.tensor([[0, 2], [1, 0]]))
    with pytest.raises(ValueError, match="labels must hold only 0 and 1"):
        relations.sd_weights(torch.tensor([[0.5, 1.0]]))


def test_labels_need_columns():
    with pytest.raises(ValueError, match="labels has no label columns"):
        relations.pair_counts(torch.zeros(3, 0))


def test_other_must_have_same_columns():
    with pytest.raises(ValueError, match="other has 3 label columns"):
        relations.relation_matrix(torch.ones(2, 2), torch.ones(2, 3))


@pytest.mark.parametrize(
    ("option", "value"),
    [("similarity", "dice"), ("dissimilarity", "log"), ("components", "neither")],
)
def test_unknown_weight_option(option, value):
    with pytest.raises(ValueError, match=option):
        relations.sd_weights(torch.ones(2, 2), **{option: value})


# --- sparse label sets and block counts ----------------------------------------------------------
@pytest.mark.parametrize("mode", ["dense", "sparse", "auto"])
@pytest.mark.parametrize("weighted", [False, True])
def test_block_counts_match_set_intersections(tricky_labels, mode, weighted):
    labels = tricky_labels(seed=5, extra_rows=8, classes=7)
    sets = as_sets(labels)
    label_weights = torch.arange(1, 8, dtype=torch.float64) / 8 if weighted else None
    for form in (torch.as_tensor(labels), relations.SparseLabels.from_dense(labels)):
        counts = relations.BlockCounts(form, torch.float64, "cpu", label_weights, mode=mode)
        for start, stop in [(0, 5), (5, 17), (16, 17)]:
            block = counts.counts(start, stop)
            for i in range(start, stop):
                for j in range(len(sets)):
                    shared = sets[i] & sets[j]
                    expected = (
                        sum(float(label_weights[c]) for c in shared) if weighted else len(shared)
                    )
                    assert block.inter[i - start, j].item() == pytest.approx(expected, abs=1e-12)
                    if not weighted:  # the sizes count labels, unweighted
                        assert block.extra[i - start, j].item() == len(sets[j] - sets[i])


def test_sparse_labels_round_trip_and_sizes(tricky_labels):
    labels = tricky_labels(seed=1)
    sparse = relations.SparseLabels.from_lists([sorted(s) + sorted(s) for s in as_sets(labels)], 6)
    assert torch.equal(sparse.to_dense(torch.int64), torch.as_tensor(labels))  # repeats count once
    assert sparse.sizes().tolist() == [len(s) for s in as_sets(labels)]
    assert sparse.label_counts().tolist() == labels.sum(0).tolist()
    from_torch = relations.as_label_sets(torch.as_tensor(labels).to_sparse_csr())
    assert torch.equal(from_torch.indices, sparse.indices)
    assert torch.equal(from_torch.indptr, sparse.indptr)


def test_block_counts_unknown_mode():
    with pytest.raises(ValueError, match="mode must be one of"):
        relations.BlockCounts(torch.ones(2, 2), torch.float32, "cpu", mode="fast")
