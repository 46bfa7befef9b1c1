"""The benchmark harness: fair, blocked, confidence-driven timing of CPU inference engines.

Every cell (model file x engine x precision x scenario x batch x threads) runs in its own worker
process (:mod:`study.engines.worker`). Cells with the same ``block`` are measured together, in
``replicates`` replicates, each a fresh set of the block's processes (replicates of different
blocks interleaved in time): all loaded at once in the replicate's seeded order (a block with more
than ``max_live_workers`` cells, or more estimated memory than the machine has, is measured as
sub-blocks that each hold its reference cells: :mod:`study.bench.split`), warmed up one at a
time, then timed in *rounds*,
each timing every live cell once in a seeded order that is reversed every other round
(:mod:`study.bench.scheduling`), so drift of a shared machine hits the cells of a block alike and
cancels in their round-by-round ratios. A replicate stops when every cell's drift-corrected CI is
within ``target_ci`` or a cap is reached (:mod:`study.bench.stopping`). Rows are appended as they
are measured; a resumed run keeps the complete replicates and measures an interrupted one again
in new processes (:mod:`study.bench.replicates`).

Modules: :mod:`~study.bench.cells` (what is measured, and how), :mod:`~study.bench.scheduling`
(replicate, load and round orders), :mod:`~study.bench.replicates` (what a resumed run redoes),
:mod:`~study.bench.stopping` (the stopping rule), :mod:`~study.bench.split` (memory estimate and
sub-blocks), :mod:`~study.bench.workers`
(loading and warm-up), :mod:`~study.bench.rows` (the rows written), :mod:`~study.bench.run`
(:func:`run_benchmark`), :mod:`~study.bench.summary` (:func:`summarize`), :mod:`~study.bench.cli`.

CLI::

    python -m study.bench model.onnx --engine all --threads 2 --out runs/bench.jsonl
"""

from __future__ import annotations

from study.bench.cells import BenchSettings, CellSpec, cell_key
from study.bench.cli import main
from study.bench.run import run_benchmark
from study.bench.scheduling import round_order
from study.bench.stopping import CellTally, block_stop_reason
from study.bench.summary import summarize

__all__ = [
    "BenchSettings",
    "CellSpec",
    "CellTally",
    "block_stop_reason",
    "cell_key",
    "main",
    "round_order",
    "run_benchmark",
    "summarize",
]
