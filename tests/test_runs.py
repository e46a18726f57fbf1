import json
import os

import numpy as np
import pandas as pd
import pytest

from sdl import runs


def test_atomic_writers_leave_no_temp_files(tmp_path):
    runs.write_json_atomic(tmp_path / "a.json", {"x": 1})
    runs.write_csv_atomic(tmp_path / "h.csv", pd.DataFrame({"epoch": [1], "loss": [0.5]}))
    runs.write_npz_atomic(tmp_path / "e.npz", embeddings=np.zeros((2, 3), np.float32))
    assert sorted(os.listdir(tmp_path)) == ["a.json", "e.npz", "h.csv"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}


def test_a_failed_write_keeps_the_old_file(tmp_path):
    runs.write_json_atomic(tmp_path / "a.json", {"x": 1})

    def broken(buf):
        buf.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        runs.write_with_atomic(tmp_path / "a.json", broken)
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_read_run_reports_problems_instead_of_raising(tmp_path):
    runs.write_json_atomic(tmp_path / runs.CONFIG, {"loss": "sdl", "dataset": "d", "seed": 2})
    runs.write_status(tmp_path, "done", epoch=1, epochs=1)
    (tmp_path / runs.HISTORY).write_text("nonsense\n1\n")
    run = runs.read_run(tmp_path)
    assert run.loss == "sdl" and run.seed == 2 and run.state == "done"
    assert any("history" in p for p in run.problems)
    assert any("metrics" in p for p in run.problems)
    with pytest.raises(ValueError, match="state"):
        runs.write_status(tmp_path, "paused")


def test_list_runs_separates_runs_from_broken_folders(tmp_path):
    runs.write_json_atomic(tmp_path / "good" / runs.CONFIG, {"loss": "sdl"})
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / runs.CONFIG).write_text("{")
    (tmp_path / "other").mkdir()
    found, errors = runs.list_runs(tmp_path)
    assert [r.name for r in found] == ["good"]
    assert len(errors) == 1 and "corrupt" in str(errors[0])


def test_runs_of_other_data_or_settings_are_told_apart():
    base = {"dataset": "yeast", "loss": "sdl", "seed": 0, "epochs": 5, "out": "a", "device": "cpu"}
    other_seed = {**base, "seed": 1, "out": "b", "device": "cuda"}
    assert runs.differing_settings([base, other_seed]) == {}  # the seed and bookkeeping only
    longer = {**base, "epochs": 9}
    assert runs.differing_settings([base, longer]) == {"epochs": [5, 9]}
    mosaic = {
        **base,
        "dataset": "digits-mosaic",
        "dataset_options": {"grid": 3, "preset": "nested"},
    }
    assert runs.data_key(base) == "yeast"
    assert runs.data_key(mosaic) == "digits-mosaic (grid=3, preset=nested)"
    assert runs.differing_settings([base, mosaic], ignore=("seed", "loss"))["dataset"] == [
        "yeast",
        "digits-mosaic",
    ]
