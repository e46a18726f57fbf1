"""The SDL dashboard: ``streamlit run dashboard/app.py``.

Opens on the embedded demo runs (assets/demo); a runs folder named in the sidebar adds its runs.
Pages only gather input and draw; the math is in sdl (relations, losses, evaluate, projection).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Streamlit puts this file's folder on sys.path; the pages import sdl and dashboard from the root.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import ui  # noqa: E402

st.set_page_config(
    page_title="SDL · multi-label contrastive learning",
    page_icon="🧩",
    layout="wide",
    initial_sidebar_state="expanded",
)

PAGES = [
    st.Page("views/relations.py", title="Relations", icon=":material/grid_on:", default=True),
    st.Page("views/training.py", title="Training", icon=":material/model_training:"),
    st.Page("views/space.py", title="Space", icon=":material/scatter_plot:"),
    st.Page("views/compare.py", title="Compare", icon=":material/leaderboard:"),
]

page = st.navigation(PAGES)
with st.sidebar:
    st.markdown("### Similarity-Dissimilarity Loss")
    st.caption(
        "Multi-label supervised contrastive learning: how much should a sample that shares "
        "*some* of the anchor's labels pull?"
    )
ui.sidebar_runs_folder()
page.run()
