"""Forward+backward time and peak memory of every loss, against `supcon` and pytorch-metric-learning.

    python benchmarks/bench_losses.py                      # B in {256, 1024, 4096}, C in {10, 80, 1000}
    python benchmarks/bench_losses.py --quick              # fewer repeats, B up to 1024
    python benchmarks/bench_losses.py --device cuda --sizes 1024,8192

B counts views (B/2 samples with 2 views each), D = 128. Multi-hot labels hold about 3 labels per
sample; `supcon` and PML's SupConLoss get single-label ids (the argmax of each row) and `simclr` no
labels. Time is the median of several forward+backward runs after a warm-up; the losses take turns
run by run, so that load from other processes falls on all of them alike.

Peak memory: on CUDA, torch.cuda.max_memory_allocated above what was allocated before the run. On
CPU, torch's allocations are invisible to tracemalloc, so the script measures the process's peak
resident set (VmHWM, reset before each run through /proc/self/clear_refs) above the resident set at
the start of the run. For that to see every (N, N) buffer come and go, glibc must hand large blocks
straight back to the kernel, so memory is measured in a child process started with
MALLOC_MMAP_THRESHOLD_=65536 (which also turns glibc's adaptive threshold off); times come from this
process, with the allocator as usual. Linux only; elsewhere the memory column says "n/a".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytorch_metric_learning import losses as pml_losses

from sdl.losses import LOSSES, build_loss

VIEWS = 2
DIM = 128
MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"
PML = "pml-supcon"
TARGETS = {"sdl": ("supcon", 1.3), "supcon": (PML, 1.0)}


# --- measuring ---------------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else 0


def _can_track_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") > 0


def peak_memory_mib(run, device: torch.device) -> float | None:
    """Peak memory one call of ``run`` adds, in MiB (None where it cannot be measured)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    if device.type != "cpu" or not _can_track_rss():
        return None
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_kib("VmRSS")
    run()
    return (_status_kib("VmHWM") - before) / 1024


def median_seconds(run, device: torch.device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- the batch and the losses ------------------------------------------------------------------
def make_batch(views_total: int, classes: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    samples = views_total // VIEWS
    features = torch.randn(samples, VIEWS, DIM, generator=g)
    labels = (torch.rand(samples, classes, generator=g) < min(0.5, 3 / classes)).float()
    return features.to(device), labels.to(device)


def loss_runs(features: torch.Tensor, labels: torch.Tensor) -> dict[str, object]:
    """name -> a function running one forward+backward of that loss on this batch."""
    single = labels.argmax(1)  # (B,): one class id per sample for the single-label losses
    flat_single = single.repeat_interleave(VIEWS)  # (N,): PML wants one row per view
    pml = pml_losses.SupConLoss(temperature=0.07)

    def ours(name):
        loss_fn = build_loss(name)
        target = {"supcon": single, "simclr": None}.get(name, labels)

        def run():
            x = features.detach().requires_grad_(True)
            loss_fn(x, target).backward()

        return run

    def peer():
        x = features.detach().requires_grad_(True)
        pml(x.reshape(-1, DIM), flat_single).backward()

    runs = {name: ours(name) for name in LOSSES}
    runs[PML] = peer
    return runs


# --- the table ---------------------------------------------------------------------------------
def fmt_mem(mib: float | None) -> str:
    return "n/a" if mib is None else f"{mib:.0f}"


def fmt_ratio(value: float | None, base: float | None) -> str:
    return "n/a" if value is None or not base else f"{value / base:.2f}"


def measure_times(runs: dict, device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds per loss; the losses take turns so shared-machine load hits all alike."""
    for run in runs.values():
        run()  # warm-up: thread pools, allocator caches
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            samples[name].append(median_seconds(run, device, 1))
    return {name: statistics.median(t) for name, t in samples.items()}


def measure_memory(runs: dict, device: torch.device) -> dict[str, float | None]:
    mems = {}
    for name, run in runs.items():
        run()  # warm-up, so that one-off buffers are not counted
        mems[name] = peak_memory_mib(run, device)
    return mems


def memory_here(sizes, classes_list, device) -> dict[str, float | None]:
    """Peak memory per "size,classes,loss", measured in this process."""
    return {
        f"{size},{classes},{name}": mib
        for size in sizes
        for classes in classes_list
        for name, mib in measure_memory(
            loss_runs(*make_batch(size, classes, device)), device
        ).items()
    }


def memory_in_child(sizes, classes_list, device) -> dict[str, float | None]:
    """Peak memory per "size,classes,loss", measured in a child with glibc's mmap threshold fixed."""
    if device.type == "cuda":
        return memory_here(sizes, classes_list, device)
    if sys.platform != "linux":
        return {}
    command = [
        sys.executable, __file__, "--memory-json", "--device", str(device),
        "--sizes", ",".join(map(str, sizes)), "--classes", ",".join(map(str, classes_list)),
    ]  # fmt: skip
    env = dict(os.environ, **{MMAP_ENV: "65536"})
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def benchmark(sizes, classes_list, device, repeats) -> list[str]:
    memory = memory_in_child(sizes, classes_list, device)
    lines = [
        f"device: {device} ({torch.get_num_threads()} threads), D={DIM}, V={VIEWS}, "
        f"torch {torch.__version__}, median of {repeats} runs",
        "",
        "| B views | C | loss | ms | peak MiB | time / supcon | time / PML | mem / supcon | mem / PML |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    misses = []
    for size in sizes:
        for classes in classes_list:
            runs = loss_runs(*make_batch(size, classes, device))
            times = measure_times(runs, device, repeats)
            mems = {name: memory.get(f"{size},{classes},{name}") for name in runs}
            for name in runs:
                lines.append(
                    f"| {size} | {classes} | {name} | {times[name] * 1e3:.1f} | "
                    f"{fmt_mem(mems[name])} | {fmt_ratio(times[name], times['supcon'])} | "
                    f"{fmt_ratio(times[name], times[PML])} | "
                    f"{fmt_ratio(mems[name], mems['supcon'])} | {fmt_ratio(mems[name], mems[PML])} |"
                )
            for name, (base, limit) in TARGETS.items():
                ratio = times[name] / times[base]
                if ratio > limit:
                    misses.append(f"B={size} C={classes}: {name} / {base} = {ratio:.2f} > {limit}")
            print(f"done B={size} C={classes}", file=sys.stderr, flush=True)
    lines += ["", "targets: sdl <= 1.3 x supcon, supcon <= 1.0 x PML SupConLoss"]
    lines += [f"missed: {m}" for m in misses] or ["all targets met"]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--sizes", default=None, help="comma-separated B (views), e.g. 256,1024")
    parser.add_argument("--classes", default="10,80,1000", help="comma-separated C")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per loss")
    parser.add_argument("--quick", action="store_true", help="B up to 1024 and 3 repeats")
    parser.add_argument("--memory-json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    default_sizes = "256,1024" if args.quick else "256,1024,4096"
    sizes = [int(s) for s in (args.sizes or default_sizes).split(",")]
    classes_list = [int(c) for c in args.classes.split(",")]
    if args.memory_json:
        print(json.dumps(memory_here(sizes, classes_list, device)))
        return
    repeats = args.repeats or (3 if args.quick else 5)
    print("\n".join(benchmark(sizes, classes_list, device, repeats)))


if __name__ == "__main__":
    main()
