"""Fault injection on real tiny trainings: kill -9 at each phase, corrupt each file, fill the disk.

A trainer killed anywhere (loading, mid-epoch, half way through writing its checkpoint, while
evaluating) and then resumed must end "done" with the weights, history and metrics of a run that was
never interrupted (exact on the CPU); a reader must call the killed run "stopped", not "running".
The kill comes from sdl.runs.fault_point (the SDL_FAULT_KILL_AT hook), so each one lands in its phase.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sdl import runs
from sdl.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 2


def config(out: Path) -> TrainConfig:
    return TrainConfig(
        dataset="digits-mosaic",
        loss="sdl",
        epochs=EPOCHS,
        batch_size=32,
        embed_dim=8,
        max_embeddings=40,
        dataset_options={"n_train": 96, "n_test": 48},
        out=str(out),
    )


def command(out: Path, *extra: str) -> list[str]:
    from sdl.cli import train_argv

    return [sys.executable, "-m", "sdl", *train_argv(config(out)), "--no-progress", *extra]


def run(out: Path, *extra: str, env: dict | None = None, preexec=None):
    return subprocess.run(
        command(out, *extra),
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=preexec,
    )


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run, in this process (the same code path as the CLI's)."""
    return train(config(tmp_path_factory.mktemp("straight") / "run"), progress=False)


def _same_run(a: Path, b: Path) -> None:
    wa = torch.load(a / runs.CHECKPOINT, weights_only=True)["model"]
    wb = torch.load(b / runs.CHECKPOINT, weights_only=True)["model"]
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    ra, rb = runs.read_run(a), runs.read_run(b)
    assert ra.history["loss"].tolist() == rb.history["loss"].tolist()
    assert ra.metrics == rb.metrics


# where the kill lands: the fault point, and the K-th time it is reached
PHASES = {
    "loading": "loaded",
    "mid-epoch": "step:2#2",
    "writing the checkpoint": "write:checkpoint.pt#2",
    "evaluating": "evaluating",
}


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(PHASES))
def test_kill_9_then_resume_gives_the_uninterrupted_run(phase, straight, tmp_path):
    out = tmp_path / "run"
    killed = run(out, env={runs.FAULT_ENV: PHASES[phase]})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if (out / runs.STATUS).exists():
        status, _ = runs.read_status(out)
        assert status["state"] == "running"  # the file cannot know; the reader must
        assert runs.read_run(out).state == runs.STOPPED
    if phase.startswith("writing"):
        assert list(out.glob(".*.tmp")), "the kill should leave the writer's temp file"
    resumed = train(config(out), resume=True, progress=False)
    assert runs.read_run(resumed).state == "done"
    assert not list(out.glob(".*.tmp"))  # cleaned when the run resumed
    _same_run(straight, resumed)


@pytest.mark.slow
def test_sigterm_is_recorded_as_the_end_of_the_run(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(  # many epochs: still training when the signal comes
        command(out, "--epochs", "500"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = 300
        start = time.time()
        while not (out / runs.HISTORY).exists() and time.time() - start < deadline:
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.05)
        status, _ = runs.read_status(out)
        assert runs.is_trainer(process.pid, out, status.get("pid_start"))  # its own trainer
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + 15
    assert err.strip().splitlines()[-1].endswith("stopped by SIGTERM")
    assert "Traceback" not in err
    status, _ = runs.read_status(out)
    assert status["state"] == "failed" and status["error"] == "stopped by SIGTERM"
    assert runs.read_run(out).state == "failed"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", [runs.CONFIG, runs.STATUS, runs.HISTORY, runs.METRICS, runs.EMBEDDINGS]
)
def test_each_real_run_file_corrupted_is_reported_by_name(name, straight, tmp_path):
    import shutil

    copy = Path(shutil.copytree(straight, tmp_path / "copy"))
    _truncate(copy / name)
    if name == runs.CONFIG:
        with pytest.raises(runs.RunError, match=r"copy.*config\.json"):
            runs.read_run(copy)
        return
    if name == runs.EMBEDDINGS:
        with pytest.raises(runs.RunError, match=r"copy.*embeddings\.npz"):
            runs.read_embeddings(copy)
        return
    problems = runs.read_run(copy).problems
    assert any(p.startswith(f"{name} is corrupt") for p in problems), problems


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
def test_a_full_disk_leaves_no_half_file_and_one_clear_line(straight, tmp_path):
    size = (straight / runs.CHECKPOINT).stat().st_size
    out = tmp_path / "run"
    done = run(out, preexec=_limit_file_size(size // 2))  # every file fits but the checkpoint
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "File too large" in lines[0] and "checkpoint.pt" in lines[0]
    assert not (out / runs.CHECKPOINT).exists() and not list(out.glob(".*.tmp"))
    for name in (runs.CONFIG, runs.STATUS):
        json.loads((out / name).read_text())  # whole files only
    status, _ = runs.read_status(out)
    assert status["state"] == "failed" and "File too large" in status["error"]
