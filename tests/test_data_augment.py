"""Batch augmenters: shape, dtype, determinism per generator, two distinct views, option checks."""

from __future__ import annotations

import pytest
import torch

from sdl.data.augment import make_augmenter


def _images(b: int = 6) -> torch.Tensor:
    x = torch.zeros(b, 1, 16, 16)
    x[:, :, 2:7, 2:7] = 1.0  # a bright square in the top-left cell
    return x


@pytest.mark.parametrize(
    ("kind", "x"),
    [("image", _images()), ("tabular", torch.randn(6, 9)), ("text", torch.randn(6, 9))],
)
def test_same_generator_state_gives_the_same_views(kind, x):
    augment = make_augmenter(kind)
    first = augment(x, torch.Generator().manual_seed(7))
    again = augment(x, torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    view1, view2 = augment(x, generator), augment(x, generator)
    assert first.shape == x.shape and first.dtype == x.dtype
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.testing.assert_close(view1, first, rtol=0, atol=0)
    assert not torch.equal(view1, view2), "two calls on one batch should give two views"
    assert not torch.equal(view1, x)


def test_image_views_stay_in_range_and_keep_content():
    x = _images()
    out = make_augmenter("image")(x, torch.Generator().manual_seed(0))
    assert out.min() >= 0 and out.max() <= 1
    # the default affine is mild: the square stays mostly in the top-left quarter
    top_left = out[:, :, :8, :8].sum(dim=(1, 2, 3))
    assert (top_left > 0.6 * out.sum(dim=(1, 2, 3))).all()


def test_identity_settings_reproduce_the_batch():
    x = torch.rand(4, 1, 12, 12)
    augment = make_augmenter(
        "image", scale=(1, 1), translate=0, rotate=0, shear=0, brightness=0, contrast=0, noise=0
    )
    torch.testing.assert_close(augment(x, None), x, atol=1e-5, rtol=0)
    features = torch.randn(5, 7)
    torch.testing.assert_close(make_augmenter("text", dropout=0, noise=0)(features), features)
    torch.testing.assert_close(make_augmenter("image", enabled=False)(x), x)


def test_flip_prob_one_mirrors_the_image():
    x = _images(2)
    flip = make_augmenter(
        "image",
        scale=(1, 1),
        translate=0,
        rotate=0,
        shear=0,
        brightness=0,
        contrast=0,
        noise=0,
        flip_prob=1.0,
    )
    torch.testing.assert_close(flip(x), torch.flip(x, dims=[3]), atol=1e-5, rtol=0)


def test_feature_dropout_zeroes_about_the_asked_share():
    x = torch.ones(200, 50)
    out = make_augmenter("tabular", dropout=0.3, noise=0.0)(x, torch.Generator().manual_seed(1))
    share = (out == 0).float().mean().item()
    assert 0.25 < share < 0.35


def test_half_precision_batch_keeps_its_dtype():
    x = _images().half()
    assert make_augmenter("image")(x).dtype == torch.float16
    assert make_augmenter("tabular")(torch.randn(3, 4).half()).dtype == torch.float16


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown kind"):
        make_augmenter("audio")
    with pytest.raises(ValueError, match="'blur'"):
        make_augmenter("image", blur=1.0)
    with pytest.raises(ValueError, match="dropout"):
        make_augmenter("tabular", dropout=1.5)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        make_augmenter("image")(torch.rand(3, 16, 16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_batch_with_cpu_generator_matches_cpu():
    x = _images()
    augment = make_augmenter("image", noise=0.0)
    on_cpu = augment(x, torch.Generator().manual_seed(3))
    on_gpu = augment(x.cuda(), torch.Generator().manual_seed(3))
    assert on_gpu.is_cuda
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=0)
