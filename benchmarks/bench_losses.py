"""Forward+backward time and peak memory of every loss, against `supcon`, pytorch-metric-learning's
SupConLoss, the previous dense implementation and the matmul floor, all measured in one process.

    python benchmarks/bench_losses.py --quick        # N in {1024, 4096}, V in {1, 2}, C in {10, 80, 1000, 10000}
    python benchmarks/bench_losses.py                # adds N = 16384 (over an hour on 2 cores)
    python benchmarks/bench_losses.py --large        # sdl at 32,768 and 65,536 views, 10,000 labels: the
                                                     # loss, and a whole training step of a small head
    python benchmarks/bench_losses.py --sizes 4096 --views 1 --classes 80

N counts views (N / V samples with V views each), D = 128. Multi-hot labels hold about 3 labels
per sample out of C; for C >= 1000 they are drawn and held as :class:`sdl.relations.SparseLabels`
(CSR), as a user with thousands of labels would hold them (the dense path gets them densified). `supcon` and PML get single-label ids
(the argmax of each row), `simclr` no labels (it needs V >= 2).

Baselines, in the same process and the same turns:
- `pml-supcon`: pytorch_metric_learning.losses.SupConLoss on the (N, D) views.
- `dense-sdl`: tests/dense_reference.py, the dense implementation this project had before its
  blockwise core (full (N, N) weights and logits, (B, B) label product).
- `floor`: the three (N, N, D) matmuls any exact loss of this family needs, z z^T and the two
  products of the backward, G z and G^T z, timed on their own; `floor+labels` adds the label
  product the SD weights need, Y Y^T (dense matmul for C <= 80, CSR x CSR product above).
PML and the dense path are skipped (the table says "skipped") where their N x N buffers would need
more than --budget-gib (default 8): PML holds about ten float32 N x N matrices, the dense path six;
the dense path is also skipped where its dense label product passes 2^34 multiply-adds.

Time: the median of --repeats runs (default: 15 up to N = 4096, where a run takes well under a
second and three runs on shared cores left ratios off by 30%; 3 above); the losses take turns run
by run so that load from other processes falls on all of them alike; one warm-up run each at the
first point.

Peak memory: torch's CPU allocations are invisible to tracemalloc, so each point is measured in a
child process that reads the kernel's peak resident set, VmHWM, reset before every run through
/proc/self/clear_refs ("5"), minus the resident set just before the run. For VmHWM to see every
buffer come and go, glibc must hand large blocks straight back to the kernel, so the child runs with
MALLOC_MMAP_THRESHOLD_=65536 (which also turns off glibc's adaptive threshold). Linux only. The
features, labels and model-free inputs exist before the run and are not counted.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import dense_reference  # noqa: E402  (tests/dense_reference.py: the previous dense path)
from pytorch_metric_learning import losses as pml_losses  # noqa: E402

from sdl import relations  # noqa: E402
from sdl.losses import build_loss, loss_names  # noqa: E402

DIM = 128
MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"
PML, DENSE, FLOOR, FLOOR_LABELS = "pml-supcon", "dense-sdl", "floor", "floor+labels"
TRAIN_STEP = "sdl-train-step"  # only when asked for (--large): a whole optimiser step
SPARSE_FROM = 1000  # C from which the project's losses get CSR labels
# name -> (baseline, largest ratio): the targets
TARGETS = {"sdl": ("supcon", 1.15), "supcon": (PML, 0.5)}
FLOOR_TARGET = 2.0  # sdl <= 2 x floor+labels for N >= 4096


# --- measuring ---------------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else 0


def peak_mib(run) -> float | None:
    """Peak resident memory one call of ``run`` adds, in MiB (None where it cannot be read)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    except OSError:
        return None
    before = _status_kib("VmRSS")
    run()
    return (_status_kib("VmHWM") - before) / 1024


# --- the batch and the runs --------------------------------------------------------------------
def make_batch(views_total: int, views: int, classes: int, seed: int = 0):
    """(B, V, D) features and labels: dense (B, C) below SPARSE_FROM labels, else SparseLabels."""
    g = torch.Generator().manual_seed(seed)
    samples = views_total // views
    features = torch.randn(samples, views, DIM, generator=g)
    if classes < SPARSE_FROM:
        return features, (torch.rand(samples, classes, generator=g) < 3 / classes).float()
    # About 3 labels per sample without a dense (B, C) draw: 3 B random (sample, label) pairs.
    pairs = torch.stack(
        [
            torch.randint(samples, (3 * samples,), generator=g),
            torch.randint(classes, (3 * samples,), generator=g),
        ]
    )
    coo = torch.sparse_coo_tensor(
        pairs, torch.ones(3 * samples), (samples, classes), check_invariants=True
    ).coalesce()
    ones = torch.sparse_coo_tensor(
        coo.indices(), torch.ones_like(coo.values()), coo.shape, check_invariants=True
    )
    return features, relations.as_label_sets(ones)


def first_labels(labels) -> torch.Tensor:
    """(B,) one class id per sample, the smallest label (0 for an empty set): argmax of the row."""
    if isinstance(labels, relations.SparseLabels):
        sizes = labels.sizes()
        first = labels.indices[labels.indptr[:-1].clamp_max(max(len(labels.indices) - 1, 0))]
        return torch.where(sizes > 0, first, torch.zeros_like(first))
    return labels.argmax(1)


def dense_skip(n: int, samples: int, classes: int, budget_gib: float) -> bool:
    return 6 * n * n * 4 > budget_gib * 2**30 or samples * samples * classes > 2**34


def pml_skip(n: int, budget_gib: float) -> bool:
    return 10 * n * n * 4 > budget_gib * 2**30


def make_runs(features, labels, budget_gib: float, only: list[str] | None = None) -> dict:
    """name -> a function running one forward+backward on this batch (None: skipped)."""
    samples, views, _ = features.shape
    n, classes = samples * views, labels.shape[1]
    single = first_labels(labels)  # (B,): one class id per sample for the single-label losses
    ours_labels = labels
    skip_dense = dense_skip(n, samples, classes, budget_gib) or (only and DENSE not in only)
    dense_labels = None
    if not skip_dense:
        as_dense = isinstance(labels, relations.SparseLabels)
        dense_labels = labels.to_dense() if as_dense else labels

    def ours(name):
        loss_fn = build_loss(name)
        target = {"supcon": single, "simclr": None}.get(name, ours_labels)

        def run():
            x = features.detach().requires_grad_(True)
            loss_fn(x, target).backward()

        return run

    def pml():
        loss_fn = pml_losses.SupConLoss(temperature=0.07)
        x = features.detach().requires_grad_(True)
        loss_fn(x.reshape(-1, DIM), single.repeat_interleave(views)).backward()

    def dense():
        x = features.detach().requires_grad_(True)
        dense_reference.build_loss("sdl")(x, dense_labels).backward()

    def floor(with_labels: bool):
        z = torch.nn.functional.normalize(features.reshape(n, DIM), dim=1)
        counts = None
        if with_labels and (not only or FLOOR_LABELS in only):
            counts = relations.BlockCounts(ours_labels, torch.float32, "cpu")

        def run():
            logits = z @ z.T  # (N, N)
            logits @ z  # G z
            logits.T @ z  # G^T z
            if counts is not None:
                counts.inter(0, samples)  # (B, B) label product, dense or CSR x CSR

        return run

    # The contrastive losses only: bce is a classifier's loss on logits, not on embeddings.
    contrastive = loss_names(contrastive=True)
    runs = {name: ours(name) for name in contrastive if not (name == "simclr" and views < 2)}
    runs[PML] = None if pml_skip(n, budget_gib) else pml
    runs[DENSE] = None if skip_dense else dense
    runs[FLOOR] = floor(False)
    runs[FLOOR_LABELS] = floor(True)
    if only and TRAIN_STEP in only:
        runs[TRAIN_STEP] = train_step(features, ours_labels)
    if only:
        runs = {k: v for k, v in runs.items() if k in only}
    return runs


def train_step(features, labels):
    """One training step on the batch: a two-layer MLP head over every view's (D,) input, sdl,
    backward through the head, AdamW. The head is small, so the step is the loss's own size."""
    head = torch.nn.Sequential(
        torch.nn.Linear(DIM, 256), torch.nn.ReLU(), torch.nn.Linear(256, DIM)
    )
    optimiser = torch.optim.AdamW(head.parameters(), lr=1e-3)
    loss_fn = build_loss("sdl")
    inputs = features.detach()  # (B, V, D)

    def run():
        optimiser.zero_grad(set_to_none=True)
        loss_fn(head(inputs), labels).backward()
        optimiser.step()

    return run


def measure_times(runs: dict, repeats: int, warm: bool) -> dict[str, float | None]:
    """Median seconds per run; the runs take turns so shared-machine load hits all alike."""
    live = {k: v for k, v in runs.items() if v is not None}
    if warm:
        for run in live.values():
            run()  # thread pools, allocator caches
    samples: dict[str, list[float]] = {k: [] for k in live}
    for _ in range(repeats):
        for name, run in live.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    return {k: (statistics.median(samples[k]) if k in samples else None) for k in runs}


def measure_memory(runs: dict, once: bool = False) -> dict[str, float | None]:
    """Peak MiB of one run of each (after a warm-up run unless ``once``), and its seconds."""
    mems = {}
    for name, run in runs.items():
        if run is None:
            mems[name] = None
            continue
        if not once:
            run()  # so that one-off buffers (thread pools) are not counted
        start = time.perf_counter()
        mems[name] = peak_mib(run)
        mems[f"{name}:seconds"] = time.perf_counter() - start
    return mems


def memory_in_child(
    n: int, views: int, classes: int, budget: float, only, once: bool = False
) -> dict:
    """Peak MiB per run at one point, measured in a child with glibc's mmap threshold fixed."""
    if sys.platform != "linux":
        return {}
    command = [
        sys.executable, __file__, "--memory-json", "--sizes", str(n), "--views", str(views),
        "--classes", str(classes), "--budget-gib", str(budget),
    ]  # fmt: skip
    if only:
        command += ["--only", ",".join(only)]
    if once:
        command += ["--once"]
    env = dict(os.environ, **{MMAP_ENV: "65536"})
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the tables --------------------------------------------------------------------------------
def ratio(a: float | None, b: float | None) -> str:
    return "skipped" if a is None or b is None else f"{a / b:.2f}"


def ms(t: float | None) -> str:
    return "skipped" if t is None else f"{t * 1e3:.0f}"


def mib(m: float | None) -> str:
    return "skipped" if m is None else f"{m:.0f}"


def repeats_at(n: int, repeats: int | None) -> int:
    """Timed runs per loss at N views: as asked, else many where runs are short."""
    return repeats or (15 if n <= 4096 else 3)


def benchmark(sizes, views_list, classes_list, repeats, budget, only) -> list[str]:
    summary = [
        "| N views | V | C | sdl ms | sdl / supcon | supcon / PML | sdl / dense | sdl / floor "
        "| sdl / floor+labels | sdl MiB | supcon MiB | PML MiB | dense MiB | floor MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    details = [
        "| N views | V | C | loss | ms | peak MiB | time / supcon | time / floor+labels |",
        "|---|---|---|---|---|---|---|---|",
    ]
    misses = []
    first = True
    for n in sizes:
        for views in views_list:
            for classes in classes_list:
                runs = make_runs(*make_batch(n, views, classes), budget, only)
                t = measure_times(runs, repeats_at(n, repeats), warm=first)
                first = False
                m = memory_in_child(n, views, classes, budget, only)
                g = lambda d, k: d.get(k)
                summary.append(
                    f"| {n} | {views} | {classes} | {ms(g(t, 'sdl'))} | "
                    f"{ratio(g(t, 'sdl'), g(t, 'supcon'))} | {ratio(g(t, 'supcon'), g(t, PML))} | "
                    f"{ratio(g(t, 'sdl'), g(t, DENSE))} | {ratio(g(t, 'sdl'), g(t, FLOOR))} | "
                    f"{ratio(g(t, 'sdl'), g(t, FLOOR_LABELS))} | {mib(g(m, 'sdl'))} | "
                    f"{mib(g(m, 'supcon'))} | {mib(g(m, PML))} | {mib(g(m, DENSE))} | "
                    f"{mib(g(m, FLOOR))} |"
                )
                for name in runs:
                    details.append(
                        f"| {n} | {views} | {classes} | {name} | {ms(t[name])} | "
                        f"{mib(g(m, name))} | {ratio(t[name], g(t, 'supcon'))} | "
                        f"{ratio(t[name], g(t, FLOOR_LABELS))} |"
                    )
                for name, (base, limit) in TARGETS.items():
                    if g(t, name) and g(t, base) and t[name] / t[base] > limit:
                        misses.append(
                            f"N={n} V={views} C={classes}: {name} / {base} = "
                            f"{t[name] / t[base]:.2f} > {limit}"
                        )
                floor = g(t, FLOOR_LABELS)
                if n >= 4096 and g(t, "sdl") and floor and t["sdl"] / floor > FLOOR_TARGET:
                    misses.append(
                        f"N={n} V={views} C={classes}: sdl / floor+labels = "
                        f"{t['sdl'] / floor:.2f} > {FLOOR_TARGET}"
                    )
                # each point's row as it finishes: a long grid stopped halfway keeps its rows
                print(f"done {summary[-1]}", file=sys.stderr, flush=True)
    head = [
        f"cpu ({torch.get_num_threads()} threads), D={DIM}, torch {torch.__version__}, "
        f"median of {repeats or '15 (N <= 4096) or 3 (above)'} runs; "
        f"labels CSR for C >= {SPARSE_FROM}",
        "",
    ]
    targets = [
        "",
        f"targets: sdl <= {TARGETS['sdl'][1]} x supcon, supcon <= {TARGETS['supcon'][1]} x PML, "
        f"sdl <= {FLOOR_TARGET} x floor+labels for N >= 4096",
    ]
    targets += [f"missed: {x}" for x in misses] or ["all targets met"]
    return [*head, *summary, *targets, "", "<details><summary>Every run</summary>", "", *details,
            "", "</details>"]  # fmt: skip


def large(sizes, classes: int) -> list[str]:
    """sdl alone at large N (V = 2, sparse labels): one forward+backward, then one training step
    (:func:`train_step`), each timed and its peak memory read, in a child process (no warm-up: at
    this size it would double the cost)."""
    lines = [
        "| N views | C | sdl fwd+bwd s | peak MiB | training step s | step peak MiB |",
        "|---|---|---|---|---|---|",
    ]
    for n in sizes:
        m = memory_in_child(n, 2, classes, 0.0, ["sdl", TRAIN_STEP], once=True)
        cells = []
        for run in ("sdl", TRAIN_STEP):
            seconds = m.get(f"{run}:seconds")
            cells += ["failed" if seconds is None else f"{seconds:.1f}", mib(m.get(run))]
        lines.append(f"| {n} | {classes} | " + " | ".join(cells) + " |")
        print(f"done N={n}", file=sys.stderr, flush=True)
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=None, help="comma-separated N (views)")
    parser.add_argument("--views", default="1,2", help="comma-separated V")
    parser.add_argument("--classes", default="10,80,1000,10000", help="comma-separated C")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per loss")
    parser.add_argument("--budget-gib", type=float, default=8.0, help="skip PML/dense above")
    parser.add_argument("--only", default=None, help="comma-separated runs to keep")
    parser.add_argument("--quick", action="store_true", help="N up to 4096")
    parser.add_argument("--large", action="store_true", help="sdl at 32,768 and 65,536 views")
    parser.add_argument("--memory-json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    only = args.only.split(",") if args.only else None
    views_list = [int(v) for v in args.views.split(",")]
    classes_list = [int(c) for c in args.classes.split(",")]
    if args.large:
        sizes = [int(s) for s in (args.sizes or "32768,65536").split(",")]
        print("\n".join(large(sizes, classes_list[-1])))
        return
    default_sizes = "1024,4096" if args.quick else "1024,4096,16384"
    sizes = [int(s) for s in (args.sizes or default_sizes).split(",")]
    if args.memory_json:
        runs = make_runs(
            *make_batch(sizes[0], views_list[0], classes_list[0]), args.budget_gib, only
        )
        print(json.dumps(measure_memory(runs, once=args.once)))
        return
    print(
        "\n".join(benchmark(sizes, views_list, classes_list, args.repeats, args.budget_gib, only))
    )


if __name__ == "__main__":
    main()
