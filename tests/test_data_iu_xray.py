"""iu-xray: the report parser and label vocabulary on a self-written fixture; the real reports
from torchxrayvision's copy where that package is installed (skipped elsewhere)."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from sdl.data import DatasetUnavailable, iu_xray, load_dataset

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<eCitation>
   <meta type="rr"/>
   <MedlineCitation Owner="Indiana University" Status="supplied by publisher">
      <Article PubModel="Electronic">
         <Abstract>
            <AbstractText Label="COMPARISON">None.</AbstractText>
            <AbstractText Label="INDICATION">cough</AbstractText>
            <AbstractText Label="FINDINGS">{findings}</AbstractText>
            <AbstractText Label="IMPRESSION">{impression}</AbstractText>
         </Abstract>
      </Article>
   </MedlineCitation>
   <MeSH>
      {mesh}
   </MeSH>
</eCitation>
"""

# report number -> (findings, impression, major terms, automatic terms); written here by hand
FIXTURE = {
    1: ("Heart is large.", "Cardiomegaly.", ["Cardiomegaly/mild"], ["cardiomegaly"]),
    2: ("Clear lungs.", "Normal chest.", ["normal"], []),
    3: ("Low volumes.", "Atelectasis.", ["Lung/hypoinflation", "Pulmonary Atelectasis/base/left"], ["atelectases"]),
    4: ("Big heart, low lungs.", "", ["Cardiomegaly", "Lung/hypoinflation/mild"], []),
    5: ("", "No acute disease.", ["normal"], []),
    6: ("Rare thing.", "Odd.", ["Unicorn Horn"], ["horn"]),
    7: ("", "", ["Cardiomegaly"], []),  # no text: dropped
    8: ("Not indexed.", "", ["no indexing"], []),
    10: ("Heart and effusion.", "", ["Cardiomegaly/severe", "Pulmonary Atelectasis"], []),
}  # fmt: skip
# headings per report, by hand, for min_count=2: unicorn horn (1 report) and no indexing dropped
TRUTH = {
    1: {"cardiomegaly"},
    2: {"normal"},
    3: {"lung", "pulmonary atelectasis"},
    4: {"cardiomegaly", "lung"},
    5: {"normal"},
    10: {"cardiomegaly", "pulmonary atelectasis"},
}


def _xml(findings: str, impression: str, major: list[str], automatic: list[str]) -> str:
    mesh = "".join(f"<major>{t}</major>" for t in major) + "".join(
        f"<automatic>{t}</automatic>" for t in automatic
    )
    return REPORT.format(findings=findings, impression=impression, mesh=mesh)


def _write_tgz(path, reports: dict) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for number, fields in reports.items():
            data = _xml(*fields).encode()
            info = tarfile.TarInfo(f"ecgen-radiology/{number}.xml")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture
def archive(tmp_path):
    path = tmp_path / "NLMCXR_reports.tgz"
    _write_tgz(path, FIXTURE)
    return path


def test_parse_report_reads_sections_and_major_terms_only():
    report = iu_xray.parse_report(_xml(*FIXTURE[3]).encode(), "ecgen-radiology/3.xml")
    assert report.id == 3 and report.findings == "Low volumes."
    assert report.major == ["Lung/hypoinflation", "Pulmonary Atelectasis/base/left"]
    assert report.text == "FINDINGS: Low volumes. IMPRESSION: Atelectasis."
    assert iu_xray.heading(" Lung/hypoinflation/mild ") == "lung"


def test_malformed_xml_is_a_value_error_naming_the_file():
    with pytest.raises(ValueError, match=r"7\.xml.*malformed"):
        iu_xray.parse_report(b"<eCitation><MeSH>", "ecgen-radiology/7.xml")


def test_fixture_labels_match_the_hand_worked_truth(archive, tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_CACHE", str(tmp_path / "cache"))
    splits = load_dataset(
        "iu-xray", root=str(archive), min_count=2, features="tfidf", dim=2, test_fraction=0.34
    )
    assert set(splits.train.label_names) == {
        "cardiomegaly",
        "normal",
        "lung",
        "pulmonary atelectasis",
    }
    assert splits.train.label_names[0] == "cardiomegaly"  # most frequent first
    got = {}
    for data in (splits.train, splits.test):
        assert data.kind == "text" and data.inputs.dtype == np.float32
        for item, row, text in zip(data.ids, data.labels, data.texts, strict=True):
            got[int(item)] = {data.label_names[i] for i in np.flatnonzero(row)}
            assert FIXTURE[int(item)][0] in text  # the report text is kept for display
    assert got == TRUTH
    assert not set(splits.train.ids) & set(splits.test.ids)


def test_keep_normal_false_drops_normal_reports(archive, tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_CACHE", str(tmp_path / "cache"))
    splits = load_dataset(
        "iu-xray", root=str(archive), min_count=2, keep_normal=False, features="tfidf", dim=2
    )
    assert "normal" not in splits.train.label_names
    ids = set(splits.train.ids) | set(splits.test.ids)
    assert ids == {1, 3, 4, 10}


@pytest.mark.parametrize("bad", ["False", "no", 0, None])
def test_keep_normal_must_be_a_real_bool(archive, bad):
    with pytest.raises(ValueError, match="keep_normal"):
        load_dataset("iu-xray", root=str(archive), keep_normal=bad, features="tfidf")


def test_missing_archive_names_the_option_and_path(tmp_path, monkeypatch):
    with pytest.raises(DatasetUnavailable, match=r"root=.*NLMCXR_reports\.tgz"):
        load_dataset("iu-xray", root=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError):
        load_dataset("iu-xray", root=str(tmp_path / "nowhere"))
    monkeypatch.setattr(iu_xray, "PACKAGE", "no_such_package_sdl")
    assert "pip install --no-deps torchxrayvision" in iu_xray.missing(None)
    with pytest.raises(DatasetUnavailable, match="torchxrayvision"):
        load_dataset("iu-xray")


REAL = iu_xray.missing(None) is None


@pytest.mark.slow
@pytest.mark.skipif(not REAL, reason="torchxrayvision (the reports' carrier) is not installed")
def test_real_reports_parse_into_about_two_labels_each():
    reports = iu_xray.read_reports(iu_xray._archive_path(None))
    assert len(reports) == 3955
    with_text = [r for r in reports if r.text]
    names, label_lists = iu_xray.label_vocabulary(with_text)
    assert 40 <= len(names) <= 60 and names[0] == "normal"
    kept = [labels for labels in label_lists if labels]
    assert len(kept) > 3700
    assert 1.7 < np.mean([len(labels) for labels in kept]) < 2.1
