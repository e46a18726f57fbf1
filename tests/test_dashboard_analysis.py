"""dashboard.analysis: the tables the pages draw, checked against the method's worked example."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dashboard import analysis
from dashboard.analysis import SdlOptions

# docs/method.md's worked example: anchor {0,1,2} against R2, R4, R5, R3, R1 samples
WORKED = ["0,1,2", "0,1,2", "0,1", "0,1,2,3", "0,3", "3,4"]


def worked_labels() -> np.ndarray:
    labels, problems = analysis.parse_label_sets(WORKED)
    assert not problems
    return labels


def test_parse_and_format_round_trip():
    labels, problems = analysis.parse_label_sets(["0,2", " 1 3 ", "", None, "-", "2;4"])
    assert problems == []
    assert labels.shape == (4, 5)
    assert [analysis.format_label_set(r) for r in labels] == ["0,2", "1,3", "∅", "2,4"]
    assert analysis.format_label_set(labels[0], ["a", "b", "c", "d", "e"]) == "a,c"


@pytest.mark.parametrize(
    ("text", "match"), [("x,1", "not a list"), ("99", "between"), ("-3", "between")]
)
def test_parse_reports_bad_rows(text, match):
    labels, problems = analysis.parse_label_sets(["0,1", text])
    assert len(labels) == 1
    assert len(problems) == 1 and match in problems[0]


def test_parse_caps_the_batch():
    labels, problems = analysis.parse_label_sets(["0"] * (analysis.MAX_BATCH + 5))
    assert len(labels) == analysis.MAX_BATCH and problems


def test_random_label_sets():
    labels = analysis.random_label_sets(200, 8, 2.5, seed=3)
    assert labels.shape == (200, 8) and labels.dtype == np.uint8
    assert labels.sum(1).min() >= 1
    assert 2.0 < labels.sum(1).mean() < 3.0
    np.testing.assert_array_equal(labels, analysis.random_label_sets(200, 8, 2.5, seed=3))
    for bad in [(0, 8, 2), (600, 8, 2), (10, 8, 9)]:
        with pytest.raises(ValueError):
            analysis.random_label_sets(*bad)


def test_anchor_pairs_match_the_worked_example():
    table = analysis.anchor_pairs(worked_labels(), 0)
    assert table["relation"].tolist() == ["R2", "R4", "R5", "R3", "R1"]
    np.testing.assert_allclose(table["w"], [1, 2 / 3, 1 / 2, 1 / 6, 0], atol=1e-6)
    np.testing.assert_allclose(table["K^s"], [1, 2 / 3, 1, 1 / 3, 0], atol=1e-6)


def test_batch_relations_follow_the_variant():
    labels = worked_labels()
    base = analysis.batch_relations(labels)
    assert sum(base.counts.values()) == len(labels) * (len(labels) - 1)
    ratio = analysis.batch_relations(labels, SdlOptions(dissimilarity="ratio"))
    assert ratio.k_d[0, 3] == pytest.approx(3 / 4)  # |S n T| / |T| for {0,1,2,3}
    sym = analysis.batch_relations(labels, SdlOptions(symmetric=True))
    np.testing.assert_allclose(sym.weight, sym.weight.T, atol=1e-6)


def test_weights_by_relation_show_the_r2_r5_gap():
    table = analysis.weights_by_relation(worked_labels(), anchor=0)
    weight = {(r.loss, r.relation): r.weight for r in table.itertuples()}
    assert weight[("sdl", "R2")] == pytest.approx(1) and weight[("sdl", "R5")] == pytest.approx(0.5)
    # MulSupCon counts only the shared labels: a superset pulls like an identical sample
    assert weight[("mulsupcon", "R2")] == pytest.approx(1)
    assert weight[("mulsupcon", "R5")] == pytest.approx(1)
    assert weight[("all", "R5")] == 0 and weight[("any", "R5")] == 1
    assert all(weight[(loss, "R1")] == 0 for loss in analysis.COMPARED_LOSSES)
    batch = analysis.weights_by_relation(worked_labels())
    assert set(batch["loss"]) == set(analysis.COMPARED_LOSSES)
    assert (batch["pairs"] > 0).all()


def test_comparable_weights_are_at_most_one():
    labels = analysis.random_label_sets(64, 6, 2.5, seed=0)
    for loss in analysis.COMPARED_LOSSES:
        weights = analysis.comparable_weights(labels, loss)
        assert weights.shape == (64, 64)
        assert weights.min() >= 0 and weights.max() <= 1 + 1e-6
        assert np.all(np.diag(weights) == 0)


def test_anchor_loss_terms_are_fast_and_consistent():
    rng = np.random.default_rng(0)
    labels = analysis.random_label_sets(256, 10, 2.5, seed=1)
    embeddings = rng.normal(size=(256, 64)).astype(np.float32)
    start = time.perf_counter()
    table, summary = analysis.anchor_loss_terms(embeddings, labels, 5, "sdl", 0.1)
    assert time.perf_counter() - start < 1.0
    assert len(table) == 255
    assert table["term"].sum() == pytest.approx(summary["anchor_loss"], rel=1e-4)
    # disjoint samples only push (gradient > 0); weighted positives can pull
    assert (table.loc[table["relation"] == "R1", "gradient"] >= 0).all()
    for loss in analysis.COMPARED_LOSSES:
        analysis.anchor_loss_terms(embeddings[:32], labels[:32], 0, loss, 0.2)


def test_metrics_summary_marks_the_best():
    rows = [
        ("sdl", {"mAP": 0.9, "loss": 1.0, "relation_profile": {"R1": 0.1}}),
        ("sdl", {"mAP": 0.8, "loss": 1.2, "relation_profile": {"R1": 0.3}}),
        ("all", {"mAP": 0.7, "loss": 0.5, "note": "text", "ok": True}),
    ]
    table, best = analysis.metrics_summary(rows)
    assert table.loc["sdl", ("mAP", "mean")] == pytest.approx(0.85)
    # sample standard deviation of (0.9, 0.8), the same as summary.csv
    assert table.loc["sdl", ("mAP", "std")] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    assert best == {"mAP": "sdl", "loss": "all"}
    shown = analysis.display_metrics_table(table, best)
    assert shown.loc["sdl", "mAP"].startswith("★")
    assert shown.loc["sdl", "runs"] == 2
    assert shown.loc["all", "relation_profile.R1"] == ""
    assert shown.loc["all", "mAP"] == "0.700"  # one run: no spread to show
    assert analysis.metrics_summary([])[0].empty


def test_relation_box_stats():
    rng = np.random.default_rng(0)
    labels = analysis.random_label_sets(120, 5, 2.0, seed=0)
    embeddings = labels @ rng.normal(size=(5, 8)) + 0.1 * rng.normal(size=(120, 8))
    stats = analysis.relation_box_stats(
        [(embeddings, labels), (embeddings, labels)], max_anchors=50
    )
    assert set(stats["relation"]) <= {"R1", "R2", "R3", "R4", "R5"}
    assert (stats["q1"] <= stats["median"]).all() and (stats["median"] <= stats["q3"]).all()
    assert (stats["lower"] <= stats["q1"]).all() and (stats["upper"] >= stats["q3"]).all()
    by = stats.set_index("relation")["median"]
    assert by["R2"] > by["R1"]
