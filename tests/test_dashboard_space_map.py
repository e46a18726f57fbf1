"""The Space map component's Python side: the thumbnail atlas, the panel JSON, and the folder
Streamlit serves it from (the frontend with the installed plotly.js, copied into the cache)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import plotly
import pytest
from PIL import Image

from dashboard.components import space_map


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize("shape", [(7, 5, 4), (10, 6, 6, 3), (1, 3, 3)])
def test_the_atlas_puts_item_k_in_cell_k(shape):
    rng = np.random.default_rng(0)
    thumbs = rng.integers(0, 256, size=shape, dtype=np.uint8)
    data, atlas = space_map.thumb_atlas(thumbs)
    grid = decode(data)
    n, h, w = shape[:3]
    assert (atlas["h"], atlas["w"]) == (h, w)
    assert (atlas["cols"] - 1) ** 2 < n <= atlas["cols"] ** 2  # about square
    for k in range(n):
        r, c = divmod(k, atlas["cols"])  # the cell the frontend reads for item k
        np.testing.assert_array_equal(grid[r * h : (r + 1) * h, c * w : (c + 1) * w], thumbs[k])


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 3, 4), (2, 3, 3, 1)])
def test_the_atlas_refuses_what_is_not_a_stack_of_images(shape):
    with pytest.raises(ValueError, match=r"thumbs must be .* got shape"):
        space_map.thumb_atlas(np.zeros(shape, np.uint8))


def test_a_panel_travels_as_plain_json():
    panel = space_map.Panel(
        run="demo/a",
        title="demo/a · sdl",
        xy=np.array([[0.123456, -1.0], [2.0, 3.987654]]),
        rows=np.array([4, 9]),
        ids=np.array([1004, 1009]),
        cats=np.array([2, 0]),
        labels=["c0,c1", "c2"],
        texts=["x" * 500, "short"],
        faint=np.array([[5.0, 6.0]]),
        anchor=(2.0, 3.987654),
        selected=np.array([1]),
    )
    out = json.loads(json.dumps(space_map.panel_args(panel, Path("unused"))))
    assert out["x"] == [0.1235, 2.0] and out["y"] == [-1.0, 3.9877]
    assert out["rows"] == [4, 9] and out["ids"] == ["1004", "1009"] and out["cat"] == [2, 0]
    assert out["texts"] == ["x" * space_map.TEXT_CHARS, "short"]
    assert out["faint"] == {"x": [5.0], "y": [6.0]}
    assert out["anchor"] == [2.0, 3.987654] and out["selected"] == [1]
    assert out["atlas"] is None


def test_the_served_folder_holds_the_frontend_and_the_installed_plotly(tmp_path):
    folder = space_map.served_folder(tmp_path)
    package_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert (folder / "plotly.min.js").read_bytes() == package_js.read_bytes()
    for name in space_map.FRONTEND_FILES:
        assert (folder / name).read_bytes() == (space_map.FRONTEND / name).read_bytes()
    # real files inside the folder: Streamlit refuses paths whose real path leaves it
    for path in folder.iterdir():
        assert not path.is_symlink()
        assert Path(os.path.realpath(path)).parent == Path(os.path.realpath(folder))
    assert plotly.__version__ in folder.name
    # no half-made folders left beside it
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_the_served_folder_is_made_once_and_follows_the_frontend(tmp_path, monkeypatch):
    first = space_map.served_folder(tmp_path)
    stamp = (first / "index.html").stat().st_mtime_ns
    assert space_map.served_folder(tmp_path) == first
    assert (first / "index.html").stat().st_mtime_ns == stamp  # reused, not rewritten
    # an edited frontend gets a folder of its own (a browser never mixes old and new files)
    edited = tmp_path / "frontend"
    edited.mkdir()
    for name in space_map.FRONTEND_FILES:
        (edited / name).write_bytes((space_map.FRONTEND / name).read_bytes() + b"\n")
    monkeypatch.setattr(space_map, "FRONTEND", edited)
    second = space_map.served_folder(tmp_path)
    assert second != first and (second / "index.html").read_bytes().endswith(b"\n\n")


def test_the_frontend_loads_nothing_from_the_network():
    for name in space_map.FRONTEND_FILES:
        text = (space_map.FRONTEND / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_the_atlas_is_a_file_in_the_served_folder_named_by_its_content(tmp_path):
    thumbs = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    atlas = space_map.atlas_file(thumbs, str(tmp_path))
    path = tmp_path / atlas["src"]
    assert path.parent.name == space_map.ATLAS_DIR
    assert path.read_bytes() == space_map.thumb_atlas(thumbs)[0]
    other = space_map.atlas_file(thumbs[::-1].copy(), str(tmp_path))
    assert other["src"] != atlas["src"]


def test_old_atlases_are_pruned(tmp_path):
    for i in range(5):
        (tmp_path / f"{i}.png").write_bytes(b"x")
        os.utime(tmp_path / f"{i}.png", ns=(i * 10**9, i * 10**9))
    space_map.prune_atlases(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3.png", "4.png"]
