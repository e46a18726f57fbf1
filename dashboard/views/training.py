"""Training: start a run as a separate process, watch it live, cancel it, see why it failed."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import jobs, ui
from dashboard.style import loss_color
from sdl.runs import HISTORY, STATUS

BATCH_SIZES = [16, 32, 64, 128, 256, 512, 1024]
STATE_LOOK = {
    "starting": (
        ":blue[:material/hourglass_top:]",
        "starting: loading data and building the model",
    ),
    "running": (":blue[:material/progress_activity:]", "running"),
    "done": (":green[:material/check_circle:]", "finished"),
    "failed": (":red[:material/error:]", "failed"),
    "stopped": (":orange[:material/block:]", "stopped"),
    "cancelled": (":gray[:material/cancel:]", "cancelled"),
    "unknown": (":gray[:material/help:]", "unknown"),
}


def _choices() -> tuple[list[str], list[str]]:
    try:
        from sdl.data import DATASETS
        from sdl.train import TRAIN_LOSSES
    except Exception as exc:  # the trainer may be missing on a partial checkout
        st.error(f"Training is not available: {exc}")
        return [], []
    datasets = [name for name, info in DATASETS.items() if info.missing(None) is None]
    losses = [name for name in TRAIN_LOSSES if name != "supcon"]
    return datasets, losses


def training_form(datasets: list[str], losses: list[str]) -> jobs.TrainRequest | None:
    """The start form; returns a request when the user pressed Start."""
    with st.form("train_form", border=True):
        cols = st.columns(4)
        dataset = cols[0].selectbox(
            "Dataset",
            datasets,
            index=datasets.index("digits-mosaic") if "digits-mosaic" in datasets else 0,
        )
        loss = cols[1].selectbox(
            "Loss", losses, index=losses.index("sdl") if "sdl" in losses else 0
        )
        epochs = cols[2].slider("Epochs", *jobs.LIMITS["epochs"], 5)
        batch_size = cols[3].select_slider("Batch size", BATCH_SIZES, 128)
        cols = st.columns(4)
        temperature = cols[0].slider("Temperature τ", *jobs.LIMITS["temperature"], 0.1, 0.01)
        seed = cols[1].number_input("Seed", 0, 10_000, 0)
        device = cols[2].selectbox(
            "Device", jobs.DEVICES, help="auto: CUDA if there is one, else CPU"
        )
        name = cols[3].text_input(
            "Run name", placeholder="automatic", help="the run's folder name", key="train_name"
        )
        submitted = st.form_submit_button(
            "Start training", type="primary", icon=":material/play_arrow:"
        )
    if not submitted:
        return None
    name = name.strip() or f"{dataset}-{loss}-s{int(seed)}-{time.strftime('%H%M%S')}"
    return jobs.TrainRequest(
        name=name,
        dataset=dataset,
        loss=loss,
        epochs=int(epochs),
        batch_size=int(batch_size),
        temperature=float(temperature),
        seed=int(seed),
        device=device,
    )


def run_names(root: Path) -> list[str]:
    """Dashboard jobs (newest first), then the other run folders with a status."""
    names = jobs.job_names(root)
    if root.is_dir():
        others = sorted(
            (p for p in root.iterdir() if p.is_dir() and (p / STATUS).is_file()),
            key=lambda p: (p / STATUS).stat().st_mtime,
            reverse=True,
        )
        names += [p.name for p in others if p.name not in names]
    return names


def loss_curve(path: Path, loss: str) -> go.Figure | None:
    try:
        history = pd.read_csv(path / HISTORY)
    except Exception:  # not written yet, or being replaced: try again next tick
        return None
    if history.empty or not {"epoch", "loss"} <= set(history.columns):
        return None
    fig = go.Figure(
        go.Scatter(
            x=history["epoch"],
            y=history["loss"],
            mode="lines+markers",
            line={"color": loss_color(loss), "width": 2},
            name=loss,
        )
    )
    fig.update_layout(
        height=220,
        margin={"l": 50, "r": 10, "t": 30, "b": 40},
        title={"text": "training loss", "font": {"size": 13}},
        xaxis={"title": "epoch", "dtick": max(1, len(history) // 10)},
        yaxis_title="loss",
    )
    return fig


def _cancel(root: Path, name: str) -> None:
    if jobs.cancel(root, name):
        st.toast(f"Cancelled {name}", icon=":material/cancel:")
    else:
        st.toast(f"{name} was not running", icon=":material/info:")


def job_card(root: Path, job: jobs.JobView) -> None:
    icon, text = STATE_LOOK.get(job.state, STATE_LOOK["unknown"])
    request = job.request
    with st.container(border=True):
        head, side = st.columns([4, 1])
        details = " · ".join(
            str(v)
            for v in (request.get("loss"), request.get("dataset"), request.get("device"))
            if v
        )
        head.markdown(f"{icon} **{job.name}** — {text}" + (f"  \n{details}" if details else ""))
        if job.active:
            side.button(
                "Cancel",
                key=f"cancel_{job.name}",
                on_click=_cancel,
                args=(root, job.name),
                icon=":material/stop:",
            )
            epochs = job.epochs or request.get("epochs")
            label = (
                f"epoch {job.epoch or 0} of {epochs}" if epochs else "waiting for the first epoch"
            )
            st.progress(job.progress, text=label)
        elif job.state == "failed":
            st.error(f"The run failed: {str(job.error).strip().splitlines()[-1]}")
            with st.expander("Error details"):
                st.code(str(job.error)[-4000:], language=None)
        elif job.state == "stopped":
            st.warning(f"Stopped: {job.error}. The last lines of its log are below.")
        elif job.state == "cancelled":
            st.info("Cancelled by you.")
        elif job.state == "done":
            st.progress(1.0, text=f"{job.epoch} of {job.epochs} epochs")
        fig = loss_curve(job.path, str(request.get("loss", "")))
        if fig is not None:
            st.plotly_chart(fig, key=f"curve_{job.name}")
        if job.log and job.state in ("failed", "stopped", "cancelled", "starting", "running"):
            with st.expander("Log", expanded=job.state == "stopped"):
                st.code(job.log, language=None)


def render_runs(root: Path) -> bool:
    """Draw every run's card; returns whether any is still active."""
    names = run_names(root)
    if not names:
        st.info("No runs in this folder yet. Start one above.")
        return False
    views = [jobs.view(root, name) for name in names]
    active = [v for v in views if v.active]
    rest = [v for v in views if not v.active]
    for job in active + rest[:6]:
        job_card(root, job)
    if len(rest) > 6:
        with st.expander(f"{len(rest) - 6} older runs"):
            st.dataframe(
                pd.DataFrame(
                    {
                        "run": [v.name for v in rest[6:]],
                        "state": [v.state for v in rest[6:]],
                        "epoch": [v.epoch for v in rest[6:]],
                        "epochs": [v.epochs for v in rest[6:]],
                    }
                ),
                hide_index=True,
            )
    return bool(active)


def live_runs(root: Path, active: bool) -> None:
    """The run cards; while a run is active they refresh every 2 s without rerunning the page."""

    def draw() -> None:
        still_active = render_runs(root)
        if active and not still_active:
            st.rerun(scope="app")  # the last run ended: stop polling

    st.fragment(draw, run_every=2.0 if active else None)()


def render() -> None:
    st.title("Training")
    st.caption(
        "Each run is a separate `python -m sdl train` process writing into the runs folder: the "
        "dashboard stays responsive, and a run survives closing this tab. Progress comes from the "
        "run's status.json and history.csv."
    )
    root = ui.runs_folder()
    if root is None:
        st.error(
            "The runs folder named in the sidebar is not allowed; fix it to start or watch runs."
        )
        return
    datasets, losses = _choices()
    if datasets and losses:
        request = training_form(datasets, losses)
        if request is not None:
            try:
                out = jobs.start(root, request)
            except (ValueError, OSError) as exc:
                st.error(str(exc))
            else:
                st.success(f"Started **{request.name}** → `{out}`")
    st.subheader(f"Runs in `{root.name}/`")
    active = any(jobs.view(root, n).active for n in run_names(root))
    live_runs(root, active)


render()
