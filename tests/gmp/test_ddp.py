"""Under DDP (two CPU processes, gloo) every rank holds identical masks at every update."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from torch.nn.parallel import DistributedDataParallel as DDP

        from gmp import GMP
        from gmp.report import layer_zeros

        torch.manual_seed(0)  # same init on every rank
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 10)
        )
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        pruner = GMP(
            model,
            opt,
            init_sparsity=0.1,
            final_sparsity=0.7,
            start_step=1,
            end_step=9,
            update_frequency_steps=2,
        )
        ddp = DDP(model)
        agree = []
        g = torch.Generator().manual_seed(100 + rank)  # different data per rank
        for _ in range(10):
            x, y = torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(ddp(x), y).backward()
            opt.step()
            flat = torch.cat([m.reshape(-1) for m in pruner.masks().values()]).to(torch.uint8)
            gathered = [torch.empty_like(flat) for _ in range(world)]
            dist.all_gather(gathered, flat)
            agree.append(all(torch.equal(gathered[0], g) for g in gathered))
        if rank == 0:
            torch.save({"agree": agree, "zeros": layer_zeros(model)}, out)
        # Tear down in order: no rank may close its gloo pairs while a peer still uses them
        # (an unsynchronised exit aborted one rank with "terminate called without an active
        # exception" on a loaded CI machine).
        del ddp
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_hold_identical_masks(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "ddp.pt")
    mp.spawn(_worker, args=(2, port, out), nprocs=2, join=True)
    result = torch.load(out)
    assert result["agree"] == [True] * 10
    assert result["zeros"]["3.weight"] == round(0.7 * 1440)  # pruning really happened
