"""About a hundred bad command lines, tried as a careless or hostile user would.

Every one must end with exit code 2 and one line on stderr that names the argument or the file at
fault, never a traceback; and none may change a file it was not asked to write.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from sdl import cli, commands, runs

TINY = ["--epochs", "1", "--batch-size", "64", "--dataset-option", "n_train=128",
        "--dataset-option", "n_test=64", "--max-embeddings", "40", "--embed-dim", "8",
        "--no-progress"]  # fmt: skip
# Tiny settings first: a case that wrongly got through would cost seconds, not a full run.
TRAIN = ["train", "--dataset", "digits-mosaic", "--loss", "sdl", *TINY, "--out", "r"]

NUMBERS = {
    "--epochs": ["0", "-1", "1.5", "ten", "", "nan", "1e9999"],
    "--batch-size": ["1", "0", "-64", "x", "2.5"],
    "--temperature": ["0", "-0.1", "1e-39", "nan", "inf", "hot", "1e9"],
    "--lr": ["0", "-1", "nan", "inf", "fast"],
    "--weight-decay": ["-1", "nan", "x"],
    "--warmup-epochs": ["-0.5", "nan", "x"],
    "--seed": ["-1", "1.5", "abc"],
    "--views": ["0", "-2", "x"],
    "--embed-dim": ["0", "x", "-8"],
    "--max-embeddings": ["0", "x"],
}
NUMBER_CASES = [
    pytest.param([*TRAIN, flag, value], flag.lstrip("-").replace("-", "_"), id=f"{flag}={value}")
    for flag, values in NUMBERS.items()
    for value in values
]

PARSE_CASES = [
    pytest.param([], "command", id="no command"),
    pytest.param(["fly"], "fly", id="unknown command"),
    pytest.param(["train"], "--dataset", id="train alone"),
    pytest.param(["train", "--dataset", "digits-mosaic"], "--loss", id="no loss"),
    pytest.param(["train", "--dataset", "cifar", "--loss", "sdl"], "cifar", id="unknown dataset"),
    pytest.param(["train", "--dataset", "", "--loss", "sdl"], "--dataset", id="empty dataset"),
    pytest.param(
        ["train", "--dataset", "digits-mosaic", "--loss", "triplet"], "triplet", id="loss"
    ),
    pytest.param([*TRAIN, "--amp", "fp8"], "fp8", id="amp"),
    pytest.param([*TRAIN, "--encoder", "vit"], "vit", id="encoder"),
    pytest.param([*TRAIN, "--bogus"], "--bogus", id="unknown flag"),
    pytest.param([*TRAIN, "--epochs"], "--epochs", id="flag without value"),
    pytest.param([*TRAIN, "--loss-option", "x"], "KEY=VALUE", id="loss option no ="),
    pytest.param([*TRAIN, "--loss-option", "=1"], "KEY=VALUE", id="loss option no key"),
    pytest.param([*TRAIN, "--loss-option", "bogus=1"], "bogus", id="unknown loss option"),
    pytest.param([*TRAIN, "--loss-option", "chunk_size=2.7"], "chunk_size", id="chunk float"),
    pytest.param([*TRAIN, "--loss-option", "chunk_size=0"], "chunk_size", id="chunk 0"),
    pytest.param([*TRAIN, "--loss-option", "chunk_size=-5"], "chunk_size", id="chunk -5"),
    pytest.param([*TRAIN, "--loss-option", "chunk_size=true"], "chunk_size", id="chunk true"),
    pytest.param([*TRAIN, "--loss-option", "temperature=0.2"], "temperature", id="temp as option"),
    pytest.param(
        ["train", "--dataset", "digits-mosaic", "--loss", "supcon"], "supcon", id="supcon"
    ),
    pytest.param(
        [
            "train",
            "--dataset",
            "digits-mosaic",
            "--loss",
            "bce",
            "--loss-option",
            "symmetric=false",
        ],
        "symmetric",
        id="bce option",
    ),
    pytest.param([*TRAIN, "--device", "tpu"], "device", id="device tpu"),
    pytest.param([*TRAIN, "--device", ""], "device", id="device empty"),
    pytest.param([*TRAIN, "--device", "cuda:x"], "device", id="device cuda:x"),
    pytest.param([*TRAIN, "--device", "cpu:-1"], "device", id="device cpu:-1"),
    pytest.param(
        ["compare", "--dataset", "digits-mosaic", "--losses", "sdl,nope", "--out", "x"],
        "nope",
        id="compare loss",
    ),
    pytest.param(
        ["compare", "--dataset", "digits-mosaic", "--losses", ",", "--out", "x"],
        "loss",
        id="compare no losses",
    ),
    pytest.param(
        ["compare", "--dataset", "digits-mosaic", "--seeds", "a", "--out", "x"],
        "seeds",
        id="compare seeds text",
    ),
    pytest.param(
        ["compare", "--dataset", "digits-mosaic", "--seeds", "-1", "--out", "x"],
        "seeds",
        id="compare seeds negative",
    ),
    pytest.param(["compare", "--dataset", "digits-mosaic"], "--out", id="compare no out"),
    pytest.param(["demo", "--epochs", "0"], "epochs", id="demo epochs"),
]


def run_cli(argv, capsys) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def assert_one_clear_line(code, err, word):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert word.lower() in lines[0].lower(), lines[0]


@pytest.mark.parametrize(("argv", "word"), PARSE_CASES + NUMBER_CASES)
def test_bad_arguments_are_one_clear_line(argv, word, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a command that got through would write here, not in the project
    code, err = run_cli(argv, capsys)
    assert_one_clear_line(code, err, word)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_a_gpu_that_is_not_there_names_device(device, capsys, tmp_path):
    code, err = run_cli([*TRAIN, "--device", device, "--out", str(tmp_path / "r")], capsys)
    assert_one_clear_line(code, err, "--device")
    assert not (tmp_path / "r").exists()


def _bad_outs(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "checkpoint.pt").write_bytes(b"someone else's weights")
    (foreign / "history.csv").write_text("precious\n")
    return {
        "a file": (afile, "afile"),
        "inside a file": (afile / "run", "afile"),
        "under /dev/null": ("/dev/null/run", "/dev/null"),
        "under /proc": ("/proc/sdl-run", "/proc/sdl-run"),
        "a non-run folder": (foreign, "foreign"),
    }


@pytest.mark.parametrize(
    "case", ["a file", "inside a file", "under /dev/null", "under /proc", "a non-run folder"]
)
def test_a_bad_out_folder_is_refused_and_nothing_is_lost(case, capsys, tmp_path):
    out, word = _bad_outs(tmp_path)[case]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, err = run_cli([*TRAIN, "--out", str(out)], capsys)
    assert_one_clear_line(code, err, word)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run with its checkpoint, and one trained with --no-checkpoint."""
    root = tmp_path_factory.mktemp("runs")
    for name, extra in (("kept", []), ("nockpt", ["--no-checkpoint"])):
        assert cli.main([*TRAIN, *extra, "--out", str(root / name)]) == 0
    return root


def _copy(finished, name, tmp_path):
    return shutil.copytree(finished / name, tmp_path / name)


@pytest.mark.slow
def test_resuming_a_finished_run_without_checkpoint_is_refused(finished, capsys, tmp_path):
    run = _copy(finished, "nockpt", tmp_path)
    code, err = run_cli([*TRAIN, "--no-checkpoint", "--out", str(run), "--resume"], capsys)
    assert_one_clear_line(code, err, "checkpoint")
    assert runs.read_run(run).state == "done"


@pytest.mark.slow
def test_training_again_into_a_run_is_refused(finished, capsys, tmp_path):
    run = _copy(finished, "kept", tmp_path)
    code, err = run_cli([*TRAIN, "--out", str(run)], capsys)
    assert_one_clear_line(code, err, "already holds a run")
    code, err = run_cli([*TRAIN, "--lr", "0.5", "--out", str(run), "--resume"], capsys)
    assert_one_clear_line(code, err, "lr")


def _epoch_99(path):
    state = torch.load(path, weights_only=True)
    state["epoch"] = 99
    torch.save(state, path)


def _no_model(path):
    state = torch.load(path, weights_only=True)
    del state["model"]
    torch.save(state, path)


def _wrong_model(path):
    state = torch.load(path, weights_only=True)
    state["model"] = {"weight": torch.zeros(2)}
    torch.save(state, path)


CHECKPOINT_FAULTS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:1000]),
    "empty": lambda p: p.write_bytes(b""),
    "text": lambda p: p.write_text("not a checkpoint"),
    "a pickle": lambda p: torch.save({"x": object.__new__(json.JSONDecoder)}, p),
    "epoch 99": _epoch_99,
    "no model": _no_model,
    "another model": _wrong_model,
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(CHECKPOINT_FAULTS))
def test_a_corrupt_checkpoint_says_how_to_go_on(finished, fault, capsys, tmp_path):
    run = _copy(finished, "kept", tmp_path)
    runs.write_status(run, "running", epoch=0, epochs=1)  # as if interrupted
    CHECKPOINT_FAULTS[fault](run / runs.CHECKPOINT)
    code, err = run_cli([*TRAIN, "--out", str(run), "--resume"], capsys)
    assert_one_clear_line(code, err, "checkpoint.pt")
    assert "delete" in err and "--out" in err
    # the same again: the advice, not a crash, every time
    code, err = run_cli([*TRAIN, "--out", str(run), "--resume"], capsys)
    assert_one_clear_line(code, err, "checkpoint.pt")
    (run / runs.CHECKPOINT).unlink()  # following the advice works
    assert run_cli([*TRAIN, "--out", str(run), "--resume"], capsys)[0] == 0
    assert runs.read_run(run).state == "done"


def test_a_bug_shows_its_traceback_and_where_the_run_keeps_it(monkeypatch, capsys, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(commands, "train", broken)
    code, err = run_cli([*TRAIN, "--out", str(tmp_path / "r")], capsys)
    assert code == 1
    assert "Traceback" in err and "RuntimeError: a bug" in err
    assert f"{tmp_path / 'r'}" in err.splitlines()[-1] and "status.json" in err.splitlines()[-1]
