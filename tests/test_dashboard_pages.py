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
from sdl import projection
from sdl.runs import EMBEDDINGS, write_status
from tests.run_fixtures import write_sample_run, write_sample_runs

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
def app(folders, monkeypatch):
    demo, runs = folders
    monkeypatch.setenv("SDL_DASHBOARD_DEMO", str(demo))
    monkeypatch.setenv("SDL_DASHBOARD_ROOTS", str(runs.parent))
    monkeypatch.setenv(projection.CACHE_ENV, str(runs.parent / "cache"))
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


def test_relations_dataset_batch(app):
    app.radio(key="rel_source").set_value("A dataset").run()
    app.selectbox(key="rel_dataset").set_value("digits-mosaic").run()
    no_exceptions(app)
    assert "test items of digits-mosaic" in texts(app)
    assert len(app.get("image")) == 1  # the anchor's thumbnail


def test_relations_text_run(app):
    app.selectbox(key="rel_run").set_value("runs/mine-sdl").run()
    no_exceptions(app)
    assert "rel_terms_fig" in charts(app)  # a text run works too


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


def test_training_refuses_a_bad_runs_folder(app):
    app.text_input(key="runs_dir").set_value("../../etc").run()
    app.switch_page("views/training.py").run()
    no_exceptions(app)
    assert "not allowed" in texts(app)


# --- Space ------------------------------------------------------------------------------------


def test_space_page_maps_runs_side_by_side(app):
    app.switch_page("views/space.py").run()
    no_exceptions(app)
    fig = charts(app)["space_fig"]
    layout = fig["layout"]
    assert {"xaxis", "xaxis2", "xaxis3"} <= set(layout)  # three runs, three panels
    assert layout["xaxis2"].get("matches") == "x"  # shared axes
    names = {t.get("name") for t in fig["data"]}
    assert "anchor" in names and any(str(n).startswith("R2") for n in names)
    assert len(app.get("image")) >= 1  # the anchor and its neighbours
    assert "space_shares" in charts(app)


def test_space_colour_modes_and_anchor(app):
    app.switch_page("views/space.py").run()
    app.radio(key="space_colour").set_value("a label").run()
    no_exceptions(app)
    assert {t.get("name") for t in charts(app)["space_fig"]["data"]} >= {"has c0", "no c0"}
    app.radio(key="space_colour").set_value("number of labels").run()
    app.number_input(key="space_anchor_item").set_value(7).run()
    app.slider(key="space_k").set_value(4).run()
    no_exceptions(app)
    app.multiselect(key="space_runs").set_value(["demo/sdl-s0"]).run()
    no_exceptions(app)
    assert "xaxis2" not in charts(app)["space_fig"]["layout"]


def test_space_with_a_broken_run_keeps_the_others(app):
    app.switch_page("views/space.py").run()
    app.multiselect(key="space_runs").set_value(["demo/sdl-s0", "runs/bad-embeddings"]).run()
    no_exceptions(app)
    assert "cannot read embeddings" in texts(app)
    assert "space_fig" in charts(app)


# --- Compare ----------------------------------------------------------------------------------


def test_compare_page(app):
    app.switch_page("views/compare.py").run()
    no_exceptions(app)
    shown = charts(app)
    assert {"cmp_curves", "cmp_profile"} <= set(shown)
    assert shown["cmp_profile"]["layout"]["boxmode"] == "group"
    assert {t["name"] for t in shown["cmp_profile"]["data"]} >= {"sdl", "all", "mulsupcon"}
    table = app.dataframe[0].value
    assert "★" in "".join(table["mAP"].astype(str))
    assert table.loc["sdl", "runs"] == 3  # two demo seeds and runs/mine-sdl
    warnings = "\n".join(w.value for w in app.warning)
    assert "broken" in warnings and "history.csv is corrupt" in warnings
    assert len(app.get("download_button")) >= 3


def test_compare_subset_and_curve_choice(app):
    app.switch_page("views/compare.py").run()
    app.multiselect(key="cmp_runs").set_value(["demo/sdl-s0", "demo/all-s0"]).run()
    app.selectbox(key="cmp_curve").set_value("lr").run()
    no_exceptions(app)
    curves = charts(app)["cmp_curves"]
    assert len(curves["data"]) == 2
    assert curves["layout"]["yaxis"]["title"]["text"] == "lr"
