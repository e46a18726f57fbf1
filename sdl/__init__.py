"""sdl: multi-label supervised contrastive learning with the Similarity-Dissimilarity Loss.

The names below load on first use, so ``import sdl.runs`` (the dashboard's shell, the CLI's
``--help``) does not pay for importing torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "LOSSES": "sdl.losses",
    "LossOutput": "sdl.losses",
    "build_loss": "sdl.losses",
    "Relation": "sdl.relations",
    "dissimilarity_factor": "sdl.relations",
    "relation_matrix": "sdl.relations",
    "sd_weights": "sdl.relations",
    "similarity_factor": "sdl.relations",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sdl' has no attribute {name!r}")
