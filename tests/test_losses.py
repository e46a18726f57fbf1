"""Every loss against a loop-over-pairs float64 reference written here, plus closed forms, a peer
implementation, the gradient formula, numerics and argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from test_relations import as_sets, ref_weight

from sdl.losses import build_loss

TAU = 0.07


# --- loop references ---------------------------------------------------------------------------
def unit_rows(features: torch.Tensor) -> np.ndarray:
    """(B, V, D) -> (B*V, D) float64 numpy rows of length 1; view k belongs to sample k // V."""
    x = features.detach().to(torch.float64).reshape(-1, features.shape[-1]).numpy()
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def log_prob(z: np.ndarray, i: int, p: int, tau: float) -> float:
    """log( exp(z_i.z_p / tau) / sum_{a != i} exp(z_i.z_a / tau) ), one pair at a time."""
    denominator = sum(math.exp(z[i] @ z[a] / tau) for a in range(len(z)) if a != i)
    return z[i] @ z[p] / tau - math.log(denominator)


def ref_weighted_loss(features, weight, tau=TAU, normalize="count"):
    """docs/method.md's L_i and L; ``weight(i, p)`` takes view indices. Returns (loss, per_anchor, no_pos)."""
    z = unit_rows(features)
    n = len(z)
    per_anchor = np.zeros(n)
    kept = []
    for i in range(n):
        pairs = [(p, weight(i, p)) for p in range(n) if p != i]
        positives = [(p, w) for p, w in pairs if w > 0]
        if not positives:
            continue
        total = sum(w * log_prob(z, i, p, tau) for p, w in positives)
        norm = len(positives) if normalize == "count" else sum(w for _, w in positives)
        per_anchor[i] = -total / norm
        kept.append(i)
    loss = float(np.mean(per_anchor[kept])) if kept else 0.0
    return loss, per_anchor, n - len(kept)


def ref_mulsupcon(features, labels, tau=TAU):
    """MulSupCon built literally: one row per (view i, label c in S_i); mean over rows with positives.

    Returns (loss, per_anchor as the mean of the view's rows, views without any row)."""
    z = unit_rows(features)
    views = features.shape[1]
    sets = as_sets(labels)
    rows = []  # (view, row loss)
    for i in range(len(z)):
        for c in sorted(sets[i // views]):
            positives = [p for p in range(len(z)) if p != i and c in sets[p // views]]
            if positives:
                row = -sum(log_prob(z, i, p, tau) for p in positives) / len(positives)
                rows.append((i, row))
    per_anchor = np.zeros(len(z))
    for i in range(len(z)):
        mine = [r for v, r in rows if v == i]
        if mine:
            per_anchor[i] = np.mean(mine)
    no_rows = len(z) - len({v for v, _ in rows})
    loss = float(np.mean([r for _, r in rows])) if rows else 0.0
    return loss, per_anchor, no_rows


def set_weight(labels, views, **options):
    """Weight between views for a set-based loss, looked up on the views' samples."""
    sets = as_sets(labels)
    kind = options.pop("kind")
    threshold = options.pop("threshold", 0.0)
    symmetric = options.pop("symmetric", False)

    def sample_weight(s, t):
        if kind == "sdl":
            return ref_weight(s, t, **options)
        if kind == "all":
            return float(bool(s) and s == t)
        if kind == "any":
            return float(bool(s & t))
        jaccard = len(s & t) / len(s | t) if s | t else 0.0
        return jaccard if jaccard > threshold else 0.0

    def weight(i, p):
        s, t = sets[i // views], sets[p // views]
        w = sample_weight(s, t)
        return math.sqrt(w * sample_weight(t, s)) if symmetric else w

    return weight


def make_features(batch, views, dim=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, views, dim, generator=g, dtype=dtype)


def check_against(out, expected, tol=1e-10):
    loss, per_anchor, no_pos = expected
    assert out.loss.dtype == torch.float64
    assert out.loss.item() == pytest.approx(loss, abs=tol, rel=tol)
    np.testing.assert_allclose(out.per_anchor.detach().numpy(), per_anchor, atol=tol, rtol=tol)
    assert out.anchors_without_positives == no_pos
    assert int(out.has_positives.sum()) == len(per_anchor) - no_pos


# --- every loss against its reference ----------------------------------------------------------
SET_LOSSES = [
    ("sdl", {}),
    ("sdl", {"similarity": "jaccard"}),
    ("sdl", {"dissimilarity": "ratio"}),
    ("sdl", {"similarity": "jaccard", "dissimilarity": "ratio"}),
    ("sdl", {"components": "similarity"}),
    ("sdl", {"components": "dissimilarity"}),
    ("sdl", {"symmetric": True}),
    ("sdl", {"normalize": "weight"}),
    ("sdl", {"dissimilarity": "ratio", "normalize": "weight", "temperature": 0.5}),
    ("all", {}),
    ("any", {}),
    ("any", {"normalize": "weight"}),
    ("jaccard", {}),
    ("jaccard", {"threshold": 0.3}),
    ("jaccard", {"threshold": 0.5, "normalize": "weight"}),
]


@pytest.mark.parametrize("views", [1, 2])
@pytest.mark.parametrize(("name", "options"), SET_LOSSES, ids=lambda x: str(x))
def test_set_losses_match_loop_reference(tricky_labels, name, options, views):
    labels = tricky_labels(seed=views)
    features = make_features(len(labels), views, seed=views)
    out = build_loss(name, **options).forward_detailed(features, torch.as_tensor(labels))
    ref_options = {k: v for k, v in options.items() if k not in ("temperature", "normalize")}
    weight = set_weight(labels, views, kind=name, **ref_options)
    expected = ref_weighted_loss(
        features,
        weight,
        tau=options.get("temperature", TAU),
        normalize=options.get("normalize", "count"),
    )
    check_against(out, expected)
    # The two empty rows never anchor anything, so at least 2 * views anchors are counted out.
    assert out.anchors_without_positives >= 2 * views


@pytest.mark.parametrize("views", [1, 2])
@pytest.mark.parametrize("seed", [0, 1])
def test_mulsupcon_matches_literal_rows(tricky_labels, views, seed):
    labels = tricky_labels(seed=seed)
    features = make_features(len(labels), views, seed=seed + 10)
    out = build_loss("mulsupcon").forward_detailed(features, torch.as_tensor(labels))
    check_against(out, ref_mulsupcon(features, labels))


def test_mulsupcon_with_temperature(tricky_labels):
    labels = tricky_labels(seed=4)
    features = make_features(len(labels), 2, seed=4)
    out = build_loss("mulsupcon", temperature=0.3).forward_detailed(
        features, torch.as_tensor(labels)
    )
    check_against(out, ref_mulsupcon(features, labels, tau=0.3))


@pytest.mark.parametrize("views", [1, 2])
@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_supcon_matches_loop_reference(views, tau):
    classes = torch.tensor([0, 1, 1, 2, 0, 3, 1, 4, 4, 5])  # 2, 3 and 5 are alone
    features = make_features(len(classes), views, seed=3)
    out = build_loss("supcon", temperature=tau).forward_detailed(features, classes)
    expected = ref_weighted_loss(
        features, lambda i, p: float(classes[i // views] == classes[p // views]), tau=tau
    )
    check_against(out, expected)
    assert out.anchors_without_positives == (3 if views == 1 else 0)


@pytest.mark.parametrize("views", [2, 3])
def test_simclr_matches_loop_reference(views):
    features = make_features(6, views, seed=5)
    out = build_loss("simclr").forward_detailed(features)
    check_against(out, ref_weighted_loss(features, lambda i, p: float(i // views == p // views)))


# --- closed forms and equalities ---------------------------------------------------------------
@pytest.mark.parametrize("views", [2, 3])
@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("n", [2, 5])
def test_simclr_perfectly_aligned_views_closed_form(n, views, tau):
    # Every view of sample k is the unit vector e_k: each anchor has V-1 positives at logit 1/tau
    # and (n-1)V negatives at logit 0, so L = -log( e^{1/tau} / ((V-1) e^{1/tau} + (n-1) V) ).
    features = torch.eye(n, dtype=torch.float64)[:, None, :].expand(n, views, n)
    loss = build_loss("simclr", temperature=tau)(features)
    expected = -math.log(math.exp(1 / tau) / ((views - 1) * math.exp(1 / tau) + (n - 1) * views))
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    if views == 2:  # the usual NT-Xent form: -log(e^{1/t} / (e^{1/t} + (2n-2) e^0))
        assert loss.item() == pytest.approx(
            -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * n - 2)), rel=1e-12
        )


@pytest.mark.parametrize("n", [2, 4, 7])
def test_simclr_identical_features_gives_log_of_other_views(n):
    # All 2n views the same: the softmax is uniform over the 2n - 1 others, L = -log(1/(2n-1)).
    features = torch.ones(n, 2, 3, dtype=torch.float64)
    assert build_loss("simclr")(features).item() == pytest.approx(math.log(2 * n - 1), rel=1e-12)


@pytest.mark.parametrize("views", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_label_sdl_and_all_equal_supcon(views, seed):
    g = torch.Generator().manual_seed(seed)
    classes = torch.randint(0, 4, (12,), generator=g)
    one_hot = F.one_hot(classes, 4)
    features = make_features(12, views, seed=seed, dtype=torch.float32)
    supcon = build_loss("supcon")(features, classes)
    assert torch.equal(build_loss("sdl")(features, one_hot), supcon)
    assert torch.equal(build_loss("all")(features, one_hot), supcon)
    for options in ({"dissimilarity": "ratio"}, {"similarity": "jaccard"}, {"symmetric": True}):
        assert torch.equal(build_loss("sdl", **options)(features, one_hot), supcon)


@pytest.mark.parametrize("views", [2, 3])
def test_supcon_with_distinct_labels_equals_simclr(views):
    features = make_features(9, views, seed=8)
    supcon = build_loss("supcon", temperature=0.2)(features, torch.arange(9))
    simclr = build_loss("simclr", temperature=0.2)(features)
    assert supcon.item() == pytest.approx(simclr.item(), rel=1e-14)


@pytest.mark.parametrize("views", [1, 2])
@pytest.mark.parametrize("tau", [0.05, 0.1, 0.5])
def test_supcon_equals_pytorch_metric_learning(views, tau):
    g = torch.Generator().manual_seed(int(tau * 100) + views)
    classes = torch.randint(0, 5, (16,), generator=g)
    features = torch.randn(16, views, 12, generator=g, dtype=torch.float64)
    ours = build_loss("supcon", temperature=tau)(features, classes)
    peer = pml_losses.SupConLoss(temperature=tau)(
        features.reshape(-1, 12), classes.repeat_interleave(views)
    )
    assert ours.item() == pytest.approx(peer.item(), rel=1e-10)


# --- gradient formula --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "options", "views"),
    [
        ("sdl", {}, 2),
        ("sdl", {"normalize": "weight"}, 1),
        ("mulsupcon", {}, 2),
        ("jaccard", {"threshold": 0.2}, 2),
        ("simclr", {}, 2),
    ],
)
def test_logit_gradient_matches_autograd(tricky_labels, name, options, views):
    labels = torch.as_tensor(tricky_labels(seed=2))
    x = make_features(len(labels), views, seed=11).requires_grad_(True)
    loss = build_loss(name, temperature=0.2, **options)
    out = loss.forward_detailed(x, None if name == "simclr" else labels, keep_log_prob=True)
    (autograd,) = torch.autograd.grad(out.loss, x)

    # Chain rule by hand: L = sum_i r_i L_i / sum_i r_i, logit(i, a) = z_i . z_a / tau.
    r = out.reduction_weight
    d_logit = out.logit_gradient() * (r / r.sum())[:, None]  # (N, N)
    leaf = x.detach().clone().requires_grad_(True)
    z = F.normalize(leaf.reshape(-1, leaf.shape[-1]), dim=1)  # (N, D)
    d_z = (d_logit + d_logit.T) @ z.detach() / 0.2
    (by_formula,) = torch.autograd.grad(z, leaf, d_z)
    torch.testing.assert_close(by_formula, autograd, rtol=1e-10, atol=1e-12)
    # Rows of anchors without positives neither pull nor push.
    assert (out.logit_gradient()[~out.has_positives] == 0).all()


def test_pair_terms_sum_to_per_anchor_loss(tricky_labels):
    labels = torch.as_tensor(tricky_labels(seed=3))
    features = make_features(len(labels), 2, seed=3)
    out = build_loss("sdl").forward_detailed(features, labels, keep_log_prob=True)
    weight = set_weight(labels.numpy(), 2, kind="sdl")
    z = unit_rows(features)
    for i in range(len(z)):
        n_pos = sum(weight(i, p) > 0 for p in range(len(z)) if p != i)
        for p in range(len(z)):
            w = weight(i, p) if p != i else 0.0
            expected = -w * log_prob(z, i, p, TAU) / n_pos if w > 0 else 0.0
            assert out.pair_terms()[i, p].item() == pytest.approx(expected, abs=1e-10)


def test_pair_terms_need_log_prob():
    out = build_loss("simclr").forward_detailed(make_features(3, 2))
    with pytest.raises(ValueError, match="keep_log_prob=True"):
        out.pair_terms()


# --- anchors without positives -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "labels", "views"),
    [
        ("sdl", torch.eye(5), 1),  # all distinct labels, one view: nobody has a positive
        ("sdl", torch.zeros(5, 3), 2),  # empty label sets are never anchors, even across views
        ("mulsupcon", torch.zeros(5, 3), 2),
        ("supcon", torch.arange(5), 1),
        ("any", torch.eye(5), 1),
    ],
)
def test_batch_without_positives_gives_attached_zero(name, labels, views):
    x = make_features(5, views, seed=1, dtype=torch.float32).requires_grad_(True)
    out = build_loss(name).forward_detailed(x, labels)
    assert out.loss.item() == 0.0
    assert out.loss.requires_grad
    assert out.anchors_without_positives == 5 * views
    out.loss.backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert (x.grad == 0).all()


def test_anchors_without_positives_are_left_out_not_averaged_as_zero():
    # Two samples share a label, one is alone: the loss is the mean over the two anchors only.
    labels = torch.tensor([[1, 0], [1, 0], [0, 1]])
    features = make_features(3, 1, seed=2)
    out = build_loss("sdl").forward_detailed(features, labels)
    assert out.anchors_without_positives == 1
    assert out.per_anchor[2].item() == 0.0
    assert out.loss.item() == pytest.approx(out.per_anchor[:2].mean().item(), rel=1e-14)
    assert out.loss.item() > 0


# --- numerics ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("name", ["sdl", "mulsupcon", "jaccard", "supcon", "simclr"])
def test_low_precision_and_small_temperature_are_finite(tricky_labels, dtype, name):
    labels = torch.as_tensor(tricky_labels(seed=0))
    if name == "supcon":
        labels = labels.argmax(1)
    x = (make_features(len(labels), 2, dim=16, seed=0) * 30).to(dtype).requires_grad_(True)
    out = build_loss(name, temperature=0.01).forward_detailed(
        x, None if name == "simclr" else labels
    )
    assert out.loss.dtype == torch.float32  # the softmax runs in float32
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert x.grad.dtype == dtype
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_small_temperature_float32_matches_float64(tricky_labels):
    labels = torch.as_tensor(tricky_labels(seed=1))
    x = make_features(len(labels), 2, seed=1)
    loss = build_loss("sdl", temperature=0.01)
    assert loss(x.float(), labels).item() == pytest.approx(loss(x, labels).item(), rel=1e-4)


# --- chunked anchors ---------------------------------------------------------------------------
@pytest.mark.parametrize("chunk_size", [1, 3, 7, 1000])
@pytest.mark.parametrize(
    ("name", "options"),
    [("sdl", {}), ("sdl", {"normalize": "weight"}), ("mulsupcon", {}), ("simclr", {})],
)
def test_chunked_equals_dense(tricky_labels, name, options, chunk_size):
    labels = None if name == "simclr" else torch.as_tensor(tricky_labels(seed=6))
    x = make_features(13, 2, seed=6).requires_grad_(True)
    dense = build_loss(name, **options).forward_detailed(x, labels)
    (dense_grad,) = torch.autograd.grad(dense.loss, x)
    chunked = build_loss(name, chunk_size=chunk_size, **options).forward_detailed(x, labels)
    (chunked_grad,) = torch.autograd.grad(chunked.loss, x)
    assert chunked.loss.item() == pytest.approx(dense.loss.item(), rel=1e-12)
    torch.testing.assert_close(chunked.per_anchor, dense.per_anchor, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(chunked_grad, dense_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_large_batch_forward_backward():
    g = torch.Generator().manual_seed(0)
    labels = (torch.rand(4096, 80, generator=g) < 0.05).float()
    x = torch.randn(4096, 2, 128, generator=g).requires_grad_(True)  # 8,192 views
    loss = build_loss("sdl")(x, labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()


# --- bad input ---------------------------------------------------------------------------------
def test_labels_and_features_batch_sizes_differ():
    with pytest.raises(ValueError, match="labels has 4 rows but features has batch size 5"):
        build_loss("sdl")(make_features(5, 2), torch.ones(4, 3))
    with pytest.raises(ValueError, match="labels has 4 rows"):
        build_loss("supcon")(make_features(5, 2), torch.arange(4))


def test_labels_not_zero_one():
    with pytest.raises(ValueError, match="labels must hold only 0 and 1"):
        build_loss("sdl")(make_features(2, 2), torch.tensor([[0, 2], [1, 1]]))
    with pytest.raises(ValueError, match="labels must hold only 0 and 1"):
        build_loss("mulsupcon")(make_features(2, 2), torch.tensor([[0.0, -1.0], [1.0, 1.0]]))


def test_wrong_ndim():
    with pytest.raises(ValueError, match=r"features must be \(B, D\) or \(B, V, D\)"):
        build_loss("sdl")(torch.ones(2, 2, 2, 2), torch.ones(2, 2))
    with pytest.raises(ValueError, match="labels must be a"):
        build_loss("sdl")(make_features(3, 1), torch.ones(3))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_features(bad):
    x = make_features(3, 2)
    x[1, 0, 2] = bad
    with pytest.raises(ValueError, match="features contain NaN or inf"):
        build_loss("sdl")(x, torch.ones(3, 2))


def test_features_must_be_float_tensor():
    with pytest.raises(ValueError, match="features must be floating point"):
        build_loss("simclr")(torch.ones(3, 2, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"features must be a torch\.Tensor"):
        build_loss("simclr")(np.ones((3, 2, 4)))


@pytest.mark.parametrize("tau", [0, -0.1, float("nan"), float("inf")])
def test_bad_temperature(tau):
    with pytest.raises(ValueError, match="temperature must be"):
        build_loss("sdl", temperature=tau)


def test_unknown_loss_name():
    with pytest.raises(ValueError, match="unknown loss name 'sdll'"):
        build_loss("sdll")


def test_unknown_option():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['threshold'\] for loss 'sdl'"):
        build_loss("sdl", threshold=0.1)
    with pytest.raises(ValueError, match="unknown option"):
        build_loss("mulsupcon", normalize="weight")


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("sdl", {"normalize": "mean"}, "normalize must be"),
        ("sdl", {"chunk_size": 0}, "chunk_size must be"),
        ("sdl", {"dissimilarity": "log"}, "dissimilarity must be"),
        ("jaccard", {"threshold": 1.0}, "threshold must be"),
    ],
)
def test_bad_option_values(name, options, match):
    with pytest.raises(ValueError, match=match):
        build_loss(name, **options)


def test_simclr_needs_two_views():
    with pytest.raises(ValueError, match="at least 2 views per sample"):
        build_loss("simclr")(make_features(4, 1))
    with pytest.raises(ValueError, match="at least 2 views per sample"):
        build_loss("simclr")(torch.randn(4, 8))


def test_supcon_rejects_multi_hot_labels():
    with pytest.raises(ValueError, match=r"labels must be a \(B,\) tensor of integer class ids"):
        build_loss("supcon")(make_features(3, 2), torch.tensor([[1, 0], [0, 1], [1, 1]]))
    with pytest.raises(ValueError, match="labels must be a"):
        build_loss("supcon")(make_features(3, 2), torch.tensor([0.0, 1.0, 1.0]))


def test_labelled_losses_need_labels():
    with pytest.raises(ValueError, match="needs labels"):
        build_loss("sdl")(make_features(3, 2))


def test_one_view_in_all_cannot_contrast():
    with pytest.raises(ValueError, match="at least 2 views in all"):
        build_loss("sdl")(make_features(1, 1), torch.ones(1, 2))
