"""``coco``: MS-COCO from local files; an image's labels are the categories of its annotations.

Expected layout under ``root`` (as the COCO download unpacks)::

    annotations/instances_train2017.json   {"images": [{id, file_name}], "annotations":
    annotations/instances_val2017.json       [{image_id, category_id}], "categories": [{id, name}]}
    train2017/<file_name>   val2017/<file_name>   (or images/<split>/<file_name>)

The official train and val sets are the train and test splits. Without the test annotation file the
train file is split at random (``test_fraction``, seeded).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sdl.data._files import check_bool, multi_hot, read_images, require_file, split_indices
from sdl.data.base import DatasetSplits, DatasetUnavailable, MultiLabelData

DESCRIPTION = "MS-COCO images (local files) -> the object categories annotated in each"


def _annotation_path(root: str | Path, split: str) -> Path:
    return Path(root).expanduser() / "annotations" / f"instances_{split}.json"


def missing(root: str | None = None, train_split: str = "train2017") -> str | None:
    if root is None:
        return (
            "COCO is not bundled: pass root= a folder holding annotations/instances_train2017.json "
            "(+ instances_val2017.json) and the image folders train2017/, val2017/"
        )
    path = _annotation_path(root, train_split)
    if path.is_file():
        return None
    return (
        f"root={root!r}: COCO annotation file not found: {path}; pass root= the COCO folder "
        f"holding annotations/instances_{train_split}.json and the image folders"
    )


def read_instances(path: Path) -> tuple[list[dict], dict[int, set[int]], dict[int, str]]:
    """Images, category ids per image id, and category names by id, from an instances_*.json.

    Raises:
        ValueError: the file is not JSON, or an entry lacks a field it needs (naming the file).
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a JSON file: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a COCO instances file: not a JSON object")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"{path} is not a COCO instances file: no {key!r} list")
    images = _entries(path, data, "images", ("id", "file_name"))
    annotations = _entries(path, data, "annotations", ("image_id", "category_id"))
    categories = _entries(path, data, "categories", ("id", "name"))
    present: dict[int, set[int]] = {image["id"]: set() for image in images}
    for annotation in annotations:
        present.setdefault(annotation["image_id"], set()).add(annotation["category_id"])
    names = {category["id"]: category["name"] for category in categories}
    unlisted = sorted({c for labels in present.values() for c in labels} - set(names))
    if unlisted:
        raise ValueError(
            f"{path}: annotations use category ids {unlisted} missing from 'categories'"
        )
    return images, present, names


def _entries(path: Path, data: dict, key: str, fields: tuple[str, ...]) -> list[dict]:
    """``data[key]``, checked to be a list of objects that all have ``fields``."""
    entries = data[key]
    if not isinstance(entries, list):
        raise ValueError(f"{path}: {key!r} must be a list")
    for number, entry in enumerate(entries):
        absent = [f for f in fields if not isinstance(entry, dict) or f not in entry]
        if absent:
            raise ValueError(f"{path}: {key}[{number}] has no {', '.join(map(repr, absent))}")
    return entries


def _image_path(root: Path, split: str, file_name: str) -> Path:
    candidates = [root / split / file_name, root / "images" / split / file_name]
    return next((p for p in candidates if p.is_file()), candidates[0])


def load(
    seed: int = 0,
    root: str | None = None,
    *,
    train_split: str = "train2017",
    test_split: str = "val2017",
    size: int = 64,
    max_images: int | None = None,
    drop_empty: bool = True,
    test_fraction: float = 0.2,
) -> DatasetSplits:
    """COCO images resized to ``size`` x ``size`` RGB, multi-hot over the categories (by id order).

    Args:
        seed: fixes the random split (only used without the test annotation file) and the
            ``max_images`` subsample.
        root: the COCO folder (see the module docstring).
        train_split, test_split: the ``<split>`` in ``instances_<split>.json`` and the image folder.
        size: side of the resized images.
        max_images: keep at most this many images per split (a seeded sample).
        drop_empty: leave out images without any annotation (no labels).
        test_fraction: test share when splitting the train file.

    Raises:
        DatasetUnavailable: the annotation file or an image it lists is missing.
    """
    check_bool("drop_empty", drop_empty)
    message = missing(root, train_split)
    if message:
        raise DatasetUnavailable(message)
    root_path = Path(root).expanduser()
    images, present, names = read_instances(
        require_file(_annotation_path(root_path, train_split), "COCO annotations")
    )
    category_ids = sorted(names)
    column = {c: i for i, c in enumerate(category_ids)}
    rows = [(image, train_split, present[image["id"]]) for image in images]
    test_path = _annotation_path(root_path, test_split)
    if test_path.is_file():
        test_images, test_present, test_names = read_instances(test_path)
        unknown = sorted(set(test_names) - set(names))
        if unknown:
            raise ValueError(f"{test_path} has categories {unknown} that the train file lacks")
        clash = sorted({image["id"] for image in images} & set(test_present))[:5]
        if clash:
            raise ValueError(f"image ids {clash} appear in both {train_split} and {test_split}")
        is_test = np.r_[np.zeros(len(rows), bool), np.ones(len(test_images), bool)]
        rows += [(image, test_split, test_present[image["id"]]) for image in test_images]
    else:
        _, test_idx = split_indices(len(rows), test_fraction, seed)
        is_test = np.zeros(len(rows), bool)
        is_test[test_idx] = True

    keep = np.array([bool(labels) or not drop_empty for _, _, labels in rows])
    rng = np.random.default_rng(seed)
    parts = {}
    for split_name, mask in (("train", ~is_test & keep), ("test", is_test & keep)):
        idx = np.flatnonzero(mask)
        if max_images is not None and len(idx) > max_images:
            idx = np.sort(rng.choice(idx, size=max_images, replace=False))
        chosen = [rows[i] for i in idx]
        paths = [_image_path(root_path, split, image["file_name"]) for image, split, _ in chosen]
        inputs, thumbs = read_images(paths, size)
        parts[split_name] = MultiLabelData(
            inputs=inputs,
            labels=multi_hot(
                [sorted(column[c] for c in labels) for _, _, labels in chosen],
                len(category_ids),
            ),
            ids=np.array([image["id"] for image, _, _ in chosen], dtype=np.int64),
            label_names=[names[c] for c in category_ids],
            kind="image",
            thumbs=thumbs,
            texts=[image["file_name"] for image, _, _ in chosen],
        )
    return DatasetSplits(
        "coco",
        parts["train"],
        parts["test"],
        DESCRIPTION,
        info={"seed": seed, "category_ids": category_ids, "root": str(root_path)},
    )
