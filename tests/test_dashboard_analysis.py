"""dashboard.analysis: label sets as text and the metric tables the pages draw."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard import analysis
from sdl.explain import random_label_sets


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
    labels = random_label_sets(120, 5, 2.0, seed=0)
    embeddings = labels @ rng.normal(size=(5, 8)) + 0.1 * rng.normal(size=(120, 8))
    stats = analysis.relation_box_stats(
        [(embeddings, labels), (embeddings, labels)], max_anchors=50
    )
    assert set(stats["relation"]) <= {"R1", "R2", "R3", "R4", "R5"}
    assert (stats["q1"] <= stats["median"]).all() and (stats["median"] <= stats["q3"]).all()
    assert (stats["lower"] <= stats["q1"]).all() and (stats["upper"] >= stats["q3"]).all()
    by = stats.set_index("relation")["median"]
    assert by["R2"] > by["R1"]
