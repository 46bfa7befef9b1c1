"""What gmp costs against SparseML 1.8 on torchvision ResNet-50: ``python -m baselines.cost``.

Prints three tables, all measured in the same process so that ratios are comparable on a shared
machine (absolute times are noisy):

(a) one mask update (layerwise and global): SparseML's ``update_param_masks`` vs gmp's update, plus
    a plain per-layer ``torch.kthvalue`` pass for scale;
(b) one training step between updates (64x64 inputs, batch 16): dense vs gmp vs SparseML,
    interleaved round-robin;
(c) extra memory each pruner keeps while pruning (bytes of tensors it holds beyond the dense model).

It lives outside the ``torch-gmp`` distribution because it needs SparseML and torchvision, which
only the project's root environment provides: SparseML 1.8 pins ``numpy<2`` and
``protobuf<=3.20.3``, which a library must not force on its users. Importing it elsewhere raises
ImportError saying so.

Example:
    uv run python -m baselines.cost --reps 3 --steps 5
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from torch import nn

from gmp.pruner import GMP

__all__ = ["main"]


def _check_root_environment() -> None:
    """Raise ImportError naming the missing package and the environment that provides it."""
    os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")  # before SparseML is imported
    for module in ("sparseml", "torchvision"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(
                f"baselines.cost compares gmp with SparseML 1.8 on torchvision's ResNet-50, so it "
                f"needs {module!r}, which only the project's root environment provides (SparseML "
                "1.8 pins numpy<2 and protobuf<=3.20.3, so the torch-gmp library does not depend "
                "on it): run `uv sync` at the repository root, then "
                "`uv run python -m baselines.cost`"
            ) from exc


_check_root_environment()

_TARGETS = (0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85)


def _resnet50(seed: int = 0) -> nn.Module:
    import torchvision

    torch.manual_seed(seed)
    return torchvision.models.resnet50(weights=None)


def _sparseml_attach(model: nn.Module, optimizer, global_: bool, steps_per_epoch: int):
    from sparseml.pytorch.optim import ScheduledModifierManager

    name = "GlobalMagnitudePruningModifier" if global_ else "MagnitudePruningModifier"
    recipe = f"""
modifiers:
  - !{name}
    params: __ALL_PRUNABLE__
    init_sparsity: 0.5
    final_sparsity: 0.9
    start_epoch: 0.0
    end_epoch: 90.0
    update_frequency: 50.0
"""
    manager = ScheduledModifierManager.from_yaml(recipe)
    wrapped = manager.modify(model, optimizer, steps_per_epoch)
    return manager, wrapped


def _gmp_attach(
    model: nn.Module, optimizer, global_: bool, steps_per_epoch: int, linear: bool = False
) -> GMP:
    # The SparseML recipe's schedule. linear=True: 0 -> 0.9 linearly over 90 epochs instead, so
    # sparsity = epoch / 100 and _update(g, 100 * s) prunes to s, the target SparseML is given.
    return GMP(
        model,
        optimizer,
        init_sparsity=0.0 if linear else 0.5,
        final_sparsity=0.9,
        start_epoch=0.0,
        end_epoch=90.0,
        update_frequency=50.0,
        steps_per_epoch=steps_per_epoch,
        scope="global" if global_ else "layerwise",
        inter_func="linear" if linear else "cubic",
    )


def _step(model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def _time(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_mask_update(reps: int) -> list[tuple[str, float]]:
    """Median seconds of one mask update, each tool at the same rising targets."""
    rows = []
    weights = [
        m.weight.detach() for m in _resnet50().modules() if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    targets = _TARGETS[:reps]
    kth = [
        _time(
            lambda s=s: [
                torch.kthvalue(w.abs().reshape(-1), max(1, round(s * w.numel()))) for w in weights
            ]
        )
        for s in targets
    ]
    rows.append(("per-layer kthvalue (reference)", statistics.median(kth)))
    for global_ in (False, True):
        scope = "global" if global_ else "layerwise"
        model = _resnet50()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        manager, wrapped = _sparseml_attach(model, opt, global_, 1000)
        _step(model, wrapped, torch.randn(2, 3, 64, 64), torch.randint(0, 1000, (2,)))
        masks = manager.modifiers[0]._module_masks
        sml = [_time(lambda s=s, m=masks: m.update_param_masks(s)) for s in targets]
        manager.finalize(model)
        model = _resnet50()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        pruner = _gmp_attach(model, opt, global_, 1000, linear=True)
        _step(model, opt, torch.randn(2, 3, 64, 64), torch.randint(0, 1000, (2,)))
        group = pruner._groups[0]
        ours = [_time(lambda s=s, p=pruner, g=group: p._update(g, 100.0 * s)) for s in targets]
        rows.append((f"SparseML update ({scope})", statistics.median(sml)))
        rows.append((f"gmp update ({scope})", statistics.median(ours)))
    return rows


def bench_train_step(steps: int) -> dict[str, list[float]]:
    """Seconds of each training step between updates, dense / gmp / SparseML, interleaved."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 64, 64, generator=g), torch.randint(0, 1000, (16,), generator=g)
    runs = {}
    dense = _resnet50()
    runs["dense"] = (dense, torch.optim.SGD(dense.parameters(), lr=0.01, momentum=0.9))
    m = _resnet50()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    _gmp_attach(m, opt, False, 1000)
    runs["gmp"] = (m, opt)
    m = _resnet50()
    _, wrapped = _sparseml_attach(
        m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9), False, 1000
    )
    runs["SparseML"] = (m, wrapped)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for i in range(steps + 2):  # the first round holds the one mask update and warm-up
        for name, (model, optimizer) in runs.items():
            t = _time(lambda model=model, optimizer=optimizer: _step(model, optimizer, x, y))
            if i >= 2:
                times[name].append(t)
    return times


def bench_memory() -> dict[str, int]:
    """Bytes of tensors each pruner holds beyond the dense model's parameters and buffers."""
    model = _resnet50()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    dense = {id(t) for t in list(model.parameters())}
    pruner = _gmp_attach(model, opt, False, 1000)
    _step(model, opt, torch.randn(2, 3, 64, 64), torch.randint(0, 1000, (2,)))
    ours = 0
    for g in pruner._groups:
        for t in g.targets:
            ours += t.mask.numel() * t.mask.element_size()
            w = getattr(t.module, t.attr)  # the masked weight prune keeps on the module
            if id(w) not in dense:
                ours += w.numel() * w.element_size()
    model = _resnet50()
    manager, wrapped = _sparseml_attach(
        model, torch.optim.SGD(model.parameters(), lr=0.01), False, 1000
    )
    _step(model, wrapped, torch.randn(2, 3, 64, 64), torch.randint(0, 1000, (2,)))
    masks = manager.modifiers[0]._module_masks
    theirs = 0
    for value in vars(masks).values():
        if isinstance(value, list):
            theirs += sum(
                v.numel() * v.element_size() for v in value if isinstance(v, torch.Tensor)
            )
    weights = sum(
        m.weight.numel() * m.weight.element_size()
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    )
    return {"prunable weights": weights, "gmp": ours, "SparseML": theirs}


def main(argv: list[str] | None = None) -> None:
    """Run the three benchmarks and print tables with ratios (SparseML's logs go to a temp dir)."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # SparseML writes ./sparse_logs/
        try:
            _main(argv)
        finally:
            os.chdir(cwd)


def _main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="mask updates timed per tool (max 8)")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per variant")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args(argv)
    if not 1 <= args.reps <= len(_TARGETS):
        parser.error(f"--reps must be in [1, {len(_TARGETS)}]")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ResNet-50 (random init)")

    print("\n(a) one mask update, median of", args.reps, "(rising targets 0.50, 0.55, ...)")
    rows = bench_mask_update(args.reps)
    base = dict(rows)
    for name, sec in rows:
        scope = "global" if "global" in name else "layerwise"
        ratio = base[f"SparseML update ({scope})"] / sec
        print(f"  {name:<34} {sec:8.3f} s   SparseML/this = {ratio:6.1f}x")

    print("\n(b) training step between updates (64x64, batch 16),", args.steps, "steps each")
    print("    (min is the robust figure on a shared machine; median shown for the spread)")
    times = bench_train_step(args.steps)
    lo = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in times:
        print(
            f"  {name:<10} min {lo[name]:7.3f} s ({lo[name] / lo['dense'] - 1:+6.1%} vs dense)"
            f"   median {med[name]:7.3f} s ({med[name] / med['dense'] - 1:+6.1%})"
        )

    print("\n(c) extra memory held while pruning (tensor bytes beyond the dense model)")
    mem = bench_memory()
    for name, b in mem.items():
        print(
            f"  {name:<17} {b / 2**20:9.1f} MiB   = {b / mem['prunable weights']:.2f}x prunable weights"
        )


if __name__ == "__main__":
    main()
