"""sdl.runs' schema: every corrupt variant of a run file is reported, naming the run and the fault.

Each case starts from a complete, healthy run written like a real one (tests.run_fixtures) and
breaks one thing the way a crash, a hand edit or a foreign tool would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from sdl import runs
from tests.run_fixtures import write_sample_run


def _arrays(path):
    with np.load(path / runs.EMBEDDINGS, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _rewrite(path, **changes):
    arrays = _arrays(path)
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    runs.write_npz_atomic(path / runs.EMBEDDINGS, **arrays)


def _nan_row(a):
    a = a.copy()
    a[3, 0] = np.nan
    return a


# name -> (what to do to the arrays, a word the message must hold)
EMBEDDING_FAULTS = {
    "no embeddings": (lambda a: {"embeddings": None}, "embeddings"),
    "no labels": (lambda a: {"labels": None}, "labels"),
    "no ids": (lambda a: {"ids": None}, "ids"),
    "1-D embeddings": (lambda a: {"embeddings": a["embeddings"][:, 0]}, "embeddings"),
    "3-D embeddings": (lambda a: {"embeddings": a["embeddings"][:, :, None]}, "embeddings"),
    "text embeddings": (lambda a: {"embeddings": a["embeddings"].astype(str)}, "embeddings"),
    "NaN embedding": (lambda a: {"embeddings": _nan_row(a["embeddings"])}, "NaN"),
    "inf embedding": (lambda a: {"embeddings": a["embeddings"] * np.float32(np.inf)}, "infinite"),
    "N=0": (
        lambda a: {k: a[k][:0] for k in ("embeddings", "labels", "ids", "thumbs")},
        "at least 2",
    ),
    "N=1": (
        lambda a: {k: a[k][:1] for k in ("embeddings", "labels", "ids", "thumbs")},
        "at least 2",
    ),
    "1-D labels": (lambda a: {"labels": a["labels"][:, 0]}, "labels"),
    "3-D labels": (lambda a: {"labels": a["labels"][:, :, None]}, "labels"),
    "label value 2": (lambda a: {"labels": a["labels"] * 2}, "0 and 1"),
    "negative label": (lambda a: {"labels": a["labels"].astype(np.int8) - 1}, "0 and 1"),
    "fewer labels rows": (lambda a: {"labels": a["labels"][:-1]}, "labels"),
    "2-D ids": (lambda a: {"ids": a["ids"][:, None]}, "ids"),
    "fewer ids": (lambda a: {"ids": a["ids"][:-1]}, "ids"),
    "2-D thumbs": (lambda a: {"thumbs": a["thumbs"][:, 0]}, "thumbs"),
    "4-channel thumbs": (
        lambda a: {"thumbs": np.repeat(a["thumbs"][..., None], 4, -1)},
        "thumbs",
    ),
    "float thumbs": (lambda a: {"thumbs": a["thumbs"].astype(np.float32)}, "thumbs"),
    "fewer thumbs": (lambda a: {"thumbs": a["thumbs"][:-1]}, "thumbs"),
    "empty thumbs": (lambda a: {"thumbs": a["thumbs"][:, :0]}, "thumbs"),
    "2-D texts": (lambda a: {"texts": np.array([["a"]] * len(a["ids"]))}, "texts"),
    "number texts": (lambda a: {"texts": np.arange(len(a["ids"]))}, "texts"),
    "label_names scalar": (lambda a: {"label_names": np.array(5)}, "label_names"),
    "label_names too short": (lambda a: {"label_names": a["label_names"][:-1]}, "label_names"),
}


@pytest.fixture
def run(tmp_path):
    return write_sample_run(tmp_path / "victim", n=24)


@pytest.mark.parametrize("fault", list(EMBEDDING_FAULTS))
def test_bad_embeddings_are_reported_with_the_run(run, fault):
    change, word = EMBEDDING_FAULTS[fault]
    _rewrite(run, **change(_arrays(run)))
    with pytest.raises(runs.RunError, match="victim") as info:
        runs.read_embeddings(run)
    assert word in str(info.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"half a file", b"PK\x03\x04broken zip", b"\x93NUMPY not an npz"],
    ids=["empty", "text", "bad zip", "npy not npz"],
)
def test_unreadable_embeddings_are_reported(run, content):
    (run / runs.EMBEDDINGS).write_bytes(content)
    with pytest.raises(runs.RunError, match=r"victim.*cannot read"):
        runs.read_embeddings(run)


def test_a_healthy_run_reads_clean(run):
    assert runs.read_run(run).problems == []
    arrays = runs.read_embeddings(run)
    assert arrays["embeddings"].shape == (24, 16)
    assert runs.embeddings_rows(run) == 24


CONFIG_FAULTS = {
    "seed text": {"seed": "abc"},
    "seed null": {"seed": None},
    "seed float": {"seed": 1.5},
    "seed bool": {"seed": True},
    "loss number": {"loss": 3},
    "dataset list": {"dataset": ["a"]},
    "temperature text": {"temperature": "hot"},
    "epochs text": {"epochs": "ten"},
    "label_names number": {"label_names": 5},
    "label_names nested": {"label_names": [["a"]]},
    "loss_options list": {"loss_options": [1]},
}


@pytest.mark.parametrize("fault", list(CONFIG_FAULTS))
def test_bad_config_fields_make_a_run_error_naming_the_run(run, fault):
    config = json.loads((run / runs.CONFIG).read_text())
    config.update(CONFIG_FAULTS[fault])
    (run / runs.CONFIG).write_text(json.dumps(config))
    key = next(iter(CONFIG_FAULTS[fault]))
    with pytest.raises(runs.RunError, match=f"victim.*{key}"):
        runs.read_run(run)
    found, errors = runs.list_runs(run.parent)
    assert found == [] and len(errors) == 1


@pytest.mark.parametrize(
    "text",
    ["", "{", "[1, 2]", '"text"', "\xff\xfe", "null"],
    ids=["empty", "truncated", "list", "string", "not utf-8", "null"],
)
def test_unreadable_config_is_a_run_error(run, text):
    (run / runs.CONFIG).write_bytes(text.encode("latin-1"))
    with pytest.raises(runs.RunError, match=r"victim.*config\.json"):
        runs.read_run(run)


STATUS_FAULTS = {
    "pid text": {"state": "running", "pid": "123"},
    "pid float": {"state": "running", "pid": 1.5},
    "updated text": {"state": "running", "updated": "yesterday"},
    "epoch text": {"state": "done", "epoch": "3"},
    "unknown state": {"state": "paused"},
    "no state": {"epoch": 1},
}


@pytest.mark.parametrize("fault", list(STATUS_FAULTS))
def test_bad_status_is_a_problem_not_a_crash(run, fault):
    (run / runs.STATUS).write_text(json.dumps(STATUS_FAULTS[fault]))
    read = runs.read_run(run)
    assert read.state == "unknown"
    assert any(p.startswith("status.json is corrupt") for p in read.problems)


@pytest.mark.parametrize(
    ("content", "word"),
    [
        ("nonsense\n1\n", "epoch"),
        ("epoch,loss\n1,abc\n2,0.5\n", "loss"),
        ("epoch,loss\nx,1\n", "epoch"),
        ('"unterminated\n', "corrupt"),
    ],
)
def test_bad_history_is_a_problem(run, content, word):
    (run / runs.HISTORY).write_text(content)
    read = runs.read_run(run)
    assert read.history is None
    assert any("history.csv is corrupt" in p and word in p for p in read.problems)


@pytest.mark.parametrize(
    ("metrics", "word"),
    [({"mAP": "high"}, "mAP"), ({"relations": {"R1": [1, 2]}}, "relations.R1"), ([1], "object")],
)
def test_bad_metrics_are_a_problem(run, metrics, word):
    (run / runs.METRICS).write_text(json.dumps(metrics))
    read = runs.read_run(run)
    assert read.metrics is None
    assert any("metrics.json is corrupt" in p and word in p for p in read.problems)


# --- running or stopped --------------------------------------------------------------------------


def _status(run, **fields):
    runs.write_status(run, "running", epoch=1, epochs=5, **fields)


def test_a_running_status_with_a_dead_pid_reads_as_stopped(run):
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()  # reaped: this pid names no process now
    _status(run, pid=process.pid)
    read = runs.read_run(run)
    assert read.state == runs.STOPPED
    assert any("gone" in p for p in read.problems)


def test_a_live_unrelated_process_is_not_the_trainer(run):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        _status(run, pid=sleeper.pid)
        assert runs.is_trainer(sleeper.pid, run) is False
        assert runs.read_run(run).state == runs.STOPPED
    finally:
        sleeper.kill()
        sleeper.wait()


def _fake_trainer(out, cwd):
    """A live process whose command line reads like `python -m sdl train --out out`."""
    code = "import time; time.sleep(30)"
    return subprocess.Popen(
        [sys.executable, "-c", code, "-m", "sdl", "train", "--out", str(out)], cwd=cwd
    )


def test_the_trainer_is_recognised_by_command_folder_and_start(run, tmp_path):
    trainer = _fake_trainer(os.path.relpath(run, tmp_path), tmp_path)
    try:
        time.sleep(0.2)
        start = runs.process_start(trainer.pid)
        assert start is not None
        assert runs.is_trainer(trainer.pid, run, start) is True
        assert runs.is_trainer(trainer.pid, run, start + 1) is False  # a reused pid
        assert runs.is_trainer(trainer.pid, run.parent / "other", start) is False
        _status(run, pid=trainer.pid, pid_start=start, host=socket.gethostname())
        assert runs.read_run(run).state == "running"
        _status(run, pid=trainer.pid, pid_start=start + 1)
        assert runs.read_run(run).state == runs.STOPPED
    finally:
        trainer.kill()
        trainer.wait()


@pytest.mark.parametrize("pid", ["1", -5, 0, True, 2**40, 1.0])
def test_a_pid_that_is_not_a_pid_is_no_trainer(run, pid):
    assert runs.is_trainer(pid, run) is False


def test_a_running_status_without_a_pid_goes_stale(run):
    _status(run)
    assert runs.read_run(run).state == "running"
    data = json.loads((run / runs.STATUS).read_text())
    data["updated"] = time.time() - runs.STALE_SECONDS - 5
    (run / runs.STATUS).write_text(json.dumps(data))
    assert runs.read_run(run).state == runs.STOPPED


# --- the folder ------------------------------------------------------------------------------------


def test_a_link_leaving_the_root_is_skipped_and_said(tmp_path):
    root = tmp_path / "root"
    write_sample_run(root / "inside", n=24)
    outside = write_sample_run(tmp_path / "secret", n=24)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "alias").symlink_to(root / "inside", target_is_directory=True)
    found, errors = runs.list_runs(root)
    assert sorted(r.name for r in found) == ["alias", "inside"]
    assert len(errors) == 1 and "escape" in str(errors[0]) and "outside" in str(errors[0])
    assert [name for name, _ in runs.folder_signature(root)] == ["alias", "inside"]
    assert all(p.name != "escape" for p in runs.folders_with_status(root))


def test_run_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        runs.write_json_atomic(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644


def test_stale_temp_files_are_cleaned_but_not_others(tmp_path):
    stale = [tmp_path / ".checkpoint.pt.abc123.tmp", tmp_path / ".status.json.x.tmp"]
    keep = [tmp_path / ".projection-k.npz.y.tmp", tmp_path / "notes.tmp"]
    for path in stale + keep:
        path.write_text("x")
    removed = runs.clean_temp_files(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)
