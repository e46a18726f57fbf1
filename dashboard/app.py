"""The SDL dashboard: ``streamlit run dashboard/app.py``.

Opens on the embedded demo runs (assets/demo); a runs folder named in the sidebar adds its runs.
Pages only gather input and draw; the math is in sdl (relations, losses, evaluate, projection).

It is served through ``dashboard/serve.py`` (``streamlit run dashboard/serve.py``, as ``make
dashboard`` does), which adds anti-framing headers to every response; under a plain ``streamlit run``
of this file the pages refuse to run and name that command. It serves this machine only:
dashboard/.streamlit/config.toml (read whatever the working folder) binds 127.0.0.1, and a flag or
environment variable that binds another address makes every page refuse to run unless
``SDL_DASHBOARD_ALLOW_REMOTE=1`` says it is meant. ``SDL_DASHBOARD_TIMING``
set to a file path appends one JSON line per script run (page, seconds, outcome) to that file.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # first, so the timing log includes the imports below

import ipaddress  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

# Streamlit puts this file's folder on sys.path; the pages import sdl and dashboard from the root.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from streamlit import config as st_config  # noqa: E402

from dashboard import frame_guard, ui  # noqa: E402

ALLOW_REMOTE_ENV = "SDL_DASHBOARD_ALLOW_REMOTE"
SAFE_START = (
    "streamlit run dashboard/serve.py --server.address 127.0.0.1 "
    "--browser.gatherUsageStats false --server.headless true"
)


def is_loopback(address: str | None) -> bool:
    """Whether Streamlit, given ``server.address``, listens on this machine only (unset: everywhere)."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve to any interface
        return False


def refuse_remote_serving() -> None:
    """Stop the run, with one message, when the server listens beyond this machine unasked."""
    address = st.get_option("server.address")
    if is_loopback(address) or os.environ.get(ALLOW_REMOTE_ENV) == "1":
        return
    where = f"`{address}`" if address else "every network interface"
    st.error(
        f"This dashboard serves only this machine: it starts training processes and has no login, "
        f"but this server listens on {where}. Start it with\n\n`{SAFE_START}`\n\n(`make dashboard` "
        f"does). To serve other machines on purpose, behind your own access control, set "
        f"`{ALLOW_REMOTE_ENV}=1`.",
        icon=":material/lock:",
    )
    st.stop()


def refuse_unguarded_serving() -> None:
    """Stop the run, with one message, when a server without the anti-framing guard serves it.

    Only a real server counts: an in-process AppTest has no HTTP responses to guard (and no server
    mode)."""
    if st_config._server_mode is None or frame_guard.ACTIVE:
        return
    st.error(
        "This server sends no anti-framing headers, so another web site could show this dashboard "
        "in a hidden frame and steer clicks onto its buttons. Start it through the guarded entry "
        f"point:\n\n`{SAFE_START}`\n\n(`make dashboard` does).",
        icon=":material/lock:",
    )
    st.stop()


st.set_page_config(
    page_title="SDL · multi-label contrastive learning",
    page_icon="🧩",
    layout="wide",
    initial_sidebar_state="expanded",
)
refuse_remote_serving()
refuse_unguarded_serving()

PAGES = [
    st.Page("views/relations.py", title="Relations", icon=":material/grid_on:", default=True),
    st.Page("views/training.py", title="Training", icon=":material/model_training:"),
    st.Page("views/space.py", title="Space", icon=":material/scatter_plot:"),
    st.Page("views/compare.py", title="Compare", icon=":material/leaderboard:"),
    st.Page("views/playground.py", title="Playground", icon=":material/play_circle:"),
]

#: The guided tour, in the order a 10-minute class takes: (page index, what to look at).
TOUR = (
    (0, "Relations: pick an anchor and see how each loss weighs the five relations; SDL alone "
        "gives a sample with extra labels (R5) less pull than one with the same labels (R2)."),
    (2, "Space: the trained runs side by side; the anchor's R2 samples should sit closest, R5 "
        "and R4 a step further, R1 far away."),
    (3, "Compare: per data set, the metrics with their 95% intervals and the relation AUCs; "
        "R2>R5 above 0.5 is the evidence that a loss separates exact from partial matches."),
    (4, "Playground: change a label set and watch the weights and the loss respond."),
)  # fmt: skip
TOUR_HIDDEN_KEY = "tour_hidden"


def url_page(pages: list, current) -> None:
    """Open the page a link names (``?page=compare``) once per session; an unknown name is
    ignored with a note. Afterwards the URL names the page shown."""
    names = {p.title.lower(): p for p in pages}
    requested = st.query_params.get("page")
    if requested is not None and not st.session_state.get("_url_page_seen"):
        st.session_state["_url_page_seen"] = True
        target = names.get(requested.lower())
        if target is None:
            st.sidebar.caption(
                f":material/link_off: The link's page={ui.md_text(requested)} is not one of "
                f"{', '.join(names)}: ignored."
            )
        elif target.title != current.title:
            # the link's other choices are the new page's: carry them over the switch
            carried = {k: st.query_params.get_all(k) for k in st.query_params if k != "page"}
            st.switch_page(target, query_params={**carried, "page": target.title.lower()})
    st.session_state["_url_page_seen"] = True
    st.query_params["page"] = current.title.lower()


def guided_tour(pages: list) -> None:
    """The sidebar's tour: open on a first visit, one line per step, hidden when dismissed."""
    if st.session_state.get(TOUR_HIDDEN_KEY):
        if st.sidebar.button("Show the guided tour", key="tour_show", type="tertiary"):
            st.session_state[TOUR_HIDDEN_KEY] = False
            st.rerun()
        return
    with st.sidebar.expander(":material/tour: Guided tour: 10 minutes", expanded=True):
        for number, (index, text) in enumerate(TOUR, start=1):
            st.page_link(pages[index], label=f"{number}. {pages[index].title}")
            st.caption(text)
        if st.button("Hide the tour", key="tour_hide"):
            st.session_state[TOUR_HIDDEN_KEY] = True
            st.rerun()


page = st.navigation(PAGES)
with st.sidebar:
    st.markdown("### Similarity-Dissimilarity Loss")
    st.caption(
        "Multi-label supervised contrastive learning: how much should a sample that shares "
        "*some* of the anchor's labels pull?"
    )
url_page(PAGES, page)
guided_tour(PAGES)
ui.sidebar_runs_folder()
try:
    page.run()
except BaseException as exc:  # st.stop and reruns end a run by raising; log them, then re-raise
    ui.log_timing(page.title, STARTED, type(exc).__name__)
    raise
ui.log_timing(page.title, STARTED, "ok")
