"""dashboard.sources and dashboard.jobs: allowed folders, and training processes watched via files."""

from __future__ import annotations

import sys
import time

import pytest

from dashboard import jobs, sources
from sdl.runs import folder_signature, write_status
from sdl.train import TrainConfig
from tests.run_fixtures import write_sample_run


@pytest.mark.parametrize("text", ["../elsewhere", "runs/../../x", "/etc", "/tmp/../etc", "  "])
def test_runs_folder_refuses_escapes(text, monkeypatch):
    monkeypatch.delenv(sources.ROOTS_ENV, raising=False)
    path, problem = sources.resolve_runs_dir(text)
    assert path is None and problem


def test_runs_folder_inside_the_roots(tmp_path, monkeypatch):
    monkeypatch.delenv(sources.ROOTS_ENV, raising=False)
    path, problem = sources.resolve_runs_dir("runs")
    assert problem is None and path == sources.REPO / "runs"
    assert sources.resolve_runs_dir(str(sources.REPO / "runs"))[0] == sources.REPO / "runs"
    assert sources.resolve_runs_dir(str(tmp_path))[0] is None
    monkeypatch.setenv(sources.ROOTS_ENV, str(tmp_path))
    assert sources.resolve_runs_dir(str(tmp_path / "a"))[0] == (tmp_path / "a").resolve()


def test_load_folder_lists_runs_and_broken_folders(tmp_path):
    write_sample_run(tmp_path / "good", n=20)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{nope")
    refs, errors = sources.load_folder(tmp_path, "runs")
    assert [ref.key for ref, _ in refs] == ["runs/good"]
    assert len(errors) == 1 and "corrupt" in errors[0]
    before = folder_signature(tmp_path)
    write_status(tmp_path / "good", "done", epoch=9, epochs=9)
    assert folder_signature(tmp_path) != before


def config(**kw) -> TrainConfig:
    return TrainConfig(dataset="digits-mosaic", loss="sdl", **kw)


@pytest.mark.parametrize(
    ("name", "changes", "match"),
    [
        ("../x", {}, "run name"),
        (".hidden", {}, "run name"),
        ("job", {"epochs": 0}, "epochs must be"),
        ("job", {"batch_size": 1}, "batch_size must be"),
        ("job", {"device": "tpu"}, "device must be"),
        ("job", {"loss_options": {"symmetric": "maybe"}}, "symmetric must be"),
    ],
)
def test_start_refuses_what_the_trainer_would(tmp_path, name, changes, match):
    with pytest.raises(ValueError, match=match):
        jobs.start(tmp_path, name, config(**changes), command=stand_in("pass"))
    assert not (tmp_path / "job").exists()


def test_the_job_command_is_the_cli_with_every_setting(tmp_path):
    from sdl import cli

    wanted = config(epochs=3, loss_options={"dissimilarity": "ratio"}, out=str(tmp_path / "job"))
    command = jobs.trainer_command(wanted)
    assert command[:4] == [sys.executable, "-m", "sdl", "train"]
    args = cli.build_parser().parse_args(command[3:])
    assert cli.config_from_args(args, args.loss, args.seed, args.out) == wanted


def test_concurrent_jobs_are_capped(tmp_path, monkeypatch):
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "1")
    jobs.start(tmp_path, "first", config(), command=stand_in("import time; time.sleep(30)"))
    try:
        with pytest.raises(ValueError, match="limit"):
            jobs.start(tmp_path, "second", config(), command=stand_in("pass"))
    finally:
        jobs.cancel(tmp_path, "first")


def stand_in(script: str) -> list[str]:
    return [sys.executable, "-c", script]


def wait_for(predicate, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_running_job_can_be_cancelled(tmp_path):
    out = tmp_path / "job"
    script = (
        f"import sys, time; sys.path.insert(0, {str(sources.REPO)!r});"
        "from sdl.runs import write_status;"
        f"write_status({str(out)!r}, 'running', epoch=1, epochs=5, pid=__import__('os').getpid());"
        "time.sleep(60)"
    )
    jobs.start(tmp_path, "job", config(), command=stand_in(script))
    assert wait_for(lambda: jobs.view(tmp_path, "job").state == "running")
    view = jobs.view(tmp_path, "job")
    assert view.active and view.progress == pytest.approx(0.2)
    with pytest.raises(ValueError, match="exists"):
        jobs.start(tmp_path, "job", config(), command=stand_in("pass"))
    assert jobs.cancel(tmp_path, "job")
    assert jobs.view(tmp_path, "job").state == "cancelled"
    assert not jobs.cancel(tmp_path, "job")
    assert jobs.job_names(tmp_path) == ["job"]


def test_crashed_job_shows_its_log(tmp_path):
    jobs.start(
        tmp_path, "job", config(), command=stand_in("import sys; print('bad dataset'); sys.exit(3)")
    )
    assert wait_for(lambda: not jobs.view(tmp_path, "job").active)
    view = jobs.view(tmp_path, "job")
    assert view.state == "stopped"
    assert "exit code 3" in view.error
    assert "bad dataset" in view.log


def test_dead_process_with_running_status_is_stopped(tmp_path):
    out = tmp_path / "orphan"
    write_status(out, "running", epoch=2, epochs=5, pid=2**22 + 12345)  # no such process
    assert jobs.view(tmp_path, "orphan").state == "stopped"
    write_status(out, "running", epoch=2, epochs=5)  # no pid: trust a fresh status
    assert jobs.view(tmp_path, "orphan").state == "running"


def test_failed_and_done_runs(tmp_path):
    write_status(tmp_path / "bad", "failed", epoch=1, epochs=5, error="Traceback...\nValueError: x")
    view = jobs.view(tmp_path, "bad")
    assert view.state == "failed" and "ValueError" in view.error
    write_sample_run(tmp_path / "good", n=20)
    assert jobs.view(tmp_path, "good").state == "done"


# --- a pid in a file is never trusted by itself ----------------------------------------------------


@pytest.fixture
def sleeper():
    """An unrelated live process (the issue's `sleep 600 &`)."""
    import subprocess

    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize("where", ["status", "job notes", "both"])
def test_cancel_never_signals_an_unrelated_pid(tmp_path, sleeper, where):
    import json

    if where in ("status", "both"):
        write_status(tmp_path / "stale", "running", epoch=1, epochs=5, pid=sleeper.pid)
    if where in ("job notes", "both"):
        notes = tmp_path / jobs.JOBS_DIR / "stale.json"
        notes.parent.mkdir(parents=True, exist_ok=True)
        notes.write_text(json.dumps({"name": "stale", "pid": sleeper.pid, "cancelled": False}))
    assert jobs.view(tmp_path, "stale").state == "stopped"  # not "running": it is not the trainer
    assert not jobs.cancel(tmp_path, "stale")
    time.sleep(0.2)
    assert sleeper.poll() is None  # still alive


def test_cancel_never_signals_a_reused_pid(tmp_path):
    """A process that looks exactly like the trainer but started at another time (a reused pid)."""
    import subprocess

    out = tmp_path / "job"
    fake = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(60)",
            "-m",
            "sdl",
            "train",
            "--out",
            str(out),
        ]
    )
    try:
        time.sleep(0.2)
        from sdl.runs import process_start

        start = process_start(fake.pid)
        write_status(out, "running", epoch=1, epochs=5, pid=fake.pid, pid_start=start + 7)
        assert jobs.view(tmp_path, "job").state == "stopped"
        assert not jobs.cancel(tmp_path, "job")
        assert fake.poll() is None
        # the same process with its real start time is this run's trainer: cancel stops it
        write_status(out, "running", epoch=1, epochs=5, pid=fake.pid, pid_start=start)
        assert jobs.view(tmp_path, "job").state == "running"
        assert jobs.cancel(tmp_path, "job")
        assert fake.wait(timeout=10) != 0
    finally:
        fake.kill()
        fake.wait()


@pytest.mark.parametrize(
    "status",
    [
        {"state": "running", "pid": "123"},
        {"state": "running", "pid": 1.5},
        {"state": "running", "updated": "yesterday"},
        {"state": "running", "pid": [1]},
        {"state": 3},
    ],
)
def test_a_corrupt_status_is_shown_not_a_crash(tmp_path, status):
    import json

    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "status.json").write_text(json.dumps(status))
    view = jobs.view(tmp_path, "odd")
    assert not view.active and "status.json is corrupt" in (view.error or "")
    assert not jobs.cancel(tmp_path, "odd")


@pytest.mark.parametrize(
    ("text", "word"),
    [("runs\x00x", "control character"), ("r" * 5000, "characters long"), ("a\nb", "control")],
)
def test_runs_folder_refuses_odd_text(text, word):
    path, problem = sources.resolve_runs_dir(text)
    assert path is None and word in problem


def test_links_out_of_the_runs_folder_are_not_read(tmp_path):
    root = tmp_path / "runs"
    write_sample_run(root / "mine", n=20)
    secret = write_sample_run(tmp_path / "elsewhere" / "secret", n=20)
    (root / "peek").symlink_to(secret, target_is_directory=True)
    refs, errors = sources.load_folder(root, "runs")
    assert [ref.key for ref, _ in refs] == ["runs/mine"]
    assert len(errors) == 1 and "outside" in errors[0]
