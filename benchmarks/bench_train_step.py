"""Training throughput (images/s) of the default run, with the blockwise loss and with the previous
dense one (tests/dense_reference.py), timed in one process, steps taking turns.

    python benchmarks/bench_train_step.py              # default TrainConfig: mnist-mosaic, sdl, batch 128, V = 2
    python benchmarks/bench_train_step.py --steps 20 --batch-size 512

One step is what sdl.train.train does per batch: augment V views, forward through the default
model, the loss (sdl.train.compute_loss), backward, AdamW step. Images/s counts samples (mosaics),
not views: batch_size / the median step time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import dense_reference  # noqa: E402

from sdl import train  # noqa: E402
from sdl.losses import build_loss  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per loss")
    parser.add_argument("--batch-size", type=int, default=None, help="default: TrainConfig's")
    args = parser.parse_args(argv)

    config = train.TrainConfig()
    if args.batch_size:
        config.batch_size = args.batch_size
    data = train.load_data(config)
    augment = train.make_augmenter(data.train.kind, config.augment_options)
    inputs = torch.from_numpy(np.ascontiguousarray(data.train.inputs, dtype=np.float32))
    labels = torch.from_numpy(data.train.labels.astype(np.float32))
    losses = {
        "blockwise": build_loss(config.loss, temperature=config.temperature),
        "dense (before)": dense_reference.build_loss(config.loss, temperature=config.temperature),
    }
    models = {}
    for name in losses:
        torch.manual_seed(config.seed)
        model = train.new_model(config, data)
        models[name] = (model, torch.optim.AdamW(model.parameters(), lr=config.lr))
    gen = torch.Generator().manual_seed(0)
    dist = train.Dist()

    def step(name: str) -> float:
        model, opt = models[name]
        idx = torch.randint(len(inputs), (config.batch_size,), generator=gen)
        start = time.perf_counter()
        x = torch.stack([augment(inputs[idx], gen) for _ in range(config.views)], 1)
        loss, _ = train.compute_loss(model, losses[name], x, labels[idx], dist)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    for name in losses:
        step(name)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in losses}
    for _ in range(args.steps):
        for name in losses:
            times[name].append(step(name))
    base = statistics.median(times["dense (before)"])
    print(
        f"{config.dataset}, loss {config.loss}, batch {config.batch_size} x {config.views} views, "
        f"{torch.get_num_threads()} threads, median of {args.steps} steps"
    )
    print("\n| loss path | ms / step | images / s | time / before |\n|---|---|---|---|")
    for name, t in times.items():
        median = statistics.median(t)
        print(
            f"| {name} | {median * 1e3:.0f} | {config.batch_size / median:.0f} | "
            f"{median / base:.2f} |"
        )


if __name__ == "__main__":
    main()
