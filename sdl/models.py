"""Encoders and heads: a small CNN or ResNet-18 for images, an MLP for tabular and text features.

A model is an encoder followed by a head. The contrastive head is an MLP projecting to a
normalised embedding (the loss's input); the ``bce`` reference uses a linear multi-label classifier
instead. What is evaluated is the encoder's output, before the head, as usual in SupCon.
"""

from __future__ import annotations

import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

ENCODERS = ("auto", "cnn", "resnet18", "mlp")
HEADS = ("projection", "classifier")


class SmallCNN(nn.Module):
    """Four conv blocks and global average pooling; fast on a CPU for 16x16 to 64x64 images.

    Inputs of 32 pixels or more start with a stride-2 convolution, which keeps 56x56 mosaics cheap.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 56, width: int = 32):
        super().__init__()
        first_stride = 2 if image_size >= 32 else 1
        widths = [width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        channels = in_channels
        for i, out in enumerate(widths):
            stride = first_stride if i == 0 else 1
            layers += [
                nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            if 0 < i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            channels = out
        self.features = nn.Sequential(*layers)
        self.out_dim = channels

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x).mean(dim=(2, 3))  # (B, out_dim): global average pool


class ResNet18(nn.Module):
    """torchvision's ResNet-18 (no pretrained weights), adapted to small images.

    The 7x7 stride-2 stem and its max-pool become one 3x3 stride-1 convolution (as for CIFAR), and
    the first convolution takes ``in_channels`` (1 for grey mosaics).
    """

    def __init__(self, in_channels: int = 1):
        super().__init__()
        net = torchvision.models.resnet18(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.net = net
        self.out_dim = 512

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MLPEncoder(nn.Module):
    """Two hidden layers with batch norm, for tabular and text feature vectors."""

    def __init__(self, in_features: int, hidden: int = 512, out_dim: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_dim, bias=False),
            nn.BatchNorm1d(out_dim),
            nn.ReLU(inplace=True),
        )
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ProjectionHead(nn.Module):
    """MLP to ``embed_dim``, then L2 normalisation: the contrastive loss's input."""

    def __init__(self, in_dim: int, embed_dim: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, embed_dim)
        )

    def forward(self, h: Tensor) -> Tensor:
        return F.normalize(self.net(h), dim=1)


class Model(nn.Module):
    """Encoder + head. ``forward`` gives the head's output, ``encode`` the representation."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))


def build_encoder(kind: str, input_shape: tuple[int, ...], encoder: str = "auto") -> nn.Module:
    """An encoder for inputs of ``input_shape`` (one item, no batch axis); it has ``out_dim``.

    Args:
        kind: the data kind, "image", "tabular" or "text".
        input_shape: (C, H, W) for images, (F,) for feature vectors.
        encoder: "cnn" or "resnet18" for images, "mlp" for features; "auto" picks cnn or mlp.

    Raises:
        ValueError: for an unknown encoder, one that does not fit the data kind, or a bad shape.
    """
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {ENCODERS}")
    shape = tuple(int(s) for s in input_shape)
    if kind == "image":
        if len(shape) != 3:
            raise ValueError(f"image input_shape must be (C, H, W), got {shape}")
        encoder = "cnn" if encoder == "auto" else encoder
        if encoder == "cnn":
            return SmallCNN(shape[0], image_size=min(shape[1:]))
        if encoder == "resnet18":
            return ResNet18(shape[0])
    elif kind in ("tabular", "text"):
        if len(shape) != 1:
            raise ValueError(f"{kind} input_shape must be (F,), got {shape}")
        encoder = "mlp" if encoder == "auto" else encoder
        if encoder == "mlp":
            return MLPEncoder(shape[0])
    else:
        raise ValueError(f"kind must be 'image', 'tabular' or 'text', got {kind!r}")
    raise ValueError(f"encoder {encoder!r} does not fit {kind} data")


def build_model(
    kind: str,
    input_shape: tuple[int, ...],
    encoder: str = "auto",
    embed_dim: int = 128,
    head: str = "projection",
    num_labels: int | None = None,
) -> Model:
    """Encoder + head for one data kind.

    Args:
        kind, input_shape, encoder: see :func:`build_encoder`.
        embed_dim: size of the normalised embedding of the projection head.
        head: "projection" (contrastive losses) or "classifier" (a linear layer to ``num_labels``
            logits, for the ``bce`` reference).
        num_labels: number of labels; needed by the classifier head.
    """
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {HEADS}")
    enc = build_encoder(kind, input_shape, encoder)
    if head == "projection":
        if int(embed_dim) < 1:
            raise ValueError(f"embed_dim must be >= 1, got {embed_dim}")
        return Model(enc, ProjectionHead(enc.out_dim, int(embed_dim)))
    if num_labels is None or int(num_labels) < 1:
        raise ValueError(f"the classifier head needs num_labels >= 1, got {num_labels}")
    return Model(enc, nn.Linear(enc.out_dim, int(num_labels)))
