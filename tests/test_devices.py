"""The same checks on every device: the CPU always, CUDA where there is one (skipped cleanly without).

Each CUDA case has its CPU twin in the same parametrisation, so the logic is exercised either way.
"""

import math

import pytest
import torch

from sdl import runs
from sdl.losses import build_loss, loss_class, loss_names
from sdl.train import TrainConfig, train

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
        ],
    ),
]


def _batch(device: str, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(48, 2, 32, generator=gen, dtype=torch.float64)
    labels = (torch.rand(48, 7, generator=gen) < 0.3).float()
    labels[:3] = 0  # anchors without positives
    return features.to(device=device, dtype=dtype).requires_grad_(), labels.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", loss_names(contrastive=True))
def test_loss_on_device_matches_float64_cpu(device, name):
    features, labels = _batch(device)
    reference, ref_labels = _batch("cpu", torch.float64)
    kind = loss_class(name).label_kind
    if kind == "single":
        labels, ref_labels = labels.argmax(1), ref_labels.argmax(1)
    elif kind == "none":
        labels = ref_labels = None
    loss_fn = build_loss(name, temperature=0.1)
    loss = loss_fn(features, labels)
    expected = loss_fn(reference, ref_labels)
    loss.backward()
    expected.backward()
    assert loss.device.type == device
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    torch.testing.assert_close(features.grad.cpu().double(), reference.grad, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_features_on_device_are_finite(device, dtype):
    features, labels = _batch(device, dtype)
    loss = build_loss("sdl", temperature=0.01)(features, labels)
    loss.backward()
    assert loss.dtype == torch.float32  # the softmax runs in float32
    assert math.isfinite(loss.item()) and torch.isfinite(features.grad).all()


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_one_epoch_trains_on_device(device, tmp_path):
    config = TrainConfig(
        dataset="digits-mosaic",
        loss="sdl",
        epochs=1,
        batch_size=64,
        device=device,
        dataset_options={"n_train": 128, "n_test": 64},
        embed_dim=16,
        max_embeddings=50,
        out=str(tmp_path / "run"),
    )
    run = runs.read_run(train(config, progress=False))
    assert run.state == "done" and run.problems == []
    assert run.config["device_used"].startswith(device)
    assert math.isfinite(float(run.history["loss"].iloc[0]))
    assert 0.0 < run.metrics["mAP"] <= 1.0
