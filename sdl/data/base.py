"""What every dataset loader returns: in-memory arrays with a fixed train/test split.

Multi-label data here is small enough to hold in memory (thousands to tens of thousands of items),
so a dataset is a pair of :class:`MultiLabelData` with numpy arrays; augmentation runs batch-wise on
the training device (see ``sdl.data.augment``), with no DataLoader workers to manage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

KINDS = ("image", "tabular", "text")


class DatasetUnavailable(FileNotFoundError, RuntimeError):
    """The files a dataset reads are not on this machine; the message says what to install or pass.

    A FileNotFoundError (a missing file is what it is); also a RuntimeError, as it always was.
    """


@dataclass
class MultiLabelData:
    """One split of a dataset.

    Attributes:
        inputs: model inputs, float32: images (N, 1, H, W) or (N, 3, H, W) in [0, 1];
            tabular and text features (N, F).
        labels: (N, C) uint8 multi-hot.
        ids: (N,) int64, stable ids of the items (unique within the dataset, across splits).
        label_names: C names.
        kind: "image", "tabular" or "text".
        thumbs: for images, (N, H, W) or (N, H, W, 3) uint8 to show the item; else None.
        texts: for text (and tabular) data, a short string per item to show; else None.
    """

    inputs: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    label_names: list[str]
    kind: str
    thumbs: np.ndarray | None = None
    texts: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.inputs)
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.labels.ndim != 2 or len(self.labels) != n or len(self.ids) != n:
            raise ValueError(
                f"inputs ({n}), labels {self.labels.shape} and ids ({len(self.ids)}) disagree"
            )
        if self.labels.shape[1] != len(self.label_names):
            raise ValueError(
                f"labels has {self.labels.shape[1]} columns but {len(self.label_names)} label names"
            )

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def num_labels(self) -> int:
        return self.labels.shape[1]


@dataclass
class DatasetSplits:
    name: str
    train: MultiLabelData
    test: MultiLabelData
    description: str = ""
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry: how to load a dataset and whether it can be loaded here."""

    name: str
    kind: str
    description: str
    load: Callable[..., DatasetSplits]  # load(seed=0, root=None, **options) -> DatasetSplits
    # returns None when available, else the message saying what is missing
    missing: Callable[[str | None], str | None]
