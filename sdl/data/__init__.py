"""Datasets by name: ``load_dataset(name, seed, root, **options) -> DatasetSplits``.

Every loader reads files that an installed package ships or that the user points to (``root`` or a
path option); nothing is downloaded. When files are missing a loader raises
:class:`DatasetUnavailable` saying what to install or pass. The same seed gives the same split and
the same items.
"""

from __future__ import annotations

import inspect
import math
import time

import numpy as np

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


def _check_option_type(dataset: str, key: str, value: object, default: object) -> None:
    """A value of the same kind as the option's default (an int for an int, a number for a float,
    text for text), so ``n_train=abc`` is one clear message and not a TypeError deep in a loader."""
    if default is None or value is None or isinstance(default, bool):
        return  # free-form, "none" (e.g. mimic's top_k=None: every code), or a bool the loader checks
    if isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok, kind = ok and math.isfinite(value), "a number"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "text"
    else:
        return
    if not ok:
        raise ValueError(
            f"dataset {dataset!r}: option {key} must be {kind} (like its default {default!r}), "
            f"got {value!r}"
        )


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
    for key, value in options.items():
        _check_option_type(name, key, value, known[key])
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
RELATION_KEYS = ("R1", "R2", "R3", "R4", "R5")


def relation_mix(
    labels: np.ndarray, batch_size: int = 128, batches: int = 8, seed: int = 0
) -> dict[str, float]:
    """Share of the (anchor, sample) pairs in each relation R1..R5, in random batches of ``labels``.

    Batches of ``batch_size`` rows are drawn without replacement, as a shuffled epoch draws them;
    the diagonal is left out; shares are pooled over ``batches`` batches.
    """
    import torch

    from sdl.relations import relation_counts, relation_matrix

    rng = np.random.default_rng(seed)
    size = min(batch_size, len(labels))
    totals = dict.fromkeys(RELATION_KEYS, 0)
    for _ in range(batches):
        rows = rng.choice(len(labels), size=size, replace=False)
        counts = relation_counts(relation_matrix(torch.as_tensor(labels[rows])))
        for relation, count in counts.items():
            totals[relation.short] += count
    pairs = sum(totals.values())
    return {key: (count / pairs if pairs else 0.0) for key, count in totals.items()}


def dataset_table(sizes: bool = True) -> list[dict]:
    """One row per registered dataset, for ``python -m sdl datasets``.

    Keys: name, kind, available (bool), train, test, labels, labels_per_item (mean over both
    splits), R1..R5 (:func:`relation_mix` of the training split, batches of 128), note (what is
    missing, else the description), load_seconds. With ``sizes`` the available datasets are loaded
    once (seed 0, default options; text datasets with TF-IDF features, since only their labels are
    needed here and the sentence encoder takes minutes) and the rows are cached in-process.
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
            **dict.fromkeys(RELATION_KEYS),
            "note": message or info.description,
            "load_seconds": None,
        }
        if sizes and message is None:
            start = time.perf_counter()
            cheap = {"features": "tfidf"} if "features" in dataset_options(name) else {}
            try:
                splits = load_dataset(name, **cheap)
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
                    **relation_mix(splits.train.labels),
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
    "RELATION_KEYS",
    "DatasetInfo",
    "DatasetSplits",
    "DatasetUnavailable",
    "MultiLabelData",
    "dataset_options",
    "dataset_table",
    "load_dataset",
    "relation_mix",
]
