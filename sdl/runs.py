"""The run folder: what a training run writes, atomically, and how it is read back.

A run folder holds (see the README's "Run folder" section):

    config.json      everything needed to reproduce the run, with library versions
    status.json      {"state": "running"|"done"|"failed", "epoch", "epochs", "error", "updated",
                     "pid", "pid_start", "host"}: the trainer's process, so a reader can tell a
                     run that is training from one whose process died ("stopped")
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
process leaves either the old file or the new one, never half of one; the files get the usual
permissions under the umask (0644), and temporary files a killed writer left are removed when a run
starts or resumes (:func:`clean_temp_files`). Reading never raises for a broken run:
:func:`read_run` returns a :class:`Run` whose ``problems`` say what is wrong, each file checked
against one schema here (``*_problems``), and :func:`read_embeddings` raises a RunError naming
the run and what is wrong.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import socket
import tempfile
import time
import zipfile
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
RUN_FILES = (CONFIG, STATUS, HISTORY, METRICS, EMBEDDINGS, SNAPSHOTS)

STATES = ("running", "done", "failed")
#: what a reader calls a "running" run whose trainer process is gone (never written to a file)
STOPPED = "stopped"
#: a "running" status with no process to check counts as stopped after this long without news
STALE_SECONDS = 600
#: the temp files of the writers below: ``.<name>.<random>.tmp``
TEMP_SUFFIX = ".tmp"
#: fault injection for tests: ``NAME#K`` kills the process (SIGKILL) the K-th time it reaches the
#: :func:`fault_point` NAME (K defaults to 1). Unset, it costs one dictionary look-up.
FAULT_ENV = "SDL_FAULT_KILL_AT"
_fault_counts: dict[str, int] = {}


def fault_point(name: str) -> None:
    """A place where a test may kill this process as a crash, power cut or OOM killer would."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    target, _, count = spec.partition("#")
    if target != name:
        return
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _umask() -> int:
    """The process's umask, read without changing it where /proc allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: the classic read-and-restore
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        # mkstemp makes the file 0600; a run file is shared like any other file the user writes
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            fault_point(f"write:{path.name}")  # the temp file is written, not yet in place
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a size limit: say which file could not be written
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
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
    """Write status.json: ``state`` (one of :data:`STATES`), the time, and ``fields``."""
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {state!r}")
    write_json_atomic(Path(run_dir) / STATUS, {"state": state, "updated": time.time(), **fields})


def trainer_identity() -> dict:
    """The status fields that let a reader check this process is still the run's trainer."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": process_start(pid), "host": socket.gethostname()}


def clean_temp_files(run_dir: str | os.PathLike) -> list[Path]:
    """Remove the temp files that a killed writer of the run files left; returns what was removed.

    Only the run's own files (config, status, history, metrics, embeddings, checkpoint) are
    matched, so a temp file of another writer (the dashboard's projection cache) is left alone.
    """
    removed = []
    folder = Path(run_dir)
    for name in (*RUN_FILES, CHECKPOINT):
        for tmp in folder.glob(f".{name}.*{TEMP_SUFFIX}"):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                continue
    return removed


# --- is the trainer still there? ----------------------------------------------------------------
def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None if unreadable."""
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text.rsplit(")", 1)[1].split()


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat), None if unknown.

    A pid is reused after its process dies; (pid, start) names one process for good.
    """
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def _command_trains(argv: list[str], cwd: Path, run_dir: Path) -> bool:
    """Whether ``argv`` (run in ``cwd``) is ``... -m sdl train ... --out run_dir``."""
    trains = any(argv[i : i + 3] == ["-m", "sdl", "train"] for i in range(len(argv)))
    outs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--out"]
    outs += [a.split("=", 1)[1] for a in argv if a.startswith("--out=")]
    target = run_dir.resolve()
    return trains and any((cwd / out).resolve() == target for out in outs)


def is_trainer(pid: object, run_dir: str | os.PathLike, start: object = None) -> bool | None:
    """Whether ``pid`` is, right now, the live trainer of ``run_dir``.

    True only for a live process whose command line is ``python -m sdl train ... --out run_dir``
    and, when ``start`` is known, that started at ``start`` (:func:`process_start`), so a reused
    pid or a crafted status.json never names some other process. None where it cannot be told
    (no /proc: not Linux).

    Args:
        pid: the process id a file recorded (anything: files are not trusted).
        run_dir: the run folder the process must be training.
        start: the recorded start time of that process, or None.
    """
    if not _is_int(pid) or pid <= 0:
        return False
    if not Path("/proc/self/stat").exists():
        return None
    fields = _proc_stat(pid)
    if fields is None or fields[0] in ("Z", "X"):  # gone, or a zombie nobody reaped yet
        return False
    if start is not None and process_start(pid) != start:
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False  # another user's process: not a trainer this reader may speak for
    return _command_trains([a for a in argv if a], cwd, Path(run_dir))


def live_state(run_dir: str | os.PathLike, status: dict) -> tuple[str, str | None]:
    """The state a reader should show for a status, and why it differs from the file's.

    A "running" status whose trainer is gone (killed, crashed, the machine rebooted) is
    :data:`STOPPED`: its process is dead, or is not the one that wrote the status (another start
    time; without a recorded start time, not a ``python -m sdl train`` of this folder), or, where
    the process cannot be checked (no pid, another host, no /proc), nothing was written for
    :data:`STALE_SECONDS`. (Cancelling asks more: :func:`is_trainer` with the command line.)
    """
    state = str(status.get("state", "unknown"))
    if state != "running":
        return state, None
    pid, start = status.get("pid"), status.get("pid_start")
    same_host = status.get("host") in (None, socket.gethostname())
    verdict: bool | None = None
    if pid is not None and same_host:
        if _is_int(start) and Path("/proc/self/stat").exists():
            # The process that wrote this status (a trainer in a notebook runs in any program).
            fields = _proc_stat(pid) if _is_int(pid) and pid > 0 else None
            verdict = (
                fields is not None and fields[0] not in ("Z", "X") and (process_start(pid) == start)
            )
        else:
            verdict = is_trainer(pid, run_dir)
    if verdict is False:
        return STOPPED, f"its training process ({pid}) is gone; resume it with --resume"
    if verdict is None:
        updated = status.get("updated")
        quiet = time.time() - float(updated) if _is_number(updated) else math.inf
        if quiet >= STALE_SECONDS:
            return STOPPED, "no progress for a long while and no process to check"
    return state, None


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
        """The status' state, except that a "running" run whose trainer is gone is "stopped"."""
        return live_state(self.path, self.status)[0]

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
    for key in ("temperature", "lr", "weight_decay", "warmup_epochs"):
        if key in config and not _is_number(config[key]):
            problems.append(f"{key} must be a number, got {config[key]!r}")
    for key in ("epochs", "batch_size", "views", "embed_dim", "max_embeddings"):
        if key in config and not _is_int(config[key]):
            problems.append(f"{key} must be an integer, got {config[key]!r}")
    for key in ("loss_options", "dataset_options", "augment_options"):
        if key in config and not isinstance(config[key], dict):
            problems.append(f"{key} must be an object, got {config[key]!r}")
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


#: config.json keys that say where or how a run was kept, not what was trained: never a reason
#: to keep two runs apart in a comparison
BOOKKEEPING = (
    "out", "device", "device_used", "eval_random", "save_checkpoint", "max_embeddings",
    "snapshot_items", "versions", "world_size", "kind", "label_names", "input_shape",
    "num_train", "num_test", "info",
)  # fmt: skip


def trained_settings(config: dict) -> dict:
    """What a run trained: its config without :data:`BOOKKEEPING` keys."""
    return {k: v for k, v in config.items() if k not in BOOKKEEPING}


def data_key(config: dict) -> str:
    """The data a run saw, as one string: runs with different keys must never be pooled or aligned."""
    options = config.get("dataset_options") or {}
    shown = ", ".join(f"{k}={options[k]}" for k in sorted(options))
    return f"{config.get('dataset', '?')}" + (f" ({shown})" if shown else "")


def differing_settings(configs: list[dict], ignore: tuple[str, ...] = ("seed",)) -> dict:
    """The trained settings whose values differ between ``configs``: {name: [value per config]}.

    ``ignore`` leaves out what a comparison varies on purpose (the seed; the loss, when losses are
    compared). Values are compared as JSON text, so dicts and lists compare by content.
    """
    settings = [trained_settings(c) for c in configs]
    names = sorted({k for s in settings for k in s} - set(ignore))
    out = {}
    for name in names:
        values = [s.get(name) for s in settings]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            out[name] = values
    return out


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


def history_problems(history: pd.DataFrame) -> list[str]:
    """What is wrong with a history.csv's content: it needs numeric epoch and loss columns."""
    problems = []
    for column in ("epoch", "loss"):
        if column not in history.columns:
            problems.append(f"needs a column {column!r}")
    for column in history.columns:
        if not pd.api.types.is_numeric_dtype(history[column]):
            problems.append(f"column {column!r} is not numeric")
    return problems


def read_history(run_dir: str | os.PathLike) -> tuple[pd.DataFrame | None, str | None]:
    """A run's history.csv, or None and what is wrong with it (None, None: not written yet)."""
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return None, None
    try:
        history = pd.read_csv(path)
    except Exception as exc:  # pandas raises many kinds for a damaged file
        return None, f"{HISTORY} is corrupt ({exc})"
    problems = history_problems(history)
    if problems:
        return None, f"{HISTORY} is corrupt ({'; '.join(problems)})"
    return history, None


def metrics_problems(metrics: dict, where: str = "") -> list[str]:
    """What is wrong with a metrics.json's content: every leaf must be a number (or null); a list
    holds table rows (such as the SD surface), each a flat record of numbers and names."""
    problems = []
    for key, value in metrics.items():
        name = f"{where}{key}"
        if isinstance(value, dict):
            problems += metrics_problems(value, f"{name}.")
        elif isinstance(value, list):
            bad = [
                row
                for row in value
                if not isinstance(row, dict)
                or not all(v is None or _is_number(v) or isinstance(v, str) for v in row.values())
            ]
            if bad:
                problems.append(f"{name} must be a list of records, got {bad[0]!r}"[:200])
        elif value is not None and not _is_number(value):
            problems.append(f"{name} must be a number, got {value!r}"[:200])
    return problems


def read_metrics(run_dir: str | os.PathLike) -> tuple[dict | None, str | None]:
    """A run's metrics.json, or None and what is wrong with it (None, None: not written yet)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return None, None
    try:
        metrics = read_json(path)
    except (OSError, ValueError) as exc:
        return None, f"{METRICS} is corrupt ({exc})"
    problems = metrics_problems(metrics)
    if problems:
        return None, f"{METRICS} is corrupt ({'; '.join(problems[:3])})"
    return metrics, None


def _inside(child: Path, root: Path) -> bool:
    """Whether ``child`` (followed through links) stays inside ``root``."""
    try:
        resolved, base = child.resolve(), root.resolve()
    except (OSError, RuntimeError):  # a link loop
        return False
    return resolved == base or base in resolved.parents


def _run_folders(root: Path) -> tuple[list[Path], list[Path]]:
    """The visible subfolders of ``root``, sorted, and those that are links leading outside it."""
    inside, outside = [], []
    try:
        children = sorted(root.iterdir())
    except OSError:
        return [], []
    for child in children:
        try:
            if child.name.startswith(".") or not child.is_dir():
                continue
        except OSError:
            continue
        (inside if _inside(child, root) else outside).append(child)
    return inside, outside


def folder_signature(root: str | os.PathLike) -> tuple:
    """Names and file times of the run folders under ``root``: changes whenever a run writes a file."""
    root = Path(root)
    if not root.is_dir():
        return ()
    signature = []
    for child in _run_folders(root)[0]:
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
    for child in _run_folders(root)[0]:
        try:
            found.append(((child / STATUS).stat().st_mtime, child))
        except OSError:
            continue
    return [path for _, path in sorted(found, key=lambda item: item[0], reverse=True)]


def embeddings_problems(arrays: dict[str, np.ndarray]) -> list[str]:
    """What is wrong with the arrays of an embeddings.npz (empty when nothing is).

    embeddings (N, D) finite floats with N >= 2; labels (N, C) of 0/1; ids (N,); optional
    thumbs (N, H, W) or (N, H, W, 3) uint8, texts (N,) text, label_names (C,).
    """
    for key in ("embeddings", "labels", "ids"):
        if key not in arrays:
            return [f"missing array {key!r}"]
    emb, labels, ids = arrays["embeddings"], arrays["labels"], arrays["ids"]
    if emb.ndim != 2 or emb.shape[1] < 1 or emb.dtype.kind not in "fiu":
        return [f"embeddings must be an (N, D) array of numbers, got {emb.dtype} {emb.shape}"]
    n = emb.shape[0]
    problems = []
    if n < 2:
        problems.append(f"needs at least 2 held-out items, has {n}")
    if not np.isfinite(emb).all():
        problems.append(f"embeddings hold {int((~np.isfinite(emb)).sum())} NaN or infinite values")
    if labels.ndim != 2 or labels.shape[0] != n or labels.shape[1] < 1:
        problems.append(f"labels must be ({n}, C), got {labels.shape}")
    elif labels.dtype.kind not in "biuf" or not np.isin(labels, (0, 1)).all():
        problems.append("labels must hold only 0 and 1")
    if ids.shape != (n,):
        problems.append(f"ids must be ({n},), got {ids.shape}")
    if "thumbs" in arrays:
        thumbs = arrays["thumbs"]
        shaped = thumbs.ndim == 3 or (thumbs.ndim == 4 and thumbs.shape[3] == 3)
        if not shaped or thumbs.shape[0] != n or thumbs.dtype != np.uint8 or 0 in thumbs.shape:
            problems.append(
                f"thumbs must be ({n}, H, W) or ({n}, H, W, 3) uint8, got {thumbs.dtype} {thumbs.shape}"
            )
    if "texts" in arrays and (arrays["texts"].shape != (n,) or arrays["texts"].dtype.kind != "U"):
        problems.append(
            f"texts must be ({n},) text, got {arrays['texts'].dtype} {arrays['texts'].shape}"
        )
    if "head" in arrays:
        head = arrays["head"]
        if head.ndim != 2 or head.shape[0] != n or not np.isfinite(head).all():
            problems.append(f"head must be ({n}, D') finite numbers, got {head.dtype} {head.shape}")
    if "label_names" in arrays and labels.ndim == 2:
        names = arrays["label_names"]
        if names.ndim != 1 or len(names) != labels.shape[1]:
            problems.append(
                f"label_names must name the {labels.shape[1]} labels, got {names.shape}"
            )
    return problems


def read_embeddings(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """The held-out arrays of a run (see :func:`embeddings_problems` for what is checked).

    Raises:
        RunError: naming the run folder and what is wrong (unreadable file, a bad array).
    """
    path = Path(run_dir) / EMBEDDINGS
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # a half-copied or foreign file: say so, do not crash the caller
        raise RunError(f"{path}: cannot read embeddings ({type(exc).__name__}: {exc})") from exc
    problems = embeddings_problems(arrays)
    if problems:
        raise RunError(f"{path}: {'; '.join(problems)}")
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


def embeddings_rows(run_dir: str | os.PathLike) -> int | None:
    """N, the held-out items in a run's embeddings.npz, from the array header alone (None: unreadable)."""
    try:
        with (
            zipfile.ZipFile(Path(run_dir) / EMBEDDINGS) as archive,
            archive.open("embeddings.npy") as handle,
        ):
            major, _ = np.lib.format.read_magic(handle)
            read = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            shape = read(handle)[0]
    except Exception:  # any damage means "cannot tell"
        return None
    return int(shape[0]) if len(shape) >= 1 else None


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
    metrics, problem = read_metrics(path)
    if problem:
        problems.append(problem)
    elif metrics is None and status.get("state") == "done":
        problems.append(f"finished but {METRICS} is missing")
    _, why = live_state(path, status)
    if why:
        problems.append(f"{STATUS} says running but {why}")
    return Run(path, config, status, history, metrics, problems)


def list_runs(root: str | os.PathLike) -> tuple[list[Run], list[RunError]]:
    """Every run folder directly under ``root`` (sorted by name) and the folders that are not runs.

    Folders without any run file are skipped silently; one with files but a broken config is an
    error, and so is a link to a folder outside ``root`` (skipped: ``root`` is what was allowed).
    """
    root = Path(root)
    runs: list[Run] = []
    errors: list[RunError] = []
    if not root.is_dir():
        return runs, errors
    inside, outside = _run_folders(root)
    for child in outside:
        errors.append(RunError(f"{child}: a link to a folder outside {root}, skipped"))
    for child in inside:
        looks_like_run = any((child / f).exists() for f in RUN_FILES)
        if not looks_like_run:
            continue
        try:
            runs.append(read_run(child))
        except RunError as exc:
            errors.append(exc)
    return runs, errors
