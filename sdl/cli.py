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
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sdl import runs
from sdl.losses import compared_losses, loss_names, parse_loss_options
from sdl.options import Option
from sdl.train import (
    AMP_MODES,
    FIELD_OPTIONS,
    Stopped,
    TrainConfig,
    evaluate_random_encoder,
    train,
)

THREADS = Option("threads", int, 1, "torch threads", low=1)
METRICS = ("mAP", "micro_f1", "macro_f1", "knn_jaccard@10", "precision@10")
# The demo: small enough to build on a laptop CPU in a few minutes, big enough to separate losses.
# The demo: the setting where the spaces differed most by the relation metrics among those tried
# (README, "The embedded demo"), small enough to rebuild on a laptop CPU.
DEMO = {"dataset": "digits-mosaic", "epochs": 8, "max_embeddings": 1000, "seed": 0}
SUMMARY = "summary.csv"


def _dataset_names() -> list[str]:
    from sdl.data import DATASETS

    return list(DATASETS)


# --- argument types: each raises ArgumentTypeError with what was wrong ----------------------------
def _option_type(option: Option):
    """An argparse ``type`` that parses through ``option`` (the same bounds as TrainConfig)."""

    def parse(text: str) -> object:
        try:
            return option.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = option.name  # argparse names the type in its message
    return parse


def _key_value(text: str) -> tuple[str, object]:
    """KEY=VALUE; VALUE is read as JSON when it parses (numbers, true/false, null), else a string.

    Loss options are then parsed by the loss registry (so "False" is False); dataset options are
    checked by their loader.
    """
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
    known = loss_names(label_kind="multi")
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown loss(es) {unknown or text!r}; choose from {', '.join(known)}"
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
        names = loss_names()
        p.add_argument("--loss", required=True, choices=names, metavar="NAME",
                       help="one of: " + ", ".join(names))  # fmt: skip
    for name in ("epochs", "batch_size", "temperature", "lr", "weight_decay", "warmup_epochs"):
        option = FIELD_OPTIONS[name]
        p.add_argument("--" + name.replace("_", "-"), type=_option_type(option),
                       default=getattr(defaults, name), help=f"{option.help} ({option.accepts()})")  # fmt: skip
    p.add_argument(
        "--device", default=defaults.device, help="auto (cuda, else cpu), cpu, cuda, cuda:1"
    )
    p.add_argument("--amp", choices=AMP_MODES, default=defaults.amp)
    p.add_argument(
        "--encoder", choices=("auto", "cnn", "resnet18", "mlp"), default=defaults.encoder
    )
    for name in ("embed_dim", "views"):
        option = FIELD_OPTIONS[name]
        p.add_argument("--" + name.replace("_", "-"), type=_option_type(option),
                       default=getattr(defaults, name), help=f"{option.help} ({option.accepts()})")  # fmt: skip
    p.add_argument("--loss-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="option of the loss, e.g. dissimilarity=ratio (repeatable)")  # fmt: skip
    p.add_argument("--dataset-option", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="option of the dataset, e.g. n_train=2000 (repeatable)")  # fmt: skip
    p.add_argument("--max-embeddings", type=_option_type(FIELD_OPTIONS["max_embeddings"]),
                   default=defaults.max_embeddings)  # fmt: skip
    p.add_argument("--split-seed", type=_option_type(FIELD_OPTIONS["split_seed"]), default=None,
                   help="seed of the train/test split (default: the run's seed)")  # fmt: skip
    p.add_argument("--no-checkpoint", action="store_true", help="delete the checkpoint when done")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar and a line per epoch (default: the lines; the bar only on a terminal)")  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit code 2), not the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m sdl", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("datasets", help="list the datasets and whether they can be loaded here")

    p = sub.add_parser("train", help="train one run and evaluate it")
    _add_training_args(p, with_loss=True)
    p.add_argument("--seed", type=_option_type(FIELD_OPTIONS["seed"]), default=0)
    p.add_argument("--out", help="run folder (default runs/{dataset}-{loss}-seed{seed})")
    p.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint")

    p = sub.add_parser("compare", help="one run per loss and seed, then summary.csv")
    _add_training_args(p, with_loss=False)
    p.add_argument("--losses", type=_loss_list, default=loss_names(label_kind="multi"))
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
    p.add_argument(
        "--threads", type=_option_type(THREADS), default=1, help="torch threads (default 1)"
    )
    p.add_argument("--only-finished", action="store_true",
                   help="train nothing: tabulate the finished runs of a study cut short")  # fmt: skip
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)

    p = sub.add_parser("demo", help="build the dashboard's embedded demo runs")
    p.add_argument("--out", default="assets/demo")
    p.add_argument("--epochs", type=_option_type(FIELD_OPTIONS["epochs"]), default=DEMO["epochs"])
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    return parser


def config_from_args(args: argparse.Namespace, loss: str, seed: int, out: Path) -> TrainConfig:
    config = TrainConfig(
        dataset=args.dataset,
        loss=loss,
        loss_options=parse_loss_options(loss, dict(args.loss_option)),
        epochs=args.epochs,
        batch_size=args.batch_size,
        temperature=args.temperature,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs,
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


def train_argv(config: TrainConfig) -> list[str]:
    """The ``python -m sdl train`` arguments that rebuild ``config`` (the dashboard's jobs use it).

    The inverse of :func:`config_from_args`: parsing these arguments gives back the same config.
    """
    argv = ["train", "--dataset", config.dataset, "--loss", config.loss]
    for name in ("epochs", "batch_size", "temperature", "lr", "weight_decay", "warmup_epochs"):
        argv += ["--" + name.replace("_", "-"), repr(getattr(config, name))]
    argv += ["--seed", str(config.seed), "--device", config.device, "--amp", config.amp]
    argv += ["--encoder", config.encoder, "--embed-dim", str(config.embed_dim)]
    argv += ["--views", str(config.views), "--max-embeddings", str(config.max_embeddings)]
    if config.split_seed is not None:
        argv += ["--split-seed", str(config.split_seed)]
    for flag, options in (
        ("--loss-option", config.loss_options),
        ("--dataset-option", config.dataset_options),
    ):
        for key, value in options.items():
            argv += [flag, f"{key}={json.dumps(value)}"]
    if not config.save_checkpoint:
        argv.append("--no-checkpoint")
    argv += ["--out", str(config.run_dir())]
    return argv


# --- commands -------------------------------------------------------------------------------------
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; an expected error (a bad value, a missing file) is one line and exit code 2.

    A stopped run (SIGTERM) is one line and exit code 143. Anything else is a bug: its traceback
    is printed, followed by where the run folder keeps it (status.json), and the exit code is 1.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run_command(args)
    except (ValueError, OSError, runs.RunError) as exc:  # OSError: a full disk, a bad path
        parser.exit(2, f"{parser.prog}: error: {_one_line(exc)}\n")  # SystemExit(2)
    except Stopped as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 128 + 15
    except Exception:
        traceback.print_exc()
        out = getattr(args, "out", None) or _default_out(args)
        if out:
            print(
                f"{parser.prog}: unexpected error; the run folder {out} keeps it in "
                f"{runs.STATUS} (the traceback above is a bug worth reporting)",
                file=sys.stderr,
            )
        return 1
    return 2


def _one_line(exc: BaseException) -> str:
    """An error's message on one line (a file name or a loader's message may hold newlines)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _default_out(args: argparse.Namespace) -> str | None:
    if getattr(args, "command", None) != "train":
        return None
    return f"runs/{args.dataset}-{args.loss}-seed{args.seed}"


def run_command(args: argparse.Namespace) -> int:
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
