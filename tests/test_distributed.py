"""Two gloo processes on CPU: the gathered loss and gradients equal one process on the whole batch."""

from __future__ import annotations

import socket
import sys
import types

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sdl import distributed
from sdl.losses import build_loss


@pytest.fixture(autouse=True, scope="module")
def plain_main_module():
    """Spawned ranks re-run the parent's ``__main__`` file; after a Streamlit AppTest in the same
    pytest process that is the dashboard's app.py, so give them a main module with no file."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
        yield


WORLD = 2
LOCAL_BATCH = 5
VIEWS = 2
DIM = 6
LOSSES = ("sdl", "mulsupcon", "supcon", "simclr")


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The same (WORLD * B, V, D) features and (WORLD * B, C) labels on every process."""
    g = torch.Generator().manual_seed(0)
    features = torch.randn(WORLD * LOCAL_BATCH, VIEWS, DIM, generator=g, dtype=torch.float64)
    labels = (torch.rand(WORLD * LOCAL_BATCH, 4, generator=g) < 0.5).long()
    labels[0] = 0  # an empty label set
    labels[-1] = labels[1]  # an identical pair across ranks
    return features, labels


def loss_labels(name: str, labels: torch.Tensor) -> torch.Tensor | None:
    return {"supcon": labels.argmax(1), "simclr": None}.get(name, labels)


def make_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Linear(DIM, 3).double()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        features, labels = global_batch()
        local = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        result: dict[str, object] = {}
        for name in LOSSES:
            x = features[local].clone().requires_grad_(True)
            gathered, gathered_labels = distributed.gather_batch(
                x, loss_labels(name, labels[local])
            )
            loss = build_loss(name)(gathered, gathered_labels)
            loss.backward()
            result[name] = (loss.detach(), x.grad, gathered.detach(), gathered_labels)

        model = DistributedDataParallel(make_model())
        gathered, gathered_labels = distributed.gather_batch(model(features[local]), labels[local])
        build_loss("sdl")(gathered, gathered_labels).backward()
        result["ddp"] = {k: p.grad.clone() for k, p in model.module.named_parameters()}

        bool_labels = distributed.gather_labels(labels[local].bool())
        result["bool_labels"] = bool_labels

        try:  # unequal local batches are refused on every rank
            distributed.gather_batch(features[: 3 + rank], labels[: 3 + rank])
        except ValueError as error:
            result["unequal"] = str(error)
        torch.save(result, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def single_worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", f"tcp://127.0.0.1:{port}", rank=rank, world_size=1)
    try:
        features, labels = global_batch()
        same = distributed.gather_batch(features, labels)
        torch.save({"identity": same[0] is features and same[1] is labels}, f"{out}/single.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    mp.spawn(worker, args=(WORLD, free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.mark.parametrize("name", LOSSES)
def test_every_rank_sees_the_global_batch_and_its_loss(ranks, name):
    features, labels = global_batch()
    expected_labels = loss_labels(name, labels)
    single = build_loss(name)(features, expected_labels)
    for result in ranks:
        loss, _, gathered, gathered_labels = result[name]
        torch.testing.assert_close(gathered, features, rtol=0, atol=0)
        if expected_labels is None:
            assert gathered_labels is None
        else:
            assert torch.equal(gathered_labels, expected_labels)
        torch.testing.assert_close(loss, single.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", LOSSES)
def test_feature_gradients_are_world_size_times_single_process(ranks, name):
    features, labels = global_batch()
    x = features.clone().requires_grad_(True)
    build_loss(name)(x, loss_labels(name, labels)).backward()
    for r, result in enumerate(ranks):
        local_grad = result[name][1]
        expected = x.grad[r * LOCAL_BATCH : (r + 1) * LOCAL_BATCH]
        assert local_grad.abs().sum() > 0
        torch.testing.assert_close(local_grad / WORLD, expected, rtol=1e-10, atol=1e-12)


def test_ddp_parameter_gradients_equal_single_process(ranks):
    features, labels = global_batch()
    model = make_model()
    build_loss("sdl")(model(features), labels).backward()
    for result in ranks:
        for name, param in model.named_parameters():
            torch.testing.assert_close(result["ddp"][name], param.grad, rtol=1e-10, atol=1e-12)


def test_bool_labels_survive_the_gather(ranks):
    _, labels = global_batch()
    for result in ranks:
        assert result["bool_labels"].dtype == torch.bool
        assert torch.equal(result["bool_labels"], labels.bool())


def test_unequal_local_batches_raise_on_every_rank(ranks):
    for result in ranks:
        assert "same local batch size on every rank" in result["unequal"]
        assert "[3, 4]" in result["unequal"]


def test_world_of_one_is_identity(tmp_path):
    mp.spawn(single_worker, args=(free_port(), str(tmp_path)), nprocs=1, join=True)
    assert torch.load(tmp_path / "single.pt")["identity"]


def test_not_initialised_is_identity():
    assert not distributed.is_distributed()
    assert distributed.world_size() == 1 and distributed.rank() == 0
    features, labels = global_batch()
    gathered, gathered_labels = distributed.gather_batch(features, labels)
    assert gathered is features and gathered_labels is labels
    assert distributed.gather_batch(features)[1] is None


def test_labels_and_features_must_agree_on_batch():
    features, labels = global_batch()
    with pytest.raises(ValueError, match="labels has 9 rows but features has batch size 10"):
        distributed.gather_batch(features, labels[:9])
