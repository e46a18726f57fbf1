"""dashboard.ui.option_input: one widget per declared Option, for every page that draws options."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def options_page(choice_widget: str = "selectbox", url: bool = False) -> None:
    """A page with one widget per kind of option; the parsed values are written below them."""
    import streamlit as st

    from dashboard import ui
    from sdl.options import Option

    options = [
        Option("form", str, "b", "a choice", choices=("a", "b", "c")),
        Option("flag", bool, False, "a flag"),
        Option("chunk_size", int, 4, "an int", low=1, high=10, high_open=True),
        Option("threshold", float, 0.25, "a float", low=0.0, high=1.0, high_open=True),
        Option("limit", int, None, "a nullable int", low=1, nullable=True),
        Option("note", str, "hi", "free text"),
    ]
    for option in options:
        value = ui.option_input(
            option,
            f"opt_{option.name}",
            url_param=f"p.{option.name}" if url else None,
            choice_widget=choice_widget,
        )
        st.text(f"{option.name}={option.parse(value)!r}")


def parsed(at: AppTest) -> dict[str, str]:
    return dict(t.value.split("=", 1) for t in at.text)


def test_each_kind_of_option_gets_its_widget_with_default_and_bounds():
    at = AppTest.from_function(options_page).run()
    assert not at.exception
    form = at.selectbox(key="opt_form")
    assert form.label == "form" and form.options == ["a", "b", "c"] and form.value == "b"
    assert at.toggle(key="opt_flag").value is False
    chunk = at.number_input(key="opt_chunk_size")
    assert chunk.label == "chunk size"  # underscores read as spaces
    assert (chunk.value, chunk.min, chunk.max, chunk.step) == (4, 1, 9, 1)  # high_open: 10 - 1
    threshold = at.number_input(key="opt_threshold")
    assert threshold.value == 0.25 and threshold.min == 0.0
    assert 0.999 < threshold.max < 1.0  # an open bound stops just below it
    assert at.text_input(key="opt_limit").value == "none"  # None is typed as "none"
    assert at.text_input(key="opt_note").value == "hi"
    assert parsed(at) == {
        "form": "'b'",
        "flag": "False",
        "chunk_size": "4",
        "threshold": "0.25",
        "limit": "None",
        "note": "'hi'",
    }
    at.text_input(key="opt_limit").set_value("7").run()
    at.number_input(key="opt_chunk_size").set_value(9).run()
    assert parsed(at)["limit"] == "7" and parsed(at)["chunk_size"] == "9"


def test_choices_as_a_radio_and_a_bad_choice_widget():
    at = AppTest.from_function(options_page, kwargs={"choice_widget": "radio"}).run()
    assert not at.exception
    assert at.radio(key="opt_form").value == "b" and not at.selectbox
    at = AppTest.from_function(options_page, kwargs={"choice_widget": "list"}).run()
    assert "choice_widget must be 'selectbox' or 'radio', got 'list'" in at.exception[0].message


def test_values_come_from_the_url_and_a_bad_one_is_ignored():
    at = AppTest.from_function(options_page, kwargs={"url": True})
    at.query_params["p.form"] = "c"
    at.query_params["p.flag"] = "True"
    at.query_params["p.chunk_size"] = "12"  # above the bound: ignored, with a note
    at.query_params["p.threshold"] = "0.5"
    at.query_params["p.limit"] = "3"
    at.run()
    assert not at.exception
    got = parsed(at)
    assert got["form"] == "'c'" and got["flag"] == "True" and got["threshold"] == "0.5"
    assert got["limit"] == "3"
    assert got["chunk_size"] == "4"  # the default
    notes = "\n".join(c.value for c in at.sidebar.caption)
    assert "p.chunk\\_size=12" in notes and "ignored" in notes
    assert at.query_params["p.form"] in ("c", ["c"])
