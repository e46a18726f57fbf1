import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sdl import runs
from sdl.data import load_dataset
from sdl.train import (
    TrainConfig,
    batches,
    evaluate_random_encoder,
    load_data,
    lr_factor,
    rng_state,
    set_rng_state,
    train,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = {"n_train": 128, "n_test": 64}
METRIC_KEYS = {
    "mAP",
    "micro_f1",
    "macro_f1",
    "knn_jaccard@10",
    "precision@10",
    "relation_profile",
    "encoder",
    "head",
}


def tiny_config(tmp_path, **changes) -> TrainConfig:
    values = {
        "dataset": "digits-mosaic",
        "loss": "sdl",
        "epochs": 1,
        "batch_size": 64,
        "dataset_options": dict(TINY),
        "out": str(tmp_path / "run"),
        "embed_dim": 16,
        "max_embeddings": 50,
    }
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return train(tiny_config(tmp_path_factory.mktemp("tiny")), progress=False)


def test_run_folder_is_complete_and_readable(tiny_run):
    run = runs.read_run(tiny_run)
    assert run.problems == []
    assert run.state == "done" and run.status["epoch"] == 1 and run.status["pid"] == os.getpid()
    config = run.config
    assert config["dataset"] == "digits-mosaic" and config["loss"] == "sdl" and config["seed"] == 0
    assert config["kind"] == "image" and config["label_names"] == [str(d) for d in range(10)]
    assert {"python", "torch", "sdl"} <= set(config["versions"])
    assert list(run.history.columns) == [
        "epoch",
        "loss",
        "lr",
        "seconds",
        "anchors_without_positives",
    ]
    assert run.history["epoch"].tolist() == [1] and np.isfinite(run.history["loss"]).all()
    assert set(run.metrics) == METRIC_KEYS
    assert 0 <= run.metrics["mAP"] <= 1


def test_embeddings_file_holds_what_the_dashboard_needs(tiny_run):
    arrays = runs.read_embeddings(tiny_run)
    test = load_dataset("digits-mosaic", **TINY).test
    assert arrays["embeddings"].dtype == np.float32 and arrays["embeddings"].shape[0] == 50
    assert arrays["labels"].dtype == np.uint8 and arrays["ids"].dtype == np.int64
    assert arrays["thumbs"].dtype == np.uint8 and arrays["thumbs"].shape == (50, 16, 16)
    # the rows are the test items of those ids, with their labels and thumbnails
    rows = np.searchsorted(test.ids, arrays["ids"]) if np.all(np.diff(test.ids) > 0) else None
    if rows is not None:
        np.testing.assert_array_equal(test.labels[rows], arrays["labels"])
        np.testing.assert_array_equal(test.thumbs[rows], arrays["thumbs"])


def test_both_spaces_are_measured_and_stored(tiny_run):
    metrics = runs.read_run(tiny_run).metrics
    for space in ("encoder", "head"):
        assert {"mAP", "relation_auc", "relation_auc_anchors", "sd_agreement", "sd_surface"} <= set(
            metrics[space]
        )
    assert metrics["mAP"] == metrics["encoder"]["mAP"]  # the old top-level keys: the encoder's
    arrays = runs.read_embeddings(tiny_run)
    head = runs.space_embeddings(arrays, "head")
    assert head.shape == (50, 16) and head.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(head, axis=1), 1.0, atol=1e-5)  # the projection
    assert runs.space_embeddings(arrays, "encoder").shape[1] != 16  # the encoder's own width
    old = {k: v for k, v in arrays.items() if k != "head"}  # a file from before head existed
    assert runs.space_embeddings(old, "head") is None


def test_snapshots_hold_every_epoch_and_end_at_the_final_head(tiny_run):
    snaps = runs.read_snapshots(tiny_run)
    test = load_dataset("digits-mosaic", **TINY).test
    assert snaps["epochs"].tolist() == [0, 1] and snaps["embeddings"].dtype == np.float16
    assert snaps["embeddings"].shape == (2, len(test), 16)  # 64 test items <= 500
    assert set(snaps["ids"]) <= set(test.ids)
    arrays = runs.read_embeddings(tiny_run)
    shared, in_snap, in_emb = np.intersect1d(snaps["ids"], arrays["ids"], return_indices=True)
    assert len(shared) == 50
    np.testing.assert_allclose(
        snaps["embeddings"][-1][in_snap].astype(np.float32), arrays["head"][in_emb], atol=2e-3
    )
    assert not np.allclose(snaps["embeddings"][0], snaps["embeddings"][1])  # training moved it


def test_split_seed_fixes_the_data_and_validation_stays_inside_train(tmp_path):
    a = load_data(tiny_config(tmp_path, seed=0, split_seed=5))
    b = load_data(tiny_config(tmp_path, seed=1, split_seed=5))
    np.testing.assert_array_equal(a.test.inputs, b.test.inputs)
    np.testing.assert_array_equal(a.train.ids, b.train.ids)
    c = load_data(tiny_config(tmp_path, seed=1))  # no split seed: the run's seed, as before
    assert not np.array_equal(a.test.inputs, c.test.inputs)
    val = load_data(tiny_config(tmp_path, split_seed=5, validation_fraction=0.25))
    assert len(val.test) == 32 and len(val.train) == 96
    assert set(val.test.ids) | set(val.train.ids) == set(a.train.ids)
    assert not set(val.test.ids) & set(a.test.ids)  # the test split is never touched


def test_checkpoint_loads_with_weights_only(tiny_run):
    state = torch.load(tiny_run / runs.CHECKPOINT, weights_only=True)
    assert state["epoch"] == 1
    assert {"model", "optimizer", "scaler", "scheduler", "history", "rng"} <= set(state)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    straight = train(tiny_config(tmp_path, epochs=3, out=str(tmp_path / "a")), progress=False)
    config = tiny_config(tmp_path, epochs=3, out=str(tmp_path / "b"))
    train(config, progress=False, stop_after=2)
    assert runs.read_run(tmp_path / "b").state == "running"
    torch.manual_seed(12345)  # disturb the global RNG: the checkpoint must restore it
    resumed = train(config, resume=True, progress=False)
    a = torch.load(straight / runs.CHECKPOINT, weights_only=True)
    b = torch.load(resumed / runs.CHECKPOINT, weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    sa, sb = runs.read_snapshots(straight), runs.read_snapshots(resumed)
    assert sa["epochs"].tolist() == sb["epochs"].tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(sa["embeddings"], sb["embeddings"])
    ha = pd.read_csv(straight / runs.HISTORY)
    hb = pd.read_csv(resumed / runs.HISTORY)
    np.testing.assert_array_equal(ha["loss"], hb["loss"])
    assert runs.read_run(resumed).metrics["mAP"] == runs.read_run(straight).metrics["mAP"]


def test_an_existing_run_is_not_overwritten_without_resume(tiny_run):
    config = tiny_config(tiny_run.parent, out=str(tiny_run))
    with pytest.raises(ValueError, match="already holds a run"):
        train(config, progress=False)
    with pytest.raises(ValueError, match="different configuration"):
        train(tiny_config(tiny_run.parent, out=str(tiny_run), lr=0.5), resume=True)


def test_bce_reference_trains_a_linear_classifier(tmp_path):
    run_dir = train(tiny_config(tmp_path, loss="bce", save_checkpoint=False), progress=False)
    run = runs.read_run(run_dir)
    assert run.state == "done" and set(run.metrics) == METRIC_KEYS
    assert not (run_dir / runs.CHECKPOINT).exists()
    assert math.isnan(run.history["anchors_without_positives"][0])


def test_simclr_ignores_labels(tmp_path):
    run_dir = train(tiny_config(tmp_path, loss="simclr", eval_random=True), progress=False)
    metrics = runs.read_run(run_dir).metrics
    assert set(metrics) == METRIC_KEYS | {"random_encoder"}


def test_a_failing_run_says_so_and_reraises(tmp_path):
    data = load_dataset("digits-mosaic", **TINY)
    data.train.inputs = data.train.inputs.copy()
    data.train.inputs[:] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train(tiny_config(tmp_path), progress=False, data=data)
    status = runs.read_run(tmp_path / "run").status
    assert status["state"] == "failed"
    assert "NaN" in status["error"] and "Traceback" in status["traceback"]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"loss": "supcon"}, "multi-label"),
        ({"loss": "triplet"}, "unknown loss name"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 1}, "batch_size"),
        ({"temperature": 0}, "temperature"),
        ({"loss": "simclr", "views": 1}, "views"),
        ({"amp": "fp8"}, "amp"),
        ({"loss_options": {"bogus": 1}}, "unknown option"),
        ({"loss_options": {"temperature": 0.2}}, "temperature is not a loss option"),
        ({"loss_options": {"chunk_size": 2.7}}, "chunk_size must be an integer"),
        ({"loss_options": {"symmetric": "maybe"}}, "symmetric must be true or false"),
        ({"loss": "bce", "loss_options": {"symmetric": True}}, "unknown option"),
        ({"temperature": 1e-39}, "temperature must be"),
        ({"device": "bogus"}, "device must be"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"split_seed": -1}, "split_seed"),
        ({"snapshot_items": -1}, "snapshot_items"),
    ],
)
def test_bad_configs_are_refused_before_anything_is_written(tmp_path, changes, match):
    with pytest.raises(ValueError, match=match):
        train(tiny_config(tmp_path, **changes), progress=False)
    assert not (tmp_path / "run").exists()


def test_random_encoder_is_evaluated_like_a_run(tmp_path):
    metrics = evaluate_random_encoder(tiny_config(tmp_path))
    assert set(metrics) == METRIC_KEYS


def test_schedule_warms_up_then_decays_to_zero():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10) == pytest.approx(0.5)  # half way through the cosine
    assert lr_factor(100, 100, 10) == pytest.approx(0.0)
    assert lr_factor(0, 10, 0) == pytest.approx(1.0)


def test_batches_drop_the_incomplete_tail_and_split_evenly():
    g = torch.Generator().manual_seed(0)
    got = batches(10, 4, 1, g)
    assert [len(b) for b in got] == [4, 4]
    assert len(set(torch.cat(got).tolist())) == 8
    assert [len(b) for b in batches(7, 64, 2, g)] == [6]  # one batch, even across 2 processes
    with pytest.raises(ValueError, match="cannot fill"):
        batches(3, 64, 2, g)


def test_rng_state_round_trips():
    state = rng_state()
    expected = (torch.rand(3), np.random.rand(3), __import__("random").random())
    torch.manual_seed(1), np.random.seed(1), __import__("random").seed(1)
    set_rng_state(state)
    got = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(expected[0], got[0])
    np.testing.assert_array_equal(expected[1], got[1])
    assert expected[2] == got[2]


@pytest.mark.slow
def test_two_processes_with_torchrun(tmp_path):
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "sdl", "train",
           "--dataset", "digits-mosaic", "--loss", "sdl", "--epochs", "1", "--batch-size", "64",
           "--dataset-option", "n_train=128", "--dataset-option", "n_test=64",
           "--device", "cpu", "--out", str(out), "--no-progress"]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run = runs.read_run(out)
    assert run.problems == [] and run.state == "done"
    assert run.config["world_size"] == 2
    assert set(run.metrics) == METRIC_KEYS
    assert json.loads((out / runs.METRICS).read_text())["mAP"] > 0
