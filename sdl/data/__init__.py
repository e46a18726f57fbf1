"""Datasets by name: ``load_dataset(name, seed, root, **options) -> DatasetSplits``.

Every loader reads files that an installed package ships or that the user points to (``root`` or a
path option); nothing is downloaded. When files are missing a loader raises
:class:`DatasetUnavailable` saying what to install or pass. The same seed gives the same split and
the same items.
"""

from __future__ import annotations

import inspect
import time

from sdl.data import (
    coco,
    digits,
    fashion,
    hpo,
    iu_xray,
    mimic,
    mnist,
    synthetic,
    table,
    voc,
    yeast,
)
from sdl.data.base import (
    KINDS,
    DatasetInfo,
    DatasetSplits,
    DatasetUnavailable,
    MultiLabelData,
)


def _info(name: str, kind: str, module) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        kind=kind,
        description=module.DESCRIPTION,
        load=module.load,
        missing=module.missing,
    )


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        _info("digits-mosaic", "image", digits),
        _info("mnist-mosaic", "image", mnist),
        _info("fashion-mosaic", "image", fashion),
        _info("yeast", "tabular", yeast),
        _info("hpo", "text", hpo),
        _info("iu-xray", "text", iu_xray),
        _info("coco", "image", coco),
        _info("voc", "image", voc),
        _info("mimic", "text", mimic),
        _info("table", "tabular", table),
        _info("synthetic-longtail", "tabular", synthetic),
    )
}


def dataset_options(name: str) -> dict[str, object]:
    """The options ``load_dataset(name, ...)`` takes, with their defaults."""
    info = _get(name)
    return {
        param.name: param.default
        for param in inspect.signature(info.load).parameters.values()
        if param.kind is inspect.Parameter.KEYWORD_ONLY
    }


def load_dataset(name: str, seed: int = 0, root: str | None = None, **options) -> DatasetSplits:
    """Load a dataset's fixed train/test split.

    Args:
        name: a key of :data:`DATASETS`.
        seed: fixes the split and any random construction (mosaics).
        root: folder (or file) to read from, for datasets that read local files.
        **options: dataset-specific options; see :func:`dataset_options`.

    Raises:
        ValueError: unknown name or option, a bad option value, or an empty split.
        DatasetUnavailable: the files the dataset reads are missing; the message says which.
    """
    info = _get(name)
    known = dataset_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for dataset {name!r}; "
            f"it takes: {', '.join(known) or 'none'}"
        )
    splits = info.load(seed=seed, root=root, **options)
    for split in ("train", "test"):
        # Caught here rather than after an epoch of training or in an evaluation that divides by 0.
        if len(getattr(splits, split)) == 0:
            raise ValueError(
                f"dataset {name!r}: the {split} split is empty with these options "
                f"({options or 'defaults'}); give it items (e.g. a larger test_fraction or n_{split})"
            )
    return splits


_TABLE_CACHE: dict[str, dict] = {}


def dataset_table(sizes: bool = True) -> list[dict]:
    """One row per registered dataset, for ``python -m sdl datasets``.

    Keys: name, kind, available (bool), train, test, labels, labels_per_item (mean over both
    splits), note (what is missing, else the description), load_seconds. With ``sizes`` the available
    datasets are loaded once (seed 0, default options) and the rows are cached in-process.
    """
    rows = []
    for name, info in DATASETS.items():
        if sizes and name in _TABLE_CACHE:
            rows.append(dict(_TABLE_CACHE[name]))
            continue
        message = info.missing(None)
        row = {
            "name": name,
            "kind": info.kind,
            "available": message is None,
            "train": None,
            "test": None,
            "labels": None,
            "labels_per_item": None,
            "note": message or info.description,
            "load_seconds": None,
        }
        if sizes and message is None:
            start = time.perf_counter()
            try:
                splits = load_dataset(name)
            except DatasetUnavailable as err:
                row.update(available=False, note=str(err))
            else:
                n_items = len(splits.train) + len(splits.test)
                n_labels = int(splits.train.labels.sum()) + int(splits.test.labels.sum())
                row.update(
                    train=len(splits.train),
                    test=len(splits.test),
                    labels=splits.train.num_labels,
                    labels_per_item=n_labels / n_items,
                    load_seconds=round(time.perf_counter() - start, 2),
                )
            _TABLE_CACHE[name] = dict(row)
        rows.append(row)
    return rows


def _get(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


__all__ = [
    "DATASETS",
    "KINDS",
    "DatasetInfo",
    "DatasetSplits",
    "DatasetUnavailable",
    "MultiLabelData",
    "dataset_options",
    "dataset_table",
    "load_dataset",
]
