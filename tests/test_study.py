import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sdl import runs, study
from sdl.train import TrainConfig


def metrics_with(value: float, auc: float = 0.5) -> dict:
    return {
        "encoder": {"mAP": value, "knn_jaccard@10": value / 2, "relation_auc": {"R2>R5": auc}},
        "head": {"mAP": value - 0.1, "sd_agreement": {"sd": None}},
    }


def test_the_best_validation_temperature_is_chosen_lowest_on_a_tie():
    select = {
        ("sdl", 0.05): metrics_with(0.40),
        ("sdl", 0.1): metrics_with(0.45),
        ("sdl", 0.2): metrics_with(0.42),
        ("all", 0.05): metrics_with(0.30),
        ("all", 0.1): metrics_with(0.30),
    }
    assert study.choose_temperatures(select) == {"sdl": 0.1, "all": 0.05}
    table = study.temperature_table(select)
    row = table[table["loss"] == "sdl"].iloc[0]
    assert row["tau=0.1"] == 0.45 and math.isnan(table[table["loss"] == "all"].iloc[0]["tau=0.2"])


def test_summary_and_paired_tables_follow_the_formulas():
    sdl = [0.50, 0.52, 0.55, 0.51, 0.53]
    other = [0.48, 0.50, 0.51, 0.50, 0.50]
    values = {
        "sdl": {s: metrics_with(v) for s, v in enumerate(sdl)},
        "all": {s: metrics_with(v) for s, v in enumerate(other)},
    }
    summary = study.summary_table(values).set_index("loss")
    assert summary.loc["sdl", "encoder mAP mean"] == pytest.approx(np.mean(sdl))
    assert summary.loc["sdl", "encoder mAP std"] == pytest.approx(np.std(sdl, ddof=1))
    assert summary.loc["sdl", "seeds"] == 5
    assert math.isnan(summary.loc["sdl", "head rho SD mean"])  # a None metric is left out
    paired = study.paired_table(values)
    row = paired[(paired["vs"] == "all") & (paired["metric"] == "encoder mAP")].iloc[0]
    diff = np.subtract(sdl, other)
    half = 2.7764451051977987 * np.std(diff, ddof=1) / np.sqrt(5)  # t(0.975, 4)
    assert row["mean"] == pytest.approx(diff.mean())
    assert row["ci_low"] == pytest.approx(diff.mean() - half)
    assert row["verdict"] == "win"  # every seed ahead by 0.01-0.04: the interval is above 0


def test_readme_block_is_replaced_and_a_missing_block_refused():
    text = "intro\n<!-- study:yeast -->\nold table\n<!-- /study:yeast -->\nend\n"
    got = study.replace_block(text, "yeast", "new | table")
    assert got == "intro\n<!-- study:yeast -->\nnew | table\n<!-- /study:yeast -->\nend\n"
    empty = "<!-- study:yeast -->\n<!-- /study:yeast -->"
    assert (
        study.replace_block(empty, "yeast", "t") == "<!-- study:yeast -->\nt\n<!-- /study:yeast -->"
    )
    assert study.replace_block(got, "yeast", "again") == text.replace("old table", "again")
    with pytest.raises(ValueError, match="study:hpo"):
        study.replace_block(text, "hpo", "x")


def test_plans_fix_the_split_and_vary_only_the_seed(tmp_path):
    preset = study.PRESETS["quick"]
    base = study.base_config("yeast", preset, split_seed=3)
    select = study.selection_plan(base, preset, tmp_path, study.STUDY_LOSSES, 0.2)
    assert ("bce", 0.1) not in select and len(select) == 5 * len(preset.temperatures)
    assert all(c.validation_fraction == 0.2 and c.seed == preset.seeds[0] for c in select.values())
    plan = study.compare_plan(base, preset, tmp_path, study.STUDY_LOSSES, {"sdl": 0.2}, True)
    n_ablations = len(preset.seeds_of_ablations) * len(study.ABLATIONS)
    assert len(plan) == len(preset.seeds) * len(study.STUDY_LOSSES) + n_ablations
    assert {c.split_seed for c in plan.values()} == {3}
    assert {c.validation_fraction for c in plan.values()} == {0.0}
    assert plan[("sdl:kd-only", 1)].loss_options == {"components": "dissimilarity"}
    assert plan[("sdl:kd-only", 1)].temperature == 0.2  # the ablations use sdl's temperature
    assert len({c.out for c in plan.values()}) == len(plan)


def test_bad_study_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="preset"):
        study.run_study("yeast", tmp_path, preset="huge")
    with pytest.raises(ValueError, match="start with 'sdl'"):
        study.run_study("yeast", tmp_path, losses=("all", "sdl"))


@pytest.mark.slow
def test_a_tiny_study_runs_resumes_and_fills_the_readme(tmp_path, monkeypatch):
    tiny = study.Preset(
        seeds=(0, 1),
        temperatures=(0.1, 0.2),
        epochs={"*": 1},
        dataset_options={"digits-mosaic": {"n_train": 96, "n_test": 48}},
        seconds_per_epoch={"*": 1.0},
    )
    monkeypatch.setitem(study.PRESETS, "tiny", tiny)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- study:digits-mosaic -->\n<!-- /study:digits-mosaic -->\n")
    out = tmp_path / "study"
    info = study.run_study(
        "digits-mosaic", out, preset="tiny", losses=("sdl", "all"), ablations=False, readme=readme,
        progress=False,
    )  # fmt: skip
    assert set(info["temperatures"]) == {"sdl", "all"}
    for name in ("summary", "paired", "temperature"):
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.md").is_file()
    assert "| sdl vs |" in readme.read_text() and "| all |" in readme.read_text()
    # The selection runs trained on train minus a validation part and were scored on that part.
    select_run = runs.read_run(out / "select" / "sdl-t0.1")
    assert select_run.config["validation_fraction"] == 0.2 and select_run.config["num_test"] == 19
    # Every compared run saw the same test items.
    ids = {
        tuple(runs.read_embeddings(out / "runs" / f"{n}-seed{s}")["ids"])
        for n in ("sdl", "all")
        for s in (0, 1)
    }
    assert len(ids) == 1

    # A rerun trains nothing: every run is finished.
    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(study, "train", refuse)
    again = study.run_study(
        "digits-mosaic", out, preset="tiny", losses=("sdl", "all"), ablations=False, progress=False
    )
    assert again["temperatures"] == info["temperatures"]
    # A study cut short: only_finished tabulates what is there, training nothing.
    runs.write_status(out / "runs" / "all-seed1", "running")
    study.run_study(
        "digits-mosaic", out, preset="tiny", losses=("sdl", "all"), ablations=False,
        progress=False, only_finished=True,
    )  # fmt: skip
    summary = {r["loss"]: r["seeds"] for _, r in pd.read_csv(out / "summary.csv").iterrows()}
    assert summary == {"sdl": 2, "all": 1}


def test_study_configs_are_valid_train_configs(tmp_path):
    base = study.base_config("mnist-mosaic", study.PRESETS["quick"], split_seed=0)
    assert isinstance(base, TrainConfig) and base.dataset_options == {
        "n_train": 1000,
        "n_test": 500,
    }
    base.validate()
    assert (
        Path(
            study.compare_plan(base, study.PRESETS["quick"], tmp_path, ("sdl",), {}, False)[
                ("sdl", 0)
            ].out
        ).name
        == "sdl-seed0"
    )
