"""``python -m sdl ...``: list datasets, train one run, compare losses over seeds, build the demo.

    python -m sdl datasets
    python -m sdl train --dataset mnist-mosaic --loss sdl --epochs 10 --out runs/sdl
    python -m sdl compare --dataset mnist-mosaic --losses sdl,all,any,jaccard,mulsupcon,bce \\
        --seeds 0,1,2 --out runs/compare
    python -m sdl demo --out assets/demo
    python -m sdl study --dataset yeast --preset quick --out studies/yeast --readme README.md

Under ``torchrun --nproc_per_node=N -m sdl train ...`` the processes share each batch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sdl import runs
from sdl.train import AMP_MODES, TRAIN_LOSSES, TrainConfig, evaluate_random_encoder, train

METRICS = ("mAP", "micro_f1", "macro_f1", "knn_jaccard@10", "precision@10")
# Every multi-label loss and the bce reference: what `compare` runs by default and the demo holds.
COMPARE_LOSSES = ("sdl", "all", "any", "jaccard", "mulsupcon", "bce")
# The demo: small enough to build on a laptop CPU in a few minutes, big enough to separate losses.
DEMO = {"dataset": "mnist-mosaic", "epochs": 6, "max_embeddings": 1000, "seed": 0}
SUMMARY = "summary.csv"


def _dataset_names() -> list[str]:
    from sdl.data import DATASETS

    return list(DATASETS)


# --- argument types: each raises ArgumentTypeError with what was wrong ----------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _finite_float(text: str, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and (value > 0 or (allow_zero and value == 0))):
        bound = ">= 0" if allow_zero else "> 0"
        raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
    return value


def _positive_float(text: str) -> float:
    return _finite_float(text, allow_zero=False)


def _nonnegative_float(text: str) -> float:
    return _finite_float(text, allow_zero=True)


def _key_value(text: str) -> tuple[str, object]:
    """KEY=VALUE; VALUE is read as JSON when it parses (numbers, true/false, null), else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def _loss_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in TRAIN_LOSSES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown loss(es) {unknown or text!r}; choose from {', '.join(TRAIN_LOSSES)}"
        )
    return names


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be integers like 0,1,2, got {text!r}"
        ) from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must be integers >= 0, got {text!r}")
    return seeds


def _add_training_args(p: argparse.ArgumentParser, with_loss: bool) -> None:
    defaults = TrainConfig()
    p.add_argument("--dataset", required=True, choices=_dataset_names(), metavar="NAME",
                   help="one of: " + ", ".join(_dataset_names()))  # fmt: skip
    if with_loss:
        p.add_argument("--loss", required=True, choices=TRAIN_LOSSES, metavar="NAME",
                       help="one of: " + ", ".join(TRAIN_LOSSES))  # fmt: skip
    p.add_argument("--epochs", type=_positive_int, default=defaults.epochs)
    p.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size)
    p.add_argument("--temperature", type=_positive_float, default=defaults.temperature)
    p.add_argument("--lr", type=_positive_float, default=defaults.lr)
    p.add_argument("--weight-decay", type=_nonnegative_float, default=defaults.weight_decay)
    p.add_argument(
        "--device", default=defaults.device, help="auto (cuda, else cpu), cpu, cuda, cuda:1"
    )
    p.add_argument("--amp", choices=AMP_MODES, default=defaults.amp)
    p.add_argument(
        "--encoder", choices=("auto", "cnn", "resnet18", "mlp"), default=defaults.encoder
    )
    p.add_argument("--embed-dim", type=_positive_int, default=defaults.embed_dim)
    p.add_argument("--views", type=_positive_int, default=defaults.views)
    p.add_argument("--loss-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="option of the loss, e.g. dissimilarity=ratio (repeatable)")  # fmt: skip
    p.add_argument("--dataset-option", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="option of the dataset, e.g. n_train=2000 (repeatable)")  # fmt: skip
    p.add_argument("--max-embeddings", type=_positive_int, default=defaults.max_embeddings)
    p.add_argument("--split-seed", type=int, default=None,
                   help="seed of the train/test split (default: the run's seed)")  # fmt: skip
    p.add_argument("--no-checkpoint", action="store_true", help="delete the checkpoint when done")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: only on a terminal)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sdl", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("datasets", help="list the datasets and whether they can be loaded here")

    p = sub.add_parser("train", help="train one run and evaluate it")
    _add_training_args(p, with_loss=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="run folder (default runs/{dataset}-{loss}-seed{seed})")
    p.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint")

    p = sub.add_parser("compare", help="one run per loss and seed, then summary.csv")
    _add_training_args(p, with_loss=False)
    p.add_argument("--losses", type=_loss_list, default=list(COMPARE_LOSSES))
    p.add_argument("--seeds", type=_seed_list, default=[0, 1, 2])
    p.add_argument("--out", required=True, help="folder of the runs and summary.csv")

    p = sub.add_parser("study", help="a fair multi-seed study of sdl, its baselines and ablations")
    p.add_argument("--dataset", required=True, choices=_dataset_names(), metavar="NAME")
    p.add_argument("--preset", default="quick", choices=("quick", "full"),
                   help="quick: about 10-20 min per dataset on 2 CPU cores; full: hours")  # fmt: skip
    p.add_argument("--out", help="study folder (default studies/{dataset}-{preset})")
    p.add_argument("--split-seed", type=int, default=0, help="fixes the data of every run")
    p.add_argument("--losses", type=_loss_list, default=None, help="sdl first (default: all)")
    p.add_argument("--no-ablations", action="store_true", help="skip the SDL ablations")
    p.add_argument("--readme", help="replace this file's <!-- study:DATASET --> block")
    p.add_argument("--threads", type=_positive_int, default=1, help="torch threads (default 1)")
    p.add_argument("--only-finished", action="store_true",
                   help="train nothing: tabulate the finished runs of a study cut short")  # fmt: skip
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)

    p = sub.add_parser("demo", help="build the dashboard's embedded demo runs")
    p.add_argument("--out", default="assets/demo")
    p.add_argument("--epochs", type=_positive_int, default=DEMO["epochs"])
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    return parser


def config_from_args(args: argparse.Namespace, loss: str, seed: int, out: Path) -> TrainConfig:
    config = TrainConfig(
        dataset=args.dataset,
        loss=loss,
        loss_options=dict(args.loss_option) if loss != "bce" else {},
        epochs=args.epochs,
        batch_size=args.batch_size,
        temperature=args.temperature,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=seed,
        device=args.device,
        amp=args.amp,
        encoder=args.encoder,
        embed_dim=args.embed_dim,
        views=args.views,
        out=str(out),
        dataset_options=dict(args.dataset_option),
        max_embeddings=args.max_embeddings,
        split_seed=args.split_seed,
        save_checkpoint=not args.no_checkpoint,
    )
    config.validate()
    return config


# --- commands -------------------------------------------------------------------------------------
def cmd_datasets() -> int:
    from sdl.data import dataset_table

    table = pd.DataFrame(dataset_table())
    columns = ["name", "kind", "available", "train", "test", "labels", "labels_per_item", "note"]
    table = table[[c for c in columns if c in table.columns]]
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
        reference = TrainConfig(**{**first.__dict__, "loss": "sdl", "loss_options": {}})
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
    """The embedded demo: every multi-label loss and bce on mnist-mosaic, without checkpoints."""
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
        for loss in COMPARE_LOSSES
    ]
    summary = compare(configs, out, args.progress)
    print(format_summary(summary))
    # Ship the UMAP maps with the demo so the dashboard opens without computing any.
    from sdl.projection import project_runs  # imported here: umap takes seconds to import

    project_runs(out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"\n{out}: {size / 1e6:.1f} MB")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "datasets":
        return cmd_datasets()
    if args.command == "demo":
        return cmd_demo(args)
    if args.command == "study":
        try:
            return cmd_study(args)
        except ValueError as exc:
            parser.error(str(exc))
    try:
        if args.command == "train":
            out = Path(args.out or f"runs/{args.dataset}-{args.loss}-seed{args.seed}")
            config = config_from_args(args, args.loss, args.seed, out)
        else:
            return cmd_compare(args)
    except ValueError as exc:  # a bad combination argparse cannot see (e.g. an unknown loss option)
        parser.error(str(exc))
    try:
        run_dir = train(config, resume=args.resume, progress=args.progress)
    except ValueError as exc:
        parser.error(str(exc))
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 evaluates and reports
    run = runs.read_run(run_dir)
    print(json.dumps({m: run.metrics[m] for m in METRICS}, indent=2))
    print(f"written: {run_dir}")
    return 0
