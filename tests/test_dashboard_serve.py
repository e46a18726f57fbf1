"""The served entry's start-up work: the warm imports, and torch held to one thread in the server
(the pages' tensors are small and the browser shares the cores; benchmarks/bench_dashboard.py
measured the comparable weights of a 256-item batch at 0.37 s of a rerun with two threads, 0.015 s
with one). Checked in a child process, so this test process keeps its own thread count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_warm_imports_leave_torch_one_thread_in_the_server():
    code = (
        "import torch; torch.set_num_threads(2); "
        "import dashboard.serve as serve; serve.import_warm(); "
        "print(torch.get_num_threads(), *serve.WARM_IMPORTS, sep=',')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    threads, *imported = done.stdout.strip().splitlines()[-1].split(",")
    assert threads == "1"
    assert imported[0] == "torch"
