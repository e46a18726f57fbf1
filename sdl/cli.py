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
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sdl.options import Option

if TYPE_CHECKING:
    from sdl.train import TrainConfig

# torch and pandas take seconds to import (20 s and more on a busy 2-core machine), so this module
# imports neither: each command's arguments are built only for the command given (with what they
# need), and the commands themselves live in sdl.commands, imported once the arguments parse.
THREADS = Option("threads", int, 1, "torch threads", low=1)


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
    from sdl.losses import loss_names

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
    from sdl.losses import loss_names
    from sdl.train import AMP_MODES, FIELD_OPTIONS, TrainConfig

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


def _train_arguments(p: argparse.ArgumentParser) -> None:
    from sdl.train import FIELD_OPTIONS

    _add_training_args(p, with_loss=True)
    p.add_argument("--seed", type=_option_type(FIELD_OPTIONS["seed"]), default=0)
    p.add_argument("--out", help="run folder (default runs/{dataset}-{loss}-seed{seed})")
    p.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint")


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    from sdl.losses import loss_names

    _add_training_args(p, with_loss=False)
    p.add_argument("--losses", type=_loss_list, default=loss_names(label_kind="multi"))
    p.add_argument("--seeds", type=_seed_list, default=[0, 1, 2])
    p.add_argument("--out", required=True, help="folder of the runs and summary.csv")


def _study_arguments(p: argparse.ArgumentParser) -> None:
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


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    from sdl.commands import DEMO
    from sdl.train import FIELD_OPTIONS

    p.add_argument("--out", default="assets/demo")
    p.add_argument("--epochs", type=_option_type(FIELD_OPTIONS["epochs"]), default=DEMO["epochs"])
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)


#: Each command: its line in ``--help`` and what adds its arguments (None: it takes none).
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None] | None]] = {
    "datasets": ("list the datasets and whether they can be loaded here", None),
    "train": ("train one run and evaluate it", _train_arguments),
    "compare": ("one run per loss and seed, then summary.csv", _compare_arguments),
    "study": ("a fair multi-seed study of sdl, its baselines and ablations", _study_arguments),
    "demo": ("build the dashboard's embedded demo runs", _demo_arguments),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``only`` the parser whose arguments are built for
    that command alone (the others are listed by name: enough for ``--help`` and for an error)."""
    parser = _Parser(prog="python -m sdl", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if add_arguments is not None and only in (None, name):
            add_arguments(p)
    return parser


def config_from_args(args: argparse.Namespace, loss: str, seed: int, out: Path) -> TrainConfig:
    from sdl.losses import parse_loss_options
    from sdl.train import TrainConfig

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; an expected error (a bad value, a missing file) is one line and exit code 2.

    A stopped run (SIGTERM) is one line and exit code 143. Anything else is a bug: its traceback
    is printed, followed by where the run folder keeps it (status.json), and the exit code is 1.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=argv[0] if argv else "")
    args = parser.parse_args(argv)
    from sdl import commands, runs
    from sdl.train import Stopped

    try:
        return commands.run(args)
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
