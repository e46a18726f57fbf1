"""``table``: any multi-label CSV/TSV/Parquet file the user names.

One row per item. ``label_column`` holds the item's label set, as ``"a|b|c"`` (``label_sep``), a JSON
list ``'["a", "b"]'``, or (Parquet) a list column. The inputs come from exactly one of:

* ``text_column``: free text -> MiniLM sentence features (TF-IDF + SVD without the encoder's
  package, or with ``features="tfidf"``), kind "text";
* ``image_column``: image paths, absolute or relative to the table's folder, kind "image";
* ``feature_columns``: numeric columns, standardised with training statistics, kind "tabular".

``split_column`` (values "train"/"test") fixes the split; without it the rows are split at random
(``test_fraction``, seeded). ``id_column`` (integers) gives the ids; else the row number.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sdl.data._files import multi_hot, read_images, split_indices
from sdl.data.base import DatasetSplits, DatasetUnavailable, MultiLabelData
from sdl.data.text_features import resolve_method, text_features

DESCRIPTION = "a CSV/TSV/Parquet file you name: label sets + text, image paths or feature columns"
_TEST_NAMES = {"test", "val", "valid", "validation"}


def missing(root: str | None = None) -> str | None:
    if root is None:
        return (
            "reads a file you name: load_dataset('table', path='items.csv', label_column='labels', "
            "text_column=... | image_column=... | feature_columns=[...])"
        )
    if Path(root).expanduser().is_file():
        return None
    return f"path={root!r}: table file not found: {Path(root).expanduser()}; pass path= an existing .csv/.tsv/.parquet file"


def read_table(path: Path):
    """A pandas DataFrame from .csv(.gz), .tsv or .parquet."""
    import pandas as pd

    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    if name.endswith((".tsv", ".tsv.gz", ".tab")):
        return pd.read_csv(path, sep="\t")
    return pd.read_csv(path)


def parse_label_set(value: object, sep: str = "|") -> list[str]:
    """A cell's label set: a list/array, a JSON list string, or ``sep``-separated names."""
    if value is None:
        return []
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, float) and np.isnan(value):
        return []
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"label cell {text!r} looks like JSON but does not parse: {err}"
            ) from err
        return parse_label_set(parsed, sep)
    return [part.strip() for part in text.split(sep) if part.strip()]


def load(
    seed: int = 0,
    root: str | None = None,
    *,
    path: str | None = None,
    label_column: str = "labels",
    text_column: str | None = None,
    image_column: str | None = None,
    feature_columns: list[str] | str | None = None,
    id_column: str | None = None,
    split_column: str | None = None,
    label_sep: str = "|",
    size: int = 64,
    features: str = "auto",
    dim: int = 256,
    test_fraction: float = 0.2,
) -> DatasetSplits:
    """A multi-label table (see the module docstring).

    Args:
        seed: fixes the random split.
        root: the table file (same as ``path``).
        path: the table file.
        label_column, text_column, image_column, feature_columns, id_column, split_column: columns.
        label_sep: separator of label names in a text label cell.
        size: image side, for ``image_column``.
        features, dim: text features, for ``text_column``.
        test_fraction: test share of the random split.

    Raises:
        DatasetUnavailable: the file, or an image it lists, is missing.
        ValueError: a named column is absent, or not exactly one input source was given.
    """
    file = path or root
    message = missing(file)
    if message:
        raise DatasetUnavailable(message)
    file_path = Path(file).expanduser()
    if isinstance(feature_columns, str):
        feature_columns = [c.strip() for c in feature_columns.split(",") if c.strip()]
    sources = [c for c in (text_column, image_column, feature_columns) if c]
    if len(sources) != 1:
        raise ValueError("give exactly one of text_column, image_column or feature_columns")
    frame = read_table(file_path)
    named = [
        label_column,
        text_column,
        image_column,
        id_column,
        split_column,
        *(feature_columns or []),
    ]
    absent = [c for c in named if c is not None and c not in frame.columns]
    if absent:
        raise ValueError(f"{file_path} lacks column(s) {absent}; it has {list(frame.columns)}")

    label_sets = [parse_label_set(v, label_sep) for v in frame[label_column]]
    label_names = sorted({name for labels in label_sets for name in labels})
    column = {name: i for i, name in enumerate(label_names)}
    labels = multi_hot(
        [sorted(column[n] for n in labels) for labels in label_sets], len(label_names)
    )
    n = len(frame)
    if id_column:
        ids = frame[id_column].to_numpy().astype(np.int64)
        if len(np.unique(ids)) != n:
            raise ValueError(f"{id_column!r} has repeated ids")
    else:
        ids = np.arange(n, dtype=np.int64)

    if split_column:
        values = frame[split_column].astype(str).str.strip().str.lower()
        unknown = sorted(set(values) - _TEST_NAMES - {"train"})
        if unknown:
            raise ValueError(f"{split_column!r} holds {unknown}; expected 'train' or 'test'")
        in_test = values.isin(_TEST_NAMES).to_numpy()
        train_idx, test_idx = np.flatnonzero(~in_test), np.flatnonzero(in_test)
    else:
        train_idx, test_idx = split_indices(n, test_fraction, seed)

    if len(train_idx) == 0 or len(test_idx) == 0:
        empty = "train" if len(train_idx) == 0 else "test"
        raise ValueError(
            f"{file_path}: the {empty} split is empty"
            + (
                f" (no row of {split_column!r} says {empty!r})"
                if split_column
                else f" (test_fraction={test_fraction} of {n} rows)"
            )
        )

    if feature_columns:
        kind = "tabular"
        values = _numeric(frame, feature_columns, file_path)
        mean, std = values[train_idx].mean(axis=0), values[train_idx].std(axis=0)
        inputs = ((values - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
        train_x, test_x, thumbs = inputs[train_idx], inputs[test_idx], None
        shown = [f"row {i}" for i in ids]
    elif text_column:
        kind = "text"
        features = resolve_method(features)
        docs = frame[text_column].fillna("").astype(str).tolist()
        train_x, test_x = text_features(
            f"table-{file_path.stem}",
            [docs[i] for i in train_idx],
            [docs[i] for i in test_idx],
            method=features,
            dim=dim,
            seed=seed,
        )
        thumbs = None
        shown = [" ".join(doc.split())[:200] for doc in docs]
    else:
        kind = "image"
        paths = [_resolve(file_path.parent, p) for p in frame[image_column].astype(str)]
        inputs, thumbs = read_images(paths, size)
        train_x, test_x = inputs[train_idx], inputs[test_idx]
        shown = [str(p) for p in frame[image_column]]

    def part(idx: np.ndarray, inputs: np.ndarray) -> MultiLabelData:
        return MultiLabelData(
            inputs=inputs,
            labels=labels[idx],
            ids=ids[idx],
            label_names=label_names,
            kind=kind,
            thumbs=None if thumbs is None else thumbs[idx],
            texts=[shown[i] for i in idx],
        )

    return DatasetSplits(
        "table",
        part(train_idx, train_x),
        part(test_idx, test_x),
        f"{file_path.name}: {DESCRIPTION}",
        info={"seed": seed, "path": str(file_path)},
    )


def _numeric(frame, columns: list[str], file_path: Path) -> np.ndarray:
    """(N, F) float64 of the named columns; a ValueError naming the column and row of a bad cell."""
    import pandas as pd

    out = np.zeros((len(frame), len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if len(bad):
            row = int(bad[0])
            raise ValueError(
                f"{file_path}: feature column {column!r} has a non-numeric or missing value "
                f"{frame[column].iloc[row]!r} at row {row} ({len(bad)} bad cell(s) in all)"
            )
        out[:, j] = numbers
    return out


def _resolve(folder: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else folder / path
