"""The teaching playground: typed label sets, a seeded run on the sphere, and what the method predicts.

Expected values come from docs/method.md (the worked example's weights), from closed forms
(the equal-area map), and from constructed cases whose outcome the weights decide.
"""

from __future__ import annotations

import numpy as np
import pytest

from sdl import playground as pg
from sdl.relations import Relation


def test_worked_example_is_the_method_documents():
    sets = pg.worked_example(2)
    assert sets == [
        frozenset(s)
        for s in ((0, 1, 2),) * 2
        + ((0, 1),) * 2
        + ((0, 1, 2, 3),) * 2
        + ((0, 3),) * 2
        + ((3, 4),) * 2
    ]
    assert pg.parse_label_sets(pg.format_label_sets(sets)) == sets


def test_parse_label_sets_reads_the_typed_forms():
    text = "0,1,2\n\n {0, 3} \n3 4 x2\n-\n∅\n1×3"
    assert pg.parse_label_sets(text) == [
        frozenset({0, 1, 2}),
        frozenset({0, 3}),
        frozenset({3, 4}),
        frozenset({3, 4}),
        frozenset(),
        frozenset(),
        frozenset({1}),
        frozenset({1}),
        frozenset({1}),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,1\na,b", r"line 2: 'a,b' is not a label set"),
        ("0,1\n0,,1", r"line 2"),
        ("0,1\n0,25", r"uses label 25"),
        ("0,1", r"at least 2 items"),
        ("", r"at least 2 items"),
        ("-\n-", r"every item is empty"),
        ("0 x61", r"more than 60 items"),
        ("0,1\n2 x0", r"0 copies"),
    ],
)
def test_parse_label_sets_rejects_bad_text_with_one_clear_message(text, message):
    with pytest.raises(ValueError, match=message):
        pg.parse_label_sets(text)


def test_a_run_is_seeded_on_the_sphere_and_records_every_step():
    sets = pg.worked_example(2)
    a = pg.simulate(sets, "sdl", steps=12, seed=3)
    b = pg.simulate(sets, "sdl", steps=12, seed=3)
    c = pg.simulate(sets, "sdl", steps=12, seed=4)
    assert a.frames.shape == (13, 10, 3) and a.pulls.shape == (13, 10) and a.losses.shape == (13,)
    np.testing.assert_allclose(np.linalg.norm(a.frames, axis=2), 1.0, atol=1e-12)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.allclose(a.frames, c.frames)
    np.testing.assert_allclose(a.frames[0], pg.start_positions(10, 3), atol=1e-15)
    assert a.losses[-1] < a.losses[0]  # training lowers the loss


def test_weights_and_relations_follow_the_worked_example():
    run = pg.simulate(pg.worked_example(1), "sdl", steps=1)
    assert list(run.relations) == [2, 4, 5, 3, 1]
    np.testing.assert_allclose(run.weights, [0, 2 / 3, 1 / 2, 1 / 6, 0])


def test_mulsupcon_weights_are_on_the_identical_items_scale():
    # Anchor {0,1,2} with copies: MulSupCon's weight depends on S n T only, so the superset
    # {0,1,2,3} gets the same weight as an identical item (1), which SDL halves.
    run = pg.simulate(pg.worked_example(2), "mulsupcon", steps=1)
    superset = run.relations == int(Relation.SUPERSET)
    identical = (run.relations == int(Relation.IDENTICAL)) & (np.arange(10) != 0)
    np.testing.assert_allclose(run.weights[superset], 1.0)
    np.testing.assert_allclose(run.weights[identical], 1.0)


def test_pulls_are_the_logit_gradient_closed_form():
    # d L_i / d logit(i, a) = (W_i softmax_i(a) - w(i, a)) / n_i, written out by hand for step 0.
    sets = pg.worked_example(1)
    run = pg.simulate(sets, "sdl", steps=1, temperature=0.5)
    z = run.frames[0]
    logits = z[0] @ z.T / 0.5
    logits[0] = -np.inf
    soft = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    w = np.array([0, 2 / 3, 1 / 2, 1 / 6, 0])
    expected = (w.sum() * soft - w) / (w > 0).sum()
    np.testing.assert_allclose(run.pulls[0], expected, atol=1e-12)
    assert (run.pulls[0][w > 0] < 0).any() and run.pulls[0][4] > 0  # positives pulled, R1 pushed


@pytest.fixture(scope="module")
def trained():
    return pg.compare(pg.worked_example(3), ("sdl", "mulsupcon"), steps=150, seed=0)


def test_under_sdl_the_final_cosines_follow_the_weights(trained):
    cos = pg.relation_cosines(trained["sdl"])
    # w: R2 1 > R4 2/3 > R5 1/2 > R3 1/6 > R1 0
    order = [
        Relation.IDENTICAL,
        Relation.SUBSET,
        Relation.SUPERSET,
        Relation.PARTIAL,
        Relation.DISJOINT,
    ]
    values = [cos[r] for r in order]
    assert values == sorted(values, reverse=True), cos


def test_a_superset_ends_farther_from_the_anchor_under_sdl_than_under_mulsupcon(trained):
    sdl = pg.relation_cosines(trained["sdl"])
    mulsupcon = pg.relation_cosines(trained["mulsupcon"])
    assert sdl[Relation.SUPERSET] < mulsupcon[Relation.SUPERSET] - 0.02
    # MulSupCon cannot tell R5 from R2 (both share all of S): its superset sits as close as a subset
    assert mulsupcon[Relation.SUPERSET] > mulsupcon[Relation.SUBSET] - 0.02


def test_both_losses_start_from_the_same_positions(trained):
    np.testing.assert_array_equal(trained["sdl"].frames[0], trained["mulsupcon"].frames[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": "supcon"}, "loss must be one of"),
        ({"loss": "nope"}, "loss must be one of"),
        ({"anchor": 10}, "anchor must be an item from 0 to 9"),
        ({"anchor": 1.5}, "anchor must be an item index"),
        ({"steps": 0}, "steps must be an integer"),
        ({"lr": 0.0}, "lr must be"),
        ({"temperature": -1.0}, "temperature must be"),
    ],
)
def test_simulate_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pg.simulate(pg.worked_example(2), **kwargs)


def test_an_empty_anchor_is_refused():
    with pytest.raises(ValueError, match="anchor 1 has no labels"):
        pg.simulate([frozenset({0}), frozenset(), frozenset({0})], anchor=1)


def test_anchor_map_is_equal_area_around_the_centre():
    rng = np.random.default_rng(0)
    centre = rng.normal(size=3)
    centre /= np.linalg.norm(centre)
    points = rng.normal(size=(200, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    flat = pg.anchor_map(points, centre)
    np.testing.assert_allclose(pg.anchor_map(centre, centre), [0, 0], atol=1e-12)
    # distance from the map's centre = chord distance to the centre on the sphere
    np.testing.assert_allclose(
        np.linalg.norm(flat, axis=1), np.linalg.norm(points - centre, axis=1), atol=1e-9
    )
    # Lambert's map keeps area: a uniform sphere gives uniform density in the disc of radius 2,
    # so the share of points within radius r is (r / 2)^2.
    many = rng.normal(size=(20000, 3))
    many /= np.linalg.norm(many, axis=1, keepdims=True)
    radius = np.linalg.norm(pg.anchor_map(many, centre), axis=1)
    assert abs((radius < 1).mean() - 0.25) < 0.02
    # The pole itself and its antipode do not break the rotation.
    np.testing.assert_allclose(pg.anchor_map(np.array([0, 0, 1.0]), np.array([0, 0, 1.0])), [0, 0])
    np.testing.assert_allclose(
        pg.anchor_map(np.array([1.0, 0, 0]), np.array([0, 0, -1.0])), [np.sqrt(2), 0], atol=1e-12
    )
