"""Synthetic run folders for tests and screenshots, written like a real run: the config is a real
TrainConfig, the metrics come from sdl.evaluate on the embeddings, and every file goes through
sdl.runs' writers. So the pages are tested on the schema real runs have.

The embeddings are built so that the pictures mean something: every item is the sum of its labels'
prototype vectors plus noise, and ``spread`` sets how much noise (a "worse" loss gets more).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from sdl.evaluate import metrics_record
from sdl.runs import (
    CONFIG,
    EMBEDDINGS,
    HISTORY,
    METRICS,
    SNAPSHOTS,
    write_csv_atomic,
    write_json_atomic,
    write_npz_atomic,
    write_status,
)
from sdl.train import TrainConfig


def sample_labels(n: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    labels = (rng.random((n, classes)) < 2.5 / classes).astype(np.uint8)
    empty = labels.sum(1) == 0
    labels[empty, rng.integers(0, classes, int(empty.sum()))] = 1
    return labels


def sample_thumbs(labels: np.ndarray) -> np.ndarray:
    """(N, 16, 16) uint8: a bright square in one of 4x4 cells per label."""
    n = len(labels)
    thumbs = np.zeros((n, 16, 16), dtype=np.uint8)
    for i, j in zip(*np.nonzero(labels), strict=True):
        r, c = divmod(int(j) % 16, 4)
        thumbs[i, r * 4 : r * 4 + 3, c * 4 : c * 4 + 3] = 255
    return thumbs


def write_sample_run(
    path: str | os.PathLike,
    loss: str = "sdl",
    seed: int = 0,
    n: int = 300,
    classes: int = 6,
    dim: int = 16,
    epochs: int = 5,
    spread: float = 0.3,
    state: str = "done",
    texts: bool = False,
    snapshot_items: int = 60,
) -> Path:
    """Write a complete run folder (config, status, history, metrics, embeddings, snapshots) and
    return it. ``snapshot_items=0`` writes no snapshots (as a run trained with none)."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    data_rng = np.random.default_rng(1234)  # the same items in every run, as on a shared test split
    labels = sample_labels(n, classes, data_rng)
    prototypes = data_rng.normal(size=(classes, dim))
    embeddings = labels @ prototypes + spread * rng.normal(size=(n, dim)) * np.sqrt(classes)
    # The "head": a fixed linear map of the encoder's output, as a projection head would be.
    head = embeddings @ data_rng.normal(size=(dim, dim // 2))
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    arrays = {
        "embeddings": embeddings.astype(np.float32),
        "head": head.astype(np.float32),
        "labels": labels,
        "ids": ids,
        "label_names": np.array([f"c{i}" for i in range(classes)]),
    }
    if texts:
        arrays["texts"] = np.array(
            [f"item {i} with labels {np.flatnonzero(r)}" for i, r in zip(ids, labels, strict=True)]
        )
    else:
        arrays["thumbs"] = sample_thumbs(labels)
    config = TrainConfig(dataset="synthetic", loss=loss, seed=seed, epochs=epochs, out=str(path))
    record = {
        **asdict(config),
        "kind": "tabular",
        "label_names": [str(n) for n in arrays["label_names"]],
        "num_train": n,
        "num_test": n,
    }
    write_json_atomic(path / CONFIG, record)
    done = epochs if state != "running" else max(1, epochs // 2)
    history = pd.DataFrame(
        {
            "epoch": np.arange(1, done + 1),
            "loss": 5.0 * np.exp(-np.arange(done) / (2 + spread * 4)) + rng.random(done) * 0.1,
            "lr": np.full(done, 1e-3),
            "seconds": np.full(done, 1.5),
            "anchors_without_positives": np.zeros(done, dtype=int),
        }
    )
    write_csv_atomic(path / HISTORY, history)
    write_npz_atomic(path / EMBEDDINGS, **arrays)
    if snapshot_items > 0:
        # As the trainer's Snapshots: head embeddings of a fixed subset after every epoch, epoch 0
        # untrained (here random), moving towards the final head embeddings.
        rows = np.sort(data_rng.permutation(n)[: min(snapshot_items, n)])
        start = rng.normal(size=(len(rows), head.shape[1])) * np.abs(head[rows]).mean()
        weights = np.linspace(0.0, 1.0, done + 1)[:, None, None]
        frames = (1 - weights) * start + weights * head[rows]
        write_npz_atomic(
            path / SNAPSHOTS,
            embeddings=frames.astype(np.float16),
            epochs=np.arange(done + 1, dtype=np.int64),
            ids=ids[rows],
        )
    if state == "done":
        # The real evaluation: the first half of the items is the "training" index, the rest held out.
        half = n // 2
        spaces = {
            space: (values[:half], values[half:])
            for space, values in (("encoder", embeddings), ("head", head))
        }
        metrics = metrics_record(spaces, labels[:half], labels[half:])
        write_json_atomic(path / METRICS, metrics)
    write_status(
        path, state, epoch=done, epochs=epochs, error=None if state != "failed" else "boom"
    )
    return path


SPREADS = {"sdl": 0.15, "all": 0.3, "any": 0.35, "jaccard": 0.25, "mulsupcon": 0.3, "bce": 0.5}


def write_sample_runs(
    root: str | os.PathLike, losses=("sdl", "all", "mulsupcon"), seeds=(0, 1), **kw
) -> list[Path]:
    """One run per loss and seed under ``root``, named ``<loss>-s<seed>``."""
    root = Path(root)
    return [
        write_sample_run(root / f"{loss}-s{seed}", loss, seed, spread=SPREADS.get(loss, 0.3), **kw)
        for loss in losses
        for seed in seeds
    ]
