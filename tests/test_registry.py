"""The loss registry is the one place a loss is declared: a toy loss added in one class appears in
the CLI, the trainer, the Training page and the Relations page's comparison, coloured."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from dashboard.style import loss_color
from sdl import cli, relations, runs
from sdl.losses import (
    LOSSES,
    WeightedSupConLoss,
    build_loss,
    compared_losses,
    loss_names,
    register_loss,
    unregister_loss,
)
from sdl.options import Option

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


class ToyLoss(WeightedSupConLoss):
    """Pairs that share at least ``shared`` labels pull fully."""

    name = "toy"
    color = "#123456"
    summary = "w = [|S∩T| >= shared]"
    options = (Option("shared", int, 2, "labels a positive must share", low=1, group="weights"),)

    def __init__(self, temperature: float = 0.07, shared: int = 2):
        super().__init__(temperature)
        self.shared = shared

    def sample_block(self, labels, views, dtype, device):
        counts = relations.BlockCounts(labels, dtype, device)
        return lambda start, stop: (counts.inter(start, stop) >= self.shared).to(dtype)


@pytest.fixture
def toy():
    register_loss(ToyLoss)
    yield ToyLoss
    unregister_loss(ToyLoss.name)


def test_registering_a_loss_lists_it_everywhere_in_the_library(toy):
    assert "toy" in loss_names() and "toy" in compared_losses()
    assert loss_color("toy") == "#123456"
    loss = build_loss("toy", temperature=0.2, shared="3")  # a CLI string, parsed by its Option
    assert loss.shared == 3 and loss.temperature == 0.2
    with pytest.raises(ValueError, match="shared must be an integer >= 1"):
        build_loss("toy", shared=0)
    labels = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    weights = build_loss("toy").comparable_weights(labels)  # shared = 2
    assert weights.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]


def test_a_name_is_registered_once(toy):
    class Other(ToyLoss):
        pass

    with pytest.raises(ValueError, match="registered already"):
        register_loss(Other)
    assert LOSSES["toy"] is ToyLoss


@pytest.mark.slow
def test_the_cli_trains_a_registered_loss(toy, tmp_path):
    out = tmp_path / "toy-run"
    argv = ["train", "--dataset", "digits-mosaic", "--loss", "toy", "--loss-option", "shared=1",
            "--epochs", "1", "--batch-size", "64", "--dataset-option", "n_train=128",
            "--dataset-option", "n_test=64", "--max-embeddings", "40", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    run = runs.read_run(out)
    assert run.state == "done" and run.config["loss_options"] == {"shared": 1}


def test_the_pages_offer_a_registered_loss(toy, monkeypatch, tmp_path):
    monkeypatch.setenv("SDL_DASHBOARD_DEMO", str(tmp_path / "no-demo"))
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.radio(key="rel_source").set_value("Type").run()
    assert not app.exception
    # The comparison chart names every compared loss in its legend; the variant panel has its option.
    assert app.number_input(key="rel_opt_toy_shared").value == 2
    legend = [trace.name for trace in _figure(app, "rel_weights")]
    assert any(name.startswith("toy") for name in legend)
    app.switch_page("views/training.py").run()
    assert not app.exception
    assert "toy" in app.selectbox(key="train_loss").options


def _figure(app, key):
    import json

    chart = next(c for c in app.get("plotly_chart") if c.proto.id and key in c.proto.id)
    return [
        type("T", (), {"name": t.get("name", "")}) for t in json.loads(chart.proto.spec)["data"]
    ]
