"""Every dashboard page, headless (streamlit.testing AppTest): drive the main widgets, check the output.

With plotly 7 the figure data is binary-encoded, so the checks look at layouts and trace counts.
The demo folder is a set of synthetic runs with their projection caches precomputed (a stand-in
for UMAP), and the runs folder holds good, broken, failed and orphaned runs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import jobs
from sdl import explain, projection
from sdl.evaluate import seeded_subset
from sdl.losses import compared_losses, loss_label
from sdl.runs import EMBEDDINGS, read_embeddings, write_status
from tests.plotly_spec import plotly_values
from tests.run_fixtures import write_sample_run, write_sample_runs
from tests.space_map_view import map_args

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def fake_umap(x, params=None):
    return np.asarray(x, np.float32)[:, :2]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    demo = tmp_path_factory.mktemp("demo")
    write_sample_runs(demo, losses=("sdl", "all", "mulsupcon"), seeds=(0, 1), n=120)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(projection, "umap_2d", fake_umap)
        # both spaces' maps shipped with the demo, as `make demo` does
        projection.project_runs(demo)
    runs = tmp_path_factory.mktemp("runs")
    write_sample_run(runs / "mine-sdl", "sdl", seed=5, n=80, texts=True)
    (runs / "broken").mkdir()
    (runs / "broken" / "config.json").write_text("{not json")
    bad = write_sample_run(runs / "bad-embeddings", "any", n=40)
    (bad / EMBEDDINGS).write_bytes(b"half a file")
    (bad / "history.csv").write_text("nonsense\n1,2,3\n")
    write_status(runs / "crashed", "failed", epoch=1, epochs=5, error="Traceback\nValueError: boom")
    (runs / "crashed" / "config.json").write_text(json.dumps({"loss": "sdl", "dataset": "x"}))
    write_status(runs / "orphan", "running", epoch=2, epochs=5, pid=2**22 + 4321)
    (runs / "orphan" / "config.json").write_text(json.dumps({"loss": "all", "dataset": "x"}))
    return demo, runs


@pytest.fixture
def dashboard_env(folders, monkeypatch):
    """The app reads this module's demo, may open its runs folder, and caches maps beside it."""
    demo, runs = folders
    monkeypatch.setenv("SDL_DASHBOARD_DEMO", str(demo))
    monkeypatch.setenv("SDL_DASHBOARD_ROOTS", str(runs.parent))
    monkeypatch.setenv(projection.CACHE_ENV, str(runs.parent / "cache"))
    return folders


def open_link(params: dict[str, str]) -> AppTest:
    """The app opened from a link whose query string carries ``params``, after its first run."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


@pytest.fixture
def app(dashboard_env):
    _demo, runs = dashboard_env
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="runs_dir").set_value(str(runs)).run()
    return at


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def charts(at: AppTest) -> dict[str, dict]:
    """Plotly charts on the page by key, as their JSON spec."""
    out = {}
    for chart in at.get("plotly_chart"):
        key = chart.proto.id.rsplit("-", 1)[-1]
        out[key] = json.loads(chart.proto.spec)
    return out


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += (
        [e.value for e in at.error] + [w.value for w in at.warning] + [i.value for i in at.info]
    )
    return "\n".join(parts)


# --- Relations --------------------------------------------------------------------------------


def test_relations_page_opens_on_a_demo_run(app):
    no_exceptions(app)
    shown = charts(app)
    assert {"rel_matrix", "rel_counts", "rel_weights", "rel_terms_fig"} <= set(shown)
    matrix = shown["rel_matrix"]["data"][0]
    assert matrix["type"] == "heatmap" and matrix["colorbar"]["ticktext"][0] == "R1 disjoint"
    weights = shown["rel_weights"]
    assert len(weights["data"]) == 5  # one bar trace per compared loss
    assert {t["name"] for t in weights["data"]} == {"sdl", "all", "any", "jaccard", "mulsupcon"}
    assert len(app.metric) == 3
    assert "R5" in texts(app)


def test_relations_variants_and_scope(app):
    app.toggle(key="rel_opt_sdl_symmetric").set_value(True).run()
    app.radio(key="rel_opt_sdl_dissimilarity").set_value("ratio").run()
    app.radio(key="rel_scope").set_value("the whole batch").run()
    no_exceptions(app)
    assert "whole batch" in charts(app)["rel_weights"]["layout"]["title"]["text"]
    app.selectbox(key="rel_terms_loss").set_value("mulsupcon").run()
    no_exceptions(app)


def test_relations_generated_batch(app):
    app.radio(key="rel_source").set_value("Generate").run()
    app.slider(key="rel_gen_batch").set_value(256).run()
    app.slider(key="rel_gen_classes").set_value(12).run()
    no_exceptions(app)
    shown = charts(app)
    assert "rel_terms_fig" not in shown and "rel_matrix" in shown
    assert "256 items" in texts(app)
    anchor = next(n for n in app.number_input if n.key and n.key.startswith("rel_anchor"))
    anchor.set_value(17).run()
    no_exceptions(app)
    assert "Anchor 17" in "\n".join(s.value for s in app.subheader)


def test_relations_typed_batch(app):
    app.radio(key="rel_source").set_value("Type").run()
    no_exceptions(app)
    assert "typed" in texts(app)
    pairs = next(d.value for d in app.dataframe if "relation" in d.value.columns)
    assert set(pairs["relation"]) == {"R1", "R2", "R3", "R4", "R5"}
    items = next(d.value for d in app.dataframe if "item" in d.value.columns)
    assert list(items["item"]) == list(range(10))  # the ten example sets, numbered
    assert items["label set"].iloc[3] == "0,1,2,3"


def test_relations_caption_names_a_variant_not_its_default_summary(app):
    from sdl.losses import loss_class

    caption = "\n".join(c.value for c in app.caption)
    assert loss_class("sdl").summary in caption  # default options: the registry's summary
    app.toggle(key="rel_opt_sdl_symmetric").set_value(True).run()
    no_exceptions(app)
    caption = "\n".join(c.value for c in app.caption)
    assert loss_class("sdl").summary not in caption
    assert "sdl (symmetric=True)**: a variant" in caption
    assert app.query_params["sdl.symmetric"] in ("True", ["True"])


def test_relations_reopen_from_the_url(dashboard_env):
    at = open_link(
        {"source": "Type", "anchor": "3", "sdl.symmetric": "True", "sdl.dissimilarity": "bogus"}
    )
    no_exceptions(at)
    assert at.radio(key="rel_source").value == "Type"
    assert "Anchor 3" in "\n".join(s.value for s in at.subheader)
    assert at.toggle(key="rel_opt_sdl_symmetric").value is True
    assert "bogus" in texts(at) and "ignored" in texts(at)


def test_relations_dataset_batch(app):
    app.radio(key="rel_source").set_value("A dataset").run()
    app.selectbox(key="rel_dataset").set_value("digits-mosaic").run()
    no_exceptions(app)
    assert "test items of digits-mosaic" in texts(app)
    assert len(app.get("image")) == 1  # the anchor's thumbnail


def test_relations_nested_mosaic_preset_shows_more_subset_and_superset_pairs(app):
    app.radio(key="rel_source").set_value("A dataset").run()
    app.selectbox(key="rel_dataset").set_value("digits-mosaic").run()
    app.slider(key="rel_data_batch").set_value(128).run()
    counted = {}
    for preset in ("default", "nested"):
        app.selectbox(key="rel_data_preset").set_value(preset).run()
        no_exceptions(app)
        bars = charts(app)["rel_counts"]["data"][0]
        # horizontal bars: pair counts on x, "R4 subset" and so on on y
        counted[preset] = {y.split()[0]: x for x, y in zip(bars["x"], bars["y"], strict=True)}
        assert f"preset={preset}" in texts(app)  # the batch says which preset drew it
    for relation in ("R4", "R5"):
        assert counted["nested"][relation] > 1.5 * counted["default"][relation]


def test_relations_text_run(app):
    app.selectbox(key="rel_run").set_value("runs/mine-sdl").run()
    no_exceptions(app)
    assert "rel_terms_fig" in charts(app)  # a text run works too


def page_batch(app, folders) -> tuple[np.ndarray, np.ndarray]:
    """The labels and embeddings of the batch the Relations page drew from a demo run."""
    demo, _ = folders
    key = app.selectbox(key="rel_run").value
    arrays = read_embeddings(demo / key.split("/", 1)[1])
    rows = seeded_subset(len(arrays["labels"]), app.slider(key="rel_run_batch").value, 0)
    return arrays["labels"][rows].astype(np.uint8), arrays["embeddings"][rows]


def test_relations_anchor_rows_equal_a_full_recomputation(app, folders):
    """After anchor and variant changes (the batch's matrices come from the caches), every number
    about the anchor equals sdl.explain recomputed from scratch on the page's batch."""
    labels, embeddings = page_batch(app, folders)
    # the anchor with the most labels: its symmetric weights differ from the default ones
    first, anchor = np.argsort(labels.sum(1), kind="stable")[[-2, -1]].tolist()
    options = {"sdl": {"symmetric": True}}
    changed = explain.anchor_pairs(labels, anchor, options["sdl"])
    assert not np.allclose(changed["w"], explain.anchor_pairs(labels, anchor)["w"])

    def anchor_input():
        return next(n for n in app.number_input if n.key and n.key.startswith("rel_anchor"))

    anchor_input().set_value(first).run()
    app.toggle(key="rel_opt_sdl_symmetric").set_value(True).run()
    anchor_input().set_value(anchor).run()
    app.selectbox(key="rel_terms_loss").set_value("sdl").run()
    no_exceptions(app)
    assert f"Anchor {anchor}" in "\n".join(s.value for s in app.subheader)

    pairs = next(d.value for d in app.dataframe if "K^s" in d.value.columns)
    assert pairs["sample"].tolist() == changed["sample"].tolist()
    assert pairs["relation"].tolist() == changed["relation"].tolist()
    for column in ("K^s", "K^d", "w"):
        np.testing.assert_allclose(pairs[column], changed[column], atol=1e-6, err_msg=column)

    weights = explain.weights_by_relation(labels, anchor, compared_losses(), options)
    bars = {t["name"]: t for t in charts(app)["rel_weights"]["data"]}
    for loss, rows in weights.groupby("loss"):
        bar = bars[loss_label(loss, options.get(loss))]
        assert plotly_values(bar["x"]) == rows["relation"].tolist()
        np.testing.assert_allclose(plotly_values(bar["y"]), rows["weight"], atol=1e-6)

    tau = app.number_input(key="rel_tau").value
    table, summary = explain.anchor_loss_terms(
        embeddings, labels, anchor, "sdl", tau, options["sdl"]
    )
    shown = next(d.value for d in app.dataframe if "gradient" in d.value.columns)
    expected = table.sort_values("gradient")
    assert shown["sample"].tolist() == expected["sample"].tolist()
    for column in ("cosine", "weight", "term", "gradient"):
        np.testing.assert_allclose(shown[column], expected[column], atol=1e-6, err_msg=column)
    assert app.metric[0].value == f"{summary['anchor_loss']:.3f}"
    assert app.metric[1].value == f"{summary['loss']:.3f}"


# --- Training ---------------------------------------------------------------------------------


def test_training_page_shows_every_state(app):
    app.switch_page("views/training.py").run()
    no_exceptions(app)
    shown = texts(app)
    assert "boom" in shown  # the failed run's error
    assert "Stopped" in shown  # the orphan whose process is gone
    assert len(app.button) == 0 or all(
        b.key is None or not b.key.startswith("cancel_") for b in app.button
    )


def test_training_cards_of_finished_runs_show_their_metrics(app):
    app.switch_page("views/training.py").run()
    no_exceptions(app)
    shown = texts(app)
    assert "head mAP" in shown and "kNN-J@10" in shown and "R2>R5 AUC" in shown


def test_training_start_and_cancel(app, folders, monkeypatch):
    _, runs = folders
    script = (
        f"import sys, time, os; sys.path.insert(0, {str(Path(APP).parents[1])!r});"
        "from sdl.runs import write_status;"
        "write_status(sys.argv[1], 'running', epoch=1, epochs=4, pid=os.getpid());"
        "time.sleep(60)"
    )
    monkeypatch.setattr(
        jobs, "trainer_command", lambda config: [sys.executable, "-c", script, config.out]
    )
    app.switch_page("views/training.py").run()
    app.text_input(key="train_name").set_value("ui-job")
    start = next(b for b in app.button if b.label == "Start training")
    start.click().run()
    no_exceptions(app)
    assert "Started" in "\n".join(s.value for s in app.success)
    deadline = time.time() + 20
    while jobs.view(runs, "ui-job").state != "running" and time.time() < deadline:
        time.sleep(0.2)
    app.run()
    cancel = [b for b in app.button if b.key == "cancel_ui-job"]
    assert cancel, (jobs.view(runs, "ui-job"), [b.key for b in app.button], texts(app))
    cancel[0].click().run()
    no_exceptions(app)
    assert jobs.view(runs, "ui-job").state == "cancelled"
    app.run()
    assert "Cancelled by you" in texts(app)


def test_training_draws_a_loss_options_from_the_registry(app, folders, monkeypatch):
    """The loss's options, each through ui.option_input: types, bounds and defaults declared once,
    and what the form starts is parsed from them."""
    started = []
    monkeypatch.setattr(jobs, "start", lambda root, name, config: started.append(config) or root)
    app.switch_page("views/training.py").run()
    app.selectbox(key="train_loss").set_value("jaccard").run()
    threshold = app.number_input(key="train_opt_jaccard_threshold")
    assert threshold.value == 0.0 and 0.999 < threshold.max < 1.0  # [0, 1): open at 1
    assert app.selectbox(key="train_opt_jaccard_normalize").options == ["count", "weight"]
    assert app.text_input(key="train_opt_jaccard_chunk_size").value == "none"
    threshold.set_value(0.4)
    app.text_input(key="train_opt_jaccard_chunk_size").set_value("32")
    next(b for b in app.button if b.label == "Start training").click().run()
    no_exceptions(app)
    assert started[0].loss_options == {"threshold": 0.4, "chunk_size": 32}


def test_training_refuses_a_bad_runs_folder(app):
    app.text_input(key="runs_dir").set_value("../../etc").run()
    app.switch_page("views/training.py").run()
    no_exceptions(app)
    assert "not allowed" in texts(app)


# --- Space ------------------------------------------------------------------------------------


def test_space_page_maps_runs_side_by_side(app):
    app.switch_page("views/space.py").run()
    no_exceptions(app)
    drawn = map_args(app)
    assert len(drawn["panels"]) == 3  # three runs, three panels
    assert all(p["anchor"] is not None for p in drawn["panels"])  # the anchor is in each run
    assert any(c["name"].startswith("R2") for c in drawn["categories"])
    assert len(app.get("image")) >= 1  # the anchor and its neighbours
    assert "space_shares" in charts(app)


def test_space_colour_modes_and_anchor(app):
    app.switch_page("views/space.py").run()
    app.radio(key="space_colour").set_value("a label").run()
    no_exceptions(app)
    assert {c["name"] for c in map_args(app)["categories"]} == {"has c0", "no c0"}
    app.radio(key="space_colour").set_value("number of labels").run()
    app.number_input(key="space_anchor_item").set_value(7).run()
    app.slider(key="space_k").set_value(4).run()
    no_exceptions(app)
    app.multiselect(key="space_runs").set_value(["demo/sdl-s0"]).run()
    no_exceptions(app)
    assert len(map_args(app)["panels"]) == 1


def test_space_with_a_broken_run_keeps_the_others(app):
    app.switch_page("views/space.py").run()
    app.multiselect(key="space_runs").set_value(["demo/sdl-s0", "runs/bad-embeddings"]).run()
    no_exceptions(app)
    assert "cannot read embeddings" in texts(app)
    assert [p["run"] for p in map_args(app)["panels"]] == ["demo/sdl-s0"]


# --- Compare ----------------------------------------------------------------------------------


def test_compare_page(app):
    app.switch_page("views/compare.py").run()
    no_exceptions(app)
    shown = charts(app)
    assert {"cmp_curves", "cmp_auc"} <= set(shown)
    assert "cmp_profile" not in shown  # R4 = R5 by construction: no cosine box plot
    auc = shown["cmp_auc"]
    assert {t["name"] for t in auc["data"]} >= {"sdl", "all", "mulsupcon"}
    assert "head" in auc["layout"]["title"]["text"]  # the default space is named
    chance = [s for s in auc["layout"]["shapes"] if s["y0"] == s["y1"] == 0.5]
    assert chance and chance[0]["xref"] == "x domain"  # the 0.5 line spans the plot: chance
    assert "chance" in [a["text"] for a in auc["layout"]["annotations"]]
    surface = next(v for k, v in shown.items() if k.startswith("cmp_sd_"))  # one chart
    assert {t["type"] for t in surface["data"]} == {"heatmap"}
    assert len(surface["data"]) >= 3  # one SD surface per loss
    y_axes = [v for k, v in surface["layout"].items() if k.startswith("yaxis")]
    assert len(y_axes) == len(surface["data"])  # no empty panel
    assert all(a["autorange"] == "reversed" for a in y_axes)  # (0 extra, 0 missing) top left
    table = app.dataframe[0].value
    assert "★" in "".join(table["mAP"].astype(str))
    assert table.loc["sdl", "runs"] == 3  # two demo seeds and runs/mine-sdl, all on synthetic
    warnings = "\n".join(w.value for w in app.warning)
    assert "broken" in warnings and "history.csv is corrupt" in warnings
    assert len(app.get("download_button")) >= 3


def test_compare_never_pools_other_data_or_settings(app, tmp_path_factory):
    other = tmp_path_factory.mktemp("mixed")
    for name, changes in (("mnist", {"dataset": "mnist-mosaic"}), ("long", {"epochs": 9})):
        path = write_sample_run(other / name, "sdl", seed=3, n=80)
        config = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**config, **changes}))
    app.switch_page("views/compare.py").run()
    app.text_input(key="runs_dir").set_value(str(other)).run()  # on the page: its runs change
    no_exceptions(app)
    tables = [d.value for d in app.dataframe if "mAP" in d.value.columns]
    by_index = {tuple(t.index): t for t in tables}
    synthetic = next(t for t in tables if "sdl · epochs=9" in t.index)
    assert synthetic.loc["sdl · epochs=5", "runs"] == 2  # the demo's seeds, not the 9-epoch run
    assert synthetic.loc["sdl · epochs=9", "runs"] == 1
    assert ("sdl",) in by_index and by_index[("sdl",)].loc["sdl", "runs"] == 1  # mnist-mosaic alone
    shown = texts(app) + "\n".join(s.value for s in app.subheader)
    assert "mnist-mosaic" in shown and "epochs" in shown


def test_compare_space_choice_and_url(app):
    app.switch_page("views/compare.py").run()
    assert app.radio(key="cmp_space").value == "head"
    head_map = app.dataframe[0].value.loc["sdl", "mAP"]
    app.radio(key="cmp_space").set_value("encoder").run()
    no_exceptions(app)
    assert app.dataframe[0].value.loc["sdl", "mAP"] != head_map
    assert app.query_params["space"] in ("encoder", ["encoder"])
    assert "encoder" in charts(app)["cmp_auc"]["layout"]["title"]["text"]


def test_compare_reopens_from_the_url_and_ignores_bad_values(dashboard_env):
    at = open_link({"page": "compare", "space": "encoder"})
    no_exceptions(at)
    assert at.radio(key="cmp_space").value == "encoder"
    bad = open_link({"page": "compare", "space": "nowhere"})
    no_exceptions(bad)
    assert bad.radio(key="cmp_space").value == "head"
    assert "nowhere" in texts(bad) and "ignored" in texts(bad)


def test_compare_subset_and_curve_choice(app):
    app.switch_page("views/compare.py").run()
    app.multiselect(key="cmp_runs").set_value(["demo/sdl-s0", "demo/all-s0"]).run()
    app.selectbox(key="cmp_curve").set_value("lr").run()
    no_exceptions(app)
    curves = charts(app)["cmp_curves"]
    assert len(curves["data"]) == 2
    assert curves["layout"]["yaxis"]["title"]["text"] == "lr"


# --- the shell: the guided tour and the page in the URL -------------------------------------------


def test_guided_tour_walks_the_class_order_and_can_be_hidden(app):
    no_exceptions(app)
    tour = app.sidebar.expander[0]
    assert "Guided tour" in tour.label
    steps = [c.value for c in tour.caption]
    assert len(steps) == 4
    order = [s.split(":")[0] for s in steps]
    assert order == ["Relations", "Space", "Compare", "Playground"]
    app.button(key="tour_hide").click().run()
    no_exceptions(app)
    assert not any("Guided tour" in e.label for e in app.sidebar.expander)
    app.button(key="tour_show").click().run()
    assert any("Guided tour" in e.label for e in app.sidebar.expander)


def test_a_link_names_the_page_and_a_bad_page_is_ignored(dashboard_env):
    at = open_link({"page": "nowhere"})
    no_exceptions(at)
    assert "nowhere" in texts(at)
    assert at.query_params["page"] in ("relations", ["relations"])


def test_compare_shows_the_shipped_study_tables(app):
    # studies/yeast-quick holds the tables the README quotes (not its runs)
    app.switch_page("views/compare.py").run()
    no_exceptions(app)
    assert any(h.value == "Study" for h in app.header)
    study = app.selectbox(key="cmp_study")
    assert "studies/yeast-quick" in study.options
    study.set_value("studies/yeast-quick").run()
    paired = next(d.value for d in app.dataframe if "verdict" in d.value.columns)
    assert set(paired["verdict"]) <= {"win", "tie", "loss"}
    assert {"mulsupcon", "all", "any", "jaccard", "bce"} <= set(paired["vs"])  # each baseline
    assert {"ci_low", "ci_high"} <= set(paired.columns)  # with its interval
    assert "--dataset yeast --preset quick" in texts(app)  # how to get the runs too


def test_compare_shows_a_study_with_its_runs(app, folders, tmp_path_factory):
    _demo, runs = folders
    study = runs.parent / "study-with-runs"
    for loss in ("sdl", "mulsupcon"):
        for seed in (0, 1):
            write_sample_run(study / "runs" / f"{loss}-seed{seed}", loss, seed=seed, n=80)
    (study / "study.json").write_text(json.dumps({"dataset": "synthetic", "preset": "quick"}))
    (study / "paired.csv").write_text(
        "vs,metric,n,mean,std,ci_low,ci_high,verdict\nmulsupcon,head mAP,2,0.01,0.01,-0.1,0.1,tie\n"
    )
    app.switch_page("views/compare.py").run()
    app.text_input(key="cmp_study_dir").set_value(str(study)).run()
    no_exceptions(app)
    app.selectbox(key="cmp_study").set_value(str(study)).run()
    no_exceptions(app)
    assert "holds the study's tables but not its runs" not in texts(app)
    aucs = [c for k, c in charts(app).items() if "auc" in k]
    names = {t["name"] for chart in aucs for t in chart["data"]}
    assert {"sdl", "mulsupcon"} <= names  # the study's runs, their relation AUCs per loss
