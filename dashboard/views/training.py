"""Training: start a run as a separate process, watch it live, cancel it, see why it failed."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import jobs, ui
from dashboard.style import loss_color
from sdl.data import DATASETS
from sdl.losses import loss_class, loss_label, loss_names, parse_loss_options
from sdl.losses import loss_options as loss_options_of
from sdl.runs import folders_with_status, read_history
from sdl.train import FIELD_OPTIONS, TrainConfig

BATCH_SIZES = [16, 32, 64, 128, 256, 512, 1024]
DEVICES = ("auto", "cpu", "cuda")
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
    """Datasets that load here, and the losses that train on label sets (the registry's)."""
    datasets = [name for name, info in DATASETS.items() if info.missing(None) is None]
    return datasets, loss_names(label_kind="multi")


def field_widget(name: str, container, value: object, **kwargs) -> object:
    """A number input for one TrainConfig setting, with the bounds TrainConfig itself checks."""
    option = FIELD_OPTIONS[name]
    cast = option.kind
    return container.number_input(
        kwargs.pop("label", name.replace("_", " ")),
        min_value=None if option.low is None else cast(option.low),
        max_value=None if option.high is None else cast(option.high),
        value=cast(value),
        key=f"train_{name}",
        help=f"{option.help} ({option.accepts()})",
        **kwargs,
    )


def training_form(datasets: list[str], losses: list[str]) -> tuple[str, TrainConfig] | None:
    """The start form; returns (run name, config) when the user pressed Start."""
    defaults = TrainConfig()
    with st.container(border=True):
        cols = st.columns(4)
        dataset = cols[0].selectbox(
            "Dataset",
            datasets,
            index=datasets.index("digits-mosaic") if "digits-mosaic" in datasets else 0,
            key="train_dataset",
        )
        loss = cols[1].selectbox(
            "Loss",
            losses,
            key="train_loss",
            help="\n".join(f"**{n}**: {loss_class(n).summary}" for n in losses),
        )
        epochs = field_widget("epochs", cols[2], 5, step=1)
        batch_size = cols[3].select_slider(
            "Batch size", BATCH_SIZES, defaults.batch_size, key="train_batch_size"
        )
        cols = st.columns(4)
        temperature = field_widget(
            "temperature", cols[0], defaults.temperature, label="temperature τ", format="%g"
        )
        seed = field_widget("seed", cols[1], defaults.seed, step=1)
        device = cols[2].selectbox(
            "Device", DEVICES, help="auto: CUDA if there is one, else CPU", key="train_device"
        )
        name = cols[3].text_input(
            "Run name", placeholder="automatic", help="the run's folder name", key="train_name"
        )
        options = loss_class(loss).options
        chosen: dict[str, object] = {}
        if options:
            with st.expander(f"Options of {loss}", expanded=False):
                cols = st.columns(min(4, len(options)))
                for number, option in enumerate(options):
                    chosen[option.name] = ui.option_input(
                        option, f"train_opt_{loss}_{option.name}", cols[number % len(cols)]
                    )
        submitted = st.button("Start training", type="primary", icon=":material/play_arrow:")
    if not submitted:
        return None
    try:
        parsed = parse_loss_options(loss, chosen)
    except ValueError as exc:
        st.error(str(exc))
        return None
    # Only the options that differ from their defaults are stored, as the CLI would.
    defaults_of = loss_options_of(loss)
    loss_options = {k: v for k, v in parsed.items() if v != defaults_of[k]}
    config = replace(
        defaults,
        dataset=dataset,
        loss=loss,
        loss_options=loss_options,
        epochs=int(epochs),
        batch_size=int(batch_size),
        temperature=float(temperature),
        seed=int(seed),
        device=device,
    )
    name = name.strip() or f"{dataset}-{loss}-s{int(seed)}-{time.strftime('%H%M%S')}"
    return name, config


def run_names(root: Path) -> list[str]:
    """Dashboard jobs (newest first), then the other run folders with a status."""
    names = jobs.job_names(root)
    names += [p.name for p in folders_with_status(root) if p.name not in names]
    return names


def loss_curve(path: Path, loss: str) -> go.Figure | None:
    history, _ = read_history(path)  # not written yet, or being replaced: try again next tick
    if history is None or history.empty:
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
    request = job.config
    with st.container(border=True):
        head, side = st.columns([4, 1])
        loss = request.get("loss")
        shown_loss = None
        if isinstance(loss, str):
            try:
                shown_loss = loss_label(loss, request.get("loss_options") or {})
            except ValueError:  # a loss this checkout does not know: its name alone
                shown_loss = loss
        details = " · ".join(
            str(v) for v in (shown_loss, request.get("dataset"), request.get("device")) if v
        )
        head.markdown(
            f"{icon} **{ui.md_text(job.name)}** — {text}"
            + (f"  \n{ui.md_text(details)}" if details else "")
        )
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
            st.error(
                f"The run failed: {ui.md_text((str(job.error).strip().splitlines() or ['?'])[-1])}"
            )
            with st.expander("Error details"):
                st.code(str(job.error)[-4000:], language=None)
        elif job.state == "stopped":
            st.warning(f"Stopped: {ui.md_text(job.error)}. The last lines of its log are below.")
        elif job.state == "cancelled":
            st.info("Cancelled by you.")
        elif job.state == "done":
            st.progress(1.0, text=f"{job.epoch} of {job.epochs} epochs")
            numbers = ui.run_metrics_line(job.path)
            if numbers:
                st.caption(numbers)
        elif job.error:  # a run whose files cannot say its state (a corrupt status.json)
            ui.run_error(f"{job.name}: {job.error}")
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
        chosen = training_form(datasets, losses)
        if chosen is not None:
            name, config = chosen
            try:
                out = jobs.start(root, name, config)
            except (ValueError, OSError) as exc:
                st.error(str(exc))
            else:
                st.success(f"Started **{name}** → `{out}`")
    st.subheader(f"Runs in `{root.name}/`")
    active = any(jobs.view(root, n).active for n in run_names(root))
    live_runs(root, active)


render()
