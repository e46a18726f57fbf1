import pytest
import torch

from sdl.models import MLPEncoder, ResNet18, SmallCNN, build_encoder, build_model


@pytest.mark.parametrize(
    ("shape", "cls"),
    [((1, 16, 16), SmallCNN), ((1, 56, 56), SmallCNN), ((3, 32, 32), SmallCNN)],
)
def test_cnn_takes_small_grey_and_colour_images(shape, cls):
    model = build_model("image", shape, embed_dim=16)
    assert isinstance(model.encoder, cls)
    x = torch.rand(4, *shape)
    h = model.encode(x)
    z = model(x)
    assert h.shape == (4, model.encoder.out_dim)
    assert z.shape == (4, 16)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(4))


def test_resnet18_adapted_to_one_channel_small_images():
    model = build_model("image", (1, 16, 16), encoder="resnet18", embed_dim=8)
    assert isinstance(model.encoder, ResNet18)
    assert model.encoder.net.conv1.in_channels == 1
    assert model.encoder.net.conv1.stride == (1, 1)
    assert model.encode(torch.rand(2, 1, 16, 16)).shape == (2, 512)


@pytest.mark.parametrize("kind", ["tabular", "text"])
def test_mlp_for_feature_vectors(kind):
    model = build_model(kind, (103,), embed_dim=32)
    assert isinstance(model.encoder, MLPEncoder)
    assert model(torch.randn(5, 103)).shape == (5, 32)


def test_classifier_head_gives_one_logit_per_label():
    model = build_model("image", (1, 16, 16), head="classifier", num_labels=10)
    out = model(torch.rand(3, 1, 16, 16))
    assert out.shape == (3, 10)
    assert not torch.allclose(out.norm(dim=1), torch.ones(3))  # logits, not normalised


def test_gradients_reach_the_encoder():
    model = build_model("image", (1, 16, 16), embed_dim=8)
    model(torch.rand(4, 1, 16, 16)).sum().backward()
    first = model.encoder.features[0].weight
    assert first.grad is not None and torch.isfinite(first.grad).all()


@pytest.mark.parametrize(
    ("kind", "shape", "encoder", "match"),
    [
        ("image", (1, 16, 16), "mlp", "does not fit"),
        ("tabular", (10,), "cnn", "does not fit"),
        ("image", (16, 16), "cnn", "must be"),
        ("tabular", (1, 4), "mlp", "must be"),
        ("audio", (10,), "auto", "kind"),
        ("image", (1, 16, 16), "vit", "unknown encoder"),
    ],
)
def test_bad_choices_raise(kind, shape, encoder, match):
    with pytest.raises(ValueError, match=match):
        build_encoder(kind, shape, encoder)


def test_classifier_needs_num_labels():
    with pytest.raises(ValueError, match="num_labels"):
        build_model("image", (1, 16, 16), head="classifier")
    with pytest.raises(ValueError, match="unknown head"):
        build_model("image", (1, 16, 16), head="svm")
