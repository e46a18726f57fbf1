"""A fuzz of the loss family: random batches, labels and options for every registered loss.

Generic over the registry (sdl.losses): each compared loss and each label-free one, with options
drawn from its own ``options`` specs, so a new loss or option is fuzzed without editing this file.
What must hold for any valid input (docs/method.md, the weighted-SupCon form):

* the loss and the gradient of the features are finite;
* every pair weight is >= 0, so each per-anchor term -(1/n_i) sum_j w_ij log p_ij is >= 0 and so is
  the loss (log p_ij <= 0);
* processing the anchors in blocks (a ``chunk_size`` option) gives the unchunked loss and gradient.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdl.losses import TEMPERATURE, build_loss, compared_losses, loss_class, loss_names
from sdl.options import Option

LOSSES = [*compared_losses(), *loss_names(label_kind="none")]
EXAMPLES = 200  # per loss; with the chunked twins, about 2,400 batches in all


def option_values(option: Option, batch_views: int) -> st.SearchStrategy:
    """Valid values of one option, drawn from its spec (kind, choices, bounds, nullable)."""
    if option.choices is not None:
        values = st.sampled_from(option.choices)
    elif option.kind is bool:
        values = st.booleans()
    elif option.kind is int:
        low = math.ceil(option.low) + (1 if option.low_open else 0) if option.low is not None else 0
        high = (
            int(option.high) - (1 if option.high_open else 0) if option.high is not None else None
        )
        # small integers reach the interesting cases (a chunk of 1, of all anchors, of more)
        values = st.integers(
            low, min(high, low + batch_views) if high is not None else low + batch_views
        )
    elif option.kind is float:
        low = option.low if option.low is not None else -10.0
        high = option.high if option.high is not None else low + 10.0
        values = st.floats(
            low,
            min(high, low + 10.0),
            exclude_min=option.low_open,
            exclude_max=option.high_open or high > low + 10.0,
        )
    else:
        values = st.just(option.default)
    return st.one_of(st.none(), values) if option.nullable else values


@st.composite
def cases(draw, name: str):
    cls = loss_class(name)
    batch = draw(st.integers(2, 12))
    views = draw(st.integers(max(1, cls.min_views), 3))
    classes = draw(st.integers(1, 6))
    dim = draw(st.integers(1, 8))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    density = draw(st.sampled_from([0.0, 0.2, 0.5, 0.9, 1.0]))  # 0: every row empty
    labels = (torch.rand(batch, classes, generator=generator) < density).float()
    scale = 10.0 ** draw(st.floats(-4, 4))  # tiny to huge feature norms
    rows = 10.0 ** (torch.rand(batch, views, 1, generator=generator) * 2 - 1)  # mixed within
    features = torch.randn(batch, views, dim, generator=generator) * rows * scale
    log_t = draw(st.floats(math.log10(0.02), math.log10(min(TEMPERATURE.high, 20.0))))
    options = {
        option.name: draw(option_values(option, batch * views), label=option.name)
        for option in cls.options
    }
    return features, labels if cls.label_kind != "none" else None, 10.0**log_t, options


def loss_and_grad(name, features, labels, temperature, options):
    loss_fn = build_loss(name, temperature=temperature, **options)
    x = features.clone().requires_grad_(True)
    detail = loss_fn.forward_detailed(x, labels)
    detail.loss.backward()
    return detail, x.grad


@pytest.mark.slow
@pytest.mark.parametrize("name", LOSSES)
def test_random_batches_keep_the_loss_sound(name):
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same batches in every CI run: a failure reproduces
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(cases(name))
    def check(case):
        features, labels, temperature, options = case
        detail, grad = loss_and_grad(name, features, labels, temperature, options)
        loss = float(detail.loss.detach())
        assert math.isfinite(loss), (loss, options, temperature)
        assert bool(torch.isfinite(grad).all()), (options, temperature)
        assert bool((detail.weights >= 0).all())
        assert loss >= -1e-5 * max(1.0, abs(loss))
        assert bool((detail.per_anchor >= -1e-4).all())
        if "chunk_size" in options:
            whole = {**options, "chunk_size": None}
            other, other_grad = loss_and_grad(name, features, labels, temperature, whole)
            torch.testing.assert_close(detail.loss, other.loss, rtol=1e-4, atol=1e-5)
            # float32 rounding is relative to the gradient's scale, at most 1 / (norm * temperature)
            scale = float(grad.abs().max() + other_grad.abs().max())
            bound = 1.0 / (float(features.norm(dim=-1).min()) * temperature)
            torch.testing.assert_close(
                grad, other_grad, rtol=1e-3, atol=1e-5 * scale + 1e-6 * bound
            )

    check()


def test_every_fuzzed_loss_is_registered_and_has_specs():
    assert LOSSES and len(set(LOSSES)) == len(LOSSES)
    for name in LOSSES:
        for option in loss_class(name).options:
            assert isinstance(option, Option)
