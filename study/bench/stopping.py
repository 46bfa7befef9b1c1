"""The stopping rule of a block: why its rounds are finished, or None to run another round.

One rule for the harness while it measures (:mod:`study.bench.run`) and for a resumed run
deciding what is already done (:func:`study.bench.progress.stop_reason`, :func:`study.bench.progress.finished_cells`).
It is checked after each complete round, on the block's *live* cells (not failed, fewer than
``max_trials`` trials rejected for CPU steal):

- ``"rejected"`` / ``"failed"``: no live cell is left (the machine stayed too busy for some,
  and the others failed; ``"failed"`` when none was rejected out);
- after ``min_trials`` rounds:
  ``"ci"``: every live cell's drift-corrected 95% CI (below) has a half-width of at most
  ``log(1 + target_ci)``;
  ``"max_trials"``: ``max_trials`` rounds are done;
  ``"max_seconds"``: the live cells' warm-up and trial seconds (trials rejected for steal
  excluded) add up to ``max_seconds_per_cell`` times their number.

The rule applies to one replicate of a block (one set of its worker processes; see
:mod:`study.bench.replicates`). "Rounds" is the fewest rounds any live cell has an ok trial in: in
an uninterrupted replicate every live cell has one per round.

The drift-corrected CI. For cell ``c`` and round ``r`` let
``d[c, r] = log x[c, r] - mean(log x[c', r])``, the mean over the live cells ``c'`` with an ok trial
in round ``r`` (rounds where only one live cell has one are left out). Drift that is common to the
cells of a round cancels in ``d``. With ``n`` such rounds, the half-width is
``t(0.975, n - 1) * sd(d[c, :]) / sqrt(n)``. A block of one live cell has ``d = 0``; there the plain
CI of ``log x[c, :]`` is used. The ratio of two cells of the block, estimated round by round, has
about ``sqrt(2)`` times this half-width (``sqrt(2k / (k - 1))`` for ``k`` cells of equal,
independent noise), so ``target_ci`` bounds the cells' precision, not directly their ratios'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from study.stats.defaults import CONFIDENCE
from study.stats.intervals import ci_half_width

__all__ = [
    "STOP_REASONS",
    "CellTally",
    "block_stop_reason",
    "drift_corrected_half_widths",
]

STOP_REASONS = ("ci", "max_trials", "max_seconds", "rejected", "failed")


@dataclass(frozen=True)
class CellTally:
    """What the stopping rule needs of one cell of a block."""

    by_round: Mapping[int, float] = field(default_factory=dict)  # round -> ok trial's throughput
    seconds: float = 0.0  # warm-up + trial seconds spent, those of rejected trials excluded
    rejected: int = 0  # trials rejected for CPU steal
    failed: bool = False  # the cell failed (load error, worker crash) and left the block

    def live(self, max_trials: int) -> bool:
        """Whether the cell is still measured: not failed, fewer than ``max_trials`` rejections."""
        return not self.failed and self.rejected < max_trials


def _logs(by_round: Mapping[int, float], cell: str) -> dict[int, float]:
    out = {}
    for r, x in by_round.items():
        if not (math.isfinite(x) and x > 0):
            raise ValueError(
                f"throughputs must be finite and > 0; got {x!r} in round {r} of cell {cell!r}"
            )
        out[r] = math.log(x)
    return out


def drift_corrected_half_widths(
    by_round: Mapping[str, Mapping[int, float]], confidence: float = CONFIDENCE
) -> dict[str, float]:
    """Each cell's CI half-width of mean log throughput, round means removed (see the module doc).

    Args:
        by_round: cell -> (round -> ok throughput) for the cells measured together.
        confidence: the CI's level.

    Returns:
        cell -> half-width on the log scale (NaN with fewer than 2 usable rounds).

    Raises:
        ValueError: a throughput that is not finite and > 0.

    Example:
        >>> drift = {0: 1.0, 1: 1.3, 2: 0.8}  # a strong drift common to both cells
        >>> x = {"a": {r: 100 * d for r, d in drift.items()}, "b": {r: 50 * d for r, d in drift.items()}}
        >>> [round(w, 12) for w in drift_corrected_half_widths(x).values()]
        [0.0, 0.0]
    """
    logs = {c: _logs(v, c) for c, v in by_round.items()}
    if len(logs) == 1:
        ((cell, one),) = logs.items()
        return {cell: ci_half_width(one.values(), confidence)}
    per_round: dict[int, list[float]] = {}
    for values in logs.values():
        for r, v in values.items():
            per_round.setdefault(r, []).append(v)
    means = {r: math.fsum(v) / len(v) for r, v in per_round.items() if len(v) >= 2}
    return {
        c: ci_half_width((v - means[r] for r, v in values.items() if r in means), confidence)
        for c, values in logs.items()
    }


def block_stop_reason(
    cells: Mapping[str, CellTally],
    *,
    target_ci: float,
    min_trials: int,
    max_trials: int,
    max_seconds_per_cell: float,
) -> str | None:
    """Why the block is finished (one of :data:`STOP_REASONS`), or None to run another round.

    Args:
        cells: cell key -> its tally, for every cell of the block (failed ones too).
        target_ci, min_trials, max_trials, max_seconds_per_cell: the fields of
            :class:`~study.bench.cells.BenchSettings`.

    Raises:
        ValueError: ``cells`` is empty, or a throughput is not finite and > 0.

    Example:
        >>> quiet = {"a": CellTally({0: 100.0, 1: 100.1, 2: 99.9}, seconds=3.0)}
        >>> block_stop_reason(quiet, target_ci=0.01, min_trials=3, max_trials=50, max_seconds_per_cell=30)
        'ci'
    """
    if not cells:
        raise ValueError("`cells` must hold at least one cell of the block; got none")
    live = {k: t for k, t in cells.items() if t.live(max_trials)}
    if not live:
        rejected_out = any(t.rejected >= max_trials for t in cells.values())
        return "rejected" if rejected_out else "failed"
    rounds = min(len(t.by_round) for t in live.values())
    if rounds < min_trials:
        return None
    widths = drift_corrected_half_widths({k: t.by_round for k, t in live.items()})
    if all(w <= math.log1p(target_ci) for w in widths.values()):  # NaN compares False
        return "ci"
    if rounds >= max_trials:
        return "max_trials"
    if math.fsum(t.seconds for t in live.values()) >= max_seconds_per_cell * len(live):
        return "max_seconds"
    return None
