"""sdl.projection: UMAP maps of either space, their caches (shipped next to the run, new ones in
the cache folder), Procrustes alignment, snapshot animations, neighbours."""

from __future__ import annotations

import os

import numpy as np
import pytest

from sdl import projection
from sdl.projection import UmapParams
from sdl.relations import Relation
from sdl.runs import EMBEDDINGS, RunError, write_npz_atomic

FAST = UmapParams(n_neighbors=5, n_epochs=20)


def clusters(n_per: int = 20, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 5
    x = np.concatenate([c + rng.normal(size=(n_per, dim)) * 0.1 for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(3), n_per)


@pytest.fixture(scope="session")
def umap_map():
    """One real UMAP fit for the whole session (the first fit compiles for ~20 s)."""
    x, groups = clusters()
    return x, groups, projection.umap_2d(x, FAST)


def write_run(path, embeddings, labels=None):
    n = len(embeddings)
    labels = labels if labels is not None else np.eye(3, dtype=np.uint8)[np.arange(n) % 3]
    write_npz_atomic(
        path / EMBEDDINGS, embeddings=embeddings, labels=labels, ids=np.arange(n, dtype=np.int64)
    )
    return path


def test_umap_keeps_clusters_apart(umap_map):
    x, groups, coords = umap_map
    assert coords.shape == (len(x), 2) and coords.dtype == np.float32
    centres = np.stack([coords[groups == g].mean(0) for g in range(3)])
    spread = max(np.linalg.norm(coords[groups == g] - centres[g], axis=1).mean() for g in range(3))
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a + 1, 3)]
    assert min(gaps) > 2 * spread


def test_tiny_sets_fall_back_to_pca():
    coords = projection.umap_2d(np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0], [3.0, 3.0, 3.0]]))
    assert coords.shape == (3, 2)
    assert projection.umap_2d(np.ones((1, 4))).shape == (1, 2)


@pytest.mark.parametrize(
    ("bad", "match"),
    [(np.zeros((0, 3)), "non-empty"), (np.zeros(5), "non-empty"), (np.full((5, 2), np.nan), "NaN")],
)
def test_umap_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        projection.umap_2d(bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_neighbors": 1}, "n_neighbors"),
        ({"min_dist": 2.0}, "min_dist"),
        ({"n_epochs": 0}, "n_epochs"),
    ],
)
def test_params_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UmapParams(**kwargs)


def test_params_key_is_stable_and_distinct():
    assert UmapParams().key == UmapParams().key
    assert UmapParams(n_neighbors=10).key != UmapParams().key


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    """Every test's new maps go to a fresh cache folder, never into the project's."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv(projection.CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def fake_umap(monkeypatch):
    """Replace the UMAP fit by a cheap stand-in that counts its calls."""
    calls = []

    def fit(x, params=None):
        calls.append(len(x))
        return np.asarray(x, np.float32)[:, :2] * 2

    monkeypatch.setattr(projection, "umap_2d", fit)
    return calls


def test_cache_is_written_once_and_reused(tmp_path, fake_umap):
    x, _ = clusters()
    write_run(tmp_path, x)
    first, cached = projection.cached_projection(tmp_path, FAST)
    assert not cached and len(fake_umap) == 1
    # A new map goes to the cache folder; the run folder (maybe tracked, as the demo) is untouched.
    assert projection.local_cache_path(tmp_path, FAST).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [EMBEDDINGS]
    second, cached = projection.cached_projection(tmp_path, FAST)
    assert cached and len(fake_umap) == 1
    np.testing.assert_array_equal(first, second)
    # other parameters: another cache file
    projection.cached_projection(tmp_path, UmapParams(n_neighbors=7, n_epochs=20))
    assert len(fake_umap) == 2


def test_cache_survives_a_copy_but_not_new_content(tmp_path, fake_umap):
    x, _ = clusters()
    write_run(tmp_path, x)
    projection.cached_projection(tmp_path, FAST)
    source = tmp_path / EMBEDDINGS
    # same bytes, new mtime (a clone or a copy): still valid
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert projection.read_cached_projection(tmp_path, FAST) is not None
    # new content: recomputed
    write_run(tmp_path, x + 1.0)
    assert projection.read_cached_projection(tmp_path, FAST) is None
    _, cached = projection.cached_projection(tmp_path, FAST)
    assert not cached and len(fake_umap) == 2


def test_corrupt_cache_is_a_miss(tmp_path, fake_umap):
    x, _ = clusters()
    write_run(tmp_path, x)
    projection.cache_path(tmp_path, FAST).write_bytes(b"not an npz")
    coords, cached = projection.cached_projection(tmp_path, FAST)
    assert not cached and coords.shape == (len(x), 2)
    assert projection.read_cached_projection(tmp_path, FAST) is not None


def test_unreadable_embeddings_raise_run_error(tmp_path):
    (tmp_path / EMBEDDINGS).write_bytes(b"garbage")
    with pytest.raises(RunError):
        projection.cached_projection(tmp_path, FAST)


def rotation(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def test_alignment_undoes_rotation_reflection_scale_and_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 2))
    moved = (ref @ rotation(1.2)) * np.array([1.0, -1.0]) * 3.0 + 7.0
    aligned = projection.align_projections([ref, moved])
    np.testing.assert_allclose(aligned[1], aligned[0], atol=1e-5)
    assert abs(np.sqrt((aligned[0] ** 2).sum(1).mean()) - 1) < 1e-5  # unit RMS radius


def test_alignment_matches_items_by_id():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(40, 2))
    ids = np.arange(40)
    order = rng.permutation(40)[:30]  # another run holds a shuffled subset
    other = ref[order] @ rotation(-0.7) * 0.5
    aligned = projection.align_projections([ref, other], [ids, ids[order]])
    np.testing.assert_allclose(aligned[1], aligned[0][order], atol=1e-5)


def test_alignment_without_shared_items_only_normalises():
    a, b = np.random.default_rng(2).normal(size=(2, 10, 2))
    aligned = projection.align_projections([a, b + 100], [np.arange(10), np.arange(10) + 50])
    assert abs(aligned[1].mean()) < 1e-5


def test_alignment_checks_shapes():
    with pytest.raises(ValueError, match="ids"):
        projection.align_projections([np.zeros((3, 2)), np.zeros((4, 2))])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        projection.align_projections([np.zeros((3, 3))])
    assert projection.align_projections([]) == []


def test_nearest_neighbours():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    idx, sims = projection.nearest_neighbours(x, 0, k=2)
    assert idx.tolist() == [1, 2]
    assert sims[0] > sims[1]
    assert len(projection.nearest_neighbours(x, 0, k=10)[0]) == 3
    with pytest.raises(ValueError, match="outside"):
        projection.nearest_neighbours(x, 9)


def test_neighbour_relation_shares():
    labels = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=np.uint8)
    x = np.array([[1.0, 0.0], [1.0, 0.01], [0.9, 0.3], [-1.0, 0.0]])
    shares = projection.neighbour_relation_shares(x, labels, k=1)
    assert sum(shares.values()) == pytest.approx(1.0)
    # items 0 and 1 are each other's neighbour (R2); 2's neighbour {0} is R4; 3's is R1
    assert shares[Relation.IDENTICAL] == pytest.approx(0.5)
    assert shares[Relation.SUBSET] == pytest.approx(0.25)
    assert shares[Relation.DISJOINT] == pytest.approx(0.25)
    sampled = projection.neighbour_relation_shares(x, labels, k=2, max_items=2)
    assert sum(sampled.values()) == pytest.approx(1.0)


def test_read_only_run_still_projects(tmp_path, fake_umap, monkeypatch):
    x, _ = clusters()
    write_run(tmp_path, x)

    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(projection, "write_npz_atomic", refuse)
    coords, cached = projection.cached_projection(tmp_path, FAST)
    assert coords.shape == (len(x), 2) and not cached


def test_project_runs_covers_every_run(tmp_path, fake_umap):
    x, _ = clusters()
    (tmp_path / "a").mkdir()
    write_run(tmp_path / "a", x)
    (tmp_path / "b").mkdir()
    write_run(tmp_path / "b", x)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / EMBEDDINGS).write_bytes(b"nope")
    (tmp_path / "empty").mkdir()
    done = projection.project_runs(tmp_path)
    assert [p.name for p in done] == ["a", "b"]
    assert projection.read_cached_projection(tmp_path / "a", UmapParams()) is not None


def test_new_maps_go_to_the_cache_folder_and_shipped_ones_are_read(tmp_path, cache_dir, fake_umap):
    x, _ = clusters()
    run = tmp_path / "run"
    run.mkdir()
    write_run(run, x)
    projection.cached_projection(run, FAST)
    assert list(run.iterdir()) == [run / EMBEDDINGS]
    assert projection.local_cache_path(run, FAST).is_relative_to(cache_dir)
    # shipping writes next to the run, and a shipped map is used without a cache folder entry
    other = tmp_path / "shipped"
    other.mkdir()
    write_run(other, x)
    projection.cached_projection(other, FAST, ship=True)
    assert projection.cache_path(other, FAST).is_file()
    assert not projection.local_cache_path(other, FAST).exists()
    _, cached = projection.cached_projection(other, FAST)
    assert cached and len(fake_umap) == 2


def test_cache_folder_defaults_to_the_ignored_project_folder(monkeypatch):
    monkeypatch.delenv(projection.CACHE_ENV)
    assert projection.cache_root() == projection.PROJECT_ROOT / ".sdl_cache"
    ignored = (projection.PROJECT_ROOT / ".gitignore").read_text().split()
    assert ".sdl_cache/" in ignored


def test_each_space_has_its_own_map(tmp_path, fake_umap):
    x, _ = clusters()
    head = x[:, ::-1].copy()
    write_npz_atomic(
        tmp_path / EMBEDDINGS,
        embeddings=x,
        head=head,
        labels=np.eye(3, dtype=np.uint8)[np.arange(len(x)) % 3],
        ids=np.arange(len(x), dtype=np.int64),
    )
    encoder, _ = projection.cached_projection(tmp_path, FAST, "encoder")
    mapped, cached = projection.cached_projection(tmp_path, FAST, "head")
    assert not cached and len(fake_umap) == 2
    np.testing.assert_allclose(encoder, x[:, :2] * 2)
    np.testing.assert_allclose(mapped, head[:, :2] * 2)
    assert projection.read_cached_projection(tmp_path, FAST, "head") is not None
    assert projection.cache_name(FAST, "head") != projection.cache_name(FAST, "encoder")
    with pytest.raises(ValueError, match="space"):
        projection.cached_projection(tmp_path, FAST, "middle")


def test_a_file_without_head_embeddings_says_so(tmp_path, fake_umap):
    x, _ = clusters()
    write_run(tmp_path, x)
    with pytest.raises(RunError, match="no head embeddings"):
        projection.cached_projection(tmp_path, FAST, "head")


def test_project_runs_ships_both_spaces(tmp_path, fake_umap):
    x, _ = clusters()
    (tmp_path / "a").mkdir()
    write_npz_atomic(
        tmp_path / "a" / EMBEDDINGS,
        embeddings=x,
        head=x * 2,
        labels=np.eye(3, dtype=np.uint8)[np.arange(len(x)) % 3],
        ids=np.arange(len(x), dtype=np.int64),
    )
    projection.project_runs(tmp_path)
    params = UmapParams()
    assert projection.cache_path(tmp_path / "a", params, "encoder").is_file()
    assert projection.cache_path(tmp_path / "a", params, "head").is_file()


def random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


def test_snapshot_paths_of_a_rotating_space_stand_still():
    """Frames that differ only by a rotation of the whole space: nothing moved, so every frame of
    the animation must be the same picture (each frame's own PCA alone flips and turns)."""
    rng = np.random.default_rng(0)
    x, _ = clusters(n_per=15, dim=6)
    frames = np.stack([x @ random_rotation(6, rng) for _ in range(5)])
    paths = projection.snapshot_paths(frames)
    assert paths.shape == (5, len(x), 2) and paths.dtype == np.float32
    for frame in paths[:-1]:
        np.testing.assert_allclose(frame, paths[-1], atol=1e-4)
    # the last frame: centred, unit RMS radius
    np.testing.assert_allclose(paths[-1].mean(0), 0, atol=1e-6)
    assert np.sqrt((paths[-1] ** 2).sum(1).mean()) == pytest.approx(1, abs=1e-5)


def test_align_paths_undoes_a_known_similarity():
    rng = np.random.default_rng(1)
    paths = rng.normal(size=(4, 30, 2))
    ids = np.arange(30)
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 2.5 * paths @ rotation + np.array([3.0, -1.0])
    # rows in another order than the reference: matched by id
    back = projection.align_paths(moved, ids[::-1].copy(), paths[-1][::-1], ids)
    np.testing.assert_allclose(back, paths, atol=1e-5)
    # fewer than 3 shared ids: unchanged
    same = projection.align_paths(moved, ids, paths[-1][:2], np.array([100, 101]))
    np.testing.assert_allclose(same, moved, atol=1e-6)


@pytest.mark.parametrize(
    "frames", [np.zeros((3, 4)), np.zeros((0, 4, 2)), np.full((2, 3, 4), np.nan)]
)
def test_snapshot_paths_refuse_bad_frames(frames):
    with pytest.raises(ValueError, match="frames"):
        projection.snapshot_paths(frames)
