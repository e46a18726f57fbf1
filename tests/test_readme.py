"""The README's library example runs as printed and its commented results hold."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_library_example_runs_and_matches_its_comments():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(blocks[0], namespace)
    # The comments print the worked example of the method: relations and weights of anchor 0.
    assert namespace["relation_matrix"](namespace["labels"])[0].tolist() == [2, 4, 5, 3, 1]
    torch.testing.assert_close(
        namespace["sd_weights"](namespace["labels"])[0],
        torch.tensor([1.0, 2 / 3, 1 / 2, 1 / 6, 0.0]),
    )
    assert namespace["loss"].ndim == 0 and torch.isfinite(namespace["loss"])
