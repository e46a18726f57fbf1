"""``yeast``: the MULAN yeast gene-function data (2,417 genes x 103 features, 14 labels), river's copy."""

from __future__ import annotations

import gzip

import numpy as np

from sdl.data._files import package_file, package_file_missing, split_indices
from sdl.data.base import DatasetSplits, MultiLabelData

PACKAGE, FILE = "river", "datasets/yeast.csv.gz"
INSTALL = "pip install river==0.26.1 (it ships datasets/yeast.csv.gz)"
DESCRIPTION = "MULAN yeast: 2,417 genes, 103 expression/phylogenetic features, 14 function classes"
N_FEATURES = 103


def missing(root: str | None = None) -> str | None:
    return package_file_missing(PACKAGE, FILE, INSTALL)


def read_yeast() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(2417, 103) float features, (2417, 14) uint8 labels and the label names, from the CSV.

    The CSV header is Att1..Att103 then Class1..Class14 (0/1).
    """
    path = package_file(PACKAGE, FILE, INSTALL)
    with gzip.open(path, "rt") as f:
        header = f.readline().strip().split(",")
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    return table[:, :N_FEATURES], table[:, N_FEATURES:].astype(np.uint8), header[N_FEATURES:]


def load(seed: int = 0, root: str | None = None, *, test_fraction: float = 0.25) -> DatasetSplits:
    """A seeded random split of yeast; features standardised with the training split's statistics.

    Args:
        seed: fixes the split.
        root: unused (the file ships with river).
        test_fraction: share of the genes in the test split.
    """
    features, labels, label_names = read_yeast()
    train_idx, test_idx = split_indices(len(features), test_fraction, seed)
    mean = features[train_idx].mean(axis=0)
    std = features[train_idx].std(axis=0)
    scaled = ((features - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)

    def part(idx: np.ndarray) -> MultiLabelData:
        return MultiLabelData(
            inputs=scaled[idx],
            labels=labels[idx],
            ids=idx.astype(np.int64),
            label_names=label_names,
            kind="tabular",
            texts=[f"yeast gene #{i}" for i in idx],
        )

    return DatasetSplits(
        "yeast",
        part(train_idx),
        part(test_idx),
        DESCRIPTION,
        info={"seed": seed, "feature_mean": mean, "feature_std": std},
    )
