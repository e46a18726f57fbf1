"""The Space page's controls, headless (AppTest): the space choice, data groups, the label filter,
the selection panel, the link in the URL, UMAP behind Apply, the snapshot animation, old runs.

The demo folder holds three synthetic runs (both spaces, snapshots) with their maps shipped; the
runs folder holds an old run (encoder only, no snapshots), a run of other data and a run trained
with another learning rate. Maps are a stand-in (the first two coordinates), so a drawn point can
be checked against the embeddings it came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard.components import space_map
from sdl import projection
from sdl.runs import CONFIG, EMBEDDINGS, SNAPSHOTS, read_embeddings, write_npz_atomic
from tests.plotly_spec import plotly_values
from tests.run_fixtures import write_sample_run, write_sample_runs
from tests.set_reference import relation_of
from tests.space_map_view import map_args

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SPACE = "views/space.py"


def fake_umap(x, params=None):
    return np.asarray(x, np.float32)[:, :2]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    demo = tmp_path_factory.mktemp("demo")
    write_sample_runs(demo, losses=("sdl", "all", "mulsupcon"), seeds=(0,), n=120)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(projection, "umap_2d", fake_umap)
        projection.project_runs(demo)
    runs = tmp_path_factory.mktemp("runs")
    old = write_sample_run(runs / "old", "sdl", seed=2, n=120, snapshot_items=0)
    arrays = read_embeddings(old)
    del arrays["head"]  # written before head embeddings were stored
    write_npz_atomic(old / EMBEDDINGS, **arrays)
    other = write_sample_run(runs / "other-data", "sdl", seed=3, n=120)
    config = json.loads((other / CONFIG).read_text())
    config["dataset"] = "mosaic"
    (other / CONFIG).write_text(json.dumps(config))
    reports = write_sample_run(runs / "reports", "sdl", seed=5, n=120, texts=True)
    config = json.loads((reports / CONFIG).read_text())
    config["dataset"] = "iu-xray"
    (reports / CONFIG).write_text(json.dumps(config))
    fast = write_sample_run(runs / "fast-lr", "all", seed=4, n=120)
    config = json.loads((fast / CONFIG).read_text())
    config["lr"] = 0.5
    (fast / CONFIG).write_text(json.dumps(config))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(projection, "umap_2d", fake_umap)
        projection.project_runs(runs)
    return demo, runs


@pytest.fixture
def calls(monkeypatch):
    """The stand-in map, counting its calls (a new map is a call)."""
    made = []

    def fit(x, params=None):
        made.append(params)
        return fake_umap(x)

    monkeypatch.setattr(projection, "umap_2d", fit)
    return made


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(projection.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def open_space(folders, monkeypatch, query: dict | None = None) -> AppTest:
    demo, runs = folders
    monkeypatch.setenv("SDL_DASHBOARD_DEMO", str(demo))
    monkeypatch.setenv("SDL_DASHBOARD_ROOTS", str(runs.parent))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="runs_dir").set_value(str(runs)).run()
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.switch_page(SPACE).run()
    no_exceptions(at)
    return at


@pytest.fixture
def space(folders, monkeypatch, cache, calls):
    return open_space(folders, monkeypatch)


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def charts(at: AppTest) -> dict[str, dict]:
    return {c.proto.id.rsplit("-", 1)[-1]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += (
        [e.value for e in at.error] + [w.value for w in at.warning] + [i.value for i in at.info]
    )
    return "\n".join(parts).replace("\\", "")  # markdown escapes removed: the text as read


def drawn_x(at: AppTest, panel: int) -> tuple[np.ndarray, np.ndarray]:
    """The x of every item drawn (hoverable) in one map panel, with their rows in the run's arrays."""
    shown = map_args(at)["panels"][panel]
    return np.asarray(shown["x"]), np.asarray(shown["rows"])


# --- the space ------------------------------------------------------------------------------------


def test_the_head_space_is_the_default_and_the_encoder_a_choice(space, folders):
    demo, _ = folders
    arrays = read_embeddings(demo / "sdl-s0")
    assert space.radio(key="space_space").value == "head"
    assert "projection head" in texts(space)
    x, rows = drawn_x(space, 0)
    # the map is the head's (the stand-in map is its first coordinate, up to centring and scale)
    assert abs(np.corrcoef(x, arrays["head"][rows, 0])[0, 1]) > 0.999
    space.radio(key="space_space").set_value("encoder").run()
    no_exceptions(space)
    assert "encoder output" in texts(space)
    x, rows = drawn_x(space, 0)
    assert abs(np.corrcoef(x, arrays["embeddings"][rows, 0])[0, 1]) > 0.999
    assert "encoder space" in charts(space)["space_shares"]["layout"]["title"]["text"]


def test_neighbours_are_searched_in_the_chosen_space(space, folders):
    demo, _ = folders
    arrays = read_embeddings(demo / "sdl-s0")
    space.number_input(key="space_anchor_item").set_value(5).run()

    def shown_cosines(at):
        # the first run's neighbours: the first image list of 8 (the anchor's image is alone)
        shown = next(e for e in at.get("image") if len(e.proto.imgs) == 8)
        return [float(img.caption.rsplit("·", 1)[1]) for img in shown.proto.imgs]

    for name, key in (("head", "head"), ("encoder", "embeddings")):
        space.radio(key="space_space").set_value(name).run()
        x = arrays[key] / np.linalg.norm(arrays[key], axis=1, keepdims=True)
        cos = x @ x[5]
        cos[5] = -np.inf
        best = np.sort(cos)[::-1][:8]  # explicit reference: all cosines, sorted
        np.testing.assert_allclose(shown_cosines(space), best, atol=0.006)


def test_an_old_run_without_head_embeddings_falls_back_with_a_note(
    folders, monkeypatch, cache, calls
):
    at = open_space(folders, monkeypatch)
    at.multiselect(key="space_runs").set_value(["runs/old"]).run()
    no_exceptions(at)
    shown = texts(at)
    assert "None of these runs has head embeddings" in shown and "make demo" in shown
    assert "encoder output" in shown  # what is shown instead, said so
    assert map_args(at) is not None
    assert "no snapshots" in shown


# --- honest comparisons ----------------------------------------------------------------------------


def test_runs_are_grouped_by_data_and_other_data_is_refused(folders, monkeypatch, cache, calls):
    at = open_space(folders, monkeypatch, {"runs": "demo/sdl-s0,runs/other-data"})
    options = at.selectbox(key="space_data").options
    assert len(options) == 3 and any("mosaic" in o for o in options)
    assert "runs/other-data" not in at.multiselect(key="space_runs").options
    warning = "\n".join(w.value for w in at.warning)
    assert "other-data" in warning and "mosaic" in warning and "synthetic" in warning
    assert at.multiselect(key="space_runs").value == ["demo/sdl-s0"]


def test_other_differing_settings_are_named(space):
    space.multiselect(key="space_runs").set_value(["demo/sdl-s0", "runs/fast-lr"]).run()
    no_exceptions(space)
    shown = texts(space)
    assert "also differ in" in shown and "lr (0.002, 0.5)" in shown
    space.multiselect(key="space_runs").set_value(["demo/sdl-s0", "demo/all-s0"]).run()
    assert "also differ in" not in texts(space)  # loss and seed differ on purpose


# --- explorer ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["carrying all of them", "exactly them"])
def test_the_label_filter_keeps_the_matching_items(space, folders, how):
    demo, _ = folders
    labels = read_embeddings(demo / "sdl-s0")["labels"]
    space.multiselect(key="space_filter").set_value(["c0", "c2"]).run()
    space.radio(key="space_filter_mode").set_value(how).run()
    no_exceptions(space)
    _, rows = drawn_x(space, 0)
    expected = [
        i
        for i, row in enumerate(labels)
        if row[0] and row[2] and (how != "exactly them" or row.sum() == 2)
    ]
    assert sorted(rows.tolist()) == expected
    faint = map_args(space)["panels"][0]["faint"]
    assert len(faint["x"]) == len(labels) - len(expected)  # the others, drawn faint
    assert f"{len(expected)} of {len(labels)} items match" in texts(space)


def relation(anchor: np.ndarray, other: np.ndarray) -> str:
    """R1..R5 of ``other``'s label set to the anchor's, from the definitions."""
    return relation_of(set(np.flatnonzero(anchor)), set(np.flatnonzero(other)))


def test_a_selection_shows_its_label_and_relation_mix(space, folders):
    demo, _ = folders
    arrays = read_embeddings(demo / "sdl-s0")
    labels = arrays["labels"]
    chosen = [3, 10, 11, 40]
    assert space.selectbox(key="space_anchor_run").value == "demo/sdl-s0"
    # An item's key: its id and its label set (bits), as the page matches items across runs.
    bits = np.packbits(labels.astype(bool), axis=1)
    space.session_state["space_selected"] = [
        f"{arrays['ids'][i]}:{bits[i].tobytes().hex()}" for i in chosen
    ]
    space.run()
    no_exceptions(space)
    shown = texts(space)
    assert "Selected: 4 items" in shown
    counts = labels[chosen].sum(0)
    top = int(np.argmax(counts))
    assert f"c{top} {counts[top]}" in shown
    rel = [relation(labels[0], labels[i]) for i in chosen]
    expected = " · ".join(f"{r} {rel.count(r)}" for r in ("R1", "R2", "R3", "R4", "R5") if r in rel)
    assert f"Relation to the anchor: {expected}" in shown
    assert any(len(e.proto.imgs) == 4 for e in space.get("image"))  # their thumbnails


def test_umap_settings_wait_for_apply_and_go_to_the_cache_folder(space, folders, cache, calls):
    demo, _ = folders
    before = sorted(p.name for p in (demo / "sdl-s0").iterdir())
    space.slider(key="space_nn").set_value(30).run()
    no_exceptions(space)
    assert calls == []  # a slider step alone makes no map
    # a form sends its widgets' values with the Apply click
    space.slider(key="space_nn").set_value(30)
    next(b for b in space.button if b.label == "Apply").click().run()
    no_exceptions(space)
    assert len(calls) == 3 and all(p.n_neighbors == 30 for p in calls)
    assert sorted(p.name for p in (demo / "sdl-s0").iterdir()) == before
    assert len(list(cache.rglob("projection-*.npz"))) == 3


def test_shares_legend_sits_above_the_bars(space):
    layout = charts(space)["space_shares"]["layout"]
    assert layout["legend"]["y"] >= 1 and layout["legend"]["yanchor"] == "bottom"


def test_every_panel_that_holds_the_anchor_marks_it(space, folders):
    demo, _ = folders
    space.number_input(key="space_anchor_item").set_value(6).run()
    ids = read_embeddings(demo / "sdl-s0")["ids"]
    for shown in map_args(space)["panels"]:
        # the same item (same id) in each run: the star sits on that run's point for it
        run_ids = read_embeddings(demo / shown["run"].split("/")[1])["ids"]
        row = int(np.flatnonzero(run_ids == ids[6])[0])
        k = shown["rows"].index(row)
        assert shown["anchor"] == pytest.approx([shown["x"][k], shown["y"][k]], abs=1e-4)


# --- the map's gestures (what the component sends back) -----------------------------------------


def gesture(at: AppTest, event: str, **value) -> None:
    """What the map sends on a click or a lasso: the value, with its fresh token."""
    at.session_state["space_map"] = {**value, "event": event}
    at.run()
    no_exceptions(at)


def test_a_click_on_the_map_sets_the_anchor_once(space):
    gesture(space, "click-1", anchor=7, run="demo/all-s0")
    assert space.selectbox(key="space_anchor_run").value == "demo/all-s0"
    assert space.number_input(key="space_anchor_item").value == 7
    assert space.query_params["anchor"] in (["demo/all-s0:7"], "demo/all-s0:7")
    # the widget moves the anchor on; the map's old value, handed back on reruns, does not undo it
    space.number_input(key="space_anchor_item").set_value(3).run()
    space.run()
    assert space.number_input(key="space_anchor_item").value == 3
    # the same point clicked again is a new gesture
    gesture(space, "click-2", anchor=7, run="demo/all-s0")
    assert space.number_input(key="space_anchor_item").value == 7


def test_a_click_outside_the_shown_runs_or_items_changes_nothing(space):
    gesture(space, "click-1", anchor=10_000, run="demo/all-s0")
    gesture(space, "click-2", anchor=3, run="demo/nowhere")
    assert space.selectbox(key="space_anchor_run").value == "demo/sdl-s0"
    assert space.number_input(key="space_anchor_item").value == 0


def test_a_lasso_on_the_map_selects_items_in_every_run(space, folders):
    demo, _ = folders
    arrays = read_embeddings(demo / "sdl-s0")
    chosen = [3, 10, 11, 40]
    gesture(space, "lasso-1", selected=chosen, run="demo/sdl-s0")
    assert "Selected: 4 items" in texts(space)
    assert space.number_input(key="space_anchor_item").value == 0  # a selection is not a click
    for shown in map_args(space)["panels"]:
        run_ids = read_embeddings(demo / shown["run"].split("/")[1])["ids"]
        picked = {int(run_ids[shown["rows"][k]]) for k in shown["selected"]}
        assert picked == {int(arrays["ids"][i]) for i in chosen}  # highlighted in every panel


def png_cells(atlas: dict) -> np.ndarray:
    """The atlas file (in the folder the component is served from) decoded into its cells."""
    grid = np.asarray(Image.open(space_map.served_folder() / atlas["src"]))
    h, w, cols = atlas["h"], atlas["w"], atlas["cols"]
    rows = grid.shape[0] // h
    return np.stack(
        [grid[r * h : (r + 1) * h, c * w : (c + 1) * w] for r in range(rows) for c in range(cols)]
    )


def test_hover_carries_each_shown_items_thumbnail_and_labels(space, folders):
    demo, _ = folders
    arrays = read_embeddings(demo / "sdl-s0")
    space.multiselect(key="space_filter").set_value(["c1"]).run()  # only the shown ones travel
    shown = map_args(space)["panels"][0]
    rows = shown["rows"]
    assert rows == np.flatnonzero(arrays["labels"][:, 1]).tolist()
    cells = png_cells(shown["atlas"])
    for k, row in enumerate(rows):
        np.testing.assert_array_equal(cells[k], arrays["thumbs"][row])
        names = [f"c{j}" for j in np.flatnonzero(arrays["labels"][row])]
        assert shown["labels"][k] == ",".join(names)
        assert shown["ids"][k] == str(arrays["ids"][row])


def test_hover_carries_text_for_text_data(folders, monkeypatch, cache, calls):
    at = open_space(folders, monkeypatch)
    data = at.selectbox(key="space_data")
    data.set_value(next(o for o in data.options if o.startswith("iu-xray"))).run()
    no_exceptions(at)
    shown = map_args(at)["panels"][0]
    texts_ = read_embeddings(folders[1] / "reports")["texts"]
    assert shown["atlas"] is None
    assert shown["texts"] == [str(texts_[r])[:240] for r in shown["rows"]]


# --- the link --------------------------------------------------------------------------------------


def test_the_link_reopens_the_view(folders, monkeypatch, cache, calls):
    query = {
        "runs": "demo/all-s0,demo/sdl-s0",
        "space": "encoder",
        "anchor": "demo/sdl-s0:7",
        "colour": "number of labels",
    }
    at = open_space(folders, monkeypatch, query)
    assert at.multiselect(key="space_runs").value == ["demo/all-s0", "demo/sdl-s0"]
    assert at.radio(key="space_space").value == "encoder"
    assert at.selectbox(key="space_anchor_run").value == "demo/sdl-s0"
    assert at.number_input(key="space_anchor_item").value == 7
    assert at.radio(key="space_colour").value == "number of labels"
    at.number_input(key="space_anchor_item").set_value(9).run()
    assert at.query_params["anchor"] == ["demo/sdl-s0:9"] or at.query_params["anchor"] == (
        "demo/sdl-s0:9"
    )


def test_the_label_filter_travels_in_the_link(folders, monkeypatch, cache, calls):
    """A filter set on the page is written to the URL; a link carrying it reopens it, and a label
    the data does not have is ignored with a note."""
    at = open_space(folders, monkeypatch)
    at.multiselect(key="space_filter").set_value(["c0", "c2"]).run()
    at.radio(key="space_filter_mode").set_value("exactly them").run()
    no_exceptions(at)
    assert list(at.query_params["labels"]) == ["c0", "c2"]
    assert at.query_params["match"] in (["exactly them"], "exactly them")
    at.multiselect(key="space_filter").set_value([]).run()
    assert not list(at.query_params.get("labels", []))  # no filter, no labels in the link

    query = {"labels": ["c2", "c1"], "match": "exactly them"}
    linked = open_space(folders, monkeypatch, query)
    assert linked.multiselect(key="space_filter").value == ["c2", "c1"]
    assert linked.radio(key="space_filter_mode").value == "exactly them"

    bad = open_space(folders, monkeypatch, {"labels": ["c1", "nolabel"]})
    assert bad.multiselect(key="space_filter").value == ["c1"]
    assert "nolabel" in texts(bad)


def test_invalid_link_values_are_ignored_with_a_note(folders, monkeypatch, cache, calls):
    query = {"runs": "demo/nope", "space": "middle", "anchor": "x", "colour": "pink"}
    at = open_space(folders, monkeypatch, query)
    shown = texts(at)
    assert "Ignored in the link" in shown
    assert "demo/nope" in shown and "middle" in shown and "pink" in shown
    assert at.radio(key="space_space").value == "head"
    assert map_args(at) is not None


# --- how the space formed ------------------------------------------------------------------------


def test_snapshots_play_as_an_animation_of_two_runs(space, folders):
    demo, _ = folders
    epochs = np.load(demo / "sdl-s0" / SNAPSHOTS)["epochs"]
    fig = charts(space)["space_forming_fig"]
    assert len(fig["frames"]) == len(epochs)
    assert [s["label"] for s in fig["layout"]["sliders"][0]["steps"]] == [str(e) for e in epochs]
    assert fig["layout"]["sliders"][0]["active"] == 0  # opens untrained: Play shows it forming
    buttons = [b["label"] for b in fig["layout"]["updatemenus"][0]["buttons"]]
    assert buttons == ["Play", "Pause"]
    assert {"xaxis", "xaxis2"} <= set(fig["layout"])  # two runs side by side
    # every point of every epoch, the anchor's star included, stays inside the fixed axes
    x_range, y_range = fig["layout"]["xaxis"]["range"], fig["layout"]["yaxis"]["range"]
    for frame in fig["frames"]:
        for trace in frame["data"]:
            xs, ys = np.array(plotly_values(trace["x"])), np.array(plotly_values(trace["y"]))
            assert np.all((xs > x_range[0]) & (xs < x_range[1]))
            assert np.all((ys > y_range[0]) & (ys < y_range[1]))
    first, second = space.multiselect(key="space_forming").value
    assert first == "demo/sdl-s0" and not second.startswith("demo/sdl")  # another loss beside it


def test_the_animation_brightens_the_anchors_r2_r4_r5_and_follows_a_new_anchor(space, folders):
    demo, _ = folders
    arrays = read_embeddings(demo / "sdl-s0")
    snapshot_ids = np.load(demo / "sdl-s0" / SNAPSHOTS)["ids"]
    sets = [set(np.flatnonzero(row).tolist()) for row in arrays["labels"]]
    set_of = dict(zip(arrays["ids"].tolist(), sets, strict=True))

    def bright_ids() -> list[int]:
        trace = charts(space)["space_forming_fig"]["data"][0]  # the first run's points
        colours = trace["marker"]["color"]
        return [int(i) for i, c in zip(snapshot_ids, colours, strict=True) if c != "#d6d6d6"]

    for item in (3, 11):
        space.selectbox(key="space_anchor_run").set_value("demo/sdl-s0").run()
        space.number_input(key="space_anchor_item").set_value(item).run()
        no_exceptions(space)
        expected = [
            int(i)
            for i in snapshot_ids
            if relation_of(sets[item], set_of[int(i)]) in ("R2", "R4", "R5")
        ]
        assert bright_ids() == expected and expected, item


def test_another_data_set_brings_its_own_runs_to_play(space):
    assert space.multiselect(key="space_forming").value[0] == "demo/sdl-s0"
    data = space.selectbox(key="space_data")
    data.set_value(next(o for o in data.options if o.startswith("mosaic"))).run()
    no_exceptions(space)
    assert space.multiselect(key="space_forming").value == ["runs/other-data"]
    assert "space_forming_fig" in charts(space)
