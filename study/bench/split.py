"""Blocks that fit: the memory estimate of a block, and its split into sub-blocks that share the reference.

A block's cells are all loaded at once, one worker process each. Before anything is measured,
:func:`plan_blocks` estimates each cell's peak memory (:func:`cell_memory`: the engine's
calibrated overhead plus a multiple of the ONNX file's size) and, when a block has more cells than
``max_live_workers`` or more estimated memory than the budget (the machine's available memory),
splits it into *sub-blocks*. Each sub-block holds a share of the block's files (every engine of a
variant together, so an engine ratio on a file is paired too) and the *anchor* cells those files pair
with (``CellSpec.anchor``: the reference files on every engine; ``CellSpec.pairs_with`` names the
ones a file's contrasts need, and an anchor's own needs come along). Each sub-block gets its own
block id (``<block>/part<i>of<n>``), so the statistics, which pair rounds by (machine, run,
replicate, block, round), pair a variant only with the reference cells measured in the same
sub-block's rounds; an anchor is measured in every sub-block that needs
it, and in one at least. A block that cannot fit even as one file plus the anchors it pairs with
is refused before anything runs, with the estimate and the fixes.

Calibration of :data:`ENGINE_MEMORY` (``python -m benchmarks.worker_memory``, 2026-12-04, AMD EPYC
Zen 5, 2 vCPUs, the locked stack): the unique set size (USS, psutil) of one loaded, warmed-up
worker process and its children, on MobileNetV1 (32 px), a 64 MiB Gemm and VGG19 (224 px). USS,
not RSS: the engines' shared libraries are mapped once for all workers of a block (a DeepSparse
worker's RSS is ~300 MB above its USS), so summing RSS over 40 workers would plan for memory
that is never used (the quick preset's block would be split for nothing):

    file MB          12.2    64.0   532.6
    onnxruntime MB    149     162     916   (least squares: 99 + 1.53 x file)
    openvino MB       166     235    1329   (115 + 2.27 x file)
    deepsparse MB     475     490    1313   (421 + 1.67 x file; 717 MB on the Gemm in another run)

Re-measured after workers stopped re-importing the study and DeepSparse's worker stopped
importing torch (`python -m benchmarks.worker_memory` on the quick run's files; a DeepSparse
worker lost ~300 MB): MobileNetV1 12.3 MB: onnxruntime 109, OpenVINO 170, DeepSparse 228 MB;
dense ResNet-18 42.6 MB: 199, 291, 297 MB; the 64 MiB Gemm on DeepSparse 166 MB (the test's).
The VGG19 points above were not re-measured (they include the old imports, so they are high).

Each engine's constants lie above all of its points (overhead rounded up, slope above the
fit), so the estimate bounds the measured USS from above; the shared libraries (counted once) and
low estimates are what :data:`MEMORY_HEADROOM` leaves room for.
tests/study/test_split.py holds a real worker of each engine against it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from study.bench.cells import CellSpec
from study.bench.scheduling import group_blocks

__all__ = [
    "ENGINE_MEMORY",
    "MEMORY_HEADROOM",
    "PLAN_FILE",
    "BlockPlan",
    "cell_memory",
    "memory_budget",
    "plan_blocks",
    "read_plans",
    "record_plan",
    "run_budget",
    "split_cells",
]

log = logging.getLogger(__name__)

GIB = 2**30
MB = 2**20
# engine -> (bytes of a worker holding a tiny model, bytes per byte of ONNX file): see above.
ENGINE_MEMORY: dict[str, tuple[float, float]] = {
    "onnxruntime": (160 * MB, 1.6),
    "openvino": (180 * MB, 2.8),
    "deepsparse": (300 * MB, 2.0),
    "deepsparse-cli": (750 * MB, 1.8),  # its own tool: a process importing all of deepsparse
    "torch": (400 * MB, 2.0),  # not calibrated: the module's weights plus an interpreter
}
# The share of the available memory a block may plan to use (the rest: the parent, the page
# cache, other processes, and estimates that are low).
MEMORY_HEADROOM = 0.9
_FALLBACK = (400 * MB, 3.0)  # an engine not calibrated here (a test engine)


def cell_memory(spec: CellSpec, file_bytes: int | None = None) -> int:
    """Estimated peak unique memory (USS) of ``spec``'s worker in bytes: overhead + factor x ONNX file size.

    Args:
        spec: the cell (its engine is used).
        file_bytes: the ONNX file's size; None reads it (0 when the file does not exist: the
            worker will fail and hold nothing).

    Example:
        >>> cell_memory(CellSpec("m.onnx", "onnxruntime"), file_bytes=100 * 2**20) // 2**20
        320
    """
    if file_bytes is None:
        path = Path(spec.onnx_path)
        file_bytes = path.stat().st_size if path.is_file() else 0
    base, factor = ENGINE_MEMORY.get(spec.engine, _FALLBACK)
    return int(base + factor * file_bytes)


def memory_budget() -> int:
    """Bytes a block may plan to hold: :data:`MEMORY_HEADROOM` of the memory available now."""
    return int(psutil.virtual_memory().available * MEMORY_HEADROOM)


PLAN_FILE = "bench_plan.json"  # in a run's folder, per machine: its memory budget and block plans


def read_plans(folder: Path) -> dict:
    """The run's recorded plans (:data:`PLAN_FILE`), machine -> plan; {} when none."""
    file = Path(folder) / PLAN_FILE
    return json.loads(file.read_text()) if file.is_file() else {}


def run_budget(plans: dict, machine: str, resume: bool) -> int:
    """The memory budget to split a run's blocks by on ``machine``.

    The memory available now (:func:`memory_budget`), or, when resuming a run that recorded one,
    the budget it was started with, so the blocks keep their sub-blocks (and a resumed run its
    finished replicates) whatever else the machine holds today. The plan made before anything
    is built (``study.compare.planned_memory``) and the benchmark's plan both use it.

    Args:
        plans: :func:`read_plans` of the run's folder.
        machine: the machine's id (``capture_hardware().machine``).
        resume: whether the run is resumed.
    """
    now = memory_budget()
    planned = plans.get(machine, {})
    if not resume or "memory_budget_bytes" not in planned:
        return now
    budget = int(planned["memory_budget_bytes"])
    if budget != now:
        log.info(
            "resuming with the memory budget the run was planned with (%.1f GiB; %.1f GiB now)",
            budget / GIB,
            now / GIB,
        )
    return budget


def record_plan(
    folder: Path, plans: dict, machine: str, budget: int, blocks: Sequence[BlockPlan]
) -> None:
    """Write ``machine``'s budget and each block's plan (sub-blocks, estimated memory) into the
    run's :data:`PLAN_FILE`, keeping the other machines' entries of ``plans``."""
    doc = {
        **plans,
        machine: {"memory_budget_bytes": budget, "blocks": [dataclasses.asdict(p) for p in blocks]},
    }
    file = Path(folder) / PLAN_FILE
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(doc, indent=1) + "\n")


@dataclass(frozen=True)
class BlockPlan:
    """How one block of the caller is measured: as itself, or as sub-blocks."""

    block: str  # the block's name as given
    cells: int  # its distinct cells
    parts: tuple[str, ...]  # the block ids it is measured as (itself when not split)
    peak_bytes: int  # estimated memory of its largest (sub-)block
    total_bytes: int  # estimated memory of all its cells at once

    def describe(self) -> str:
        """One line for the log, e.g. ``block 'vgg19/sync': 30 cells, 41.2 GiB at once; ...``."""
        line = f"block {self.block!r}: {self.cells} cells, {self.total_bytes / GIB:.1f} GiB at once"
        if len(self.parts) == 1:
            return line + " (estimated peak memory)"
        return (
            f"{line}: split into {len(self.parts)} sub-blocks sharing its reference cells, "
            f"estimated peak {self.peak_bytes / GIB:.1f} GiB"
        )


def _refusal(block: str, need_cells: int, need_bytes: int, max_live: int, budget: int) -> str:
    fixes = []
    if need_cells > max_live:
        fixes.append(f"raise max_live_workers to at least {need_cells}")
    if need_bytes > budget:
        fixes.append(
            f"a machine with at least {need_bytes / MEMORY_HEADROOM / GIB:.1f} GiB available "
            f"(a block plans on {MEMORY_HEADROOM:.0%} of it)"
        )
    return (
        f"block {block!r} cannot fit: a file on every engine and the reference cells it pairs "
        f"with need {need_cells} workers and an estimated {need_bytes / GIB:.1f} GiB at once, more "
        f"than `max_live_workers`={max_live} or the memory budget {budget / GIB:.1f} GiB; fix: "
        f"fewer engines (each file is loaded on every engine at once), or {' and '.join(fixes)}"
    )


def _variant(spec: CellSpec) -> tuple:
    """What keeps cells together: one model file's variant (NNCF's int8 is two files, one per
    engine kind, and still one variant)."""
    return (
        spec.model,
        spec.pruner,
        spec.profile,
        spec.mask,
        spec.quant,
        spec.exporter,
        spec.sparsity,
    )


def _pack(
    name: str, specs: list[CellSpec], cost: dict[CellSpec, int], max_live: int, budget: int
) -> tuple[list[CellSpec], list[int], tuple[str, ...]]:
    """The sub-blocks of one block: (their cells, their estimated bytes, their ids).

    Files (largest first) go first-fit into sub-blocks; a sub-block's load is its files plus the
    anchors they need (``needs``); an anchor no file needed gets a place of its own.
    """
    anchors = group_blocks([c for c in specs if c.anchor], lambda c: c.onnx_path)

    def needs(cells: list[CellSpec]) -> set[str]:  # anchor files they pair with, and theirs
        todo = [p for c in cells for p in (c.pairs_with or anchors)]
        found: set[str] = set()
        while todo:
            path = todo.pop()
            if path in anchors and path not in found:
                found.add(path)
                todo += [p for c in anchors[path] for p in c.pairs_with]
        return found

    def load(paths: set[str], groups: list[list[CellSpec]]) -> tuple[int, int]:
        cells = [c for p in paths for c in anchors[p]] + [c for g in groups for c in g]
        return len(cells), sum(cost[c] for c in cells)

    files = group_blocks([c for c in specs if not c.anchor], _variant)
    groups = sorted(files.values(), key=lambda g: -sum(cost[c] for c in g))  # stable
    groups += [cells for path, cells in anchors.items()]  # an anchor no file needs goes somewhere
    parts: list[tuple[set[str], list[list[CellSpec]]]] = []  # (anchor files, file groups)
    for group in groups:
        need = needs(group)
        if group[0].anchor:
            if any(group[0].onnx_path in paths for paths, _ in parts):
                continue
            need, group = need | {group[0].onnx_path}, []
        for paths, held in parts:
            n, b = load(paths | need, [*held, group])
            if n <= max_live and b <= budget:
                paths |= need
                held.append(group)
                break
        else:
            n, b = load(need, [group])
            if n > max_live or b > budget:
                raise ValueError(_refusal(name, n, b, max_live, budget))
            parts.append((set(need), [group]))
    ids = tuple(f"{name}/part{i + 1}of{len(parts)}" for i in range(len(parts)))
    out: list[CellSpec] = []
    for part_id, (paths, held) in zip(ids, parts):
        out += [replace(c, block=part_id) for p in anchors if p in paths for c in anchors[p]]
        out += [replace(c, block=part_id) for g in held for c in g]
    return out, [load(paths, held)[1] for paths, held in parts], ids


def split_cells(
    cells: Sequence[CellSpec],
    max_live_workers: int,
    budget_bytes: int,
    memory: Callable[[CellSpec], int] = cell_memory,
) -> tuple[list[CellSpec], list[BlockPlan]]:
    """Cells with sub-block ids where a block does not fit, and each block's plan.

    A block fits when its distinct cells number at most ``max_live_workers`` and their estimated
    memory is at most ``budget_bytes``; then its cells keep their block. Otherwise its non-anchor
    cells are grouped by variant (model and variant columns: every engine and precision of one
    model file together, NNCF's two files of one int8 model too)
    and packed first-fit, largest group first, into as few sub-blocks as fit, each with copies
    of the anchor cells its groups pair with (``pairs_with``; empty: every anchor). Cells without a block, or equal specs given twice, are kept as
    given (the harness measures a spec once).

    Args:
        cells: the cells of the run.
        max_live_workers: cells a (sub-)block may load at once.
        budget_bytes: estimated memory a (sub-)block may hold.
        memory: cell -> its estimated bytes (default :func:`cell_memory`).

    Returns:
        (the cells to measure, with sub-block ids; one :class:`BlockPlan` per block).

    Raises:
        ValueError: a block does not fit and has no anchor cells (it cannot be split with its
            contrasts kept), or its anchors plus its largest file do not fit; the message gives
            the estimate and the fixes.

    Example:
        >>> ref = [CellSpec("ref.onnx", e, block="m", anchor=True) for e in ("a", "b")]
        >>> var = [CellSpec(f"v{i}.onnx", e, block="m") for i in range(2) for e in ("a", "b")]
        >>> out, (plan,) = split_cells(ref + var, 4, 10**12, memory=lambda c: 1)
        >>> plan.parts, len(out)
        (('m/part1of2', 'm/part2of2'), 8)
    """
    out: list[CellSpec] = []
    plans: list[BlockPlan] = []
    for name, specs in group_blocks(list(dict.fromkeys(cells)), lambda c: c.block).items():
        cost = {c: memory(c) for c in specs}
        total = sum(cost.values())
        if not name or (len(specs) <= max_live_workers and total <= budget_bytes):
            out += specs
            plans.append(BlockPlan(name, len(specs), (name,), total, total))
            continue
        if not any(c.anchor for c in specs):
            raise ValueError(
                f"block {name!r} has {len(specs)} cells and an estimated {total / GIB:.1f} GiB, "
                f"more than `max_live_workers`={max_live_workers} or the memory budget "
                f"{budget_bytes / GIB:.1f} GiB (a block's cells are all loaded at once), and no "
                "anchor (reference) cells to share between sub-blocks: raise max_live_workers "
                "or split the block"
            )
        out_cells, parts_bytes, ids = _pack(name, specs, cost, max_live_workers, budget_bytes)
        out += out_cells
        plans.append(BlockPlan(name, len(specs), ids, max(parts_bytes), total))
    return out, plans


def plan_blocks(
    cells: Sequence[CellSpec], max_live_workers: int, budget_bytes: int | None = None
) -> tuple[list[CellSpec], list[BlockPlan]]:
    """:func:`split_cells` with the files' sizes and the machine's budget; logs each block's estimate.

    Args:
        cells: the cells of the run.
        max_live_workers: cells a (sub-)block may load at once.
        budget_bytes: memory a (sub-)block may hold; None: :func:`memory_budget`.

    Raises:
        ValueError: see :func:`split_cells`.
    """
    budget = memory_budget() if budget_bytes is None else budget_bytes
    sizes: dict[str, int] = {}

    def memory(spec: CellSpec) -> int:
        if spec.onnx_path not in sizes:
            path = Path(spec.onnx_path)
            sizes[spec.onnx_path] = path.stat().st_size if path.is_file() else 0
        return cell_memory(spec, sizes[spec.onnx_path])

    out, plans = split_cells(cells, max_live_workers, budget, memory)
    for plan in plans:
        log.info("%s", plan.describe())
    return out, plans
