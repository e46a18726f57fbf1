"""The run folder: what a training run writes, atomically, and how it is read back.

A run folder holds (see the README's "Run folder" section):

    config.json      everything needed to reproduce the run, with library versions
    status.json      {"state": "running"|"done"|"failed", "epoch", "epochs", "error", "updated"}
    history.csv      one row per epoch: epoch, loss, lr, seconds, anchors_without_positives
    metrics.json     held-out evaluation per space ("encoder", "head"): probe, retrieval,
                     relation metrics; the encoder's scalar metrics also at the top level
    embeddings.npz   held-out encoder embeddings "embeddings" (N, D) float32, head embeddings
                     "head" (N, D') float32 (absent in files written before it existed), labels
                     (N, C) uint8, ids (N,) int64, and what to show for each item: thumbs
                     (N, H, W) uint8 or texts (N,) str
    snapshots.npz    head embeddings of a fixed subset of held-out items after every epoch:
                     embeddings (E, n, D') float16, epochs (E,) int64 (0: untrained), ids (n,)
    checkpoint.pt    model and optimiser state, loadable with torch.load(weights_only=True)

Every file is written to a temporary name in the same folder and renamed into place, so a killed
process leaves either the old file or the new one, never half of one. Reading never raises for a
broken run: :func:`read_run` returns a :class:`Run` whose ``problems`` say what is wrong.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

CONFIG = "config.json"
STATUS = "status.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
EMBEDDINGS = "embeddings.npz"
SNAPSHOTS = "snapshots.npz"
#: embeddings.npz arrays of each space (readers of old files: "head" may be missing).
SPACE_ARRAYS = {"encoder": "embeddings", "head": "head"}
CHECKPOINT = "checkpoint.pt"
#: the files whose presence makes a folder a run, and whose times say it changed
RUN_FILES = (CONFIG, STATUS, HISTORY, METRICS, EMBEDDINGS)

STATES = ("running", "done", "failed")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_with_atomic(path: str | os.PathLike, write: Callable[[io.BytesIO], None]) -> None:
    """Let ``write`` fill a buffer (np.savez, torch.save, ...) and put it at ``path`` atomically."""
    buffer = io.BytesIO()
    write(buffer)
    write_bytes_atomic(path, buffer.getvalue())


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_csv_atomic(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    write_bytes_atomic(path, frame.to_csv(index=False).encode())


def write_npz_atomic(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    write_with_atomic(path, lambda buf: np.savez_compressed(buf, **arrays))


def write_status(run_dir: str | os.PathLike, state: str, **fields: object) -> None:
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {state!r}")
    write_json_atomic(Path(run_dir) / STATUS, {"state": state, "updated": time.time(), **fields})


class RunError(Exception):
    """A run folder that cannot be read as a run (missing or corrupt config)."""


@dataclass
class Run:
    """A run folder read back. Missing or corrupt parts are ``None`` and listed in ``problems``."""

    path: Path
    config: dict
    status: dict
    history: pd.DataFrame | None
    metrics: dict | None
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def loss(self) -> str:
        return str(self.config.get("loss", "?"))

    @property
    def dataset(self) -> str:
        return str(self.config.get("dataset", "?"))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def state(self) -> str:
        return str(self.status.get("state", "unknown"))

    @property
    def has_embeddings(self) -> bool:
        return (self.path / EMBEDDINGS).is_file()

    @property
    def has_snapshots(self) -> bool:
        return (self.path / SNAPSHOTS).is_file()

    def embeddings(self) -> dict[str, np.ndarray]:
        """The held-out embeddings file as a dict of arrays. Raises RunError if unreadable."""
        return read_embeddings(self.path)


def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from ``path``.

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: if it is not valid JSON or not an object.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


# --- the schema: what each file must hold for the pages and commands to use it --------------------
def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def config_problems(config: dict) -> list[str]:
    """What is wrong with a config.json's content (empty when nothing is)."""
    problems = []
    for key in ("dataset", "loss"):
        if key in config and not isinstance(config[key], str):
            problems.append(f"{key} must be text, got {config[key]!r}")
    if "seed" in config and not _is_int(config["seed"]):
        problems.append(f"seed must be an integer, got {config['seed']!r}")
    if "temperature" in config and not _is_number(config["temperature"]):
        problems.append(f"temperature must be a number, got {config['temperature']!r}")
    names = config.get("label_names")
    if names is not None and (
        not isinstance(names, list) or not all(isinstance(n, str | int) for n in names)
    ):
        problems.append("label_names must be a list of names")
    return problems


def status_problems(status: dict) -> list[str]:
    """What is wrong with a status.json's content (empty when nothing is)."""
    problems = []
    if status.get("state") not in STATES:
        problems.append(f"state must be one of {STATES}, got {status.get('state')!r}")
    for key in ("epoch", "epochs", "pid"):
        if status.get(key) is not None and not _is_int(status[key]):
            problems.append(f"{key} must be an integer, got {status[key]!r}")
    if "updated" in status and not _is_number(status["updated"]):
        problems.append(f"updated must be a time in seconds, got {status['updated']!r}")
    return problems


def read_config(run_dir: str | os.PathLike) -> dict:
    """A run's config.json, checked against the schema.

    Raises:
        RunError: naming the folder and what is wrong (missing, corrupt, or a bad field).
    """
    path = Path(run_dir)
    try:
        config = read_json(path / CONFIG)
    except FileNotFoundError as exc:
        raise RunError(f"{path}: no {CONFIG}, not a run folder") from exc
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: {CONFIG} is corrupt ({exc})") from exc
    problems = config_problems(config)
    if problems:
        raise RunError(f"{path}: {CONFIG} is corrupt ({'; '.join(problems)})")
    return config


def read_status(run_dir: str | os.PathLike) -> tuple[dict | None, str | None]:
    """A run's status.json, or None and what is wrong with it (None, None: not written yet)."""
    path = Path(run_dir) / STATUS
    try:
        status = read_json(path)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"{STATUS} is corrupt ({exc})"
    problems = status_problems(status)
    if problems:
        return None, f"{STATUS} is corrupt ({'; '.join(problems)})"
    return status, None


def read_history(run_dir: str | os.PathLike) -> tuple[pd.DataFrame | None, str | None]:
    """A run's history.csv, or None and what is wrong with it (None, None: not written yet)."""
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return None, None
    try:
        history = pd.read_csv(path)
        if "epoch" not in history.columns or "loss" not in history.columns:
            raise ValueError("needs columns epoch and loss")
    except Exception as exc:  # pandas raises many kinds for a damaged file
        return None, f"{HISTORY} is corrupt ({exc})"
    return history, None


def folder_signature(root: str | os.PathLike) -> tuple:
    """Names and file times of the run folders under ``root``: changes whenever a run writes a file."""
    root = Path(root)
    if not root.is_dir():
        return ()
    signature = []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        times = []
        for name in RUN_FILES:
            try:
                times.append((child / name).stat().st_mtime_ns)
            except OSError:
                times.append(0)
        signature.append((child.name, tuple(times)))
    return tuple(signature)


def folders_with_status(root: str | os.PathLike) -> list[Path]:
    """Run folders under ``root`` that have a status.json, most recently updated first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        try:
            if child.is_dir() and not child.name.startswith("."):
                found.append(((child / STATUS).stat().st_mtime, child))
        except OSError:
            continue
    return [path for _, path in sorted(found, key=lambda item: item[0], reverse=True)]


def read_embeddings(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    path = Path(run_dir) / EMBEDDINGS
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # a half-copied or foreign file: say so, do not crash the caller
        raise RunError(f"{path}: cannot read embeddings ({type(exc).__name__}: {exc})") from exc
    for key in ("embeddings", "labels", "ids"):
        if key not in arrays:
            raise RunError(f"{path}: missing array {key!r}")
    n = len(arrays["embeddings"])
    if len(arrays["labels"]) != n or len(arrays["ids"]) != n:
        raise RunError(f"{path}: embeddings, labels and ids have different lengths")
    if "head" in arrays and len(arrays["head"]) != n:
        raise RunError(f"{path}: head and encoder embeddings have different lengths")
    return arrays


def space_embeddings(arrays: dict[str, np.ndarray], space: str) -> np.ndarray | None:
    """One space's (N, D) embeddings from :func:`read_embeddings`' arrays; None if the file has
    none for it (a file written before head embeddings were stored).

    Raises:
        ValueError: for a space other than "encoder" and "head".
    """
    if space not in SPACE_ARRAYS:
        raise ValueError(f"space must be one of {tuple(SPACE_ARRAYS)}, got {space!r}")
    return arrays.get(SPACE_ARRAYS[space])


def read_snapshots(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """snapshots.npz as {"embeddings" (E, n, D) float16, "epochs" (E,), "ids" (n,)}.

    Raises:
        RunError: if the file is missing, unreadable or inconsistent.
    """
    path = Path(run_dir) / SNAPSHOTS
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:
        raise RunError(f"{path}: cannot read snapshots ({type(exc).__name__}: {exc})") from exc
    for key in ("embeddings", "epochs", "ids"):
        if key not in arrays:
            raise RunError(f"{path}: missing array {key!r}")
    frames = arrays["embeddings"]
    if (
        frames.ndim != 3
        or len(frames) != len(arrays["epochs"])
        or frames.shape[1] != len(arrays["ids"])
    ):
        raise RunError(f"{path}: embeddings {frames.shape} do not match epochs and ids")
    return arrays


def read_run(run_dir: str | os.PathLike) -> Run:
    """Read a run folder. Raises RunError only when there is no usable config.json."""
    path = Path(run_dir)
    config = read_config(path)
    problems: list[str] = []
    status, problem = read_status(path)
    if status is None:
        status = {"state": "unknown"}
        problems.append(problem or f"no {STATUS}")
    history, problem = read_history(path)
    if problem:
        problems.append(problem)
    metrics = None
    if (path / METRICS).is_file():
        try:
            metrics = read_json(path / METRICS)
        except (OSError, ValueError) as exc:
            problems.append(f"{METRICS} is corrupt ({exc})")
    elif status.get("state") == "done":
        problems.append(f"finished but {METRICS} is missing")
    return Run(path, config, status, history, metrics, problems)


def list_runs(root: str | os.PathLike) -> tuple[list[Run], list[RunError]]:
    """Every run folder directly under ``root`` (sorted by name) and the folders that are not runs.

    Folders without any run file are skipped silently; one with files but a broken config is an error.
    """
    root = Path(root)
    runs: list[Run] = []
    errors: list[RunError] = []
    if not root.is_dir():
        return runs, errors
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        looks_like_run = any((child / f).exists() for f in RUN_FILES)
        if not looks_like_run:
            continue
        try:
            runs.append(read_run(child))
        except RunError as exc:
            errors.append(exc)
    return runs, errors
