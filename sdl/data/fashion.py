"""``fashion-mosaic``: 2x2 mosaics (56x56) of Fashion-MNIST, read from its raw IDX .gz files.

The files come from the Debian package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist)
or from a folder the user names with ``root``: either the folder holding the four .gz files or a
torchvision-style root (``FashionMNIST/raw/*.gz``). Test mosaics tile the official 10k test items.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from sdl.data.base import DatasetSplits, DatasetUnavailable
from sdl.data.mosaic import mosaic_splits, resolve_structure

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
LABEL_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DESCRIPTION = "2x2 mosaics (56x56) of Fashion-MNIST items; label set = clothing classes tiled"
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (the MNIST format: 0, 0, dtype code, ndim, big-endian int32 dims, data), .gz or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}i", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=_IDX_DTYPES[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {array.size} values")
    return array.reshape(shape).astype(array.dtype.newbyteorder("="))


def _candidate_dirs(root: str | None) -> list[Path]:
    if root is None:
        return [DEBIAN_DIR]
    root_path = Path(root).expanduser()
    return [root_path, root_path / "FashionMNIST" / "raw", root_path / "raw"]


def find_dir(root: str | None) -> Path | None:
    """The first candidate folder holding all four IDX files, or None."""
    for folder in _candidate_dirs(root):
        if all((folder / name).is_file() for name in FILES.values()):
            return folder
    return None


def missing(root: str | None = None) -> str | None:
    if find_dir(root) is not None:
        return None
    where = " or ".join(str(d) for d in _candidate_dirs(root))
    hint = (
        "install the Debian package: apt-get install dataset-fashion-mnist"
        if root is None
        else "pass root= a folder holding them (or a torchvision root with FashionMNIST/raw/)"
    )
    return f"Fashion-MNIST IDX files ({', '.join(FILES.values())}) not found in {where}; {hint}"


def load(
    seed: int = 0,
    root: str | None = None,
    *,
    n_train: int = 4000,
    n_test: int = 1000,
    preset: str = "default",
    grid: int | None = None,
    empty_prob: float | None = None,
    repeat_prob: float | None = None,
) -> DatasetSplits:
    """Mosaics of Fashion-MNIST; train mosaics tile the 60k training items, test the 10k test items.

    Args:
        seed: fixes the mosaics.
        root: folder with the IDX .gz files (default: the Debian package's folder).
        n_train, n_test: number of mosaics in each split.
        preset: named settings of grid, empty_prob and repeat_prob (``sdl.data.mosaic.PRESETS``:
            "default", "nested"); the three options below override it when given.
        grid: cells per side (None: the preset's, 2).
        empty_prob: probability that a cell is blank (None: the preset's, 0.25 by default).
        repeat_prob: chance of repeating an earlier mosaic's label set with one label added or
            removed (None: the preset's, 0 by default).

    Raises:
        DatasetUnavailable: the IDX files are not found.
    """
    folder = find_dir(root)
    if folder is None:
        raise DatasetUnavailable(missing(root))
    arrays = {key: read_idx(folder / name) for key, name in FILES.items()}
    return mosaic_splits(
        "fashion-mosaic",
        (arrays["train_images"], arrays["train_labels"].astype(np.int64)),
        (arrays["test_images"], arrays["test_labels"].astype(np.int64)),
        LABEL_NAMES,
        n_train,
        n_test,
        {**resolve_structure(preset, grid, empty_prob, repeat_prob), "preset": preset},
        seed,
        DESCRIPTION,
    )
