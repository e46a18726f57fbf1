"""Time of the held-out evaluation: the joint probe against scikit-learn's per-label probe.

    python benchmarks/bench_evaluate.py              # yeast, 3 repeats
    python benchmarks/bench_evaluate.py --repeats 5 --threads 2

Features: the yeast training/test split (1,813 / 604 items, 14 labels) passed through an untrained
MLP encoder (256-d, ReLU: the encoder space) and its projection head (128-d, unit norm: the head
space), so the numbers are those of a yeast run's evaluation. For each space the script times, in
this process and taking turns repeat by repeat (so that load from other processes falls on all
alike): the linear probe with solver="sklearn" (one LogisticRegression per label, the reference),
with solver="joint" (one L-BFGS fit over all labels), and the relation metrics. It prints medians,
the ratios to the reference and the mAP difference, as a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdl import evaluate
from sdl.data import load_dataset
from sdl.models import build_model


def spaces() -> dict[str, tuple]:
    data = load_dataset("yeast", seed=0)
    torch.manual_seed(0)
    model = build_model("tabular", (data.train.inputs.shape[1],), embed_dim=128).eval()
    out = {}
    for name, function in (("encoder", model.encode), ("head", model.forward)):
        out[name] = (
            evaluate.embed(function, data.train.inputs),
            data.train.labels,
            evaluate.embed(function, data.test.inputs),
            data.test.labels,
        )
    return out


def relation_metrics(x_test, y_test) -> None:
    evaluate.relation_profile(x_test, y_test)
    evaluate.relation_auc(x_test, y_test)
    evaluate.sd_agreement(x_test, y_test)
    evaluate.sd_surface(x_test, y_test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with threadpool_limits(args.threads):
        for space, (x_train, y_train, x_test, y_test) in spaces().items():
            split = (x_train, y_train, x_test, y_test)
            jobs = {
                "probe sklearn (per label)": partial(
                    evaluate.linear_probe, *split, solver="sklearn"
                ),
                "probe joint (one L-BFGS)": partial(evaluate.linear_probe, *split, solver="joint"),
                "relation metrics": partial(relation_metrics, x_test, y_test),
            }
            times: dict[str, list[float]] = {name: [] for name in jobs}
            results: dict[str, object] = {}
            for _ in range(args.repeats):
                for name, job in jobs.items():
                    start = time.perf_counter()
                    results[name] = job()
                    times[name].append(time.perf_counter() - start)
            reference = statistics.median(times["probe sklearn (per label)"])
            ref_map = results["probe sklearn (per label)"]["mAP"]
            for name in jobs:
                median = statistics.median(times[name])
                result = results[name]
                delta = f"{result['mAP'] - ref_map:+.4f}" if isinstance(result, dict) else ""
                rows.append((space, name, median, median / reference, delta))
    print(f"yeast, threads={args.threads}, median of {args.repeats}\n")
    print("| space | what | seconds | time / sklearn probe | mAP - sklearn's |")
    print("|---|---|---|---|---|")
    for space, name, median, ratio, delta in rows:
        print(f"| {space} | {name} | {median:.2f} | {ratio:.2f} | {delta} |")


if __name__ == "__main__":
    main()
