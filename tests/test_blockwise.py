"""The blockwise core against the frozen dense implementation (tests/dense_reference.py), for every
loss and option, 1-3 views, dense and sparse labels, block sizes that do not divide N; numerical
edges (huge and tiny feature norms, zero rows, extreme temperatures); a large sparse batch."""

from __future__ import annotations

import math

import dense_reference
import numpy as np
import pytest
import torch
from test_losses import make_features, ref_weighted_loss, set_weight

from sdl import relations
from sdl.blockwise import BlockWeights, blockwise_supcon
from sdl.losses import TEMPERATURE_RANGE, build_loss, validate_temperature

CASES = [
    ("sdl", {}),
    ("sdl", {"similarity": "jaccard"}),
    ("sdl", {"dissimilarity": "ratio"}),
    ("sdl", {"components": "similarity"}),
    ("sdl", {"components": "dissimilarity"}),
    ("sdl", {"symmetric": True}),
    ("sdl", {"symmetric": True, "similarity": "jaccard", "dissimilarity": "ratio"}),
    ("sdl", {"normalize": "weight", "temperature": 0.3}),
    ("all", {}),
    ("any", {}),
    ("any", {"normalize": "weight"}),
    ("jaccard", {}),
    ("jaccard", {"threshold": 0.3, "normalize": "weight"}),
    ("mulsupcon", {}),
    ("supcon", {}),
    ("simclr", {}),
]
TOL = {torch.float32: 1e-6, torch.float64: 1e-10}


@pytest.fixture(params=["dense", "sparse"])
def counting(request, monkeypatch):
    """Force BlockCounts' dense matmul or its sparse CSR product in every loss."""
    cost = {"dense": math.inf, "sparse": 0.0}[request.param]
    monkeypatch.setattr(relations, "_SPARSE_STEP_COST", cost)
    return request.param


def loss_labels(name, labels):
    if name == "simclr":
        return None
    if name == "supcon":
        return labels.argmax(1)  # ties to the first label; empty rows become class 0
    return labels


def grads_of(loss_module, x, labels, upstream):
    """(loss, per_anchor, normaliser, reduction, d(upstream * loss)/dx) of one loss module."""
    leaf = x.detach().clone().requires_grad_(True)
    out = loss_module.forward_detailed(leaf, labels)
    (grad,) = torch.autograd.grad(out.loss * upstream, leaf)
    return out, grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk_size", [None, 9])  # 9 views: blocks of 9, 4, 3 samples
@pytest.mark.parametrize("views", [1, 2, 3])
@pytest.mark.parametrize(("name", "options"), CASES, ids=lambda x: str(x))
def test_equals_dense_reference(tricky_labels, counting, name, options, views, chunk_size, dtype):
    if name == "simclr" and views == 1:
        pytest.skip("simclr needs two views")
    labels = torch.as_tensor(tricky_labels(seed=views, extra_rows=5))  # 14 samples
    target = loss_labels(name, labels)
    x = make_features(len(labels), views, seed=views + 3, dtype=dtype)
    upstream = 1.7  # the backward must scale by the incoming gradient
    ours, grad = grads_of(build_loss(name, chunk_size=chunk_size, **options), x, target, upstream)
    ref, ref_grad = grads_of(dense_reference.build_loss(name, **options), x, target, upstream)
    tol = TOL[dtype]
    assert ours.loss.dtype == dtype
    torch.testing.assert_close(ours.loss, ref.loss.detach(), rtol=tol, atol=tol)
    torch.testing.assert_close(ours.per_anchor, ref.per_anchor.detach(), rtol=tol, atol=tol)
    torch.testing.assert_close(ours.normaliser, ref.normaliser, rtol=tol, atol=tol)
    torch.testing.assert_close(ours.reduction_weight, ref.reduction_weight, rtol=0, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=tol, atol=tol)
    torch.testing.assert_close(ours.weights, ref.weights, rtol=tol, atol=tol)


@pytest.mark.parametrize("form", ["lists", "coo", "csr", "sparse-labels"])
@pytest.mark.parametrize(("name", "options"), [("sdl", {}), ("mulsupcon", {}), ("all", {})])
def test_sparse_label_forms_equal_dense_labels(tricky_labels, counting, form, name, options):
    dense = torch.as_tensor(tricky_labels(seed=7, extra_rows=6, classes=9))
    sparse = {
        "lists": lambda: relations.SparseLabels.from_lists(
            [np.flatnonzero(r).tolist() for r in dense.numpy()], dense.shape[1]
        ),
        "coo": lambda: dense.to_sparse(),
        "csr": lambda: dense.float().to_sparse_csr(),
        "sparse-labels": lambda: relations.SparseLabels.from_dense(dense),
    }[form]()
    x = make_features(len(dense), 2, seed=7)
    loss = build_loss(name, chunk_size=3, **options)
    a, grad_a = grads_of(loss, x, dense, 1.0)
    b, grad_b = grads_of(loss, x, sparse, 1.0)
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_a, grad_b, rtol=1e-12, atol=1e-12)


def test_sparse_labels_match_loop_reference(tricky_labels, counting):
    # Independent of both implementations: the loop-over-pairs reference of tests/test_losses.py.
    labels = tricky_labels(seed=2)
    features = make_features(len(labels), 2, seed=2)
    out = build_loss("sdl", chunk_size=4).forward_detailed(
        features, torch.as_tensor(labels).to_sparse()
    )
    loss, per_anchor, _ = ref_weighted_loss(features, set_weight(labels, 2, kind="sdl"))
    assert out.loss.item() == pytest.approx(loss, rel=1e-10)
    np.testing.assert_allclose(out.per_anchor.numpy(), per_anchor, rtol=1e-10, atol=1e-12)


def test_bad_sparse_labels():
    twice = torch.sparse_coo_tensor([[0, 0], [1, 1]], [1.0, 1.0], (2, 3))  # (0, 1) stored twice
    with pytest.raises(ValueError, match="labels must hold only 0 and 1"):
        build_loss("sdl")(make_features(2, 2), twice)
    with pytest.raises(ValueError, match=r"labels of sample 1 must be integer ids in \[0, 3\)"):
        relations.SparseLabels.from_lists([[0], [3]], 3)
    with pytest.raises(ValueError, match="labels has 2 rows but features has batch size 3"):
        build_loss("sdl")(make_features(3, 2), relations.SparseLabels.from_lists([[0], [1]], 3))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["sdl", "mulsupcon", "supcon", "simclr"])
def test_half_precision_inputs_give_finite_results(tricky_labels, dtype, name):
    labels = loss_labels(name, torch.as_tensor(tricky_labels(seed=1)))
    x = make_features(13, 3, dim=16, seed=1).to(dtype).requires_grad_(True)
    loss = build_loss(name, chunk_size=5)(x, labels)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_blocks_hold_whole_samples_and_never_all_rows():
    # The core asks for weights block by block: never the (B, B) matrix once chunk_size is small.
    asked = []

    def block(start, stop):
        asked.append((start, stop))
        return torch.ones(stop - start, 10, dtype=torch.float64)

    spec = BlockWeights(batch=10, views=3, sample_block=block)
    z = torch.nn.functional.normalize(make_features(10, 3, seed=0).reshape(30, -1), dim=1)
    blockwise_supcon(z, spec, 0.1, block_views=7)  # 7 views -> 2 samples a block
    assert asked == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]


# --- numerical edges ---------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e20, 1e30, 1e-13, 1e-30])
@pytest.mark.parametrize("name", ["sdl", "simclr"])
def test_extreme_feature_norms_keep_loss_and_gradient(tricky_labels, name, scale):
    # L depends only on directions: scaling every feature by s leaves L and multiplies dL/dx by 1/s.
    labels = loss_labels(name, torch.as_tensor(tricky_labels(seed=0)))
    x = make_features(13, 2, seed=0, dtype=torch.float32)
    loss = build_loss(name)
    unit, unit_grad = grads_of(loss, x, labels, 1.0)
    scaled, scaled_grad = grads_of(loss, x * scale, labels, 1.0)
    assert scaled.loss.item() == pytest.approx(unit.loss.item(), rel=1e-5)
    torch.testing.assert_close(scaled_grad * scale, unit_grad, rtol=1e-4, atol=1e-6)


def test_zero_feature_row_is_refused_by_name():
    x = make_features(4, 2, seed=0)
    x[2, 1] = 0.0
    with pytest.raises(ValueError, match=r"features row 5 \(sample 2, view 1\) is all zeros"):
        build_loss("sdl")(x, torch.ones(4, 3))


@pytest.mark.parametrize("tau", [1e-38, 1e-39, 5e-5, 2e4, 0.0, -1.0, math.nan, math.inf, "a"])
def test_temperature_outside_the_bound_is_refused(tau):
    with pytest.raises(ValueError, match=r"temperature must be a number >= 0\.0001 and <= 10000"):
        validate_temperature(tau)
    with pytest.raises(ValueError, match="temperature must be"):
        build_loss("sdl", temperature=tau)


@pytest.mark.parametrize("tau", TEMPERATURE_RANGE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_temperature_at_the_bounds_is_finite_and_exact(tau, dtype):
    assert validate_temperature(tau) == tau
    # Every view of sample k is e_k: L = -log(e^{1/t} / (e^{1/t} + (2n - 2))) in closed form
    # (tests/test_losses.py's closed form); at tau = 1e-4 it is about (2n - 2) e^{-1e4} = 0.
    n = 4
    x = torch.eye(n, dtype=dtype)[:, None, :].expand(n, 2, n).clone().requires_grad_(True)
    loss = build_loss("simclr", temperature=tau)(x)
    expected = math.log1p((2 * n - 2) * math.exp(-1 / tau))
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-7)
    loss.backward()
    assert torch.isfinite(x.grad).all()


# --- large batches -----------------------------------------------------------------------------
@pytest.mark.slow
def test_8k_views_with_10k_sparse_labels_train_one_step():
    g = torch.Generator().manual_seed(0)
    batch, classes = 4096, 10_000
    label_lists = [torch.randint(0, classes, (3,), generator=g).tolist() for _ in range(batch)]
    labels = relations.SparseLabels.from_lists(label_lists, classes)
    model = torch.nn.Linear(32, 128)
    inputs = torch.randn(batch, 2, 32, generator=g)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    loss = build_loss("sdl")(model(inputs), labels)  # 8,192 views
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert torch.isfinite(model.weight.grad).all()
    assert not torch.equal(model.weight, before)


def test_autocast_around_the_loss_keeps_float32_block_math(tricky_labels):
    # AMP training runs the loss inside autocast; the result must match the loss outside it.
    labels = torch.as_tensor(tricky_labels(seed=3))
    x = make_features(13, 2, seed=3, dtype=torch.float32)
    plain, plain_grad = grads_of(build_loss("sdl", chunk_size=5), x, labels, 1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp, amp_grad = grads_of(build_loss("sdl", chunk_size=5), x, labels, 1.0)
    assert amp.loss.dtype == torch.float32
    torch.testing.assert_close(amp.loss, plain.loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(amp_grad, plain_grad, rtol=1e-5, atol=1e-6)
