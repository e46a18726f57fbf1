"""sdl: multi-label supervised contrastive learning with the Similarity-Dissimilarity Loss."""

from sdl.losses import LOSSES, LossOutput, build_loss
from sdl.relations import (
    Relation,
    dissimilarity_factor,
    relation_matrix,
    sd_weights,
    similarity_factor,
)

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "LossOutput",
    "Relation",
    "build_loss",
    "dissimilarity_factor",
    "relation_matrix",
    "sd_weights",
    "similarity_factor",
]
