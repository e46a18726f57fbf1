"""The Playground page, headless: it trains the worked example, animates both losses, and shows a
bad typed label set as one message instead of a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture
def page():
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("views/playground.py").run()
    return at


def figure(at: AppTest) -> dict:
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("play_fig"))
    return json.loads(chart.proto.spec)


def test_it_trains_both_losses_and_animates_them(page):
    assert not page.exception, [e.message for e in page.exception]
    fig = figure(page)
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert any("sdl" in t for t in titles) and any("mulsupcon" in t for t in titles)
    assert {"xaxis", "xaxis2"} <= set(fig["layout"])  # two panels side by side
    assert 20 <= len(fig["frames"]) <= 60
    assert len(fig["frames"][0]["data"]) == len(fig["data"])  # every trace moves in each frame
    assert fig["layout"]["updatemenus"][0]["buttons"][0]["method"] == "animate"
    # 15 items: 14 lines + 5 relations + the anchor, per panel
    assert len(fig["data"]) == 2 * (14 + 5 + 1)
    table = page.dataframe[0].value
    assert "sdl final cosine" in table.columns and "mulsupcon weight" in table.columns
    assert table.loc["R5 superset", "sdl weight"] == pytest.approx(0.5)


def test_a_bad_label_set_is_one_clear_message(page):
    page.text_area(key="play_sets").set_value("0,1,2\nzero,one")
    page.button[0].click().run()  # the form's submit button
    assert not page.exception
    assert len(page.error) == 1
    assert "line 2: 'zero,one' is not a label set" in page.error[0].value
    assert not page.get("plotly_chart")


def test_typed_sets_the_3d_view_and_other_losses(page):
    page.text_area(key="play_sets").set_value("0,1 x2\n0\n0,1,2\n2,3")
    page.selectbox(key="play_b").set_value("jaccard")
    page.radio(key="play_view").set_value("sphere (3-D)")
    page.slider(key="play_steps").set_value(30)
    page.button[0].click().run()
    assert not page.exception, [e.message for e in page.exception]
    fig = figure(page)
    assert {"scene", "scene2"} <= set(fig["layout"])
    assert fig["data"][0]["type"] == "scatter3d"
    assert len(fig["data"]) == 2 * (4 + 5 + 1)
    assert any("jaccard" in a["text"] for a in fig["layout"]["annotations"])
