"""2-D maps of learned spaces: UMAP, aligning several maps, and nearest-neighbour helpers.

A projection of one space of a run ("encoder" or "head", see :data:`sdl.runs.SPACE_ARRAYS`) is
cached as ``projection-<key>.npz`` (encoder) or ``projection-head-<key>.npz`` (head), where the key
names the UMAP parameters. Shipped maps (the demo's, made by :func:`project_runs`) sit next to the
run and are only read; every map made later is written under the cache folder
(:func:`cache_root`: ``$SDL_CACHE_DIR`` or the project's ignored ``.sdl_cache/``), so a tracked run
folder is never changed by looking at it. The file also records the embeddings file it was made
from (size, mtime and a content hash), so a rewritten embeddings file is projected again, while a
copied or freshly cloned run (new mtime, same content) still uses its shipped projection.

Snapshots (head embeddings of a fixed subset after every epoch) become an animation with
:func:`snapshot_paths`: each frame's own 2-D principal axes, chained by Procrustes from the last
frame backwards, so consecutive frames differ only by what training changed.

Several projections are made comparable by Procrustes on the 2-D coordinates: the first map is
centred and scaled to unit RMS radius, and each other map is rotated (or reflected), scaled and
shifted onto it, using the items the runs share (matched by id). UMAP's axes mean nothing on their own, so this only removes arbitrary
rotation, reflection and scale; it does not change any map's shape.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.linalg import orthogonal_procrustes

from sdl.evaluate import cosine_neighbours, seeded_subset
from sdl.relations import Relation, relation_matrix
from sdl.runs import (
    EMBEDDINGS,
    SPACE_ARRAYS,
    RunError,
    embeddings_rows,
    read_embeddings,
    space_embeddings,
    write_npz_atomic,
)

CACHE_PREFIX = "projection-"
CACHE_ENV = "SDL_CACHE_DIR"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class UmapParams:
    """UMAP settings that change the map (and so the cache key)."""

    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"
    n_epochs: int | None = None  # None: UMAP's default (200 for large, 500 for small sets)
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.n_neighbors) < 2:
            raise ValueError(f"n_neighbors must be at least 2, got {self.n_neighbors}")
        if not 0.0 <= float(self.min_dist) <= 1.0:
            raise ValueError(f"min_dist must be in [0, 1], got {self.min_dist}")
        if self.n_epochs is not None and int(self.n_epochs) < 1:
            raise ValueError(f"n_epochs must be positive or None, got {self.n_epochs}")

    @property
    def key(self) -> str:
        """A short stable name for these parameters, used in the cache file name."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


def umap_2d(embeddings: np.ndarray, params: UmapParams | None = None) -> np.ndarray:
    """(N, 2) float32 UMAP coordinates of (N, D) embeddings.

    Very small sets (N <= 3) cannot be embedded by UMAP; they get their first two principal axes.

    Raises:
        ValueError: if embeddings is not a finite (N, D) array with N >= 1.
    """
    params = params or UmapParams()
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"embeddings must be a non-empty (N, D) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or inf")
    if len(x) <= 3:
        return _pca_2d(x)
    import umap  # imported here: the import alone takes seconds (numba)

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(int(params.n_neighbors), len(x) - 1),
        min_dist=float(params.min_dist),
        metric=params.metric,
        n_epochs=params.n_epochs,
        random_state=int(params.seed),
        n_jobs=1,  # a fixed seed runs single-threaded anyway; saying so silences UMAP's warning
        init="spectral" if len(x) > 20 else "random",
    )
    return reducer.fit_transform(x).astype(np.float32)


def _pca_2d(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    coords = np.zeros((len(x), 2), dtype=np.float32)
    k = min(2, vt.shape[0])
    coords[:, :k] = centred @ vt[:k].T
    return coords


# --- caches: shipped next to the run, new ones in the cache folder ----------------------------------


def _check_space(space: str) -> str:
    if space not in SPACE_ARRAYS:
        raise ValueError(f"space must be one of {tuple(SPACE_ARRAYS)}, got {space!r}")
    return space


def cache_root() -> Path:
    """Where new maps are written: ``$SDL_CACHE_DIR``, else the project's ignored ``.sdl_cache/``."""
    return Path(os.environ.get(CACHE_ENV) or PROJECT_ROOT / ".sdl_cache")


def cache_name(params: UmapParams, space: str = "encoder") -> str:
    """The map's file name; the encoder's keeps the name the shipped demo maps have."""
    middle = "" if _check_space(space) == "encoder" else f"{space}-"
    return f"{CACHE_PREFIX}{middle}{params.key}.npz"


def cache_path(run_dir: str | os.PathLike, params: UmapParams, space: str = "encoder") -> Path:
    """The shipped map's place, next to the run (read only, except by :func:`project_runs`)."""
    return Path(run_dir) / cache_name(params, space)


def local_cache_path(
    run_dir: str | os.PathLike, params: UmapParams, space: str = "encoder"
) -> Path:
    """Where a map made on this machine is kept: the cache folder, one sub-folder per run folder."""
    resolved = str(Path(run_dir).resolve())
    folder = f"{Path(run_dir).name}-{hashlib.sha1(resolved.encode()).hexdigest()[:10]}"
    return cache_root() / "projections" / folder / cache_name(params, space)


def _file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_stamp(path: Path, with_hash: bool = True) -> dict:
    stat = path.stat()
    stamp = {"size": int(stat.st_size), "mtime_ns": int(stat.st_mtime_ns)}
    if with_hash:
        stamp["sha1"] = _file_sha1(path)
    return stamp


def read_cached_projection(
    run_dir: str | os.PathLike, params: UmapParams, space: str = "encoder"
) -> np.ndarray | None:
    """The cached (N, 2) map of one space if it matches the run's current embeddings file, else
    None: the shipped one next to the run first, then the cache folder's."""
    for path in (cache_path(run_dir, params, space), local_cache_path(run_dir, params, space)):
        coords = _read_cache_file(path, run_dir, params, space)
        if coords is not None:
            return coords
    return None


def _read_cache_file(
    path: Path, run_dir: str | os.PathLike, params: UmapParams, space: str
) -> np.ndarray | None:
    source = Path(run_dir) / EMBEDDINGS
    if not path.is_file() or not source.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            coords = data["coords"]
            meta = json.loads(str(data["meta"]))
    except Exception:  # a corrupt cache is just a cache miss
        return None
    if meta.get("params") != asdict(params) or meta.get("space", "encoder") != space:
        return None
    stamp = _source_stamp(source, with_hash=False)
    recorded = meta.get("source", {})
    if recorded.get("size") != stamp["size"]:
        return None
    # Same size and mtime: the same file. Same size, new mtime (a copy or a clone): compare contents.
    if recorded.get("mtime_ns") != stamp["mtime_ns"] and recorded.get("sha1") != _file_sha1(source):
        return None
    # A cache is only trusted as far as it looks right: a map of every held-out item, all finite.
    if coords.ndim != 2 or coords.shape[1] != 2 or coords.dtype.kind != "f":
        return None
    if coords.shape[0] != embeddings_rows(run_dir) or not np.isfinite(coords).all():
        return None
    return coords.astype(np.float32)


def cached_projection(
    run_dir: str | os.PathLike,
    params: UmapParams | None = None,
    space: str = "encoder",
    ship: bool = False,
) -> tuple[np.ndarray, bool]:
    """One space's (N, 2) map of the run, from a cache or computed and cached; also whether it
    was cached.

    Args:
        run_dir: the run folder.
        params: UMAP settings (default :class:`UmapParams`).
        space: "encoder" or "head".
        ship: write a new map next to the run (to ship it with the run, as the demo does) instead
            of into the cache folder.

    Raises:
        RunError: if the run's embeddings file cannot be read, or has no array for ``space``.
        ValueError: for an unknown space.
    """
    params = params or UmapParams()
    _check_space(space)
    cached = read_cached_projection(run_dir, params, space)
    if cached is not None:
        return cached, True
    source = Path(run_dir) / EMBEDDINGS
    arrays = read_embeddings(run_dir)
    values = space_embeddings(arrays, space)
    if values is None:
        raise RunError(f"{source}: no {space} embeddings (written before they were stored)")
    stamp = _source_stamp(source)
    coords = umap_2d(values, params)
    meta = {"params": asdict(params), "space": space, "source": stamp}
    target = (
        cache_path(run_dir, params, space) if ship else local_cache_path(run_dir, params, space)
    )
    # A read-only place still gets its map, only not kept.
    with contextlib.suppress(OSError):
        target.parent.mkdir(parents=True, exist_ok=True)
        write_npz_atomic(target, coords=coords, meta=np.array(json.dumps(meta)))
    return coords, False


def project_runs(root: str | os.PathLike, params: UmapParams | None = None) -> list[Path]:
    """Compute (or confirm) the shipped map of every space of every run with embeddings under
    ``root``, written next to each run.

    Used to ship the demo's maps with the demo, so the dashboard opens without running UMAP.
    Returns the run folders projected; unreadable runs are skipped.
    """
    done = []
    for run_dir in sorted(p for p in Path(root).iterdir() if (p / EMBEDDINGS).is_file()):
        try:
            arrays = read_embeddings(run_dir)
            for space in SPACE_ARRAYS:
                if space_embeddings(arrays, space) is not None:
                    cached_projection(run_dir, params, space, ship=True)
        except RunError:
            continue
        done.append(run_dir)
    return done


# --- aligning several maps ------------------------------------------------------------------------


def _normalise(coords: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, float]:
    centre = coords[rows].mean(0)
    centred = coords - centre
    scale = float(np.sqrt((centred[rows] ** 2).sum(1).mean()))
    return centred, (scale if scale > 0 else 1.0)


def align_projections(
    projections: list[np.ndarray], ids: list[np.ndarray] | None = None
) -> list[np.ndarray]:
    """Align 2-D maps to the first one (centred, unit RMS radius) by similarity Procrustes.

    Each other map is rotated (or reflected), scaled and shifted to lie as close as possible, in least
    squares over the shared items, to the same items in the first map.

    Args:
        projections: (N_k, 2) coordinates, one per run.
        ids: (N_k,) item ids per run; items are matched by id. Without ids all maps must have the
            same items in the same order.

    Returns:
        The aligned (N_k, 2) float32 maps. A map sharing fewer than 3 items with the first is only
        centred and scaled to unit RMS radius (there is nothing to align it by).

    Raises:
        ValueError: if shapes disagree.
    """
    if not projections:
        return []
    for p in projections:
        if p.ndim != 2 or p.shape[1] != 2:
            raise ValueError(f"each projection must be (N, 2), got {p.shape}")
    if ids is None:
        if len({len(p) for p in projections}) > 1:
            raise ValueError("projections have different lengths; pass ids to match items")
        ids = [np.arange(len(p)) for p in projections]
    if len(ids) != len(projections):
        raise ValueError("pass one id array per projection")
    ref_ids = np.asarray(ids[0])
    ref, ref_scale = _normalise(np.asarray(projections[0], np.float64), np.arange(len(ref_ids)))
    ref /= ref_scale
    aligned = [ref.astype(np.float32)]
    for coords, item_ids in zip(projections[1:], ids[1:], strict=True):
        item_ids = np.asarray(item_ids)
        common, in_ref, in_this = np.intersect1d(ref_ids, item_ids, return_indices=True)
        coords = np.asarray(coords, np.float64)
        if len(common) < 3:
            centred, scale = _normalise(coords, np.arange(len(coords)))
            aligned.append((centred / scale).astype(np.float32))
            continue
        # Similarity Procrustes on the shared items: rotate, scale and shift them onto the reference.
        centred = coords - coords[in_this].mean(0)
        target = ref[in_ref] - ref[in_ref].mean(0)
        rotation, singular_sum = orthogonal_procrustes(centred[in_this], target)
        norm = float((centred[in_this] ** 2).sum())
        scale = singular_sum / norm if norm > 0 else 1.0
        aligned.append((scale * centred @ rotation + ref[in_ref].mean(0)).astype(np.float32))
    return aligned


# --- neighbours -----------------------------------------------------------------------------------


def nearest_neighbours(
    embeddings: np.ndarray, query: int, k: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """The k items closest to item ``query`` by cosine similarity (itself excluded), best first.

    Returns:
        (indices (k,), cosine similarities (k,)); fewer than k when the set is smaller.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    if not 0 <= query < len(x):
        raise ValueError(f"query index {query} is outside 0..{len(x) - 1}")
    k = min(int(k), len(x) - 1)
    if k < 1:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    rows, sims = cosine_neighbours(x, x[[query]], k, exclude=np.array([query]))
    return rows[0], sims[0]


def neighbour_relation_shares(
    embeddings: np.ndarray,
    labels: np.ndarray,
    k: int = 10,
    max_items: int | None = 2000,
    seed: int = 0,
) -> dict[Relation, float]:
    """How a space's k nearest neighbours relate to their query, averaged over queries.

    For each query item (at most ``max_items``, a seeded subset, each searched against all items)
    its k cosine nearest neighbours are classified R1..R5 relative to the query's label set.
    A good multi-label space has mostly R2 neighbours and few R1.

    Returns:
        The share of neighbours in each relation (sums to 1; all 0 for an empty set).
    """
    x = np.asarray(embeddings, dtype=np.float32)
    lab = np.asarray(labels, dtype=np.float32)
    if len(x) != len(lab):
        raise ValueError(f"embeddings ({len(x)}) and labels ({len(lab)}) differ in length")
    n = len(x)
    if n < 2:
        return dict.fromkeys(Relation, 0.0)
    queries = seeded_subset(n, max_items, seed)
    k = min(int(k), n - 1)
    neighbours, _ = cosine_neighbours(x, x[queries], k, exclude=queries)  # (Q, k)
    lab_t = torch.as_tensor(lab)
    rel = relation_matrix(lab_t[queries], lab_t).numpy()  # (Q, N)
    picked = np.take_along_axis(rel, neighbours, axis=1)
    total = picked.size
    return {r: float((picked == int(r)).sum() / total) for r in Relation}


# --- how a space forms: snapshots as an aligned animation -----------------------------------------


def _similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The scale s, rotation R and shift t with s * source @ R + t closest to target (least squares)."""
    source_mean, target_mean = source.mean(0), target.mean(0)
    centred = source - source_mean
    rotation, singular_sum = orthogonal_procrustes(centred, target - target_mean)
    norm = float((centred**2).sum())
    scale = singular_sum / norm if norm > 0 else 1.0
    return scale, rotation, target_mean - scale * source_mean @ rotation


def snapshot_paths(frames: np.ndarray) -> np.ndarray:
    """(E, n, 2) float32 paths of n items over E snapshots of a space, comparable frame to frame.

    Each frame is L2-normalised (the losses compare cosines) and mapped to its own first two
    principal axes; then, from the last frame (centred, unit RMS radius) backwards, every frame is
    rotated (or reflected), scaled and shifted by Procrustes onto the frame after it. Nothing but
    those similarity transforms changes a frame, so what moves between frames is what training
    moved. Cost: one (n, D) SVD per frame (milliseconds for 500 items), so no cache is needed.

    Raises:
        ValueError: if frames is not a finite (E, n, D) array with E >= 1 and n >= 1.
    """
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"frames must be an (E, n, D) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("frames contain NaN or inf")
    norms = np.linalg.norm(x, axis=2, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    flat = [_pca_2d(frame).astype(np.float64) for frame in x]
    out = np.zeros((len(flat), x.shape[1], 2))
    last, scale = _normalise(flat[-1], np.arange(x.shape[1]))
    out[-1] = last / scale
    for e in range(len(flat) - 2, -1, -1):
        s, rotation, shift = _similarity(flat[e], out[e + 1])
        out[e] = s * flat[e] @ rotation + shift
    return out.astype(np.float32)


def align_paths(
    paths: np.ndarray, ids: np.ndarray, reference: np.ndarray, reference_ids: np.ndarray
) -> np.ndarray:
    """Move a whole animation (E, n, 2) by the one similarity transform that puts its last frame
    onto ``reference`` (m, 2), matched by id; unchanged when fewer than 3 ids are shared.

    Raises:
        ValueError: if the ids do not fit the arrays.
    """
    paths = np.asarray(paths, dtype=np.float64)
    if paths.ndim != 3 or paths.shape[2] != 2 or len(ids) != paths.shape[1]:
        raise ValueError(f"paths must be (E, n, 2) with n ids, got {paths.shape} and {len(ids)}")
    if len(reference_ids) != len(reference):
        raise ValueError("reference and reference_ids differ in length")
    _, in_ref, in_this = np.intersect1d(reference_ids, ids, return_indices=True)
    if len(in_ref) < 3:
        return paths.astype(np.float32)
    s, rotation, shift = _similarity(paths[-1][in_this], np.asarray(reference, np.float64)[in_ref])
    return (s * paths @ rotation + shift).astype(np.float32)
