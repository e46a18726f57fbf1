"""One malformed run never breaks a page: it is one error card naming the run, the others work.

The runs folder holds a good run and one run per fault the schema knows (sdl.runs); every page is
opened with the bad run chosen beside the good one. Run-file text never becomes markdown.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import ui
from sdl import projection, runs
from tests.run_fixtures import write_sample_run
from tests.space_map_view import map_args

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
INJECTED = "**bold** :red[x] <b>y</b> [link](http://e.x) $x^2$"


def fake_umap(x, params=None):
    return np.asarray(x, np.float32)[:, :2]


def _arrays(path):
    with np.load(path / runs.EMBEDDINGS, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _rewrite(path, **changes):
    runs.write_npz_atomic(path / runs.EMBEDDINGS, **{**_arrays(path), **changes})


def _nan(a):
    a = a.copy()
    a[0, 0] = np.nan
    return a


EMBEDDING_FAULTS = {
    "nan-embeddings": lambda a: {"embeddings": _nan(a["embeddings"])},
    "labels-3d": lambda a: {"labels": a["labels"][:, :, None]},
    "label-two": lambda a: {"labels": a["labels"] * 2},
    "names-scalar": lambda a: {"label_names": np.array(5)},
    "thumbs-bad": lambda a: {"thumbs": a["thumbs"][:, 0]},
    "one-item": lambda a: {k: a[k][:1] for k in ("embeddings", "labels", "ids", "thumbs")},
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    demo, user = root / "demo", root / "runs"
    good = write_sample_run(demo / "good", "sdl", n=60)
    for name, change in EMBEDDING_FAULTS.items():
        run = write_sample_run(user / name, "all", n=60)
        _rewrite(run, **change(_arrays(run)))
    nan_cache = write_sample_run(user / "nan-cache", "sdl", seed=3, n=60)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(projection, "umap_2d", lambda x, p=None: np.full((len(x), 2), np.nan))
        projection.cached_projection(nan_cache)
        projection.cached_projection(good)
    injected = write_sample_run(user / "injected", "sdl", seed=4, n=60)
    config = json.loads((injected / runs.CONFIG).read_text())
    config["loss"] = config["dataset"] = INJECTED
    (injected / runs.CONFIG).write_text(json.dumps(config))
    seedless = write_sample_run(user / "seed-text", "sdl", n=60)
    config = json.loads((seedless / runs.CONFIG).read_text())
    config["seed"] = "abc"
    (seedless / runs.CONFIG).write_text(json.dumps(config))
    (user / "pid-text").mkdir()
    (user / "pid-text" / runs.STATUS).write_text('{"state": "running", "pid": "x", "updated": "y"}')
    return demo, user


@pytest.fixture
def app(folder, monkeypatch):
    demo, user = folder
    monkeypatch.setenv("SDL_DASHBOARD_DEMO", str(demo))
    monkeypatch.setenv("SDL_DASHBOARD_ROOTS", str(user.parent))
    monkeypatch.setattr(projection, "umap_2d", fake_umap)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="runs_dir").set_value(str(user)).run()
    return at


def no_exceptions(at):
    assert not at.exception, [e.message for e in at.exception]


def errors(at) -> str:
    """The page's errors and warnings as the user reads them (markdown escapes removed)."""
    shown = "\n".join([e.value for e in at.error] + [w.value for w in at.warning])
    return re.sub(r"\\(.)", r"\1", shown)


@pytest.mark.slow
@pytest.mark.parametrize("bad", list(EMBEDDING_FAULTS))
def test_space_shows_a_bad_run_as_one_card(app, bad):
    app.switch_page("views/space.py").run()
    app.multiselect(key="space_runs").set_value(["demo/good", f"runs/{bad}"]).run()
    no_exceptions(app)
    assert bad in errors(app)
    assert map_args(app) is not None


@pytest.mark.slow
def test_space_recomputes_a_cache_with_nan(app):
    app.switch_page("views/space.py").run()
    app.multiselect(key="space_runs").set_value(["demo/good", "runs/nan-cache"]).run()
    no_exceptions(app)
    assert map_args(app) is not None


@pytest.mark.slow
@pytest.mark.parametrize("bad", list(EMBEDDING_FAULTS))
def test_relations_shows_a_bad_run_as_one_card(app, bad):
    app.selectbox(key="rel_run").set_value(f"runs/{bad}").run()
    no_exceptions(app)
    assert bad in errors(app)
    app.selectbox(key="rel_run").set_value("demo/good").run()
    no_exceptions(app)
    assert any("rel_matrix" in c.proto.id for c in app.get("plotly_chart"))


@pytest.mark.slow
def test_compare_and_training_survive_every_bad_run(app):
    app.switch_page("views/compare.py").run()
    no_exceptions(app)
    shown = errors(app)
    assert "seed-text" in shown and "seed must be an integer" in shown
    assert any("cmp_curves" in c.proto.id for c in app.get("plotly_chart"))
    app.switch_page("views/training.py").run()
    no_exceptions(app)
    assert "status.json is corrupt" in "\n".join(
        [m.value for m in app.markdown] + [c.value for c in app.caption] + [errors(app)]
    )


@pytest.mark.slow
def test_run_file_text_is_never_markdown(app):
    app.switch_page("views/compare.py").run()
    no_exceptions(app)
    shown = "\n".join(m.value for m in app.markdown)
    assert "\\*\\*bold\\*\\*" in shown
    assert "**bold**" not in shown and ":red[x]" not in shown and "<b>" not in shown


@pytest.mark.parametrize(
    "text",
    [INJECTED, "a_b*c", "`code`", ":material/home:", "#heading", "\\", "1. list", "- item", "x\ny"],
)
def test_md_text_leaves_no_markup(text):
    escaped = ui.md_text(text)
    assert "\n" not in escaped
    # every markup character is preceded by a backslash, and removing them gives the text back
    unescaped = re.sub(r"\\(.)", r"\1", escaped)
    assert unescaped.replace(" ", "") == text.replace("\n", "").replace(" ", "")
    assert not re.match(r"^(\d+[.)]|[-+>#])", escaped)  # no list, quote or heading
    for special in "*_`[]:<>$":
        for i, c in enumerate(escaped):
            if c == special:
                assert escaped[i - 1] == "\\", (text, escaped)
