"""``synthetic-longtail``: generated features with thousands of long-tailed labels (a scale test).

Label ``c`` (0-based, by rank) is drawn with probability proportional to ``1 / (c + 1) ** zipf``
(Zipf-like: with the defaults the most frequent label is on ~27% of the items and 6,800 of the
10,000 labels on no training item). An item draws ``1 + Poisson(extra_labels)`` labels (at most
``max_labels``) from that law, with replacement, so a repeat just collapses. Its features are the
sum of its labels' prototype vectors (random unit vectors in ``num_features`` dimensions) divided
by sqrt(|labels|), plus gaussian noise of std ``noise``: label sets and features are correlated,
so training has a signal, and items sharing labels lie close.

Generation is vectorised and cheap (an inverse-CDF lookup per draw; no (N, C) work besides
filling the multi-hot matrix). Labels come out as the dense (N, C) uint8 matrix every loss takes.
"""

from __future__ import annotations

import numpy as np

from sdl.data.base import DatasetSplits, MultiLabelData

DESCRIPTION = "generated features, 10,000 Zipf-distributed labels correlated with them (scale test)"


def missing(root: str | None = None) -> str | None:
    """Generated in memory: always available."""
    return None


def _check(name: str, value: object, low: float, integer: bool) -> None:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value >= low:
        what = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {what} >= {low}, got {value!r}")


def generate(
    n: int,
    num_labels: int,
    num_features: int,
    rng: np.random.Generator,
    zipf: float = 1.0,
    extra_labels: float = 2.0,
    max_labels: int = 10,
    noise: float = 0.5,
    prototypes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` items: features (n, F) float32, labels (n, C) uint8, and the (C, F) prototypes used.

    Pass the same ``prototypes`` for the train and test items so both follow one law.
    """
    ranks = np.arange(1, num_labels + 1, dtype=np.float64)
    cdf = np.cumsum(ranks**-zipf)
    cdf /= cdf[-1]
    if prototypes is None:
        prototypes = rng.standard_normal((num_labels, num_features)).astype(np.float32)
        prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    counts = np.minimum(1 + rng.poisson(extra_labels, size=n), max_labels)  # (n,)
    draws = np.searchsorted(cdf, rng.random((n, max_labels)), side="right")  # (n, K) label ids
    draws = np.minimum(draws, num_labels - 1)  # guards the float edge u == cdf[-1]
    used = np.arange(max_labels)[None, :] < counts[:, None]  # (n, K): the first k draws count
    labels = np.zeros((n, num_labels), dtype=np.uint8)
    rows = np.repeat(np.arange(n), max_labels).reshape(n, max_labels)
    labels[rows[used], draws[used]] = 1
    sizes = labels.sum(axis=1, keepdims=True).astype(np.float32)  # (n, 1) distinct labels
    # sum of the prototypes of each item's distinct labels, without an (n, C) float product
    features = np.zeros((n, num_features), dtype=np.float32)
    item, label = np.nonzero(labels)
    np.add.at(features, item, prototypes[label])
    features = features / np.sqrt(sizes) + noise * rng.standard_normal(features.shape).astype(
        np.float32
    )
    return features.astype(np.float32), labels, prototypes


def load(
    seed: int = 0,
    root: str | None = None,
    *,
    n_train: int = 4000,
    n_test: int = 1000,
    num_labels: int = 10_000,
    num_features: int = 64,
    zipf: float = 1.0,
    extra_labels: float = 2.0,
    max_labels: int = 10,
    noise: float = 0.5,
) -> DatasetSplits:
    """Generated long-tailed multi-label data (see the module docstring).

    Args:
        seed: fixes everything generated.
        root: unused.
        n_train, n_test: items per split.
        num_labels: C.
        num_features: F, the feature dimension.
        zipf: exponent of the label law (0: uniform; larger: a longer head).
        extra_labels: mean number of labels drawn beyond the first.
        max_labels: cap on the labels drawn per item.
        noise: std of the gaussian noise added to the features.

    Raises:
        ValueError: an option out of range (naming it).
    """
    for name, value in (("n_train", n_train), ("n_test", n_test), ("num_labels", num_labels)):
        _check(name, value, 1, integer=True)
    _check("num_features", num_features, 1, integer=True)
    _check("max_labels", max_labels, 1, integer=True)
    for name, value in (("zipf", zipf), ("extra_labels", extra_labels), ("noise", noise)):
        _check(name, value, 0, integer=False)
    rng = np.random.default_rng([seed, 7])
    train_x, train_y, prototypes = generate(
        n_train, num_labels, num_features, rng, zipf, extra_labels, max_labels, noise
    )
    test_x, test_y, _ = generate(
        n_test, num_labels, num_features, rng, zipf, extra_labels, max_labels, noise, prototypes
    )
    names = [f"L{c:0{len(str(num_labels - 1))}d}" for c in range(num_labels)]

    def part(x: np.ndarray, y: np.ndarray, offset: int) -> MultiLabelData:
        return MultiLabelData(
            inputs=x,
            labels=y,
            ids=np.arange(offset, offset + len(x), dtype=np.int64),
            label_names=names,
            kind="tabular",
            texts=[" ".join(names[c] for c in np.flatnonzero(row)) for row in y],
        )

    return DatasetSplits(
        "synthetic-longtail",
        part(train_x, train_y, 0),
        part(test_x, test_y, n_train),
        DESCRIPTION,
        info={"seed": seed, "zipf": zipf, "num_labels": num_labels},
    )
