"""Cost of the held-out evaluation against training, before and after its rewrite, on real runs.

    python benchmarks/bench_evaluate.py                     # yeast and the 10,000-label run
    python benchmarks/bench_evaluate.py --runs yeast --repeats 5
    python benchmarks/bench_evaluate.py --before-cap 600    # let the old 10,000-label probe run longer

For each run (the default ``sdl`` runs: yeast for 8 epochs, synthetic-longtail, 10,000 labels, for
2) the script trains once, stopping before the evaluation, and takes the training seconds from
history.csv (the epochs). It then embeds the training and test items in both spaces from the
checkpoint, as ``sdl.train.evaluate_model`` does, and times in this process ``metrics_record`` of
this checkout ("after") and of ``sdl/evaluate.py`` at the git revision ``--before`` ("before":
main's code before the rewrite), taking turns repeat by repeat so that load from other processes
falls on both alike. Each code evaluates with its own BLAS thread policy, as a run would; "after,
before's threads" isolates the part of the gain that is the thread count.

The old evaluation of the 10,000-label run does not finish (its probe runs for tens of minutes):
there each old stage runs in a forked child that is stopped after ``--before-cap`` seconds, and its
time shows as "> cap". On yeast the script also checks the probe against scikit-learn's per-label
reference (``solver="sklearn"``): the mAP difference per space. Output: Markdown tables.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdl import evaluate  # noqa: E402
from sdl.train import TrainConfig, load_data, new_model, train  # noqa: E402

#: main's last commit before the rewrite of sdl/evaluate.py
BEFORE = "47699a3"
RUNS = {
    "yeast": {"dataset": "yeast", "epochs": 8},
    "longtail": {"dataset": "synthetic-longtail", "epochs": 2},
}
#: the stages of the old evaluate_embeddings, in its order (each a public function of it)
OLD_STAGES = ("probe", "knn", "relation_profile", "relation_auc", "sd_agreement", "sd_surface")


def load_before(revision: str):
    """sdl/evaluate.py at ``revision``, imported as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:sdl/evaluate.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="sdl-before-")) / "evaluate_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("evaluate_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_run(name: str, out: Path) -> tuple[TrainConfig, float]:
    """(config, training seconds: the epochs' seconds in history.csv)."""
    import pandas as pd

    config = TrainConfig(loss="sdl", out=str(out / name), **RUNS[name])
    train(config, progress=False, stop_after=config.epochs)
    return config, float(pd.read_csv(out / name / "history.csv")["seconds"].sum())


def spaces_of(config: TrainConfig) -> tuple[dict, np.ndarray, np.ndarray]:
    """Both spaces' (train, test) embeddings from the run's checkpoint, as evaluate_model makes them."""
    data = load_data(config)
    model = new_model(config, data)
    state = torch.load(Path(config.out) / "checkpoint.pt", weights_only=False)
    model.load_state_dict(state["model"])
    model.eval()
    rows = evaluate.seeded_subset(len(data.train), config.max_eval_train, config.data_seed)
    train_enc = evaluate.embed(model.encode, data.train.inputs[rows])
    test_enc = evaluate.embed(model.encode, data.test.inputs)
    spaces = {
        "encoder": (train_enc, test_enc),
        "head": (evaluate.embed(model.head, train_enc), evaluate.embed(model.head, test_enc)),
    }
    return spaces, data.train.labels[rows], data.test.labels


def old_stage(module, stage: str, train_x, train_y, test_x, test_y):
    if stage == "probe":
        return module.linear_probe(train_x, train_y, test_x, test_y)
    if stage == "knn":
        return module.knn_retrieval(train_x, train_y, test_x, test_y, 10)
    return getattr(module, stage)(test_x, test_y)


def time_before(module, spaces, train_y, test_y, cap: float | None) -> dict:
    """{space: {stage: seconds}} of the old code; with a cap, each stage in a child stopped there."""
    out: dict = {}
    threads = min(4, os.cpu_count() or 1)  # the old evaluate_embeddings' limit
    for space, (train_x, test_x) in spaces.items():
        out[space] = {}
        for stage in OLD_STAGES:
            args = (module, stage, train_x, train_y, test_x, test_y)
            if cap is None:
                with threadpool_limits(threads):
                    start = time.perf_counter()
                    old_stage(*args)
                    out[space][stage] = time.perf_counter() - start
                continue
            out[space][stage] = capped(args, threads, cap)
    return out


def _child(queue, args, threads) -> None:
    with threadpool_limits(threads):
        start = time.perf_counter()
        old_stage(*args)
        queue.put(time.perf_counter() - start)


def capped(args, threads: int, cap: float) -> float:
    """Seconds of one old stage in a forked child, or inf if it was still running after ``cap``."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue, args, threads))
    child.start()
    child.join(cap)
    if child.is_alive():
        child.terminate()
        child.join()
        return float("inf")
    return queue.get() if child.exitcode == 0 else float("nan")


def time_after(spaces, train_y, test_y, threads: int | None = None) -> tuple[dict, dict]:
    """(metrics, {stage or space: seconds}) of this checkout's metrics_record."""
    saved = evaluate.eval_threads
    if threads is not None:
        evaluate.eval_threads = lambda: threads
    try:
        timings: dict = {}
        metrics = evaluate.metrics_record(spaces, train_y, test_y, timings=timings)
    finally:
        evaluate.eval_threads = saved
    return metrics, timings


def total(timings: dict, cap: float | None = None) -> float:
    """Summed seconds; with a cap, a stopped stage (inf) counts as the cap: a lower bound."""
    parts = [total(v, cap) if isinstance(v, dict) else v for v in timings.values()]
    if cap is not None:
        parts = [cap if part == float("inf") else part for part in parts]
    return sum(parts)


def seconds(value: float, at_least: bool = False) -> str:
    return f"> {value:.2f}" if at_least else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS))
    parser.add_argument("--repeats", type=int, default=3, help="evaluations of yeast per code")
    parser.add_argument("--before", default=BEFORE, help="git revision of the old evaluate.py")
    parser.add_argument("--before-cap", type=float, default=120.0,
                        help="seconds an old stage of the 10,000-label run may take")  # fmt: skip
    parser.add_argument("--out", help="folder for the runs (default: a temporary one)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="sdl-bench-evaluate-"))
    before = load_before(args.before)
    import sklearn.metrics  # noqa: F401  imported up front, as a run has by its evaluation
    from scipy import optimize, stats  # noqa: F401

    totals, shares, probes = [], [], []
    for name in args.runs:
        config, train_s = train_run(name, out)
        spaces, train_y, test_y = spaces_of(config)
        cap = args.before_cap if name == "longtail" else None
        repeats = args.repeats if name == "yeast" else 1
        old_times, new_times, same_threads = [], [], []
        for _ in range(repeats):
            old = time_before(before, spaces, train_y, test_y, cap)
            old_times.append((total(old, cap), old))
            metrics, new = time_after(spaces, train_y, test_y)
            new_times.append((total(new), new))
            if name == "yeast":
                old_threads = min(4, os.cpu_count() or 1)
                same_threads.append(total(time_after(spaces, train_y, test_y, old_threads)[1]))
        old_s, old = sorted(old_times, key=lambda t: t[0])[len(old_times) // 2]
        new_s, new = sorted(new_times, key=lambda t: t[0])[len(new_times) // 2]
        labels = test_y.shape[1]
        evaluated = metrics["encoder"]["probe_labels"]
        stopped = any(v == float("inf") for stages in old.values() for v in stages.values())
        totals.append(
            (name, labels, evaluated, train_s, old_s, stopped, new_s,
             statistics.median(same_threads) if same_threads else None)
        )  # fmt: skip
        for space in spaces:
            for stage in OLD_STAGES:
                shares.append((name, "before", space, stage, old[space][stage], old_s))
            for stage, value in new[space].items():
                shares.append((name, "after", space, stage, value, new_s))
        shares.append((name, "after", "both", "anchor labels", new["anchor labels"], new_s))
        if name == "yeast":
            for space, (train_x, test_x) in spaces.items():
                reference = evaluate.linear_probe(
                    train_x, train_y, test_x, test_y, solver="sklearn"
                )
                probes.append((space, metrics[space]["mAP"], reference["mAP"],
                               metrics[space]["probe_iterations"]))  # fmt: skip
    cap = args.before_cap
    print(f"threads: torch {torch.get_num_threads()} (training), BLAS in evaluation: before "
          f"{min(4, os.cpu_count() or 1)}, after {evaluate.eval_threads()}; yeast: median of "
          f"{args.repeats}\n")  # fmt: skip
    print("| run | labels (evaluated) | train s (epochs) | eval s before | eval s after | "
          "eval / train before | eval / train after | after, before's threads |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, labels, evaluated, train_s, old_s, stopped, new_s, same in totals:
        same_text = f"{same:.2f}" if same is not None else ""
        # with a stopped stage the old total and its ratio are lower bounds ("> x")
        print(f"| {name} | {labels:,} ({evaluated:,}) | {train_s:.2f} | "
              f"{seconds(old_s, stopped)} | {new_s:.2f} | {seconds(old_s / train_s, stopped)} | "
              f"{new_s / train_s:.2f} | {same_text} |")  # fmt: skip
    print("\n| run | code | space | stage | seconds | share |")
    print("|---|---|---|---|---|---|")
    for name, code, space, stage, value, whole in shares:
        stopped = value == float("inf")
        share = (
            "" if stopped or (code == "before" and name == "longtail") else f"{value / whole:.0%}"
        )
        print(f"| {name} | {code} | {space} | {stage} | {seconds(cap if stopped else value, stopped)} | "
              f"{share} |")  # fmt: skip
    if probes:
        print(
            "\n| yeast space | probe mAP | scikit-learn per label | difference | L-BFGS iterations |"
        )
        print("|---|---|---|---|---|")
        for space, got, want, iterations in probes:
            print(f"| {space} | {got:.4f} | {want:.4f} | {got - want:+.4f} | {iterations} |")


if __name__ == "__main__":
    main()
