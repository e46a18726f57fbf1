import numpy as np
import pytest
from scipy import stats

from sdl import evaluate
from sdl.evaluate import (
    anchor_labels,
    cosine_neighbours,
    embed,
    evaluate_embeddings,
    fit_logistic,
    knn_retrieval,
    linear_probe,
    metrics_record,
    paired_difference,
    relation_auc,
    relation_profile,
    sd_agreement,
    sd_surface,
    seed_summary,
)
from tests.set_reference import relation_of


def random_labels(n, c, seed, p=0.3):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < p).astype(np.uint8)
    y[y.sum(1) == 0, rng.integers(0, c)] = 1  # every item has a label
    return y


def test_probe_on_the_labels_themselves_is_perfect():
    # Each label is one coordinate of the embedding: linearly separable, so AP = F1 = 1.
    y_train, y_test = random_labels(200, 5, 0), random_labels(80, 5, 1)
    rng = np.random.default_rng(2)
    noise = lambda n: 0.01 * rng.standard_normal((n, 3))
    x_train = np.hstack([y_train, noise(200)])
    x_test = np.hstack([y_test, noise(80)])
    metrics = linear_probe(x_train, y_train, x_test, y_test)
    scores = {k: metrics[k] for k in ("mAP", "micro_f1", "macro_f1")}
    assert scores == pytest.approx({"mAP": 1.0, "micro_f1": 1.0, "macro_f1": 1.0})
    assert metrics["probe_labels"] == 5 and metrics["probe_converged"] == 1


def test_probe_on_noise_is_near_chance():
    y_train, y_test = random_labels(300, 4, 0), random_labels(300, 4, 1)
    rng = np.random.default_rng(3)
    metrics = linear_probe(
        rng.standard_normal((300, 8)), y_train, rng.standard_normal((300, 8)), y_test
    )
    prevalence = y_test.mean(0).mean()  # the AP of a random ranking
    assert abs(metrics["mAP"] - prevalence) < 0.12


def test_probe_evaluates_only_labels_with_positives_in_both_splits():
    y_train = random_labels(100, 5, 0)
    y_train[:, 3] = 0  # no training positive: no probe can learn it, left out
    y_train[:, 4] = 1  # positive on every training item: predicted as that constant
    y_test = random_labels(50, 5, 1)
    y_test[:, 2] = 0  # absent from test: its AP is undefined, left out
    x_train = y_train.astype(float) + 0.01
    x_test = y_test.astype(float) + 0.01
    metrics = linear_probe(x_train, y_train, x_test, y_test)
    # labels 0 and 1 are perfect; label 4 scores 1 everywhere: AP = its test prevalence, and every
    # item predicted, so its F1 is 2p / (1 + p) for prevalence p
    p4 = y_test[:, 4].mean()
    assert metrics["probe_labels"] == 3
    assert metrics["mAP"] == pytest.approx((1 + 1 + p4) / 3)
    assert metrics["macro_f1"] == pytest.approx((1 + 1 + 2 * p4 / (1 + p4)) / 3)
    # micro-F1 over the same three labels: label 4 adds its false positives, nothing else does
    positives = y_test[:, [0, 1, 4]].sum()
    false_pos = (1 - y_test[:, 4]).sum()
    assert metrics["micro_f1"] == pytest.approx(2 * positives / (2 * positives + false_pos))
    # at least 18 positives in each split: only label 0 has them
    counts = np.minimum(y_train.sum(0), y_test.sum(0))
    strict = linear_probe(x_train, y_train, x_test, y_test, min_positives=18)
    assert strict["probe_labels"] == int((counts >= 18).sum()) == 1
    assert strict["mAP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="min_positives"):
        linear_probe(x_train, y_train, x_test, y_test, min_positives=0)
    with pytest.raises(ValueError, match="min_positives=1000"):
        linear_probe(x_train, y_train, x_test, y_test, min_positives=1000)


def explicit_knn(train_x, train_y, query_x, query_y, k):
    """Retrieval with Python loops: cosine by hand, label sets as Python sets."""
    jaccards, precisions = [], []
    unit = lambda v: v / np.linalg.norm(v)
    for q, qy in zip(query_x, query_y, strict=True):
        s = {c for c in range(len(qy)) if qy[c]}
        if not s:
            continue
        sims = [float(unit(q) @ unit(t)) for t in train_x]
        nearest = sorted(range(len(train_x)), key=lambda j: -sims[j])[:k]
        for j in nearest:
            t = {c for c in range(len(qy)) if train_y[j][c]}
            jaccards.append(len(s & t) / len(s | t))
            precisions.append(1.0 if s & t else 0.0)
    n_queries = len(jaccards) // k
    return np.mean(jaccards), np.mean(precisions), n_queries


def test_knn_matches_an_explicit_loop():
    rng = np.random.default_rng(0)
    train_x, query_x = rng.standard_normal((60, 6)), rng.standard_normal((25, 6))
    train_y, query_y = random_labels(60, 5, 1), random_labels(25, 5, 2)
    query_y[:3] = 0  # queries without labels are left out
    jac, prec, _ = explicit_knn(train_x, train_y, query_x, query_y, 10)
    got = knn_retrieval(train_x, train_y, query_x, query_y, k=10)
    assert got["knn_jaccard@10"] == pytest.approx(jac)
    assert got["precision@10"] == pytest.approx(prec)
    got3 = knn_retrieval(train_x, train_y, query_x, query_y, k=3)
    assert got3["knn_jaccard@3"] == pytest.approx(
        explicit_knn(train_x, train_y, query_x, query_y, 3)[0]
    )


def test_knn_with_thousands_of_mostly_unused_labels_matches_an_explicit_loop():
    # Counting only the columns the queries use must give the same Jaccard: the sizes |T| of the
    # neighbours still include their labels the queries never carry.
    rng = np.random.default_rng(7)
    train_y = np.zeros((40, 3000), dtype=np.uint8)
    query_y = np.zeros((15, 3000), dtype=np.uint8)
    for y, n in ((train_y, 40), (query_y, 15)):
        for i in range(n):
            y[i, rng.choice(3000 if y is train_y else 12, rng.integers(1, 4), replace=False)] = 1
    train_y[:, :12] |= (rng.random((40, 12)) < 0.3).astype(np.uint8)  # some shared labels
    train_x, query_x = rng.standard_normal((40, 5)), rng.standard_normal((15, 5))
    jac, prec, _ = explicit_knn(train_x, train_y, query_x, query_y, 5)
    got = knn_retrieval(train_x, train_y, query_x, query_y, k=5)
    assert got["knn_jaccard@5"] == pytest.approx(jac) and got["precision@5"] == pytest.approx(prec)


def test_knn_is_perfect_when_each_label_set_has_its_own_direction():
    label_sets = random_labels(8, 4, 0)
    directions = np.eye(8)
    train_x = np.repeat(directions, 10, axis=0)  # 10 training items per direction
    train_y = np.repeat(label_sets, 10, axis=0)
    got = knn_retrieval(train_x, train_y, directions, label_sets, k=10)
    assert got == pytest.approx({"knn_jaccard@10": 1.0, "precision@10": 1.0})


def test_evaluate_embeddings_has_exactly_the_metric_keys():
    y_train, y_test = random_labels(100, 4, 0), random_labels(40, 4, 1)
    metrics = evaluate_embeddings(y_train + 0.0, y_train, y_test + 0.0, y_test)
    assert set(metrics) == {
        "mAP",
        "micro_f1",
        "macro_f1",
        "probe_labels",
        "probe_iterations",
        "probe_converged",
        "knn_jaccard@10",
        "precision@10",
        "relation_profile",
        "relation_auc",
        "relation_auc_anchors",
        "sd_agreement",
        "sd_surface",
    }
    assert set(metrics["relation_profile"]) == {"R1", "R2", "R3", "R4", "R5"}
    assert {"R2>R5", "R2>R4", "R4>R5", "R4>R3", "R5>R3", "positive>R1"} <= set(
        metrics["relation_auc"]
    )
    assert set(metrics["relation_auc_anchors"]) == set(metrics["relation_auc"])
    assert {"sd", "jaccard"} <= set(metrics["sd_agreement"])


def test_bad_inputs_raise():
    y = random_labels(20, 3, 0)
    with pytest.raises(ValueError, match="must agree"):
        linear_probe(np.zeros((19, 2)), y, np.zeros((20, 2)), y)
    with pytest.raises(ValueError, match="NaN"):
        knn_retrieval(np.full((20, 2), np.nan), y, np.zeros((20, 2)), y)
    with pytest.raises(ValueError, match="k must be"):
        knn_retrieval(np.ones((20, 2)), y, np.ones((20, 2)), y, k=21)


def test_embed_batches_match_one_pass():
    import torch

    weight = torch.randn(5, 3)
    x = np.random.default_rng(0).standard_normal((11, 5)).astype(np.float32)
    got = embed(lambda b: b @ weight, x, batch_size=4)
    np.testing.assert_allclose(got, x @ weight.numpy(), rtol=1e-5, atol=1e-6)
    assert got.dtype == np.float32


# --- anchor-centred relation metrics --------------------------------------------------------------
def label_set(row):
    return {c for c, v in enumerate(row) if v}


def cosine(u, v):
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


def explicit_relation_auc(x, y, a_rel, b_rel):
    """Mean over anchors of P(cos(i, a) > cos(i, b)), ties 1/2, by looping over every pair."""
    positives = {"R2", "R3", "R4", "R5"}
    aucs = []
    for i in range(len(x)):
        s = label_set(y[i])
        if not s:
            continue
        groups = {"a": [], "b": []}
        for j in range(len(x)):
            if j == i:
                continue
            r = relation_of(s, label_set(y[j]))
            for key, wanted in (("a", a_rel), ("b", b_rel)):
                if r == wanted or (wanted == "positive" and r in positives):
                    groups[key].append(cosine(x[i], x[j]))
        if not groups["a"] or not groups["b"]:
            continue
        wins = sum(
            1.0 if ca > cb else 0.5 if ca == cb else 0.0 for ca in groups["a"] for cb in groups["b"]
        )
        aucs.append(wins / (len(groups["a"]) * len(groups["b"])))
    return (float(np.mean(aucs)) if aucs else None), len(aucs)


def test_relation_auc_matches_an_explicit_loop_with_ties():
    rng = np.random.default_rng(4)
    y = random_labels(70, 4, 5, p=0.45)
    y[:2] = 0  # anchors without labels are left out
    # Four directions only: many exactly tied cosines (equal in any precision: e1 and e2 are
    # equally far from (1, 1, 0), and 0 from e3), and some of them repeated.
    directions = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=np.float64)
    x = directions[rng.integers(0, 4, 70)] * rng.integers(1, 3, (70, 1))
    got, counts = relation_auc(x, y)
    for key in got:
        a_rel, b_rel = key.split(">")
        want, n = explicit_relation_auc(x, y, a_rel, b_rel)
        assert counts[key] == n
        assert got[key] == pytest.approx(want, abs=1e-12)


def test_relation_auc_tells_missing_from_extra_labels():
    # Four items of each label set {0, 1}, {0}, {0, 1, 2}. From a {0, 1} anchor the {0} items are R4
    # and the {0, 1, 2} items R5; place the R5 items where the anchors are and the R4 items far away.
    y = np.array([[1, 1, 0]] * 4 + [[1, 0, 0]] * 4 + [[1, 1, 1]] * 4, dtype=np.uint8)
    rng = np.random.default_rng(0)
    x = np.vstack([np.tile(c, (4, 1)) for c in ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0])])
    x += 0.01 * rng.standard_normal(x.shape)
    got, anchors = relation_auc(x, y, max_anchors=None)
    # Only the {0, 1} anchors have both R4 and R5 samples, and every R5 beats every R4.
    assert anchors["R4>R5"] == 4 and got["R4>R5"] == 0.0
    # From {0, 1}: R5 sits among the anchor's own R2 items (AUC about 1/2), R4 far away (AUC 1).
    assert got["R2>R5"] < got["R2>R4"]


def test_pooled_profile_cannot_tell_r4_from_r5_but_the_auc_can():
    rng = np.random.default_rng(1)
    y = random_labels(60, 4, 2, p=0.5)
    x = rng.standard_normal((60, 5))
    profile = relation_profile(x, y, max_anchors=None)
    assert profile["R4"] == pytest.approx(profile["R5"], abs=1e-6)  # the symmetry, any space
    auc, _ = relation_auc(x, y, max_anchors=None)
    assert auc["R2>R4"] != pytest.approx(auc["R2>R5"], abs=1e-6)


def explicit_spearman(x, y, weight):
    rhos = []
    for i in range(len(x)):
        s = label_set(y[i])
        if not s:
            continue
        cos, w = [], []
        for j in range(len(x)):
            if j != i:
                cos.append(cosine(x[i], x[j]))
                w.append(weight(s, label_set(y[j])))
        if len(set(w)) > 1:
            rhos.append(stats.spearmanr(cos, w).statistic)
    return float(np.mean(rhos))


def sd_weight(s, t):
    if not s & t:
        return 0.0
    return len(s & t) / len(s) / (1 + len(t - s))


def jaccard(s, t):
    return len(s & t) / len(s | t)


def test_sd_agreement_matches_spearman_per_anchor():
    rng = np.random.default_rng(3)
    y = random_labels(40, 5, 7, p=0.4)
    x = rng.standard_normal((40, 4))
    got = sd_agreement(x, y, max_anchors=None)
    assert got["sd"] == pytest.approx(explicit_spearman(x, y, sd_weight), abs=1e-9)
    assert got["jaccard"] == pytest.approx(explicit_spearman(x, y, jaccard), abs=1e-9)


def test_a_space_whose_cosine_is_the_jaccard_index_agrees_perfectly():
    # The Jaccard matrix of non-empty sets is positive semi-definite with a unit diagonal, so it is
    # the Gram matrix of unit vectors: a space where cosine = Jaccard exactly.
    y = random_labels(30, 5, 9, p=0.4)
    sets = [label_set(r) for r in y]
    gram = np.array([[jaccard(s, t) for t in sets] for s in sets])
    values, vectors = np.linalg.eigh(gram)
    x = vectors * np.sqrt(np.clip(values, 0, None))
    got = sd_agreement(x, y, max_anchors=None)
    assert got["jaccard"] == pytest.approx(1.0, abs=1e-6)
    assert got["sd"] < 1.0  # the SD weight orders R4 above R5; Jaccard does not


def test_sd_surface_matches_an_explicit_loop():
    rng = np.random.default_rng(5)
    y = random_labels(50, 4, 3, p=0.5)
    x = rng.standard_normal((50, 3))
    cells = {(c["shared"], c["extra"], c["missing"]): c for c in sd_surface(x, y, max_anchors=None)}
    want: dict = {}
    for i in range(len(x)):
        s = label_set(y[i])
        per_cell: dict = {}
        r1 = []
        for j in range(len(x)):
            if j == i:
                continue
            t = label_set(y[j])
            c = cosine(x[i], x[j])
            if s & t:
                per_cell.setdefault((len(s & t), len(t - s), len(s - t)), []).append(c)
            else:
                r1.append(c)
        for key, values in per_cell.items():
            entry = want.setdefault(key, {"cos": [], "auc": [], "pairs": 0})
            entry["cos"].append(np.mean(values))
            entry["pairs"] += len(values)
            if r1:
                wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in values for b in r1)
                entry["auc"].append(wins / (len(values) * len(r1)))
    assert set(cells) == set(want)
    for key, entry in want.items():
        cell = cells[key]
        assert cell["anchors"] == len(entry["cos"]) and cell["pairs"] == entry["pairs"]
        assert cell["cosine"] == pytest.approx(np.mean(entry["cos"]), abs=1e-6)
        if entry["auc"]:
            assert cell["auc_vs_R1"] == pytest.approx(np.mean(entry["auc"]), abs=1e-12)
        else:  # no anchor of this cell has a disjoint sample
            assert cell["auc_vs_R1"] is None
        shared, extra, missing = key
        s, t = set(range(shared + missing)), set(range(shared)) | {9 + e for e in range(extra)}
        assert cell["relation"] == relation_of(s, t)


def test_relation_auc_of_equal_cosines_is_one_half():
    # Every item on one of two directions, an anchor's R2 and R3 samples all on the same one:
    # each (a, b) comparison is a tie, so AUC = 1/2 exactly (a rank-based count that dropped ties
    # or counted them whole would give 0 or 1).
    y = np.array([[1, 1, 0]] * 3 + [[1, 0, 1]] * 3 + [[0, 0, 1]] * 2, dtype=np.uint8)
    x = np.array([[1.0, 0.0]] * 6 + [[0.0, 1.0]] * 2)
    got, anchors = relation_auc(x, y, pairs=[("R2", "R3"), ("positive", "R1")], max_anchors=None)
    assert got["R2>R3"] == 0.5 and anchors["R2>R3"] == 6
    # positive>R1: the {0, 1} anchors see every positive at cosine 1 and R1 ({2}) at 0: AUC 1.
    # A {2} anchor sees its R2 twin at 1, its R5 samples ({0, 2}) and its R1 samples ({0, 1}) all
    # at 0: (3 wins + 3 x 3 ties x 1/2) / (4 x 3) = 0.625. The {0, 2} anchors have no R1 sample.
    assert anchors["positive>R1"] == 5
    assert got["positive>R1"] == pytest.approx((3 * 1.0 + 2 * 0.625) / 5, abs=1e-12)


def test_relation_metrics_are_the_same_in_small_blocks(monkeypatch):
    # Anchors are processed in blocks; with blocks of 16 over 70 anchors every metric must still
    # match the explicit loops (a block whose rows or positions were misaligned would not).
    monkeypatch.setattr(evaluate, "_BLOCK", 16)
    test_relation_auc_matches_an_explicit_loop_with_ties()
    test_sd_agreement_matches_spearman_per_anchor()
    test_sd_surface_matches_an_explicit_loop()


def test_spaces_share_the_label_side_and_match_the_separate_metrics():
    rng = np.random.default_rng(8)
    y_train, y_test = random_labels(120, 6, 3, p=0.35), random_labels(90, 6, 4, p=0.35)
    spaces = {
        name: (rng.standard_normal((120, d)), rng.standard_normal((90, d)))
        for name, d in (("encoder", 7), ("head", 3))
    }
    timings: dict = {}
    record = metrics_record(spaces, y_train, y_test, timings=timings)
    for name, (_, test_x) in spaces.items():
        got = record[name]
        auc, anchors = relation_auc(test_x, y_test)
        assert got["relation_auc"] == auc and got["relation_auc_anchors"] == anchors
        assert got["sd_agreement"] == sd_agreement(test_x, y_test)
        assert got["sd_surface"] == sd_surface(test_x, y_test)
        assert got["relation_profile"] == relation_profile(test_x, y_test)
        assert {"probe", "knn", "anchor rows", "relation summaries"} <= set(timings[name])
    assert "anchor labels" in timings
    pairs = anchor_labels(y_test)
    assert len(pairs.anchors) == 90 and pairs.relation.shape == (90, 90)


def test_a_long_tail_of_labels_evaluates_only_the_measurable_ones():
    from sdl.data import load_dataset

    data = load_dataset("synthetic-longtail", seed=0, n_train=300, n_test=100)
    rng = np.random.default_rng(0)
    project = rng.standard_normal((data.train.inputs.shape[1], 16))
    spaces = {"encoder": (data.train.inputs @ project, data.test.inputs @ project)}
    record = metrics_record(spaces, data.train.labels, data.test.labels)
    both = (data.train.labels.sum(0) > 0) & (data.test.labels.sum(0) > 0)
    assert data.train.labels.shape[1] == 10_000
    assert record["encoder"]["probe_labels"] == int(both.sum()) < 1_000
    assert record["encoder"]["probe_converged"] == 1
    assert 0 < record["mAP"] <= 1


def test_relation_metrics_without_anchors_are_empty_not_errors():
    x = np.random.default_rng(0).standard_normal((6, 3))
    y = np.zeros((6, 4), dtype=np.uint8)  # no item has a label: no anchor
    auc, anchors = relation_auc(x, y)
    assert set(auc.values()) == {None} and set(anchors.values()) == {0}
    assert sd_surface(x, y) == []
    assert sd_agreement(x, y) == {"sd": None, "jaccard": None, "anchors": 0}
    assert set(relation_profile(x, y).values()) == {None}


def test_relation_metrics_reject_bad_input():
    y = random_labels(10, 3, 0)
    with pytest.raises(ValueError, match="must agree"):
        relation_auc(np.zeros((9, 2)), y)
    with pytest.raises(ValueError, match="NaN"):
        sd_agreement(np.full((10, 2), np.nan), y)
    with pytest.raises(ValueError, match="pairs must name"):
        relation_auc(np.ones((10, 2)), y, pairs=[("R2", "R9")])


# --- probe against scikit-learn's per-label reference, on real data -------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("features", ["inputs", "untrained encoder"])
def test_joint_probe_matches_sklearn_per_label_on_yeast(features):
    # The untrained MLP encoder ends in a ReLU: dead units make constant and near-constant
    # features, the ill-conditioned case of a real run's encoder space.
    import torch

    from sdl.data import load_dataset
    from sdl.models import build_model

    data = load_dataset("yeast", seed=0)
    x_train, x_test = data.train.inputs, data.test.inputs
    if features == "untrained encoder":
        torch.manual_seed(0)
        model = build_model("tabular", (x_train.shape[1],), embed_dim=128).eval()
        x_train, x_test = embed(model.encode, x_train), embed(model.encode, x_test)
    args = (x_train, data.train.labels, x_test, data.test.labels)
    joint = linear_probe(*args, solver="joint")
    reference = linear_probe(*args, solver="sklearn")
    assert joint["probe_labels"] == reference["probe_labels"] == 14
    for key in ("mAP", "micro_f1", "macro_f1"):
        assert joint[key] == pytest.approx(reference[key], abs=0.01)


def test_joint_fit_matches_sklearn_per_label_on_an_ill_conditioned_problem():
    # Features far from standardised (a constant one, a near-duplicate, scales 1e-2..1e2, not
    # centred) and labels from common to one positive: each label's objective at (W, b) must be
    # the minimum scikit-learn's per-label L-BFGS finds with a tight tolerance. (The products are
    # float32, so the objective is resolved to ~1e-7 of itself; a rare label's intercept is flat
    # to within that, hence the looser tolerance on the parameters.)
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(11)
    n = 300
    base = rng.standard_normal((n, 4))
    x = np.hstack(
        [
            base * [100.0, 1.0, 0.01, 3.0] + [5.0, -2.0, 0.0, 40.0],
            base[:, :1] * 100.0 + 1e-3 * rng.standard_normal((n, 1)),  # near-duplicate of x0
            np.full((n, 1), 7.0),  # constant
        ]
    )
    logits = base @ rng.standard_normal((4, 4)) + [0.0, -2.0, -4.0, 0.5]
    y = (rng.random((n, 4)) < 1 / (1 + np.exp(-logits))).astype(np.uint8)
    y[:, 2] = 0
    y[5, 2] = 1  # one positive
    fit = fit_logistic(x, y)
    assert fit.converged

    def objective(w, b, target):  # sum of logloss + ||w||^2 / 2, in float64
        logit = x @ w + b
        return (np.logaddexp(0, logit) - target * logit).sum() + 0.5 * w @ w

    for c in range(y.shape[1]):
        ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=100000).fit(x, y[:, c])
        best = objective(ref.coef_[0], ref.intercept_[0], y[:, c])
        assert objective(fit.weight[:, c], fit.bias[c], y[:, c]) <= best * (1 + 1e-6)
        want = np.append(ref.coef_[0], ref.intercept_[0])
        np.testing.assert_allclose(np.append(fit.weight[:, c], fit.bias[c]), want, atol=1e-2)
    with pytest.raises(ValueError, match="l2"):
        fit_logistic(x, y, l2=0.0)


def test_probe_rejects_an_unknown_solver():
    y = random_labels(20, 3, 0)
    with pytest.raises(ValueError, match="solver"):
        linear_probe(np.ones((20, 2)), y, np.ones((20, 2)), y, solver="newton")


def test_cosine_neighbours_match_a_sort():
    rng = np.random.default_rng(6)
    index, queries = rng.standard_normal((30, 4)), rng.standard_normal((7, 4))
    rows, sims = cosine_neighbours(index, queries, 5)
    for q in range(7):
        c = [cosine(queries[q], v) for v in index]
        order = sorted(range(30), key=lambda j: (-c[j], j))[:5]
        assert rows[q].tolist() == order
        np.testing.assert_allclose(sims[q], [c[j] for j in order], rtol=1e-5)
    rows, _ = cosine_neighbours(index, index[:3], 29, exclude=np.arange(3))
    assert all(q not in rows[q] for q in range(3))
    with pytest.raises(ValueError, match="k must be"):
        cosine_neighbours(index, queries, 31)


# --- over seeds -----------------------------------------------------------------------------------
def test_seed_summary_is_a_t_interval():
    values = [0.5, 0.6, 0.55, 0.7, 0.65]
    got = seed_summary(values)
    mean, std = np.mean(values), np.std(values, ddof=1)
    half = 2.7764451051977987 * std / np.sqrt(5)  # t(0.975, 4 degrees of freedom), from tables
    assert got["n"] == 5 and got["mean"] == pytest.approx(mean) and got["std"] == pytest.approx(std)
    assert got["ci_low"] == pytest.approx(mean - half) and got["ci_high"] == pytest.approx(
        mean + half
    )
    one = seed_summary([0.3])
    assert one["mean"] == 0.3 and np.isnan(one["std"]) and np.isnan(one["ci_low"])
    with pytest.raises(ValueError, match="level"):
        seed_summary(values, level=1.5)


def test_paired_difference_verdicts():
    base = [0.50, 0.52, 0.49, 0.51, 0.50]
    better = [b + 0.02 + 0.001 * k for k, b in enumerate(base)]  # always ahead, by a steady margin
    assert paired_difference(better, base)["verdict"] == "win"
    assert paired_difference(base, better)["verdict"] == "loss"
    noisy = [b + d for b, d in zip(base, [0.03, -0.03, 0.02, -0.02, 0.0], strict=True)]
    assert paired_difference(noisy, base)["verdict"] == "tie"
    got = paired_difference(better, base)
    assert got["mean"] == pytest.approx(np.mean(np.subtract(better, base)))
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0], [1.0, 2.0])
