"""The benchmark scripts run end to end at toy sizes: a loss added to the registry, or a renamed
helper, must not leave `make bench` broken until someone runs it by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from sdl.losses import loss_names

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_losses_runs_every_contrastive_loss_at_a_toy_size(capsys):
    bench = load_benchmark("bench_losses")
    bench.main(["--sizes", "64", "--views", "1,2", "--classes", "10,1000", "--repeats", "1"])
    out = capsys.readouterr().out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| 64 |")]
    timed = {(r[1], r[2], r[3]) for r in rows if len(r) == 8}  # the every-run table
    for loss in loss_names(contrastive=True):
        views = ("2",) if loss == "simclr" else ("1", "2")
        for v in views:
            for c in ("10", "1000"):
                assert (v, c, loss) in timed, f"{loss} missing at V={v}, C={c}"
    assert not any(r[2] == "bce" for r in rows), "bce takes logits, not embeddings"
    every_run = [r for r in rows if len(r) == 8]
    assert all(r[4] != "skipped" for r in every_run if r[3] in loss_names(contrastive=True))


def test_bench_losses_keeps_only_the_runs_asked_for(capsys):
    """--only without the floors still checks the targets it can (N >= 4096 has a floor target)."""
    bench = load_benchmark("bench_losses")
    bench.main(["--sizes", "4096", "--views", "2", "--classes", "10", "--only", "sdl,supcon",
                "--repeats", "1"])  # fmt: skip
    out = capsys.readouterr().out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| 4096 |")]
    assert sorted(r[3] for r in rows if len(r) == 8) == ["sdl", "supcon"]  # the every-run table


@pytest.mark.skipif(sys.platform != "linux", reason="peak memory reads /proc (Linux only)")
def test_bench_losses_large_mode_reports_a_time_and_a_peak(capsys):
    bench = load_benchmark("bench_losses")
    bench.main(["--large", "--sizes", "256", "--classes", "1000"])
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 256 |")]
    assert len(row) == 1 and "failed" not in row[0] and "skipped" not in row[0], row
    assert len(row[0].split(" | ")) == 6  # the loss and a training step, each a time and a peak


def test_bench_train_step_times_both_loss_paths(capsys):
    bench = load_benchmark("bench_train_step")
    bench.main(["--steps", "1", "--batch-size", "8"])
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if "| " in line]
    paths = [r[0].strip("| ") for r in rows if len(r) == 4 and r[1][:1].isdigit()]
    assert paths == ["blockwise", "dense (before)"]
