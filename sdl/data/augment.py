"""Batch-wise augmentation in torch, on whatever device the batch is on (no PIL, no workers).

``make_augmenter(kind, **options)`` returns ``augment(x, generator=None) -> x'`` with x' the same
shape as x. Calling it twice on one batch gives two views. With a ``torch.Generator`` the views
are reproducible: the same generator state gives the same output. A CPU generator works with a
CUDA batch: per-image parameters are drawn on it and moved; batch-sized noise is drawn on the
batch's device from a generator seeded by it.

Images (B, C, H, W) in [0, 1]: one random affine map per image (zoom, shift, small rotation and
shear) applied with ``grid_sample``, a brightness/contrast jitter and light gaussian noise. The
defaults are chosen for 2x2 mosaics, whose label set is the set of items tiled into the four cells:

* zoom stays in [0.85, 1.15] and shifts within 8% of the side, so at most a sliver of a border cell
  leaves the frame; a random resized crop down to half the area (SimCLR's default) would often crop
  a whole cell away and silently change the label set.
* no cutout/random erasing, for the same reason.
* no horizontal flip by default (``flip_prob=0``): a flip only permutes cells, which keeps the label
  set, but it also mirrors every item, and a mirrored digit (a backwards 2, 3, 7) is not a digit of
  any class, so the encoder would spend capacity on invariance to shapes that never occur at test
  time. For clothing or natural images, where mirror images are ordinary, pass ``flip_prob=0.5``.

Tabular and text features (B, F): feature dropout (zeroing a random subset of features) plus
gaussian noise scaled to each row's RMS, so the same defaults suit standardised tabular features
and small-valued TF-IDF/SVD or sentence-embedding features alike.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

Augmenter = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def make_augmenter(kind: str, **options) -> Augmenter:
    """An augmentation function for a batch of inputs of ``kind``.

    Args:
        kind: "image", or "tabular"/"text" (feature vectors).
        **options: for images: scale (min, max zoom), translate (max shift, fraction of the side),
            rotate (max degrees), shear (max degrees), flip_prob, brightness (max relative change),
            contrast (max relative change), noise (std of added noise); for features: dropout
            (probability of zeroing a feature), noise (noise std relative to the row RMS).
            ``make_augmenter(kind, enabled=False)`` gives the identity.

    Returns:
        ``augment(x, generator=None)``: an augmented copy of the batch, same shape, dtype and device.

    Raises:
        ValueError: unknown kind or option, or an out-of-range value.
    """
    enabled = options.pop("enabled", True)
    if kind == "image":
        cls = ImageAugmenter
    elif kind in ("tabular", "text"):
        cls = FeatureAugmenter
    else:
        raise ValueError(f"unknown kind {kind!r}; expected 'image', 'tabular' or 'text'")
    known = [name for name in inspect.signature(cls).parameters]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"unknown augmentation option(s) {', '.join(map(repr, unknown))} for {kind!r}; "
            f"it takes: {', '.join(known)}, enabled"
        )
    augmenter = cls(**options)
    return augmenter if enabled else _identity


def _identity(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return x.clone()


def _uniform(
    n: int, low: float, high: float, x: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """(n,) float32 uniform in [low, high) on x's device, drawn on the generator's device."""
    device = generator.device if generator is not None else x.device
    values = torch.rand(n, generator=generator, device=device, dtype=torch.float32)
    return (low + (high - low) * values).to(x.device)


def _on_device(x: torch.Tensor, generator: torch.Generator | None) -> torch.Generator | None:
    """A generator on x's device for batch-sized draws (noise, masks).

    Drawing those on a CPU generator and copying them to the GPU would make every step wait on the
    host; a device generator seeded from the given one stays just as reproducible.
    """
    if generator is None or generator.device == x.device:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return torch.Generator(device=x.device).manual_seed(seed)


def _normal(shape: torch.Size, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    generator = _on_device(x, generator)
    return torch.randn(shape, generator=generator, device=x.device, dtype=torch.float32)


class ImageAugmenter:
    """Random affine + photometric jitter + noise for (B, C, H, W) images in [0, 1]."""

    def __init__(
        self,
        scale: tuple[float, float] = (0.85, 1.15),
        translate: float = 0.08,
        rotate: float = 10.0,
        shear: float = 5.0,
        flip_prob: float = 0.0,
        brightness: float = 0.2,
        contrast: float = 0.2,
        noise: float = 0.03,
    ) -> None:
        low, high = scale
        if not 0.0 < low <= high:
            raise ValueError(f"scale must be (min, max) with 0 < min <= max, got {scale}")
        for label, value in (
            ("translate", translate),
            ("rotate", rotate),
            ("shear", shear),
            ("brightness", brightness),
            ("contrast", contrast),
            ("noise", noise),
        ):
            if value < 0:
                raise ValueError(f"{label} must be >= 0, got {value}")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        self.scale = (float(low), float(high))
        self.translate, self.rotate, self.shear = translate, rotate, shear
        self.flip_prob, self.brightness, self.contrast, self.noise = (
            flip_prob,
            brightness,
            contrast,
            noise,
        )

    def __repr__(self) -> str:
        return (
            f"ImageAugmenter(scale={self.scale}, translate={self.translate}, rotate={self.rotate}, "
            f"shear={self.shear}, flip_prob={self.flip_prob}, brightness={self.brightness}, "
            f"contrast={self.contrast}, noise={self.noise})"
        )

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
        b = x.shape[0]
        zoom = _uniform(b, *self.scale, x, generator)  # (B,) >1 zooms in
        angle = _uniform(b, -self.rotate, self.rotate, x, generator) * (math.pi / 180)
        shear = _uniform(b, -self.shear, self.shear, x, generator) * (math.pi / 180)
        shift = torch.stack(  # (B, 2) in grid units: the side spans [-1, 1]
            [_uniform(b, -2 * self.translate, 2 * self.translate, x, generator) for _ in range(2)],
            dim=1,
        )
        flip = torch.where(_uniform(b, 0.0, 1.0, x, generator) < self.flip_prob, -1.0, 1.0)

        # theta maps output coordinates to input coordinates: rotate, shear, mirror, then 1/zoom
        cos, sin = torch.cos(angle), torch.sin(angle)
        tan = torch.tan(shear)
        theta = torch.zeros(b, 2, 3, device=x.device)  # (B, 2, 3)
        theta[:, 0, 0] = cos * flip / zoom
        theta[:, 0, 1] = (-sin + cos * tan) / zoom
        theta[:, 1, 0] = sin * flip / zoom
        theta[:, 1, 1] = (cos + sin * tan) / zoom
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
        out = F.grid_sample(
            x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )

        # brightness scales every pixel; contrast stretches around each image's mean
        gain = _uniform(b, 1 - self.brightness, 1 + self.brightness, x, generator).view(b, 1, 1, 1)
        stretch = _uniform(b, 1 - self.contrast, 1 + self.contrast, x, generator).view(b, 1, 1, 1)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
        out = (out - mean) * stretch + mean
        out = out * gain
        if self.noise > 0:
            out = out + self.noise * _normal(out.shape, x, generator)
        return out.clamp_(0.0, 1.0).to(x.dtype)


class FeatureAugmenter:
    """Feature dropout and RMS-scaled gaussian noise for (B, F) feature vectors."""

    def __init__(self, dropout: float = 0.1, noise: float = 0.1) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.dropout, self.noise = dropout, noise

    def __repr__(self) -> str:
        return f"FeatureAugmenter(dropout={self.dropout}, noise={self.noise})"

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(f"expected features (B, F), got shape {tuple(x.shape)}")
        out = x.float()
        if self.noise > 0:
            rms = out.pow(2).mean(dim=1, keepdim=True).sqrt()  # (B, 1)
            out = out + self.noise * rms * _normal(out.shape, x, generator)
        if self.dropout > 0:
            mask_generator = _on_device(x, generator)
            keep = torch.rand(out.shape, generator=mask_generator, device=x.device) >= self.dropout
            out = out * keep
        return out.to(x.dtype)
