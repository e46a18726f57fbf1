"""Reading the Space page's map (a custom component) in an AppTest: its arguments as the
frontend receives them."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

MAP_NAME = "dashboard.components.space_map.space_map"


def map_args(at: AppTest) -> dict | None:
    """The map component's JSON arguments (panels, categories, ...), or None when not drawn."""
    for element in at.get("component_instance"):
        if element.proto.component_name == MAP_NAME:
            return json.loads(element.proto.json_args)
    return None
