"""Under DDP (two CPU processes, gloo) each rank computes the masks a single process computes.

The pruner broadcasts rank 0's masks after every update, so comparing the masks ranks *hold*
would pass even if they computed different ones. Here each rank records the masks it computed
itself, before that broadcast (``_Recording`` overrides ``GMP._sync_masks``), and the test
compares them across ranks and with one process training on the concatenation of the ranks'
batches (DDP averages the ranks' mean-loss gradients: the gradient of the mean loss over both).
Both ways of attaching are covered: to the model before wrapping it in DistributedDataParallel,
and to the DDP wrapper itself (parameter names with ``module.``).
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gmp import GMP
from gmp.report import layer_zeros

WORLD = 2
STEPS = 10
BATCH = 16  # per rank
SETTINGS = dict(
    init_sparsity=0.1, final_sparsity=0.7, start_step=1, end_step=9, update_frequency_steps=2
)
UPDATES = 5  # steps 1, 3, 5, 7 and the final one at 9


class _Recording(GMP):
    """GMP that keeps, at every update, the masks this process computed and the ones it holds."""

    def __init__(self, *args, **kwargs):
        self.computed: list[dict[str, torch.Tensor]] = []
        self.held: list[dict[str, torch.Tensor]] = []
        super().__init__(*args, **kwargs)

    def _sync_masks(self, g) -> None:
        self.computed.append({t.name: t.mask.detach().clone() for t in g.targets})
        super()._sync_masks(g)  # the broadcast from rank 0
        self.held.append({t.name: t.mask.detach().clone() for t in g.targets})


def _model() -> torch.nn.Module:
    torch.manual_seed(0)  # same init on every rank and in the single process
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 10)
    )


def _batch(rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 * rank + step)  # different data per rank and step
    return torch.randn(BATCH, 1, 8, 8, generator=g), torch.randint(0, 10, (BATCH,), generator=g)


def _step(net, opt, x, y) -> None:
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()


def _worker(rank: int, port: int, attach: str, out: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        if attach == "before-ddp":
            pruner = _Recording(model, opt, **SETTINGS)
            ddp = DDP(model)
        else:
            ddp = DDP(model)
            pruner = _Recording(ddp, opt, **SETTINGS)
        agree = []
        for step in range(STEPS):
            _step(ddp, opt, *_batch(rank, step))
            flat = torch.cat([m.reshape(-1) for m in pruner.masks().values()]).to(torch.uint8)
            gathered = [torch.empty_like(flat) for _ in range(WORLD)]
            dist.all_gather(gathered, flat)
            agree.append(all(torch.equal(gathered[0], g) for g in gathered))
        pruner.finalize()
        torch.save(
            {
                "names": pruner.names,
                "computed": pruner.computed,
                "held": pruner.held,
                "agree": agree,
                "zeros": layer_zeros(model),
                "weights": {k: v.clone() for k, v in model.state_dict().items()},
            },
            f"{out}.{rank}",
        )
        # Tear down in order: no rank may close its gloo pairs while a peer still uses them
        # (an unsynchronised exit aborted one rank with "terminate called without an active
        # exception" on a loaded CI machine).
        del ddp
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _single_process() -> dict:
    """The same run in one process, on each step's batches of both ranks concatenated."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner = _Recording(model, opt, **SETTINGS)
    for step in range(STEPS):
        xs, ys = zip(*(_batch(rank, step) for rank in range(WORLD)))
        _step(model, opt, torch.cat(xs), torch.cat(ys))  # (WORLD * BATCH, ...)
    pruner.finalize()
    return {"computed": pruner.computed, "weights": model.state_dict()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def single():
    return _single_process()


@pytest.mark.parametrize("attach", ["before-ddp", "after-ddp"])
def test_ranks_compute_the_single_process_masks(attach, single, tmp_path):
    out = str(tmp_path / "rank")
    mp.spawn(_worker, args=(_free_port(), attach, out), nprocs=WORLD, join=True)
    ranks = [torch.load(f"{out}.{r}") for r in range(WORLD)]
    prefix = "module." if attach == "after-ddp" else ""
    expected_names = [prefix + n for n in ("0.weight", "3.weight")]
    for r in ranks:
        assert r["names"] == expected_names
        assert len(r["computed"]) == len(r["held"]) == UPDATES
    # What each rank computed, before any broadcast: equal across ranks, at every update...
    for update in range(UPDATES):
        for name in expected_names:
            a, b = (r["computed"][update][name] for r in ranks)
            assert torch.equal(a, b), (update, name)
            # ...and equal to what one process computes on the concatenated batch.
            one = single["computed"][update][name.removeprefix(prefix)]
            assert torch.equal(a, one), (update, name)
            # The broadcast then had nothing to change.
            assert torch.equal(ranks[1]["held"][update][name], a)
    # The ranks trained the same weights, the single process's up to float summation order.
    for key, value in single["weights"].items():
        assert torch.equal(ranks[0]["weights"][key], ranks[1]["weights"][key]), key
        torch.testing.assert_close(ranks[0]["weights"][key], value, rtol=1e-5, atol=1e-6)
    assert ranks[0]["agree"] == [True] * STEPS
    assert ranks[0]["zeros"]["3.weight"] == round(0.7 * 1440)  # pruning really happened
    assert ranks[0]["zeros"]["0.weight"] == round(0.7 * 36)


def test_single_process_reference_differs_from_one_rank_alone(single):
    # The comparison above can fail: one rank's batch alone (no gradient averaging) gives other
    # weights, and other masks by the final update.
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner = _Recording(model, opt, **SETTINGS)
    for step in range(STEPS):
        _step(model, opt, *_batch(0, step))
    pruner.finalize()
    last = UPDATES - 1
    assert not torch.equal(pruner.computed[last]["3.weight"], single["computed"][last]["3.weight"])
