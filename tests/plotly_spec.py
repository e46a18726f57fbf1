"""Reading a plotly figure's JSON spec back in tests."""

from __future__ import annotations

import base64

import numpy as np


def plotly_values(value) -> list:
    """A plotly 7 trace array as a list: plain JSON lists, or ``{"dtype", "bdata"}`` binary."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return list(value)
