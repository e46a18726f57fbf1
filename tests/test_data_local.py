"""Local-file loaders (COCO, Pascal VOC, MIMIC-III, generic tables) on tiny fixtures in their real formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sdl.data import DatasetUnavailable, load_dataset


def _image(path, color) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 12), color).save(path)


def _names(data, row: int) -> set[str]:
    return {data.label_names[i] for i in np.flatnonzero(data.labels[row])}


# ---------------------------------------------------------------- COCO

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"}]
COCO_TRUTH = {  # image id -> categories annotated, per split
    "train2017": {101: {"person", "dog"}, 102: {"car"}, 103: {"person", "car", "dog"}, 104: set()},
    "val2017": {201: {"dog"}, 202: {"person", "car"}},
}


def _write_coco(root, splits=("train2017", "val2017")):
    by_name = {c["name"]: c["id"] for c in CATEGORIES}
    for split in splits:
        truth = COCO_TRUTH[split]
        images, annotations = [], []
        for image_id, names in truth.items():
            file_name = f"{image_id:012d}.jpg"
            images.append({"id": image_id, "file_name": file_name, "width": 20, "height": 12})
            _image(root / split / file_name, (image_id % 255, 0, 0))
            for name in sorted(names):  # two boxes of one class still give one label
                for _ in range(2):
                    annotations.append(
                        {"id": len(annotations), "image_id": image_id, "category_id": by_name[name]}
                    )
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES})
        )


def test_coco_labels_are_the_annotated_categories(tmp_path):
    _write_coco(tmp_path)
    splits = load_dataset("coco", root=str(tmp_path), size=8)
    assert splits.train.label_names == ["person", "car", "dog"]  # category id order
    assert list(splits.train.ids) == [101, 102, 103]  # 104 has no annotations: dropped
    assert list(splits.test.ids) == [201, 202]
    for data, split in ((splits.train, "train2017"), (splits.test, "val2017")):
        for row, image_id in enumerate(data.ids):
            assert _names(data, row) == COCO_TRUTH[split][image_id]
        assert data.inputs.shape == (len(data), 3, 8, 8) and data.inputs.dtype == np.float32
        assert data.thumbs.shape == (len(data), 8, 8, 3) and data.thumbs.dtype == np.uint8
    assert abs(int(splits.train.thumbs[0, 0, 0, 0]) - 101) <= 3  # pixels from the right file (JPEG)
    kept = load_dataset("coco", root=str(tmp_path), size=8, drop_empty=False)
    assert 104 in kept.train.ids


def test_coco_without_val_file_splits_train_by_seed(tmp_path):
    _write_coco(tmp_path, splits=("train2017",))
    a = load_dataset("coco", seed=1, root=str(tmp_path), size=4, test_fraction=0.34)
    b = load_dataset("coco", seed=1, root=str(tmp_path), size=4, test_fraction=0.34)
    assert len(a.train) + len(a.test) == 3
    assert not set(a.train.ids) & set(a.test.ids)
    np.testing.assert_array_equal(a.test.ids, b.test.ids)


def test_coco_missing_files_are_named(tmp_path):
    with pytest.raises(DatasetUnavailable, match=r"instances_train2017\.json"):
        load_dataset("coco", root=str(tmp_path))
    _write_coco(tmp_path)
    (tmp_path / "val2017" / "000000000201.jpg").unlink()
    with pytest.raises(DatasetUnavailable, match=r"000000000201\.jpg"):
        load_dataset("coco", root=str(tmp_path))


# ---------------------------------------------------------------- Pascal VOC

VOC_TRUTH = {
    "2008_000001": {"dog", "person"},
    "2008_000002": {"car"},
    "2008_000003": {"cat", "chair"},
    "2008_000004": {"aeroplane"},
}


def _voc_xml(names: list[str], difficult: set[str] = frozenset()) -> str:
    objects = "".join(
        f"<object><name>{n}</name><pose>Left</pose><difficult>{int(n in difficult)}</difficult>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
        for n in names
    )
    return (
        f"<annotation><folder>VOC2012</folder><size><width>20</width></size>{objects}</annotation>"
    )


def _write_voc(root, lists=True):
    (root / "Annotations").mkdir(parents=True)
    for image_id, names in VOC_TRUTH.items():
        objects = sorted(names) + sorted(names)[:1]  # a repeated object
        difficult = {"chair"} if image_id == "2008_000003" else set()
        (root / "Annotations" / f"{image_id}.xml").write_text(_voc_xml(objects, difficult))
        _image(root / "JPEGImages" / f"{image_id}.jpg", (0, 200, 0))
    if lists:
        (root / "ImageSets" / "Main").mkdir(parents=True)
        (root / "ImageSets" / "Main" / "train.txt").write_text("2008_000001\n2008_000003\n")
        (root / "ImageSets" / "Main" / "val.txt").write_text("2008_000002\n2008_000004\n")


def test_voc_labels_and_official_lists(tmp_path):
    _write_voc(tmp_path)
    splits = load_dataset("voc", root=str(tmp_path), size=6)
    assert splits.train.num_labels == 20 and splits.train.texts == ["2008_000001", "2008_000003"]
    assert splits.test.texts == ["2008_000002", "2008_000004"]
    for data in (splits.train, splits.test):
        for row, image_id in enumerate(data.texts):
            assert _names(data, row) == VOC_TRUTH[image_id]
        assert data.inputs.shape == (2, 3, 6, 6)
    ids = np.concatenate([splits.train.ids, splits.test.ids])
    assert len(set(ids)) == 4
    strict = load_dataset("voc", root=str(tmp_path), size=6, include_difficult=False)
    assert _names(strict.train, 1) == {"cat"}


def test_voc_without_lists_and_errors(tmp_path):
    _write_voc(tmp_path, lists=False)
    splits = load_dataset("voc", seed=0, root=str(tmp_path), size=4, test_fraction=0.25)
    assert (len(splits.train), len(splits.test)) == (3, 1)
    (tmp_path / "Annotations" / "2008_000002.xml").write_text(_voc_xml(["unicorn"]))
    with pytest.raises(ValueError, match="unicorn"):
        load_dataset("voc", root=str(tmp_path), size=4)


# ---------------------------------------------------------------- MIMIC-III


def _write_mimic(root):
    import pandas as pd

    rng = np.random.default_rng(0)
    words = ["fever", "cough", "sepsis", "renal", "failure", "cardiac", "arrest", "stroke", "pain"]
    notes, diagnoses, truth = [], [], {}
    for hadm in range(100, 130):
        subject = hadm // 2  # two admissions per patient
        text = " ".join(rng.choice(words, size=12))
        notes.append([hadm * 10, subject, hadm, "Discharge summary", "", text])
        notes.append([hadm * 10 + 1, subject, hadm, "Radiology", "", "chest x-ray"])
        codes = ["4019"] + (["4280"] if hadm % 2 else []) + (["99591"] if hadm % 3 == 0 else [])
        codes += [f"V{hadm}"]  # rare codes: each once, outside the top 3
        for code in codes:
            diagnoses.append([subject, hadm, code])
        truth[hadm] = {c for c in codes if not c.startswith("V")}
    notes.append([1, 1, "", "Discharge summary", "", "no admission"])
    notes.append([2, 60, 120, "Discharge summary", "1", "an error note"])
    pd.DataFrame(
        notes, columns=["ROW_ID", "SUBJECT_ID", "HADM_ID", "CATEGORY", "ISERROR", "TEXT"]
    ).to_csv(root / "NOTEEVENTS.csv.gz", index=False)
    pd.DataFrame(diagnoses, columns=["SUBJECT_ID", "HADM_ID", "ICD9_CODE"]).to_csv(
        root / "DIAGNOSES_ICD.csv", index=False
    )
    return truth


def test_mimic_top_k_codes_and_patient_split(tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_CACHE", str(tmp_path / "cache"))
    truth = _write_mimic(tmp_path)
    splits = load_dataset("mimic", seed=0, root=str(tmp_path), top_k=3, features="tfidf", dim=4)
    assert splits.train.label_names == ["4019", "4280", "99591"]  # by frequency: 30, 15, 10
    for data in (splits.train, splits.test):
        for row, hadm in enumerate(data.ids):
            assert _names(data, row) == truth[hadm]
        assert data.kind == "text" and data.inputs.shape == (len(data), 4)
        assert "chest" not in " ".join(data.texts)  # only discharge summaries
    assert len(splits.train) + len(splits.test) == 30
    patients = lambda data: {int(h) // 2 for h in data.ids}
    assert not patients(splits.train) & patients(splits.test)


def test_mimic_missing_file_is_named(tmp_path):
    _write_mimic(tmp_path)
    (tmp_path / "DIAGNOSES_ICD.csv").unlink()
    with pytest.raises(DatasetUnavailable, match="DIAGNOSES_ICD"):
        load_dataset("mimic", root=str(tmp_path))


# ---------------------------------------------------------------- generic table


def test_table_with_features_and_mixed_label_syntax(tmp_path):
    import pandas as pd

    frame = pd.DataFrame(
        {
            "id": [10, 11, 12, 13, 14],
            "labels": ["a|b", '["b", "c"]', "c", "", "a | c"],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "y": [0.0, 1.0, 0.0, 1.0, 0.0],
            "split": ["train", "train", "test", "train", "test"],
        }
    )
    frame.to_csv(tmp_path / "items.csv", index=False)
    splits = load_dataset(
        "table",
        path=str(tmp_path / "items.csv"),
        feature_columns="x,y",
        id_column="id",
        split_column="split",
    )
    truth = {10: {"a", "b"}, 11: {"b", "c"}, 12: {"c"}, 13: set(), 14: {"a", "c"}}
    assert splits.train.label_names == ["a", "b", "c"] and splits.train.kind == "tabular"
    assert list(splits.train.ids) == [10, 11, 13] and list(splits.test.ids) == [12, 14]
    for data in (splits.train, splits.test):
        for row, item in enumerate(data.ids):
            assert _names(data, row) == truth[item]
    np.testing.assert_allclose(splits.train.inputs.mean(axis=0), 0, atol=1e-6)


def test_table_parquet_with_list_labels_and_images(tmp_path):
    import pandas as pd

    for i in range(4):
        _image(tmp_path / "img" / f"{i}.png", (0, 0, 60 * i))
    pd.DataFrame(
        {"labels": [["x"], ["x", "y"], [], ["y"]], "image": [f"img/{i}.png" for i in range(4)]}
    ).to_parquet(tmp_path / "items.parquet")
    splits = load_dataset(
        "table", seed=0, root=str(tmp_path / "items.parquet"), image_column="image", size=5
    )
    data = splits.train
    assert data.kind == "image" and data.inputs.shape[1:] == (3, 5, 5)
    truth = [{"x"}, {"x", "y"}, set(), {"y"}]
    for row, item in enumerate(data.ids):
        assert _names(data, row) == truth[item]
        assert data.thumbs[row, 0, 0, 2] == 60 * item


def test_table_text_column_and_errors(tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.setenv("SDL_CACHE", str(tmp_path / "cache"))
    texts = ["red apple fruit", "green apple", "blue sky", "sky and sea", "red sea", "apple sky"]
    pd.DataFrame({"text": texts, "tags": ["f", "f", "s", "s|w", "w", "f|s"]}).to_csv(
        tmp_path / "t.tsv", sep="\t", index=False
    )
    splits = load_dataset(
        "table",
        path=str(tmp_path / "t.tsv"),
        label_column="tags",
        text_column="text",
        features="tfidf",
        dim=2,
    )
    assert splits.train.kind == "text" and splits.train.inputs.shape[1] <= 2
    assert len(splits.train) + len(splits.test) == 6
    with pytest.raises(ValueError, match="exactly one"):
        load_dataset("table", path=str(tmp_path / "t.tsv"), label_column="tags")
    with pytest.raises(ValueError, match="'nope'"):
        load_dataset("table", path=str(tmp_path / "t.tsv"), label_column="nope", text_column="text")
    with pytest.raises(DatasetUnavailable, match=r"missing\.csv"):
        load_dataset("table", path=str(tmp_path / "missing.csv"), text_column="text")
