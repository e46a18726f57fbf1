"""The training loop, top to bottom: data, model, loss, optimiser, epochs, checkpoints, evaluation.

``train(TrainConfig(dataset="mnist-mosaic", loss="sdl"))`` writes a run folder (see
:mod:`sdl.runs`) and returns its path. One process runs on the CPU or one GPU (AMP on CUDA); under
``torchrun`` every process takes a shard of each batch, the features are gathered into the global
batch for the loss (``sdl.distributed.gather_batch``) and only rank 0 writes files.

Reproducibility: every random draw of epoch e (the shuffle and the augmentations) comes from
generators seeded by (seed, e, rank), and a checkpoint holds the model, optimiser, scaler, scheduler
and global RNG states, so ``resume=True`` after an interruption gives the same weights as a run
that was never interrupted (exactly, on the CPU).

Losses: the contrastive losses of :mod:`sdl.losses` on a projection head, and ``bce``, a linear
multi-label classifier on the same encoder trained with binary cross-entropy (the non-contrastive
reference). ``supcon`` needs one class per item, so it is refused on multi-label data (``all`` is
SupCon with each label set as a class). ``simclr`` ignores the labels.
"""

from __future__ import annotations

import contextlib
import math
import platform
import random
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

import sdl
from sdl import runs
from sdl.data.base import DatasetSplits, MultiLabelData
from sdl.distributed import Dist, setup_distributed
from sdl.losses import TEMPERATURE, build_loss, loss_class, loss_names, parse_loss_options
from sdl.options import Option

if TYPE_CHECKING:  # sdl.models imports torchvision and sdl.evaluate scipy and sklearn: seconds
    from sdl.models import Model

AMP_MODES = ("auto", "bf16", "fp16", "off")
HISTORY_COLUMNS = ["epoch", "loss", "lr", "seconds", "anchors_without_positives"]
# Config fields that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = ("out", "device", "eval_random", "save_checkpoint")


@dataclass
class TrainConfig:
    """Everything a run needs; config.json stores it with library versions and dataset facts."""

    dataset: str = "mnist-mosaic"
    loss: str = "sdl"
    loss_options: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 128
    temperature: float = 0.1
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.5  # linear warmup, then cosine decay to 0 (per step)
    seed: int = 0  # initialisation, batch order and augmentation
    split_seed: int | None = None  # the train/test split (and mosaics); None: the same as seed
    validation_fraction: float = 0.0  # > 0: hold out this share of train and evaluate on it
    device: str = "auto"  # "auto": cuda if available, else cpu
    amp: str = "auto"  # auto: bf16 on CUDA if supported, else fp16 with a GradScaler; off on CPU
    encoder: str = "auto"  # cnn / resnet18 for images, mlp for features
    embed_dim: int = 128
    views: int = 2
    out: str | None = None  # run folder; default runs/{dataset}-{loss}-seed{seed}
    dataset_options: dict = field(default_factory=dict)
    augment_options: dict = field(default_factory=dict)
    max_embeddings: int = 2000  # held-out items kept in embeddings.npz (seeded subset)
    max_eval_train: int = 10000  # training items used to fit the probe and as the kNN index
    snapshot_items: int = 500  # held-out items whose head embeddings snapshots.npz keeps per epoch
    save_checkpoint: bool = True  # False: the checkpoint is deleted once the run is done
    eval_random: bool = False  # also evaluate the untrained encoder (metrics["random_encoder"])

    def run_dir(self) -> Path:
        return Path(self.out or f"runs/{self.dataset}-{self.loss}-seed{self.seed}")

    @property
    def data_seed(self) -> int:
        """The seed of everything about the data: split, validation split and evaluation subsets."""
        return self.seed if self.split_seed is None else int(self.split_seed)

    def validate(self) -> None:
        """Raise ValueError for any value that cannot work (each setting's bounds: FIELD_OPTIONS)."""
        from sdl.models import ENCODERS

        for name, option in FIELD_OPTIONS.items():
            option.parse(getattr(self, name))
        for name, choices in (("amp", AMP_MODES), ("encoder", ENCODERS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError, ValueError):
                raise ValueError(
                    f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
                ) from None
        cls = loss_class(self.loss)
        if cls.label_kind == "single":
            raise ValueError(
                f"{self.loss} takes one class per item and these datasets are multi-label; use "
                f"one of {', '.join(loss_names(label_kind='multi'))}"
            )
        if not isinstance(self.loss_options, dict):
            raise ValueError(f"loss_options must be a dict, got {self.loss_options!r}")
        parse_loss_options(self.loss, self.loss_options)
        if int(self.views) < cls.min_views:
            raise ValueError(f"loss {self.loss!r} needs views >= {cls.min_views}, got {self.views}")

    def views_trained(self) -> int:
        """Views per item in a batch: a classifier (the bce reference) sees one."""
        return int(self.views) if loss_class(self.loss).contrastive else 1

    def build_loss(self):
        """The loss module of this run, with its options parsed and the run's temperature."""
        options = parse_loss_options(self.loss, self.loss_options)
        return build_loss(self.loss, temperature=self.temperature, **options)


#: the bounds of every numeric setting, in one place: the CLI and the dashboard's form use them too
FIELD_OPTIONS: dict[str, Option] = {
    "epochs": Option("epochs", int, 10, "passes over the training set", low=1),
    "batch_size": Option("batch_size", int, 128, "items per batch (all processes)", low=2),
    "temperature": Option(
        "temperature", float, 0.1, TEMPERATURE.help, low=TEMPERATURE.low, high=TEMPERATURE.high
    ),
    "lr": Option("lr", float, 2e-3, "peak learning rate (AdamW)", low=0.0, low_open=True),
    "weight_decay": Option("weight_decay", float, 1e-4, "AdamW weight decay", low=0.0),
    "warmup_epochs": Option("warmup_epochs", float, 0.5, "linear warm-up, in epochs", low=0.0),
    "seed": Option("seed", int, 0, "initialisation, batches and augmentation", low=0),
    "views": Option("views", int, 2, "augmented views of each item per batch", low=1),
    "embed_dim": Option("embed_dim", int, 128, "size of the projection head's output", low=1),
    "max_embeddings": Option("max_embeddings", int, 2000, "held-out items kept", low=1),
    "max_eval_train": Option("max_eval_train", int, 10000, "training items for the probe", low=10),
    "snapshot_items": Option(
        "snapshot_items", int, 500, "held-out items snapshotted per epoch (0: none)", low=0
    ),
    "validation_fraction": Option(
        "validation_fraction",
        float,
        0.0,
        "share of train held out for validation",
        low=0.0,
        high=1.0,
        high_open=True,
    ),
    "split_seed": Option(
        "split_seed", int, None, "the train/test split; none: the run's seed", low=0, nullable=True
    ),
}


# --- devices -------------------------------------------------------------------------------------
def check_device(choice: str) -> None:
    """Refuse a device this machine does not have (validate() only checks the spelling).

    Raises:
        ValueError: naming the device setting (``--device`` on the command line).
    """
    if choice == "auto":
        return
    device = torch.device(choice)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"device {choice!r} (--device) needs a CUDA GPU and none is available here; "
                "use --device cpu or --device auto"
            )
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device {choice!r} (--device): this machine has {count} GPU(s), cuda:0 to "
                f"cuda:{count - 1}"
            )
    elif device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {choice!r} (--device) is not supported; use cpu or cuda")


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for full precision. AMP runs only on CUDA."""
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


def autocast_context(dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


# --- randomness -----------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_generator(seed: int, epoch: int, rank: int, device: torch.device) -> torch.Generator:
    """The generator of every random draw of one epoch on one process."""
    return torch.Generator(device).manual_seed(seed * 1_000_003 + epoch * 1_009 + rank)


def rng_state() -> dict:
    """Global RNG states as tensors and primitives (loadable with weights_only=True)."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {
            "version": version,
            "state": torch.tensor(mt, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- data ------------------------------------------------------------------------------------------
def load_data(config: TrainConfig) -> DatasetSplits:
    """The splits a run trains and evaluates on: the dataset's split by ``config.data_seed``; with
    ``validation_fraction`` the held-out side is a validation split carved from train instead."""
    from sdl.data import load_dataset

    data = load_dataset(config.dataset, seed=config.data_seed, **config.dataset_options)
    if config.validation_fraction > 0:
        data = validation_splits(data, config.validation_fraction, config.data_seed)
    return data


def _take(part: MultiLabelData, rows: np.ndarray) -> MultiLabelData:
    return MultiLabelData(
        inputs=part.inputs[rows],
        labels=part.labels[rows],
        ids=part.ids[rows],
        label_names=part.label_names,
        kind=part.kind,
        thumbs=None if part.thumbs is None else np.asarray(part.thumbs)[rows],
        texts=None if part.texts is None else [part.texts[i] for i in rows],
    )


def validation_splits(data: DatasetSplits, fraction: float, seed: int) -> DatasetSplits:
    """(train minus a seeded ``fraction`` of it, that fraction as the held-out side); the test
    split is left out entirely, so choosing settings on the result never touches it.

    Raises:
        ValueError: if fraction is not in (0, 1) or leaves either side empty.
    """
    n = len(data.train)
    n_val = round(fraction * n)
    if not 0 < fraction < 1 or not 0 < n_val < n:
        raise ValueError(
            f"validation fraction {fraction} of {n} training items leaves a side empty"
        )
    # A generator of its own (offset from the split's), so the carve-out is not the test split's draw.
    val = np.sort(np.random.default_rng([seed, 7919]).choice(n, n_val, replace=False))
    rest = np.setdiff1d(np.arange(n), val)
    info = {**data.info, "validation_fraction": fraction}
    return DatasetSplits(
        data.name, _take(data.train, rest), _take(data.train, val), data.description, info
    )


def make_augmenter(kind: str, options: dict):
    from sdl.data.augment import make_augmenter as make

    return make(kind, **options)


def batches(n: int, batch_size: int, world: int, generator: torch.Generator) -> list[Tensor]:
    """Shuffled index batches of one epoch. Incomplete last batches are dropped (a contrastive
    batch should not shrink to a handful of items); a set smaller than one batch is one batch.
    Every batch has a multiple of ``world`` items so that each process gets an equal shard."""
    order = torch.randperm(n, generator=generator)
    size = min(batch_size, n) // world * world
    if size < 2 * world:
        raise ValueError(f"{n} training items cannot fill a batch for {world} process(es)")
    return [order[i : i + size] for i in range(0, n - size + 1, size)]


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# --- one step ---------------------------------------------------------------------------------------
def compute_loss(
    model: nn.Module,
    loss_fn: nn.Module,
    views: Tensor,
    labels: Tensor,
    dist: Dist,
) -> tuple[Tensor, float]:
    """Loss of one (local shard of a) batch; views (B, V, ...) and labels (B, C).

    Returns the loss and the number of anchors without positives (NaN for bce).
    """
    b, v = views.shape[:2]
    out = model(views.flatten(0, 1))  # (B*V, D) embeddings or (B*V, C) logits
    if not loss_fn.contrastive:  # a classifier: every view is an example of its label set
        return loss_fn(out, labels.repeat_interleave(v, 0)), float("nan")
    features = out.view(b, v, -1)  # (B, V, D)
    if dist.world > 1:
        from sdl.distributed import gather_batch

        features, labels = gather_batch(features, labels)
    detail = loss_fn.forward_detailed(features, labels)
    return detail.loss, float(detail.anchors_without_positives)


# --- files -----------------------------------------------------------------------------------------
def config_record(
    config: TrainConfig, data: DatasetSplits, dist: Dist, device: torch.device
) -> dict:
    import sklearn

    return {
        **asdict(config),
        "out": str(config.run_dir()),
        "kind": data.train.kind,
        "label_names": list(data.train.label_names),
        "input_shape": list(data.train.inputs.shape[1:]),
        "num_train": len(data.train),
        "num_test": len(data.test),
        "world_size": dist.world,
        "device_used": str(device),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "sklearn": sklearn.__version__,
            "sdl": sdl.__version__,
        },
    }


def check_resumable(stored: dict, config: TrainConfig) -> None:
    mine = asdict(config)
    changed = [
        k for k in mine if k not in RESUMABLE_CHANGES and k in stored and stored[k] != mine[k]
    ]
    if changed:
        detail = ", ".join(f"{k}: {stored[k]!r} -> {mine[k]!r}" for k in changed)
        raise ValueError(f"cannot resume with a different configuration ({detail})")


def check_run_folder(run_dir: Path, resume: bool) -> None:
    """Refuse an out folder that cannot hold this run, before anything is written into it.

    A file, an unwritable place, or (without ``resume``) a folder that holds files but no run
    (its files would be replaced: a checkpoint.pt or history.csv of something else) is refused.

    Raises:
        ValueError: naming the out folder and what is wrong.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"out folder {run_dir} is a file, not a folder; choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as exc:
        raise ValueError(
            f"cannot write the out folder {run_dir} ({exc.strerror or exc}); choose another --out"
        ) from None
    if resume or (run_dir / runs.CONFIG).exists():
        return
    others = [p.name for p in run_dir.iterdir() if not p.name.endswith(runs.TEMP_SUFFIX)]
    if others:
        shown = ", ".join(sorted(others)[:5])
        raise ValueError(
            f"out folder {run_dir} is not empty and holds no run ({shown}); training there would "
            "replace its files: choose an empty or new --out folder"
        )


def check_resume(run_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume a run that cannot be continued (a finished run whose checkpoint is gone).

    Raises:
        ValueError: saying why and what to do instead.
    """
    status, _ = runs.read_status(run_dir)
    if status and status.get("state") == "done" and not (run_dir / runs.CHECKPOINT).exists():
        raise ValueError(
            f"{run_dir} is a finished run without a checkpoint (save_checkpoint was off, "
            "--no-checkpoint): it cannot be resumed; train into another --out folder"
        )


def load_checkpoint(path: Path, config: TrainConfig) -> dict:
    """A checkpoint's state, checked: readable, with every part, at an epoch this run can have.

    Raises:
        RunError: the checkpoint is unreadable or inconsistent; the message says how to go on.
    """
    advice = (
        f"delete {path} to train this run again from the start, or train into another --out folder"
    )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated, foreign or tampered file
        raise runs.RunError(
            f"{path} is unreadable ({type(exc).__name__}: {str(exc)[:200]}); {advice}"
        ) from None
    parts = ("model", "optimizer", "scaler", "scheduler", "epoch", "history", "rng")
    missing = [k for k in parts if not isinstance(state, dict) or k not in state]
    if missing:
        raise runs.RunError(f"{path} is corrupt (no {', '.join(missing)}); {advice}")
    epoch = state["epoch"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= config.epochs:
        raise runs.RunError(
            f"{path} is corrupt (epoch {epoch!r}, the run has {config.epochs} epochs); {advice}"
        )
    if not isinstance(state["history"], list) or len(state["history"]) != epoch:
        raise runs.RunError(
            f"{path} is corrupt (its history does not match epoch {epoch}); {advice}"
        )
    return state


class Stopped(Exception):
    """The trainer was asked to stop (SIGTERM): status.json says so before the process ends."""


@contextlib.contextmanager
def stop_on_sigterm():
    """Turn SIGTERM into :class:`Stopped` while training, so the run records why it ended.

    Only the main thread can install a handler; elsewhere (a thread of a server) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Stopped("stopped by SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def save_checkpoint(path: Path, model: Model, opt, scaler, sched, epoch: int, history) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scaler": scaler.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": epoch,
        "history": history,
        "rng": rng_state(),
    }
    runs.write_with_atomic(path, lambda buf: torch.save(state, buf))


def write_history(run_dir: Path, history: list[dict]) -> None:
    runs.write_csv_atomic(run_dir / runs.HISTORY, pd.DataFrame(history, columns=HISTORY_COLUMNS))


def evaluate_model(model: Model, data: DatasetSplits, config: TrainConfig, device) -> tuple:
    """Held-out metrics of both frozen spaces, and each space's held-out embeddings.

    The two spaces: ``encoder``, the encoder's output, and ``head``, the head's output on it (the
    projection, where a contrastive loss acts; for bce, the classifier's logits, where its loss
    acts). The encoder runs once; the head is applied to its output.

    Returns:
        (metrics, {"encoder": (N_test, D), "head": (N_test, D')}). metrics holds one dict per space
        under "encoder" and "head", and the encoder's scalar metrics and relation profile also at
        the top level (the keys metrics.json had before both spaces were measured).
    """
    from sdl import evaluate

    model.eval()
    train_rows = evaluate.seeded_subset(len(data.train), config.max_eval_train, config.data_seed)
    train_enc = evaluate.embed(model.encode, data.train.inputs[train_rows], device)
    test_enc = evaluate.embed(model.encode, data.test.inputs, device)
    # The head runs on the encoder's output: one pass of the encoder serves both spaces.
    spaces = {
        "encoder": (train_enc, test_enc),
        "head": (
            evaluate.embed(model.head, train_enc, device),
            evaluate.embed(model.head, test_enc, device),
        ),
    }
    metrics = evaluate.metrics_record(spaces, data.train.labels[train_rows], data.test.labels)
    return metrics, {space: test for space, (_, test) in spaces.items()}


def write_embeddings(
    run_dir: Path, test_embs: dict[str, np.ndarray], data: DatasetSplits, cap: int, seed: int
):
    from sdl import evaluate

    rows = evaluate.seeded_subset(len(data.test), cap, seed)
    arrays = {
        "embeddings": test_embs["encoder"][rows].astype(np.float32),
        "head": test_embs["head"][rows].astype(np.float32),
        "labels": data.test.labels[rows].astype(np.uint8),
        "ids": data.test.ids[rows].astype(np.int64),
    }
    if data.test.thumbs is not None:
        arrays["thumbs"] = np.asarray(data.test.thumbs)[rows].astype(np.uint8)
    if data.test.texts is not None:
        arrays["texts"] = np.array([str(data.test.texts[i]) for i in rows], dtype=str)
    runs.write_npz_atomic(run_dir / runs.EMBEDDINGS, **arrays)


class Snapshots:
    """Head embeddings of a fixed seeded subset of held-out items after every epoch (epoch 0: the
    untrained model), float16, rewritten atomically as snapshots.npz each epoch."""

    def __init__(self, run_dir: Path, data: DatasetSplits, config: TrainConfig, device):
        from sdl import evaluate

        self.path = run_dir / runs.SNAPSHOTS
        self.rows = evaluate.seeded_subset(
            len(data.test), config.snapshot_items, config.data_seed + 1
        )
        self.inputs = data.test.inputs[self.rows]
        self.ids = data.test.ids[self.rows].astype(np.int64)
        self.device = device
        self.epochs: list[int] = []
        self.frames: list[np.ndarray] = []

    def resume(self, done_epochs: int) -> None:
        """Keep the stored frames of epochs 0..done_epochs (a resumed run redoes the later ones)."""
        try:
            stored = runs.read_snapshots(self.path.parent)
        except runs.RunError:
            return
        if not np.array_equal(stored["ids"], self.ids):
            return
        keep = stored["epochs"] <= done_epochs
        self.epochs = stored["epochs"][keep].tolist()
        self.frames = list(stored["embeddings"][keep])

    def add(self, model: Model, epoch: int) -> None:
        from sdl import evaluate

        was_training = model.training
        model.eval()  # batch norm in inference mode; no running statistic is updated
        frame = evaluate.embed(model.forward, self.inputs, self.device).astype(np.float16)
        model.train(was_training)
        self.epochs.append(epoch)
        self.frames.append(frame)
        runs.write_npz_atomic(
            self.path,
            embeddings=np.stack(self.frames),
            epochs=np.asarray(self.epochs, dtype=np.int64),
            ids=self.ids,
        )


def new_model(config: TrainConfig, data: DatasetSplits) -> Model:
    from sdl.models import build_model

    return build_model(
        data.train.kind,
        tuple(data.train.inputs.shape[1:]),
        encoder=config.encoder,
        embed_dim=config.embed_dim,
        head="projection" if loss_class(config.loss).contrastive else "classifier",
        num_labels=data.train.num_labels,
    )


def evaluate_random_encoder(config: TrainConfig, data: DatasetSplits | None = None) -> dict:
    """Metrics of the untrained encoder (the same seed and evaluation as a run): the floor."""
    config.validate()
    data = data if data is not None else load_data(config)
    _, device = setup_distributed(config.device)
    seed_everything(config.seed)
    model = new_model(config, data).to(device)
    return evaluate_model(model, data, config, device)[0]


# --- the loop ----------------------------------------------------------------------------------------
def train(
    config: TrainConfig,
    resume: bool = False,
    progress: bool | None = None,
    data: DatasetSplits | None = None,
    stop_after: int | None = None,
) -> Path:
    """Train, evaluate and write the run folder; return its path.

    Args:
        config: what to train.
        resume: continue from the folder's checkpoint (start afresh if there is none). Without it,
            a folder that already holds a run is refused.
        progress: True: a tqdm bar and one line per epoch on stderr; False: neither; None: the
            lines always and the bar only on a terminal.
        data: train on these splits instead of loading ``config.dataset``.
        stop_after: stop after this epoch as if interrupted (state stays "running"); for tests.

    Raises:
        ValueError: a bad configuration, or resuming with a different one.
        Any error of the run itself, after status.json says "failed" with the traceback.
    """
    config.validate()
    check_device(config.device)
    dist, device = setup_distributed(config.device)
    run_dir = config.run_dir()
    existing = (run_dir / runs.CONFIG).exists()
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()  # every process has looked before rank 0 writes config.json
    if existing and not resume:
        raise ValueError(f"{run_dir} already holds a run; pass resume=True or another out folder")
    if dist.main:
        check_run_folder(run_dir, resume)
    if resume and existing:
        check_resumable(runs.read_config(run_dir), config)
        check_resume(run_dir, config)
    if dist.main:
        runs.clean_temp_files(run_dir)  # what a killed writer left; this run is the only writer
    # progress: (a bar, one line per epoch). Off a terminal (a log file, the dashboard's job log)
    # a bar is noise, but the lines are how a reader sees that training moves.
    if progress is None:
        progress = (sys.stderr.isatty(), True)
    else:
        progress = (bool(progress), bool(progress))
    progress = (progress[0] and dist.main, progress[1] and dist.main)
    identity = runs.trainer_identity()

    def status(state: str, done_epochs: int, **extra: object) -> None:
        runs.write_status(
            run_dir, state, epoch=done_epochs, epochs=config.epochs, **identity, **extra
        )

    try:
        with stop_on_sigterm():
            return _train(config, resume, progress, data, stop_after, dist, device, status)
    except BaseException as exc:
        if dist.main and (run_dir / runs.CONFIG).exists():
            done_epochs = (runs.read_status(run_dir)[0] or {}).get("epoch") or 0
            # A full disk fails this write too: the error that ended the run is the one to raise.
            with contextlib.suppress(OSError):
                if isinstance(exc, Stopped):
                    status("failed", done_epochs, error=str(exc))
                else:
                    tail = "".join(traceback.format_exception(exc))[-4000:]
                    error = f"{type(exc).__name__}: {exc}"
                    status("failed", done_epochs, error=error, traceback=tail)
        raise
    finally:
        if dist.world > 1:
            import torch.distributed as tdist

            if tdist.is_initialized():
                tdist.destroy_process_group()


def _train(config, resume, progress, data, stop_after, dist, device, status) -> Path:
    """The body of :func:`train`, once the folder is checked; ``status`` writes status.json."""
    run_dir = config.run_dir()
    checkpoint_path = run_dir / runs.CHECKPOINT
    data = data if data is not None else load_data(config)
    runs.fault_point("loaded")
    if data.train.labels.shape[1] != data.test.labels.shape[1]:
        raise ValueError("train and test splits have different label sets")
    if dist.main:
        runs.write_json_atomic(run_dir / runs.CONFIG, config_record(config, data, dist, device))
    seed_everything(config.seed)

    # model, loss, optimiser, schedule, precision
    model = new_model(config, data).to(device)
    net: nn.Module = model
    if dist.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    loss_fn = config.build_loss()
    views = config.views_trained()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n_train = len(data.train)
    steps_per_epoch = len(batches(n_train, config.batch_size, dist.world, torch.Generator()))
    total_steps = steps_per_epoch * config.epochs
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total_steps // 2)

    def schedule(step: int) -> float:
        return lr_factor(step, total_steps, warmup)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    autocast = amp_dtype(config.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast == torch.float16)
    augment = make_augmenter(data.train.kind, config.augment_options)
    inputs = torch.from_numpy(np.ascontiguousarray(data.train.inputs, dtype=np.float32))
    labels_all = torch.from_numpy(data.train.labels.astype(np.float32))

    history: list[dict] = []
    start_epoch = 1
    snapshots = None
    if dist.main and config.snapshot_items > 0:
        snapshots = Snapshots(run_dir, data, config, device)
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, config)
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            sched.load_state_dict(state["scheduler"])
            set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise runs.RunError(
                f"{checkpoint_path} does not fit this run ({type(exc).__name__}: "
                f"{str(exc)[:200]}); delete it to train again from the start, or train "
                "into another --out folder"
            ) from None
        history = list(state["history"])
        start_epoch = int(state["epoch"]) + 1
    if snapshots is not None:
        snapshots.resume(start_epoch - 1)
        if not snapshots.epochs or snapshots.epochs[-1] != start_epoch - 1:
            snapshots.add(model, start_epoch - 1)  # epoch 0: the untrained model

    for epoch in range(start_epoch, config.epochs + 1):
        if dist.main:
            status("running", epoch - 1)
        started = time.perf_counter()
        net.train()
        order_gen = epoch_generator(config.seed, epoch, 0, torch.device("cpu"))
        aug_gen = epoch_generator(config.seed, epoch, dist.rank + 1, torch.device("cpu"))
        losses, no_pos = [], []
        bar = _progress(steps_per_epoch, epoch, config.epochs, progress[0])
        for idx in batches(n_train, config.batch_size, dist.world, order_gen):
            idx = idx[dist.rank :: dist.world]  # this process's shard of the global batch
            x = inputs[idx].to(device, non_blocking=True)
            y = labels_all[idx].to(device)
            views_x = torch.stack([augment(x, aug_gen) for _ in range(views)], 1)  # (B, V, ...)
            with autocast_context(autocast):
                loss, without = compute_loss(net, loss_fn, views_x, y, dist)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            losses.append(loss.detach())
            no_pos.append(without)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}")
            runs.fault_point(f"step:{epoch}")
        if bar is not None:
            bar.close()
        epoch_loss = float(torch.stack(losses).float().mean())
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(f"the loss became {epoch_loss} in epoch {epoch}")
        history.append(
            {
                "epoch": epoch,
                "loss": epoch_loss,
                "lr": float(opt.param_groups[0]["lr"]),
                "seconds": round(time.perf_counter() - started, 3),
                "anchors_without_positives": float(np.mean(no_pos)),
            }
        )
        if dist.main:
            write_history(run_dir, history)
            save_checkpoint(checkpoint_path, model, opt, scaler, sched, epoch, history)
            if snapshots is not None:
                snapshots.add(model, epoch)
            status("running", epoch)
            if progress[1]:
                row = history[-1]
                print(
                    f"epoch {epoch}/{config.epochs}  loss {row['loss']:.4f}  "
                    f"lr {row['lr']:.2e}  {row['seconds']:.1f}s",
                    file=sys.stderr,
                    flush=True,  # a pipe buffers: the job log shows each epoch as it ends
                )
        if stop_after is not None and epoch >= stop_after:
            return run_dir

    if dist.main:
        status("running", config.epochs, phase="evaluating")
        runs.fault_point("evaluating")
        metrics, test_embs = evaluate_model(model, data, config, device)
        if config.eval_random:
            metrics["random_encoder"] = evaluate_random_encoder(config, data)
        runs.write_json_atomic(run_dir / runs.METRICS, metrics)
        write_embeddings(run_dir, test_embs, data, config.max_embeddings, config.data_seed)
        if not config.save_checkpoint:
            checkpoint_path.unlink(missing_ok=True)
        status("done", config.epochs)
    return run_dir


def _progress(total: int, epoch: int, epochs: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", leave=False, file=sys.stderr)
