"""``voc``: Pascal VOC (2007/2012 layout) from local files; labels = the object classes in an image.

Expected layout under ``root`` (a ``VOCdevkit/VOC20xx`` folder)::

    Annotations/<id>.xml       <annotation><object><name>dog</name><difficult>0</difficult>...
    JPEGImages/<id>.jpg
    ImageSets/Main/train.txt, val.txt   (one image id per line; optional)

With the ImageSets lists the ``train_set``/``test_set`` lists are the splits; without them every
annotated image is split at random (``test_fraction``, seeded).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from sdl.data._files import check_bool, multi_hot, read_images, require_file, split_indices
from sdl.data.base import DatasetSplits, DatasetUnavailable, MultiLabelData

CLASSES = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]
DESCRIPTION = "Pascal VOC images (local files) -> the 20 object classes present"


def missing(root: str | None = None) -> str | None:
    if root is None:
        return (
            "Pascal VOC is not bundled: pass root= a VOCdevkit/VOC20xx folder with Annotations/, "
            "JPEGImages/ and optionally ImageSets/Main/{train,val}.txt"
        )
    folder = Path(root).expanduser() / "Annotations"
    if folder.is_dir():
        return None
    return (
        f"root={root!r}: Pascal VOC annotation folder not found: {folder}; pass root= a "
        "VOCdevkit/VOC20xx folder (with Annotations/ and JPEGImages/)"
    )


def read_objects(path: Path, include_difficult: bool = True) -> list[str]:
    """The class names of the objects in one VOC annotation XML (in file order, repeats kept).

    Raises:
        ValueError: the file is not well-formed XML (naming it).
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: malformed VOC annotation XML ({err})") from err
    names = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip().lower()
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        if name and (include_difficult or not difficult):
            names.append(name)
    return names


def _read_list(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def load(
    seed: int = 0,
    root: str | None = None,
    *,
    train_set: str = "train",
    test_set: str = "val",
    size: int = 64,
    include_difficult: bool = True,
    test_fraction: float = 0.2,
) -> DatasetSplits:
    """VOC images resized to ``size`` x ``size`` RGB, multi-hot over the 20 classes.

    Args:
        seed: fixes the random split (used only without ImageSets lists).
        root: the VOC20xx folder.
        train_set, test_set: names of the ImageSets/Main lists.
        size: side of the resized images.
        include_difficult: count objects marked difficult.
        test_fraction: test share of the random split.

    Raises:
        DatasetUnavailable: the annotation folder, a listed annotation or an image is missing.
        ValueError: an annotation names a class outside the 20 VOC classes.
    """
    check_bool("include_difficult", include_difficult)
    message = missing(root)
    if message:
        raise DatasetUnavailable(message)
    root_path = Path(root).expanduser()
    lists = root_path / "ImageSets" / "Main"
    train_list, test_list = lists / f"{train_set}.txt", lists / f"{test_set}.txt"
    if train_list.is_file() and test_list.is_file():
        split_ids = {"train": _read_list(train_list), "test": _read_list(test_list)}
    else:
        stems = sorted(p.stem for p in (root_path / "Annotations").glob("*.xml"))
        if len(stems) < 2:
            raise DatasetUnavailable(
                f"fewer than 2 annotation files in {root_path / 'Annotations'}"
            )
        train_idx, test_idx = split_indices(len(stems), test_fraction, seed)
        split_ids = {"train": [stems[i] for i in train_idx], "test": [stems[i] for i in test_idx]}

    overlap = set(split_ids["train"]) & set(split_ids["test"])
    if overlap:
        raise ValueError(f"images in both {train_set} and {test_set}: {sorted(overlap)[:5]}")
    column = {name: i for i, name in enumerate(CLASSES)}
    all_ids = sorted({i for ids in split_ids.values() for i in ids})
    number = {image_id: n for n, image_id in enumerate(all_ids)}  # stable int id per image
    parts = {}
    for split, image_ids in split_ids.items():
        label_lists = []
        for image_id in image_ids:
            xml = require_file(root_path / "Annotations" / f"{image_id}.xml", "VOC annotation")
            names = read_objects(xml, include_difficult)
            unknown = sorted(set(names) - set(column))
            if unknown:
                raise ValueError(f"{xml}: unknown VOC class(es) {unknown}; expected {CLASSES}")
            label_lists.append(sorted({column[name] for name in names}))
        inputs, thumbs = read_images(
            [root_path / "JPEGImages" / f"{image_id}.jpg" for image_id in image_ids], size
        )
        parts[split] = MultiLabelData(
            inputs=inputs,
            labels=multi_hot(label_lists, len(CLASSES)),
            ids=np.array([number[i] for i in image_ids], dtype=np.int64),
            label_names=list(CLASSES),
            kind="image",
            thumbs=thumbs,
            texts=list(image_ids),
        )
    return DatasetSplits(
        "voc",
        parts["train"],
        parts["test"],
        DESCRIPTION,
        info={"seed": seed, "root": str(root_path)},
    )
