"""``mimic``: MIMIC-III clinical notes -> their ICD-9 diagnosis codes (local files).

MIMIC-III needs credentialed access (PhysioNet), so it is never bundled. Under ``root``:

    NOTEEVENTS.csv(.gz)     SUBJECT_ID, HADM_ID, CATEGORY, TEXT (ISERROR rows are dropped)
    DIAGNOSES_ICD.csv(.gz)  HADM_ID, ICD9_CODE

One item per hospital admission (HADM_ID): its notes of ``category`` joined; labels are its codes
among the ``top_k`` codes most frequent over admissions with notes (admissions without any are
dropped); ``top_k=None`` (or 0) keeps every code, the MIMIC-III-Full setting (8,929 codes). The split is by patient (SUBJECT_ID), so no patient is in both splits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdl.data._files import multi_hot, split_indices
from sdl.data.base import DatasetSplits, DatasetUnavailable
from sdl.data.text_features import resolve_method, text_splits

FILES = ("NOTEEVENTS", "DIAGNOSES_ICD")
DESCRIPTION = "MIMIC-III notes (local files) -> the top-k ICD-9 codes of each admission"


def _find(root: Path, stem: str) -> Path | None:
    for suffix in (".csv", ".csv.gz"):
        for name in (stem, stem.lower()):
            if (root / f"{name}{suffix}").is_file():
                return root / f"{name}{suffix}"
    return None


def missing(root: str | None = None) -> str | None:
    if root is None:
        return (
            "MIMIC-III is not bundled (credentialed access): pass root= a folder with "
            "NOTEEVENTS.csv(.gz) and DIAGNOSES_ICD.csv(.gz)"
        )
    folder = Path(root).expanduser()
    absent = [f"{stem}.csv(.gz)" for stem in FILES if _find(folder, stem) is None]
    if not absent:
        return None
    return (
        f"root={root!r}: MIMIC-III file(s) {', '.join(absent)} not found in {folder}; pass root= "
        "the folder of the MIMIC-III CSV files (from PhysioNet)"
    )


def _read(path: Path, needed: tuple[str, ...]):
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.columns = [c.upper() for c in frame.columns]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise ValueError(f"{path} lacks column(s) {absent}; it has {list(frame.columns)}")
    return frame


def check_top_k(top_k: object) -> int | None:
    """``top_k`` as an int >= 1, or None for every code (0 means None too).

    Raises:
        ValueError: anything else (a negative number, a float, a string), naming ``top_k``.
    """
    if top_k is None or (isinstance(top_k, int) and not isinstance(top_k, bool) and top_k == 0):
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 1, or 0/None for every code; got {top_k!r}")
    return top_k


def read_admissions(
    root: str | Path, top_k: int | None = 50, category: str | None = "Discharge summary"
) -> tuple[list[int], list[int], list[str], list[str], list[list[int]]]:
    """Admissions with notes and at least one kept code.

    Args:
        root: the folder with the two files.
        top_k: keep the ``top_k`` most frequent codes; None or 0 keeps every code.
        category: note CATEGORY to keep (None keeps every note).

    Returns:
        hadm ids, subject ids, note texts, the kept codes (most frequent first), and the
        indices of each admission's kept codes.
    """
    top_k = check_top_k(top_k)
    folder = Path(root).expanduser()
    notes = _read(_find(folder, "NOTEEVENTS"), ("SUBJECT_ID", "HADM_ID", "TEXT"))
    notes = notes[notes["HADM_ID"].str.strip() != ""]
    if "ISERROR" in notes.columns:
        notes = notes[notes["ISERROR"].str.strip() != "1"]
    if category is not None and "CATEGORY" in notes.columns:
        notes = notes[notes["CATEGORY"].str.strip().str.lower() == category.lower()]
    notes = notes.assign(HADM=notes["HADM_ID"].astype(float).astype(np.int64))
    texts = notes.groupby("HADM")["TEXT"].agg("\n".join)
    subjects = notes.groupby("HADM")["SUBJECT_ID"].first().astype(float).astype(np.int64)

    diagnoses = _read(_find(folder, "DIAGNOSES_ICD"), ("HADM_ID", "ICD9_CODE"))
    diagnoses = diagnoses[
        (diagnoses["HADM_ID"].str.strip() != "") & (diagnoses["ICD9_CODE"].str.strip() != "")
    ]
    pairs = {
        (int(float(h)), code.strip())
        for h, code in zip(diagnoses["HADM_ID"], diagnoses["ICD9_CODE"], strict=True)
    }
    pairs = {(h, code) for h, code in pairs if h in texts.index}
    counts: dict[str, int] = {}
    for _, code in pairs:
        counts[code] = counts.get(code, 0) + 1
    codes = sorted(counts, key=lambda c: (-counts[c], c))[:top_k]  # ties: by code, for determinism
    # (slicing with None keeps every code)
    column = {code: i for i, code in enumerate(codes)}
    per_admission: dict[int, list[int]] = {}
    for hadm, code in sorted(pairs):
        if code in column:
            per_admission.setdefault(hadm, []).append(column[code])
    hadms = sorted(per_admission)
    return (
        hadms,
        [int(subjects[h]) for h in hadms],
        [texts[h] for h in hadms],
        codes,
        [sorted(per_admission[h]) for h in hadms],
    )


def load(
    seed: int = 0,
    root: str | None = None,
    *,
    top_k: int | None = 50,
    category: str | None = "Discharge summary",
    features: str = "auto",
    dim: int = 256,
    test_fraction: float = 0.2,
) -> DatasetSplits:
    """MIMIC-III admissions: note features and top-k ICD-9 labels, split by patient (seeded).

    Args:
        seed: fixes the patient split.
        root: folder with NOTEEVENTS and DIAGNOSES_ICD.
        top_k: number of most frequent codes kept as labels; None or 0 keeps all of them.
        category: note CATEGORY to keep (None keeps every note).
        features: "auto" (MiniLM when installed, else TF-IDF), "minilm" or "tfidf" (see
            ``text_features``).
        dim: TF-IDF/SVD dimensions.
        test_fraction: share of patients in the test split.

    Raises:
        DatasetUnavailable: a file is missing.
    """
    message = missing(root)
    if message:
        raise DatasetUnavailable(message)
    features = resolve_method(features)
    hadms, subjects, texts, codes, label_lists = read_admissions(root, top_k, category)
    if len(set(subjects)) < 2:
        raise DatasetUnavailable(f"MIMIC files in {root} hold fewer than 2 patients with notes")
    patients = np.array(sorted(set(subjects)))
    _, test_patients = split_indices(len(patients), test_fraction, seed)
    in_test = np.isin(np.array(subjects), patients[test_patients])
    train_idx, test_idx = np.flatnonzero(~in_test), np.flatnonzero(in_test)
    labels = multi_hot(label_lists, len(codes))
    return text_splits(
        "mimic",
        texts,
        labels,
        np.asarray(hadms, dtype=np.int64),
        list(codes),
        (train_idx, test_idx),
        [" ".join(t.split())[:200] for t in texts],
        DESCRIPTION,
        {"seed": seed, "top_k": top_k, "category": category},
        features=features,
        dim=dim,
        seed=seed,
    )
