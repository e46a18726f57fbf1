"""Where the dashboard reads runs from: the embedded demo and a user-named runs folder.

A runs folder must lie inside an allowed root (the repository, plus any folders listed in the
environment variable ``SDL_DASHBOARD_ROOTS``, separated by the OS path separator), so a typed path
cannot wander over the machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sdl.runs import Run, list_runs

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "assets" / "demo"
DEFAULT_RUNS = "runs"
ROOTS_ENV = "SDL_DASHBOARD_ROOTS"


def allowed_roots() -> list[Path]:
    roots = [REPO]
    for extra in os.environ.get(ROOTS_ENV, "").split(os.pathsep):
        if extra.strip():
            roots.append(Path(extra.strip()).resolve())
    return roots


def demo_dir() -> Path:
    """The embedded demo folder (``SDL_DASHBOARD_DEMO`` overrides it, for tests)."""
    override = os.environ.get("SDL_DASHBOARD_DEMO")
    return Path(override).resolve() if override else DEMO_DIR


def resolve_runs_dir(text: str) -> tuple[Path | None, str | None]:
    """The folder a user typed, resolved, or None and a message saying why it is refused.

    Relative paths are taken from the repository root. ``..`` is refused outright, and an absolute
    path (or a symlink) must end up inside one of :func:`allowed_roots`.
    """
    text = (text or "").strip()
    if not text:
        return None, "Name a runs folder, e.g. `runs`."
    raw = Path(text).expanduser()
    if ".." in raw.parts:
        return (
            None,
            f"`{text}`: `..` is not allowed in the runs folder; name a folder inside the project.",
        )
    path = (raw if raw.is_absolute() else REPO / raw).resolve()
    roots = allowed_roots()
    if not any(path == root or root in path.parents for root in roots):
        shown = ", ".join(f"`{r}`" for r in roots)
        return None, f"`{text}` is outside the allowed folders ({shown})."
    return path, None


@dataclass(frozen=True)
class RunRef:
    """A run as the pages list it: where it is and how to call it."""

    key: str  # unique label, e.g. "demo/sdl-s0" or "runs/my-run"
    path: Path
    source: str  # "demo" or "runs"


def load_folder(root: Path, source: str) -> tuple[list[tuple[RunRef, Run]], list[str]]:
    """The runs under ``root`` with their refs, and messages for folders that are not readable runs."""
    runs, errors = list_runs(root)
    refs = [(RunRef(f"{source}/{run.name}", run.path, source), run) for run in runs]
    return refs, [str(e) for e in errors]
