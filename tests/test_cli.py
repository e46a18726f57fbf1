import json

import pandas as pd
import pytest

from sdl import cli, commands, runs

TINY = ["--dataset", "digits-mosaic", "--epochs", "1", "--batch-size", "64",
        "--dataset-option", "n_train=128", "--dataset-option", "n_test=64",
        "--max-embeddings", "40", "--no-progress"]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--dataset", "cifar", "--loss", "sdl"], "invalid choice: 'cifar'"),
        (["train", "--dataset", "digits-mosaic", "--loss", "triplet"], "invalid choice: 'triplet'"),
        (["train", "--dataset", "digits-mosaic", "--loss", "sdl", "--epochs", "0"],
         "epochs must be an integer >= 1, got 0"),
        (["train", "--dataset", "digits-mosaic", "--loss", "sdl", "--lr", "-1"], "lr must be a number > 0"),
        (["train", "--dataset", "digits-mosaic", "--loss", "sdl", "--loss-option", "x"], "KEY=VALUE"),
        (["train", "--dataset", "digits-mosaic", "--loss", "sdl", "--loss-option", "bogus=1"],
         "unknown option"),
        (["train", "--dataset", "digits-mosaic", "--loss", "supcon"], "multi-label"),
        (["train", "--dataset", "digits-mosaic", "--loss", "sdl", "--loss-option",
          "temperature=0.2"], "temperature is not a loss option"),
        (["train", "--dataset", "digits-mosaic", "--loss", "sdl", "--loss-option",
          "chunk_size=2.7"], "chunk_size must be an integer"),
        (["train", "--dataset", "digits-mosaic", "--loss", "bce", "--loss-option",
          "symmetric=false"], "unknown option"),
        (["train", "--dataset", "digits-mosaic", "--loss", "sdl", "--temperature", "1e-39"],
         "temperature must be a number >= 0.0001"),
        (["compare", "--dataset", "digits-mosaic", "--losses", "sdl,nope", "--out", "x"], "nope"),
        (["compare", "--dataset", "digits-mosaic", "--seeds", "a", "--out", "x"], "seeds"),
    ],
)  # fmt: skip
def test_bad_arguments_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_datasets_prints_the_table(monkeypatch, capsys):
    import sdl.data

    rows = [
        {"name": "digits-mosaic", "kind": "image", "available": True, "train": 1000,
         "test": 250, "labels": 10, "labels_per_item": 2.68, "note": "mosaics"},
        {"name": "coco", "kind": "image", "available": False, "train": None, "test": None,
         "labels": None, "labels_per_item": None, "note": "pass root="},
    ]  # fmt: skip
    monkeypatch.setattr(sdl.data, "dataset_table", lambda: rows)
    assert cli.main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits-mosaic" in out and "2.68" in out and "pass root=" in out


def test_train_writes_a_run_and_prints_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "train",
        *TINY,
        "--loss",
        "jaccard",
        "--loss-option",
        "threshold=0.2",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert set(json.loads(printed[: printed.rindex("}") + 1])) == set(commands.METRICS)
    run = runs.read_run(out)
    assert run.state == "done" and run.config["loss_options"] == {"threshold": 0.2}
    with pytest.raises(SystemExit):  # the folder holds a run now
        cli.main(argv)


def test_compare_writes_a_summary_with_a_random_row_and_skips_done_runs(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", *TINY, "--losses", "sdl,bce", "--seeds", "0", "--out", str(out)]
    assert cli.main(argv) == 0
    summary = pd.read_csv(out / commands.SUMMARY)
    assert summary["loss"].tolist() == ["sdl", "bce", "random"]
    assert {"runs", "mAP_mean", "mAP_std", "knn_jaccard@10_mean", "precision@10_std"} <= set(
        summary.columns
    )
    mAP = runs.read_run(out / "sdl-seed0").metrics["mAP"]
    assert summary.loc[0, "mAP_mean"] == pytest.approx(mAP)
    assert "random" in capsys.readouterr().out
    stamp = (out / "sdl-seed0" / runs.METRICS).stat().st_mtime_ns
    assert cli.main(argv) == 0
    assert "done, skipped" in capsys.readouterr().err
    assert (out / "sdl-seed0" / runs.METRICS).stat().st_mtime_ns == stamp


def test_summary_mean_and_std_over_seeds():
    rows = [
        {"loss": "sdl", "seed": s, **{m: v for m in commands.METRICS}}
        for s, v in [(0, 0.5), (1, 0.7)]
    ]
    summary = commands.summarise(rows)
    assert summary.loc[0, "mAP_mean"] == pytest.approx(0.6)
    assert summary.loc[0, "mAP_std"] == pytest.approx(pd.Series([0.5, 0.7]).std())
    assert summary.loc[0, "runs"] == 2
    # the 95% t interval of two values: mean ± t(0.975, 1) * std / sqrt(2), t(0.975, 1) = 12.706
    half = 12.706204736174707 * pd.Series([0.5, 0.7]).std() / 2**0.5
    assert summary.loc[0, "mAP_ci_low"] == pytest.approx(0.6 - half)
    assert summary.loc[0, "mAP_ci_high"] == pytest.approx(0.6 + half)


def test_boolean_loss_options_read_as_booleans():
    args = cli.build_parser().parse_args(
        ["train", "--dataset", "digits-mosaic", "--loss", "sdl", "--loss-option", "symmetric=False"]
    )
    config = cli.config_from_args(args, "sdl", 0, "runs/x")
    assert config.loss_options == {"symmetric": False}


def test_train_argv_round_trips_every_setting():
    from sdl.train import TrainConfig

    config = TrainConfig(
        dataset="yeast",
        loss="sdl",
        loss_options={"symmetric": True, "dissimilarity": "ratio", "chunk_size": 64},
        epochs=3,
        batch_size=32,
        temperature=0.25,
        lr=1e-3,
        weight_decay=0.0,
        warmup_epochs=1.5,
        seed=7,
        device="cpu",
        amp="off",
        encoder="mlp",
        embed_dim=16,
        views=3,
        dataset_options={"n_train": 100, "features": "tfidf"},
        max_embeddings=50,
        save_checkpoint=False,
        out="runs/round-trip",
    )
    args = cli.build_parser().parse_args(cli.train_argv(config))
    assert cli.config_from_args(args, args.loss, args.seed, args.out) == config


# Modules that take seconds to import and that no argument error or --help needs.
HEAVY = ("torchvision", "sklearn", "scipy.stats", "umap", "sdl.models", "sdl.evaluate")


def test_building_the_parser_imports_no_heavy_module():
    import subprocess
    import sys

    code = (
        "import sys, sdl.cli; sdl.cli.build_parser(); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    assert done.stdout.strip() == ""


def test_an_argument_error_imports_no_heavy_module():
    import subprocess
    import sys

    code = (
        "import sys, sdl.cli\n"
        "try:\n"
        "    sdl.cli.main(['train', '--dataset', 'nope', '--loss', 'sdl'])\n"
        "except SystemExit as e:\n"
        f"    print(e.code, ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    assert done.stdout.strip() == "2"


@pytest.mark.parametrize("argv", [["--help"], ["trian"], [], ["datasets", "--help"]])
def test_help_and_a_mistyped_command_import_neither_torch_nor_pandas(argv):
    # torch alone takes 4 s to import on an idle 2-core machine, 20 s or more on a busy one
    import subprocess
    import sys

    code = (
        "import sys, sdl.cli\n"
        "try:\n"
        f"    sdl.cli.main({argv!r})\n"
        "except SystemExit as e:\n"
        "    print(e.code, ','.join(m for m in ('torch', 'pandas') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    code, _, loaded = done.stdout.strip().splitlines()[-1].partition(" ")  # after any --help
    assert loaded == ""
    assert code == ("0" if "--help" in argv else "2")


def test_train_off_a_terminal_prints_one_plain_line_per_epoch(tmp_path, capsys):
    argv = ["train", *[a for a in TINY if a != "--no-progress"], "--epochs", "2"]
    argv += ["--loss", "sdl", "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 0  # pytest's captured stderr is not a terminal
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert "\r" not in err and "it/s" not in err  # no tqdm bar
