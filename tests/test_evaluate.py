import numpy as np
import pytest

from sdl.evaluate import embed, evaluate_embeddings, knn_retrieval, linear_probe


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
    assert metrics == pytest.approx({"mAP": 1.0, "micro_f1": 1.0, "macro_f1": 1.0})


def test_probe_on_noise_is_near_chance():
    y_train, y_test = random_labels(300, 4, 0), random_labels(300, 4, 1)
    rng = np.random.default_rng(3)
    metrics = linear_probe(
        rng.standard_normal((300, 8)), y_train, rng.standard_normal((300, 8)), y_test
    )
    prevalence = y_test.mean(0).mean()  # the AP of a random ranking
    assert abs(metrics["mAP"] - prevalence) < 0.12


def test_probe_skips_labels_absent_from_the_test_split_and_constant_in_train():
    y_train = random_labels(100, 4, 0)
    y_train[:, 3] = 0  # constant in train: predicted as 0
    y_test = random_labels(50, 4, 1)
    y_test[:, 2] = 0  # absent from test: left out of mAP and macro-F1
    x_train = y_train.astype(float) + 0.01
    x_test = y_test.astype(float) + 0.01
    metrics = linear_probe(x_train, y_train, x_test, y_test)
    # labels 0 and 1 are perfect; label 3 has positives in test but is never predicted (AP = its
    # prevalence, F1 = 0)
    ap3 = y_test[:, 3].mean()
    assert metrics["mAP"] == pytest.approx((1 + 1 + ap3) / 3)
    assert metrics["macro_f1"] == pytest.approx(2 / 3)


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
        "knn_jaccard@10",
        "precision@10",
        "relation_profile",
    }
    assert set(metrics["relation_profile"]) == {"R1", "R2", "R3", "R4", "R5"}


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
