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
#: longer than any real runs folder; a longer text is refused before it reaches the file system
MAX_PATH_CHARS = 1024


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
    if len(text) > MAX_PATH_CHARS:
        return (
            None,
            f"The runs folder's name is {len(text)} characters long; at most {MAX_PATH_CHARS}.",
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return (
            None,
            "The runs folder's name holds a control character (e.g. a NUL byte); type a plain path.",
        )
    shown_text = text.replace(
        "`", "'"
    )  # the message is markdown: keep the text inside its code span
    try:
        raw = Path(text).expanduser()
        if ".." in raw.parts:
            return (
                None,
                f"`{shown_text}`: `..` is not allowed in the runs folder; name a folder inside the project.",
            )
        path = (raw if raw.is_absolute() else REPO / raw).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a link loop, a name the system refuses
        return None, f"`{shown_text}` is not a usable folder ({exc})."
    roots = allowed_roots()
    if not any(path == root or root in path.parents for root in roots):
        shown = ", ".join(f"`{r}`" for r in roots)
        return None, f"`{shown_text}` is outside the allowed folders ({shown})."
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
