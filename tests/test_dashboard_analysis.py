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


# --- honest grouping: data and trained settings ---------------------------------------------------
def _config(**changes) -> dict:
    config = {"dataset": "digits-mosaic", "dataset_options": {}, "loss": "sdl",
              "loss_options": {}, "epochs": 3, "seed": 0, "lr": 1e-3}  # fmt: skip
    return {**config, **changes}


def test_runs_on_different_data_are_never_one_group():
    # the defect: a digits-mosaic and an mnist-mosaic sdl run became "sdl, 2 runs"
    configs = [_config(), _config(dataset="mnist-mosaic", seed=1)]
    groups = analysis.comparison_groups(configs)
    assert groups[0][0] != groups[1][0]
    assert groups[0] == ("digits-mosaic", "sdl") and groups[1] == ("mnist-mosaic", "sdl")


def test_seeds_pool_but_any_other_differing_setting_splits_and_is_named():
    configs = [_config(), _config(seed=1), _config(epochs=6), _config(loss="all")]
    groups = analysis.comparison_groups(configs)
    assert groups[0] == groups[1] == ("digits-mosaic", "sdl · epochs=3")
    assert groups[2] == ("digits-mosaic", "sdl · epochs=6")
    assert groups[3] == ("digits-mosaic", "all · epochs=3")
    options = [_config(), _config(loss_options={"symmetric": True})]
    assert [g[1] for g in analysis.comparison_groups(options)] == ["sdl", "sdl (symmetric=True)"]


def test_metrics_summary_interval_is_the_t_interval():
    rows = [("sdl", {"mAP": v}) for v in (1.0, 2.0, 3.0)]
    table, _ = analysis.metrics_summary(rows)
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, 2 dof) * std 1 / sqrt(3)
    assert table.loc["sdl", ("mAP", "ci_low")] == pytest.approx(2.0 - half)
    assert table.loc["sdl", ("mAP", "ci_high")] == pytest.approx(2.0 + half)
    shown = analysis.display_metrics_table(table, {})
    assert shown.loc["sdl", "mAP"] == f"2.000 [{2 - half:.3f}, {2 + half:.3f}]"


def test_space_metrics_reads_one_space_and_old_runs_as_the_encoder():
    new = {"mAP": 0.5, "encoder": {"mAP": 0.5}, "head": {"mAP": 0.7}}
    old = {"mAP": 0.4}
    assert analysis.space_metrics(new, "head") == {"mAP": 0.7}
    assert analysis.space_metrics(new, "encoder") == {"mAP": 0.5}
    assert analysis.space_metrics(old, "encoder") == {"mAP": 0.4}
    assert analysis.space_metrics(old, "head") is None


def test_relation_auc_table_over_seeds():
    rows = [("sdl", {"relation_auc": {"R2>R5": a, "positive>R1": 0.9}}) for a in (0.6, 0.8)]
    rows.append(("all", {"relation_auc": {"R2>R5": 0.5}}))
    table = analysis.relation_auc_table(rows)
    sdl = table[(table["loss"] == "sdl") & (table["relation"] == "R2>R5")].iloc[0]
    assert sdl["mean"] == pytest.approx(0.7) and sdl["n"] == 2
    assert sdl["ci_low"] < 0.7 < sdl["ci_high"]
    assert set(table["relation"]) == {"R2>R5", "positive>R1"}


def test_card_metrics_names_head_map_knn_and_r2_r5():
    metrics = {
        "mAP": 0.1,
        "head": {"mAP": 0.8123, "knn_jaccard@10": 0.5, "relation_auc": {"R2>R5": 0.66}},
    }
    assert analysis.card_metrics(metrics) == "head mAP 0.812 · kNN-J@10 0.500 · R2>R5 AUC 0.660"
    assert analysis.card_metrics({"mAP": 0.3}) == "encoder mAP 0.300"


def test_an_unknown_loss_is_grouped_under_its_own_name():
    groups = analysis.comparison_groups([_config(loss="gone", loss_options={"x": 1}), _config()])
    assert [g[1] for g in groups] == ["gone (x=1)", "sdl"]


def test_how_the_probe_ran_is_no_metric_to_win():
    # metrics.json records the probe's bookkeeping beside its scores; more labels evaluated or
    # more L-BFGS steps is not "better", so no loss gets a star for them
    rows = [
        ("sdl", {"head": {"mAP": 0.5, "probe_labels": 14, "probe_iterations": 40}}),
        ("all", {"head": {"mAP": 0.4, "probe_labels": 13, "probe_iterations": 90}}),
    ]
    flat = [(name, analysis.space_metrics(m, "head")) for name, m in rows]
    _table, best = analysis.metrics_summary(flat)
    assert best == {"mAP": "sdl"}
    for key in ("probe_labels", "probe_iterations", "probe_converged"):
        assert analysis.metric_direction(key) is None
