"""The five relations by set algebra, straight from their definitions: the reference every test
of relation code compares against (never the code under test)."""

from __future__ import annotations

from collections.abc import Set


def relation_number(s: Set[int], t: Set[int]) -> int:
    """1..5: the relation of a sample with label set ``t`` to an anchor with label set ``s``."""
    if not s & t:
        return 1  # disjoint
    if s == t:
        return 2  # identical
    if t < s:
        return 4  # the sample misses some of the anchor's labels
    if t > s:
        return 5  # the sample has extra labels
    return 3  # partial overlap


def relation_of(s: Set[int], t: Set[int]) -> str:
    """ "R1".."R5" for :func:`relation_number`."""
    return f"R{relation_number(s, t)}"
