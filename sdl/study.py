"""A fair multi-seed study of SDL against its baselines: ``python -m sdl study``.

The protocol (docs/method.md, "Measuring what the weights do to a space"):

1. The data are fixed by ``split_seed``: every run of a study sees the same train/test split (and
   the same mosaics); a run's ``seed`` varies only initialisation, batch order and augmentation.
2. Temperature selection: each contrastive loss trains once (the first seed) per temperature of a
   small grid on a validation split carved from train (``validation_fraction``); the temperature
   with the best validation probe mAP (encoder space) is kept. These runs are also the temperature
   sweep. The test split is not touched here.
3. The comparison: every loss (and bce) with its chosen temperature, once per seed, on the test
   split; the SDL ablations with SDL's temperature, on the same seeds.
4. Tables: mean, std and a 95% t interval per metric over seeds (:func:`sdl.evaluate.seed_summary`),
   and for each baseline the per-seed paired difference sdl - baseline with a 95% t interval and
   a verdict (win / tie / loss, :func:`sdl.evaluate.paired_difference`).

Everything is written under the study folder: ``runs/`` (one run folder per run; finished runs are
skipped on a rerun, interrupted ones resumed), ``study.json`` (settings and chosen temperatures),
and the tables ``summary``, ``paired`` and ``temperature`` as CSV and Markdown.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from sdl import evaluate, runs
from sdl.losses import SDLoss, loss_class, loss_names
from sdl.train import TrainConfig, load_data, train

#: The reference every other loss is paired against (the paired differences are sdl - each other).
REFERENCE = SDLoss.name
#: The losses compared: every multi-label loss in the registry, the reference first.
STUDY_LOSSES = (REFERENCE, *(n for n in loss_names(label_kind="multi") if n != REFERENCE))
#: The SDL ablations: name -> sdl loss options.
ABLATIONS = {
    "sdl:ks-only": {"components": "similarity"},
    "sdl:kd-only": {"components": "dissimilarity"},
    "sdl:kd-ratio": {"dissimilarity": "ratio"},
    "sdl:ks-jaccard": {"similarity": "jaccard"},
    "sdl:symmetric": {"symmetric": True},
}
#: Metrics of the tables: (column name, path into metrics.json).
STUDY_METRICS = (
    ("encoder mAP", ("encoder", "mAP")),
    ("encoder kNN-J@10", ("encoder", "knn_jaccard@10")),
    ("head mAP", ("head", "mAP")),
    ("head kNN-J@10", ("head", "knn_jaccard@10")),
    ("head AUC R2>R5", ("head", "relation_auc", "R2>R5")),
    ("head AUC R2>R4", ("head", "relation_auc", "R2>R4")),
    ("head AUC R4>R5", ("head", "relation_auc", "R4>R5")),
    ("head rho SD", ("head", "sd_agreement", "sd")),
    ("encoder AUC R2>R5", ("encoder", "relation_auc", "R2>R5")),
    ("encoder rho SD", ("encoder", "sd_agreement", "sd")),
)
SELECT_METRIC = ("encoder", "mAP")


@dataclass(frozen=True)
class Preset:
    """How big a study is. ``epochs`` and ``dataset_options`` are per dataset (key "*": others)."""

    seeds: tuple[int, ...]
    temperatures: tuple[float, ...]
    epochs: dict = field(default_factory=dict)
    dataset_options: dict = field(default_factory=dict)
    # Rough seconds per epoch on this project's 2-core CPU, for the up-front time estimate.
    seconds_per_epoch: dict = field(default_factory=dict)
    ablation_seeds: int | None = None  # the ablations run on the first this many seeds (None: all)

    @property
    def seeds_of_ablations(self) -> tuple[int, ...]:
        return self.seeds[: self.ablation_seeds] if self.ablation_seeds else self.seeds

    def epochs_for(self, dataset: str) -> int:
        return int(self.epochs.get(dataset, self.epochs["*"]))

    def options_for(self, dataset: str) -> dict:
        return dict(self.dataset_options.get(dataset, {}))


PRESETS = {
    # About 10-20 minutes per dataset on 2 CPU cores.
    "quick": Preset(
        seeds=(0, 1, 2, 3, 4),
        temperatures=(0.05, 0.1, 0.2),
        epochs={"yeast": 8, "mnist-mosaic": 3, "hpo": 3, "*": 4},
        dataset_options={"mnist-mosaic": {"n_train": 1000, "n_test": 500}},
        seconds_per_epoch={"yeast": 1.5, "mnist-mosaic": 4.0, "hpo": 6.0, "*": 4.0},
        ablation_seeds=3,
    ),
    # Hours on a CPU; minutes on a GPU.
    "full": Preset(
        seeds=tuple(range(10)),
        temperatures=(0.05, 0.07, 0.1, 0.2, 0.5),
        epochs={"yeast": 40, "mnist-mosaic": 10, "hpo": 15, "*": 10},
        seconds_per_epoch={"yeast": 1.5, "mnist-mosaic": 16.0, "hpo": 25.0, "*": 16.0},
    ),
}


@dataclass
class Plan:
    """Every run of a study, by stage."""

    select: dict[tuple[str, float], TrainConfig]
    compare: dict[tuple[str, int], TrainConfig]  # (loss or ablation name, seed)


def _name(loss: str, temperature: float) -> str:
    return f"{loss.replace(':', '-')}-t{temperature:g}"


def base_config(dataset: str, preset: Preset, split_seed: int, **overrides) -> TrainConfig:
    values = {
        "dataset": dataset,
        "epochs": preset.epochs_for(dataset),
        "split_seed": split_seed,
        "dataset_options": preset.options_for(dataset),
        "save_checkpoint": False,
        "max_embeddings": 1000,
        **overrides,
    }
    return TrainConfig(**values)


def selection_plan(
    base: TrainConfig, preset: Preset, out: Path, losses: tuple[str, ...], fraction: float
) -> dict[tuple[str, float], TrainConfig]:
    plan = {}
    for loss in losses:
        if not loss_class(loss).contrastive:
            continue  # a classifier has no temperature
        for t in preset.temperatures:
            plan[(loss, t)] = replace(
                base,
                loss=loss,
                temperature=t,
                seed=preset.seeds[0],
                validation_fraction=fraction,
                out=str(out / "select" / _name(loss, t)),
            )
    return plan


def compare_plan(
    base: TrainConfig,
    preset: Preset,
    out: Path,
    losses: tuple[str, ...],
    temperatures: dict[str, float],
    ablations: bool,
) -> dict[tuple[str, int], TrainConfig]:
    # Every loss on every seed first, then the ablations: a study cut short still has the baselines.
    groups = [[(loss, loss, {}) for loss in losses]]
    if ablations:
        groups.append([(name, REFERENCE, options) for name, options in ABLATIONS.items()])
    plan = {}
    for number, entries in enumerate(groups):
        for seed in preset.seeds if number == 0 else preset.seeds_of_ablations:
            for name, loss, options in entries:
                plan[(name, seed)] = replace(
                    base,
                    loss=loss,
                    loss_options=dict(options),
                    temperature=temperatures.get(loss, base.temperature),
                    seed=seed,
                    out=str(out / "runs" / f"{name.replace(':', '-')}-seed{seed}"),
                )
    return plan


def _finished(config: TrainConfig) -> dict | None:
    run_dir = config.run_dir()
    if not (run_dir / runs.CONFIG).exists():
        return None
    run = runs.read_run(run_dir)
    return run.metrics if run.state == "done" and run.metrics is not None else None


def ensure_run(config: TrainConfig, data_cache: dict) -> dict:
    """The metrics of ``config``'s run: read when it is done, else trained (or resumed)."""
    metrics = _finished(config)
    if metrics is not None:
        return metrics
    key = config.validation_fraction
    if key not in data_cache:
        data_cache[key] = load_data(config)
    train(config, resume=True, progress=False, data=data_cache[key])
    metrics = _finished(config)
    if metrics is None:
        raise RuntimeError(f"{config.run_dir()}: the run ended without metrics")
    return metrics


def metric_value(metrics: dict, path: tuple[str, ...]) -> float:
    value: object = metrics
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return math.nan
        value = value[key]
    return math.nan if value is None else float(value)


def estimated_seconds(preset: Preset, dataset: str, n_runs: int) -> float:
    per_epoch = preset.seconds_per_epoch.get(dataset, preset.seconds_per_epoch.get("*", 5.0))
    return n_runs * (preset.epochs_for(dataset) * per_epoch + 8.0)  # + start and evaluation


# --- tables ------------------------------------------------------------------------------------------
def temperature_table(select_metrics: dict[tuple[str, float], dict]) -> pd.DataFrame:
    rows = [
        {"loss": loss, "temperature": t, "validation mAP": metric_value(m, SELECT_METRIC)}
        for (loss, t), m in select_metrics.items()
    ]
    table = pd.DataFrame(rows).pivot(index="loss", columns="temperature", values="validation mAP")
    table.columns = [f"tau={t:g}" for t in table.columns]
    return table.reset_index()


def choose_temperatures(select_metrics: dict[tuple[str, float], dict]) -> dict[str, float]:
    """Per loss, the temperature with the best validation mAP (the lower one on a tie)."""
    best: dict[str, tuple[float, float]] = {}
    for (loss, t), metrics in sorted(select_metrics.items()):
        score = metric_value(metrics, SELECT_METRIC)
        if loss not in best or score > best[loss][0]:
            best[loss] = (score, t)
    return {loss: t for loss, (_, t) in best.items()}


def summary_table(values: dict[str, dict[int, dict]]) -> pd.DataFrame:
    """One row per loss or ablation: n and, per metric, mean, std and the 95% interval."""
    rows = []
    for name, by_seed in values.items():
        row: dict = {"loss": name, "seeds": len(by_seed)}
        for column, path in STUDY_METRICS:
            s = evaluate.seed_summary([metric_value(m, path) for m in by_seed.values()])
            row.update(
                {
                    f"{column} mean": s["mean"],
                    f"{column} std": s["std"],
                    f"{column} ci_low": s["ci_low"],
                    f"{column} ci_high": s["ci_high"],
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def paired_table(values: dict[str, dict[int, dict]], reference: str = REFERENCE) -> pd.DataFrame:
    """sdl - other per seed (paired by seed), for every other loss or ablation and metric."""
    rows = []
    ours = values[reference]
    for name, by_seed in values.items():
        if name == reference:
            continue
        seeds = sorted(set(ours) & set(by_seed))
        for column, path in STUDY_METRICS:
            d = evaluate.paired_difference(
                [metric_value(ours[s], path) for s in seeds],
                [metric_value(by_seed[s], path) for s in seeds],
            )
            rows.append({"vs": name, "metric": column, **d})
    return pd.DataFrame(rows)


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def summary_markdown(summary: pd.DataFrame, columns: tuple[str, ...]) -> str:
    lines = [
        "| loss | seeds | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for _, row in summary.iterrows():
        cells = [
            f"{_fmt(row[f'{c} mean'])} ± {_fmt(row[f'{c} std'])}".replace(" ± –", "")
            for c in columns
        ]
        lines.append(f"| {row['loss']} | {int(row['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_markdown(paired: pd.DataFrame, columns: tuple[str, ...]) -> str:
    shown = paired[paired["metric"].isin(columns)]
    names = list(dict.fromkeys(shown["vs"]))
    lines = ["| sdl vs | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name in names:
        cells = []
        for c in columns:
            r = shown[(shown["vs"] == name) & (shown["metric"] == c)].iloc[0]
            cells.append(
                f"{r['mean']:+.3f} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] {r['verdict']}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def frame_markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|---" * len(frame.columns) + "|"]
    for _, row in frame.iterrows():
        lines.append(
            "| " + " | ".join(_fmt(v) if isinstance(v, float) else str(v) for v in row) + " |"
        )
    return "\n".join(lines)


MAIN_COLUMNS = (
    "encoder mAP",
    "head mAP",
    "encoder kNN-J@10",
    "head kNN-J@10",
    "head AUC R2>R5",
    "head AUC R2>R4",
    "head AUC R4>R5",
    "head rho SD",
)
PAIRED_COLUMNS = ("encoder mAP", "head mAP", "head kNN-J@10", "head AUC R2>R5", "head rho SD")


def study_markdown(name: str, info: dict, summary, paired, temperatures) -> str:
    """The study's tables as one Markdown block (what the README quotes)."""
    chosen = ", ".join(f"{k} {v:g}" for k, v in info["temperatures"].items())
    took = f"{info['minutes']:.0f} min here)."
    if info.get("only_finished"):
        took = "tabulated from the finished runs: the 'seeds' column says how many each has)."
    return "\n\n".join(
        [
            f"`python -m sdl study --dataset {info['dataset']} --preset {info['preset']}` "
            f"(split seed {info['split_seed']}, seeds {', '.join(map(str, info['seeds']))}, "
            f"{info['epochs']} epochs; temperatures chosen on a validation split: {chosen}; "
            + took,
            "Mean ± std over seeds, held-out split:\n\n" + summary_markdown(summary, MAIN_COLUMNS),
            "sdl minus each other loss, paired by seed: mean [95% t interval] and verdict:\n\n"
            + paired_markdown(paired, PAIRED_COLUMNS),
            "Temperature sweep (validation mAP, encoder, first seed):\n\n"
            + frame_markdown(temperatures),
        ]
    )


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the block between ``<!-- study:NAME -->`` and ``<!-- /study:NAME -->`` replaced.

    Raises:
        ValueError: if the markers are missing.
    """
    pattern = re.compile(
        rf"(<!-- study:{re.escape(name)} -->)\n?.*?\n?(<!-- /study:{re.escape(name)} -->)", re.S
    )
    if not pattern.search(text):
        raise ValueError(f"no block <!-- study:{name} --> ... <!-- /study:{name} --> to replace")
    return pattern.sub(lambda m: f"{m.group(1)}\n{body}\n{m.group(2)}", text, count=1)


def write_table(folder: Path, name: str, frame: pd.DataFrame, markdown: str) -> None:
    runs.write_csv_atomic(folder / f"{name}.csv", frame)
    runs.write_bytes_atomic(folder / f"{name}.md", (markdown + "\n").encode())


def run_study(
    dataset: str,
    out: Path,
    preset: str = "quick",
    split_seed: int = 0,
    losses: tuple[str, ...] = STUDY_LOSSES,
    ablations: bool = True,
    validation_fraction: float = 0.2,
    readme: Path | None = None,
    progress: bool = True,
    only_finished: bool = False,
) -> dict:
    """Run (or finish) a study and write its tables; see the module docstring.

    Args:
        dataset: a dataset name.
        out: the study folder.
        preset: a key of :data:`PRESETS`.
        split_seed: fixes the data of every run.
        losses: compared losses; must start with "sdl".
        ablations: also run the SDL ablations.
        validation_fraction: share of train held out to choose temperatures.
        readme: a Markdown file whose ``<!-- study:{dataset} -->`` block gets the tables.
        progress: a progress bar on stderr.
        only_finished: train nothing; tabulate the finished runs (a study cut short). The tables
            then say how many seeds each loss has.

    Returns:
        study.json's content (settings, chosen temperatures, minutes).

    Raises:
        ValueError: an unknown preset, losses not starting with sdl, or a missing README block.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {tuple(PRESETS)}, got {preset!r}")
    if not losses or losses[0] != REFERENCE:
        raise ValueError(f"losses must start with {REFERENCE!r} (the reference), got {losses!r}")
    spec = PRESETS[preset]
    base = base_config(dataset, spec, split_seed)
    base.validate()
    if readme is not None:
        replace_block(
            Path(readme).read_text(), dataset, ""
        )  # a missing block fails before training
    out = Path(out)
    started = time.perf_counter()
    select = selection_plan(base, spec, out, losses, validation_fraction)
    n_compare = len(spec.seeds) * len(losses)
    n_compare += len(spec.seeds_of_ablations) * len(ABLATIONS) if ablations else 0
    total = len(select) + n_compare
    minutes = estimated_seconds(spec, dataset, total) / 60
    print(
        f"study {dataset} ({preset}): {total} runs, about {minutes:.0f} min on 2 CPU cores "
        f"(finished runs under {out} are skipped)",
        file=sys.stderr,
    )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"study {dataset}", file=sys.stderr)
    data_cache: dict = {}

    def step(config: TrainConfig) -> dict | None:
        metrics = _finished(config) if only_finished else ensure_run(config, data_cache)
        if bar is not None:
            bar.update(1)
        return metrics

    select_metrics = {key: m for key, c in select.items() if (m := step(c)) is not None}
    temperatures = choose_temperatures(select_metrics)
    plan = compare_plan(base, spec, out, losses, temperatures, ablations)
    values: dict[str, dict[int, dict]] = {}
    for (name, seed), config in plan.items():
        metrics = step(config)
        if metrics is not None:
            values.setdefault(name, {})[seed] = metrics
    if bar is not None:
        bar.close()

    info = {
        "dataset": dataset,
        "preset": preset,
        "split_seed": split_seed,
        "seeds": list(spec.seeds),
        "epochs": spec.epochs_for(dataset),
        "dataset_options": spec.options_for(dataset),
        "validation_fraction": validation_fraction,
        "temperature_grid": list(spec.temperatures),
        "temperatures": temperatures,
        "losses": list(losses),
        "ablations": list(ABLATIONS) if ablations else [],
        "ablation_seeds": list(spec.seeds_of_ablations) if ablations else [],
        "minutes": (time.perf_counter() - started) / 60,
        "only_finished": only_finished,
    }
    previous = out / "study.json"
    if previous.is_file():  # a rerun that only read finished runs keeps the first run's time
        info["minutes"] = max(info["minutes"], json.loads(previous.read_text()).get("minutes", 0))
    summary = summary_table(values)
    paired = paired_table(values)
    temps = temperature_table(select_metrics)
    write_table(out, "summary", summary, summary_markdown(summary, MAIN_COLUMNS))
    write_table(out, "paired", paired, paired_markdown(paired, PAIRED_COLUMNS))
    write_table(out, "temperature", temps, frame_markdown(temps))
    markdown = study_markdown(dataset, info, summary, paired, temps)
    runs.write_bytes_atomic(out / "study.md", (markdown + "\n").encode())
    runs.write_json_atomic(out / "study.json", info)
    if readme is not None:
        readme = Path(readme)
        runs.write_bytes_atomic(
            readme, replace_block(readme.read_text(), dataset, markdown).encode()
        )
    return info
