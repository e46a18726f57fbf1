"""Training runs started from the dashboard: each one a separate process, watched through files.

A job writes nothing but what ``python -m sdl train`` writes into ``<runs>/<name>/``; the dashboard
keeps its own notes beside the runs, in ``<runs>/.jobs/<name>.json`` (command, pid, whether the user
cancelled it) and ``<runs>/.jobs/<name>.log`` (the process's stdout and stderr). So a job that dies
before it writes anything still shows why, and a page reload (or a new browser tab) finds it again.

A pid in a file is never trusted by itself: a signal goes only to a process this server started (it
holds the Popen) or to one that :func:`sdl.runs.is_trainer` confirms is this run's trainer (its
command line trains this folder and it started when the files say), so a reused pid after a crash
or a crafted status.json cannot make Cancel stop some other process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from dashboard.sources import REPO
from sdl.cli import train_argv
from sdl.runs import (
    RunError,
    is_trainer,
    live_state,
    process_start,
    read_config,
    read_json,
    read_status,
    write_json_atomic,
)
from sdl.train import TrainConfig

JOBS_DIR = ".jobs"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
#: how many dashboard jobs may train at once (default: one per core); more are refused, not queued
MAX_JOBS_ENV = "SDL_DASHBOARD_MAX_JOBS"

# Popen objects of the jobs this server process started (so that finished children are reaped).
_PROCESSES: dict[str, subprocess.Popen] = {}


def max_jobs() -> int:
    """The concurrency limit: ``SDL_DASHBOARD_MAX_JOBS`` if set to a positive integer, else the cores."""
    text = os.environ.get(MAX_JOBS_ENV, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    return os.cpu_count() or 1


def active_jobs() -> list[str]:
    """Run folders of the jobs this server started that are still training."""
    return [out for out, process in _PROCESSES.items() if process.poll() is None]


def trainer_command(config: TrainConfig) -> list[str]:
    """The process that trains ``config``: ``python -m sdl train ...`` with every setting."""
    return [sys.executable, "-m", "sdl", *train_argv(config)]


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a run folder's name, or None."""
    if NAME_PATTERN.match(name):
        return None
    return (
        "The run name may use letters, digits, '.', '_' and '-' (up to 80, not starting "
        "with '.' or '-')."
    )


def _job_files(runs_root: Path, name: str) -> tuple[Path, Path]:
    folder = runs_root / JOBS_DIR
    return folder / f"{name}.json", folder / f"{name}.log"


def start(
    runs_root: Path, name: str, config: TrainConfig, command: list[str] | None = None
) -> Path:
    """Start a training process for ``config`` in ``runs_root/name``; returns that run folder.

    ``command`` replaces the ``python -m sdl train ...`` command line (tests use a stand-in).

    Raises:
        ValueError: for a bad name or setting (TrainConfig's own checks), a run or job of that
            name that exists, or when :func:`max_jobs` jobs are training already.
    """
    problem = name_problem(name)
    if problem:
        raise ValueError(problem)
    out_dir = runs_root / name
    config = replace(config, out=str(out_dir))
    config.validate()
    meta_path, log_path = _job_files(runs_root, name)
    if out_dir.exists() or meta_path.exists():
        raise ValueError(f"A run named {name!r} exists already; choose another name.")
    running = active_jobs()
    if len(running) >= max_jobs():
        raise ValueError(
            f"{len(running)} training run(s) are going already, the limit on this machine "
            f"({MAX_JOBS_ENV}={max_jobs()}); wait for one to finish or cancel one."
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = command or trainer_command(config)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: cancel stops it and its children
            env=env,
        )
    _PROCESSES[str(out_dir)] = process
    write_json_atomic(
        meta_path,
        {
            "name": name,
            "pid": process.pid,
            "pid_start": process_start(process.pid),
            "command": command,
            "config": asdict(config),
            "started": time.time(),
            "cancelled": False,
        },
    )
    return out_dir


def _own_process(out_dir: Path) -> subprocess.Popen | None:
    """The Popen of the job this server started for ``out_dir``, if any."""
    return _PROCESSES.get(str(out_dir))


def _trainer_pid(out_dir: Path, meta: dict, status: dict) -> tuple[int | None, bool | None]:
    """The pid of the run's trainer and whether it lives (None: cannot tell, e.g. no pid).

    A process this server started is asked directly; any other pid, from the job notes or
    status.json, counts only when :func:`sdl.runs.is_trainer` confirms it trains ``out_dir``.
    """
    process = _own_process(out_dir)
    if process is not None:
        return process.pid, process.poll() is None
    verdict: bool | None = None
    for pid, start in (
        (meta.get("pid"), meta.get("pid_start")),
        (status.get("pid"), status.get("pid_start")),
    ):
        if pid is None:
            continue
        verdict = is_trainer(pid, out_dir, start)
        if verdict:
            return int(pid), True
    return None, verdict


def exit_code(out_dir: Path) -> int | None:
    process = _PROCESSES.get(str(out_dir))
    return None if process is None else process.poll()


def _read_meta(path: Path) -> dict | None:
    """The dashboard's notes on a job, or None if there are none (or they are unreadable)."""
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def _config_summary(out_dir: Path) -> dict:
    """What a run started elsewhere was asked to do, from its config.json."""
    try:
        config = read_config(out_dir)
    except RunError:
        return {}
    keys = ("loss", "loss_options", "dataset", "device", "epochs")
    return {k: config[k] for k in keys if k in config}


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


@dataclass
class JobView:
    """What the Training page shows for one run."""

    name: str
    path: Path
    state: str  # starting | running | done | failed | stopped | cancelled | unknown
    epoch: int | None = None
    epochs: int | None = None
    error: str | None = None
    log: str = ""
    pid: int | None = None
    started: float | None = None
    config: dict = field(default_factory=dict)  # what the run was asked to do (TrainConfig fields)

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running")

    @property
    def progress(self) -> float:
        if not self.epochs or self.epoch is None:
            return 0.0
        return max(0.0, min(1.0, self.epoch / self.epochs))


def job_names(runs_root: Path) -> list[str]:
    """Names of jobs started from the dashboard, newest first."""
    folder = runs_root / JOBS_DIR
    if not folder.is_dir():
        return []
    metas = [(p.stat().st_mtime, p.stem) for p in folder.glob("*.json")]
    return [name for _, name in sorted(metas, reverse=True)]


def view(runs_root: Path, name: str) -> JobView:
    """The state of run ``name``: from its status.json, its job notes, and whether its process lives.

    A run whose status still says "running" while its process is gone is "stopped" (or "cancelled"
    when the user cancelled it); a failed run carries its error, else the end of its log.
    """
    out_dir = runs_root / name
    meta_path, log_path = _job_files(runs_root, name)
    meta = _read_meta(meta_path) or {}
    status, problem = read_status(out_dir)
    pid, alive = _trainer_pid(out_dir, meta, status or {})
    job = JobView(
        name=name,
        path=out_dir,
        state="unknown",
        pid=pid,
        started=meta.get("started") if isinstance(meta.get("started"), int | float) else None,
        config=meta.get("config")
        if isinstance(meta.get("config"), dict)
        else _config_summary(out_dir),
        log=log_tail(log_path),
    )
    if problem:
        job.error = problem
    if status:
        job.epoch = status.get("epoch")
        job.epochs = status.get("epochs")
        job.error = status.get("error")
    state = (status or {}).get("state")
    if state == "done":
        job.state = "done"
    elif meta.get("cancelled") is True and not alive:
        job.state = "cancelled"  # the trainer wrote "failed: stopped by SIGTERM"; the user asked
    elif state == "failed":
        job.state = "failed"
        job.error = job.error or "the run failed without a message; see its log"
    elif alive:
        job.state = "running" if status else "starting"
    elif state == "running" and _own_process(out_dir) is None:
        # Not a process this server started nor a confirmed trainer (a run in a notebook, say):
        # the status' own verdict, which never takes a live unrelated pid for the trainer.
        job.state, why = live_state(out_dir, status)
        job.error = why
    elif alive is False or meta or state == "running":
        job.state = "stopped"
        code = exit_code(out_dir)
        job.error = (
            f"the training process ended (exit code {code}) without finishing"
            if code is not None
            else "the training process is gone but the run never finished"
        )
    return job


def cancel(runs_root: Path, name: str) -> bool:
    """Stop run ``name``'s trainer (SIGTERM) and note the cancel. False if it was not running.

    Only a process this server started, or one confirmed as this run's trainer, is signalled.
    """
    out_dir = runs_root / name
    meta_path, _ = _job_files(runs_root, name)
    meta = _read_meta(meta_path)
    status = read_status(out_dir)[0] or {}
    pid, alive = _trainer_pid(out_dir, meta or {}, status)
    if pid is None or not alive:
        return False
    try:
        group = os.getpgid(pid)
        if (
            group == pid and group != os.getpgrp()
        ):  # its own session (started by us): its children too
            os.killpg(pid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    if meta is not None:
        meta["cancelled"] = True
        write_json_atomic(meta_path, meta)
    process = _own_process(out_dir)
    if process is not None:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(pid, signal.SIGKILL)
            process.wait(timeout=5)
    return True
