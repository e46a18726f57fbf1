"""What each ``python -m sdl`` command does, once :mod:`sdl.cli` has parsed its arguments.

Kept apart from the parser because it needs pandas, torch and the training engine, which take
seconds to import: ``python -m sdl --help`` or a mistyped command never imports this module.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sdl import runs
from sdl.cli import config_from_args
from sdl.losses import compared_losses, loss_names
from sdl.train import TrainConfig, evaluate_random_encoder, train

METRICS = ("mAP", "micro_f1", "macro_f1", "knn_jaccard@10", "precision@10")
# The demo: the setting where the spaces differed most by the relation metrics among those tried
# (README, "The embedded demo"), small enough to rebuild on a laptop CPU.
DEMO = {"dataset": "digits-mosaic", "epochs": 8, "max_embeddings": 1000, "seed": 0}
SUMMARY = "summary.csv"


def cmd_datasets() -> int:
    from sdl.data import RELATION_KEYS, dataset_table

    table = pd.DataFrame(dataset_table())
    columns = ["name", "kind", "available", "train", "test", "labels", "labels_per_item"]
    columns += [*RELATION_KEYS, "note"]
    table = table[[c for c in columns if c in table.columns]]
    for col in RELATION_KEYS:  # share of the pairs of a training batch of 128, in percent
        if col in table:
            table[col] = table[col].map(
                lambda v: "" if v is None or pd.isna(v) else f"{100 * v:.1f}%"
            )
    if "labels_per_item" in table:
        table["labels_per_item"] = table["labels_per_item"].map(
            lambda v: "" if v is None or pd.isna(v) else f"{v:.2f}"
        )
    for col in ("train", "test", "labels"):
        if col in table:
            table[col] = table[col].map(lambda v: "" if v is None or pd.isna(v) else str(int(v)))
    left = {
        col: (lambda width: lambda v: f"{v!s:<{width}}")(
            int(table[col].astype(str).str.len().max())
        )
        for col in ("name", "note")
        if col in table
    }
    print(table.to_string(index=False, formatters=left, justify="left"))
    print("R1..R5: share of the (anchor, sample) pairs in each relation, training batches of 128")
    return 0


def run_once(config: TrainConfig, progress: bool | None) -> Path:
    """Train unless the folder already holds a finished run; resume a partial one."""
    run_dir = config.run_dir()
    if (run_dir / runs.CONFIG).exists():
        run = runs.read_run(run_dir)
        if run.state == "done" and run.metrics is not None:
            print(f"{run_dir}: done, skipped", file=sys.stderr)
            return run_dir
        print(
            f"{run_dir}: resuming ({run.state}, epoch {run.status.get('epoch')})", file=sys.stderr
        )
    else:
        print(f"{run_dir}: training {config.loss} seed {config.seed}", file=sys.stderr)
    return train(config, resume=True, progress=progress)


def random_metrics(config: TrainConfig, folder: Path) -> dict:
    """The untrained encoder's metrics for one seed, cached in ``folder/random-seed{s}.json``."""
    path = folder / f"random-seed{config.seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    metrics = evaluate_random_encoder(config)
    runs.write_json_atomic(path, metrics)
    return metrics


def summarise(rows: list[dict]) -> pd.DataFrame:
    """Mean, sample std and 95% t interval over seeds of every metric, one row per loss, in the
    given order (:func:`sdl.evaluate.seed_summary`)."""
    from sdl.evaluate import seed_summary

    frame = pd.DataFrame(rows)
    table = []
    for loss, group in frame.groupby("loss", sort=False):
        row: dict = {"loss": loss, "runs": len(group)}
        for metric in METRICS:
            summary = seed_summary(group[metric].tolist())
            for stat in ("mean", "std", "ci_low", "ci_high"):
                row[f"{metric}_{stat}"] = summary[stat]
        table.append(row)
    return pd.DataFrame(table)


def format_summary(summary: pd.DataFrame) -> str:
    lines = []
    header = f"{'loss':<10} {'runs':>4} " + " ".join(f"{m:>15}" for m in METRICS)
    lines.append(header)
    for _, row in summary.iterrows():
        cells = []
        for m in METRICS:
            std = row[f"{m}_std"]
            std_text = "" if pd.isna(std) else f"±{std:.3f}"
            cells.append(f"{row[f'{m}_mean']:.3f}{std_text:>7}".rjust(15))
        lines.append(f"{row['loss']:<10} {int(row['runs']):>4} " + " ".join(cells))
    return "\n".join(lines)


def compare(configs: Sequence[TrainConfig], out: Path, progress: bool | None) -> pd.DataFrame:
    """Run (or reuse) every config, evaluate the random encoder per seed, write summary.csv."""
    rows = []
    for config in configs:
        run = runs.read_run(run_once(config, progress))
        rows.append({"loss": config.loss, "seed": config.seed, **_flat(run.metrics)})
    for seed in dict.fromkeys(c.seed for c in configs):
        first = next(c for c in configs if c.seed == seed)
        # The untrained encoder does not depend on the loss; any contrastive one builds the model.
        reference = TrainConfig(
            **{**first.__dict__, "loss": compared_losses()[0], "loss_options": {}}
        )
        rows.append({"loss": "random", "seed": seed, **_flat(random_metrics(reference, out))})
    summary = summarise(rows)
    runs.write_csv_atomic(out / SUMMARY, summary)
    return summary


def _flat(metrics: dict | None) -> dict:
    if metrics is None:
        raise RuntimeError("a finished run has no metrics.json")
    return {m: metrics[m] for m in METRICS}


def cmd_compare(args: argparse.Namespace) -> int:
    out = Path(args.out)
    configs = [
        config_from_args(args, loss, seed, out / f"{loss}-seed{seed}")
        for seed in args.seeds
        for loss in args.losses
    ]
    summary = compare(configs, out, args.progress)
    print(format_summary(summary))
    print(f"\nwritten: {out / SUMMARY}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    import torch

    from sdl.study import STUDY_LOSSES, run_study

    torch.set_num_threads(args.threads)  # several runs in a row: one thread contends least here
    out = Path(args.out or f"studies/{args.dataset}-{args.preset}")
    info = run_study(
        args.dataset,
        out,
        preset=args.preset,
        split_seed=args.split_seed,
        losses=tuple(args.losses or STUDY_LOSSES),
        ablations=not args.no_ablations,
        readme=Path(args.readme) if args.readme else None,
        progress=args.progress,
        only_finished=args.only_finished,
    )
    print((out / "study.md").read_text())
    print(f"written: {out} ({info['minutes']:.1f} min)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The embedded demo: every multi-label loss and bce on DEMO's dataset, without checkpoints."""
    out = Path(args.out)
    configs = [
        TrainConfig(
            dataset=DEMO["dataset"],
            loss=loss,
            epochs=args.epochs,
            seed=DEMO["seed"],
            max_embeddings=DEMO["max_embeddings"],
            save_checkpoint=False,
            out=str(out / f"{loss}-seed{DEMO['seed']}"),
        )
        for loss in loss_names(label_kind="multi")
    ]
    summary = compare(configs, out, args.progress)
    print(format_summary(summary))
    # Ship the UMAP maps with the demo so the dashboard opens without computing any.
    from sdl.projection import project_runs  # imported here: umap takes seconds to import

    project_runs(out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"\n{out}: {size / 1e6:.1f} MB")
    return 0


def run(args: argparse.Namespace) -> int:
    """Carry out the parsed command (``args.command``)."""
    if args.command == "datasets":
        return cmd_datasets()
    if args.command == "demo":
        return cmd_demo(args)
    if args.command == "compare":
        return cmd_compare(args)
    if args.command == "study":
        return cmd_study(args)
    out = Path(args.out or f"runs/{args.dataset}-{args.loss}-seed{args.seed}")
    config = config_from_args(args, args.loss, args.seed, out)
    run_dir = train(config, resume=args.resume, progress=args.progress)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 evaluates and reports
    run = runs.read_run(run_dir)
    print(json.dumps({m: run.metrics[m] for m in METRICS}, indent=2))
    print(f"written: {run_dir}")
    return 0
