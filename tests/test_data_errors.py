"""Bad input to the loaders: one clear error naming the option or the file, at load time."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sdl.data import load_dataset
from tests.test_data_local import _write_coco, _write_voc

# dataset -> the option that names its files
FILE_OPTIONS = {
    "coco": "root",
    "voc": "root",
    "mimic": "root",
    "hpo": "root",
    "iu-xray": "root",
    "fashion-mosaic": "root",
    "table": "path",
}


@pytest.mark.parametrize(("name", "option"), FILE_OPTIONS.items())
def test_missing_root_names_the_option_the_path_and_the_fix(tmp_path, name, option):
    where = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        load_dataset(name, **{option: str(where)})
    message = str(info.value)
    assert f"{option}=" in message and str(where) in message, message
    assert any(word in message for word in ("pass", "install", "point")), message


def test_coco_annotation_without_category_id_names_the_file(tmp_path):
    _write_coco(tmp_path)
    path = tmp_path / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    del data["annotations"][0]["category_id"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"instances_train2017\.json.*category_id"):
        load_dataset("coco", root=str(tmp_path), size=4)


def test_coco_file_that_is_not_json_names_the_file(tmp_path):
    _write_coco(tmp_path)
    (tmp_path / "annotations" / "instances_val2017.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"instances_val2017\.json"):
        load_dataset("coco", root=str(tmp_path), size=4)


def test_malformed_voc_xml_names_the_file(tmp_path):
    _write_voc(tmp_path)
    (tmp_path / "Annotations" / "2008_000003.xml").write_text("<annotation><object><name>dog")
    with pytest.raises(ValueError, match=r"2008_000003\.xml"):
        load_dataset("voc", root=str(tmp_path), size=4)


def test_undecodable_image_names_the_file(tmp_path):
    _write_voc(tmp_path)
    (tmp_path / "JPEGImages" / "2008_000002.jpg").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"2008_000002\.jpg"):
        load_dataset("voc", root=str(tmp_path), size=4)


@pytest.mark.parametrize(("name", "option"), [("coco", "drop_empty"), ("voc", "include_difficult")])
@pytest.mark.parametrize("value", ["False", "no", 0, "true"])
def test_boolean_options_refuse_strings_and_numbers(tmp_path, name, option, value):
    (_write_coco if name == "coco" else _write_voc)(tmp_path)
    with pytest.raises(ValueError, match=option):
        load_dataset(name, root=str(tmp_path), size=4, **{option: value})


def test_real_bools_still_work(tmp_path):
    _write_voc(tmp_path)
    strict = load_dataset("voc", root=str(tmp_path), size=4, include_difficult=np.bool_(False))
    assert len(strict.train) == 2


def _table(tmp_path, x, split=None):
    import pandas as pd

    frame = pd.DataFrame({"labels": ["a", "b", "a|b", "b", "a"], "x": x, "y": [1.0] * 5})
    if split is not None:
        frame["split"] = split
    frame.to_csv(tmp_path / "t.csv", index=False)
    return str(tmp_path / "t.csv")


def test_nan_feature_cell_is_reported_at_load_time(tmp_path):
    path = _table(tmp_path, [1.0, 2.0, float("nan"), 4.0, 5.0])
    with pytest.raises(ValueError, match=r"'x'.*row 2"):
        load_dataset("table", path=path, feature_columns="x,y")


def test_non_numeric_feature_cell_names_the_column(tmp_path):
    path = _table(tmp_path, ["1", "2", "three", "4", "5"])
    with pytest.raises(ValueError, match=r"'x'"):
        load_dataset("table", path=path, feature_columns="x,y")


def test_empty_test_split_is_reported_at_load_time(tmp_path):
    path = _table(tmp_path, [1.0, 2.0, 3.0, 4.0, 5.0], split=["train"] * 5)
    with pytest.raises(ValueError, match=r"test split.*empty|no test"):
        load_dataset("table", path=path, feature_columns="x,y", split_column="split")


def test_registry_refuses_any_empty_split(monkeypatch):
    import sdl.data as data
    from sdl.data import DatasetInfo, DatasetSplits, MultiLabelData

    def load(seed=0, root=None):
        empty = MultiLabelData(
            np.zeros((0, 2), np.float32), np.zeros((0, 1), np.uint8), np.zeros(0, np.int64),
            ["a"], "tabular",
        )  # fmt: skip
        full = MultiLabelData(
            np.zeros((3, 2), np.float32), np.ones((3, 1), np.uint8), np.arange(3), ["a"], "tabular"
        )
        return DatasetSplits("fake", full, empty)

    monkeypatch.setitem(
        data.DATASETS, "fake", DatasetInfo("fake", "tabular", "x", load, lambda r: None)
    )
    with pytest.raises(ValueError, match=r"fake.*test split is empty"):
        load_dataset("fake")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"n_train": "abc"}, "n_train must be an integer"),
        ({"n_train": 2.5}, "n_train must be an integer"),
        ({"n_test": True}, "n_test must be an integer"),
        ({"test_fraction": "half"}, "test_fraction must be a number"),
        ({"preset": 3}, "preset must be text"),
    ],
)
def test_ill_typed_dataset_options_name_the_option(options, match):
    from sdl.data import load_dataset

    with pytest.raises(ValueError, match=match):
        load_dataset("digits-mosaic", **options)
