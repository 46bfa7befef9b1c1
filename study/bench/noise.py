"""The machine's noise floor: how much a fixed workload with no engine varies between timed trials,
and how much CPU time the hypervisor took (steal) while something was timed.

A benchmark cannot be more precise than the machine it runs on. This module times a fixed float32
matrix-multiply loop (numpy, threads limited with threadpoolctl) in back-to-back trials of the same
length the harness uses and reports the coefficient of variation of per-trial throughput. From it
follows how many trials a relative 95% CI half-width needs: ``n ~ (t * cv / target)^2``. On a quiet
dedicated core the CV is well under 1%; on a shared VM it can be 10% or more, and then no harness
reaches a +-1% CI in 30 s. ``benchmarks/fidelity.py`` prints it beside its figures.

On a virtual machine much of that noise is CPU *steal*: time the hypervisor gave the host's other
guests while ours wanted to run. :class:`StealMeter` reads it from the kernel's counters (psutil)
around a timed window; the harness records it per trial (``TrialRow.cpu_steal``).

Example:
    >>> floor = noise_floor(seconds=5, trial_seconds=0.5)  # doctest: +SKIP
    >>> floor.cv, floor.trials_for(0.01)  # doctest: +SKIP
    (0.14, 753)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import psutil
import scipy.stats
from threadpoolctl import threadpool_limits  # a dependency of scikit-learn, which the study uses

from study.engines.base import sync_window
from study.stats.defaults import CONFIDENCE

__all__ = ["NoiseFloor", "StealMeter", "noise_floor"]

_SIZE = 384  # matrix side: ~10 ms per product on one core, large enough to be compute-bound


class StealMeter:
    """Fraction of all CPUs' time stolen by the hypervisor between :meth:`start` and :meth:`stop`.

    ``stop`` returns None where the kernel does not report steal (not Linux) or no CPU time passed.

    Example:
        >>> meter = StealMeter().start()
        >>> ...  # the timed window  # doctest: +SKIP
        >>> meter.stop()  # doctest: +SKIP
        0.12
    """

    def __init__(self) -> None:
        self._before: Any = None

    def start(self) -> StealMeter:
        self._before = psutil.cpu_times()
        return self

    def stop(self) -> float | None:
        if self._before is None:
            raise RuntimeError("StealMeter.stop() called before start()")
        before, after = self._before, psutil.cpu_times()
        if not hasattr(after, "steal"):
            return None
        # guest time is already counted in user/nice (Linux), so it is left out of the total.
        fields = [f for f in after._fields if f not in ("guest", "guest_nice")]
        total = sum(getattr(after, f) - getattr(before, f) for f in fields)
        return (after.steal - before.steal) / total if total > 0 else None


@dataclass(frozen=True)
class NoiseFloor:
    """Per-trial throughput variation of a fixed compute workload on this machine."""

    workload: str  # what was timed
    threads: int  # BLAS threads it ran on
    trial_seconds: float  # length of one trial
    trials: int  # trials measured
    mean: float  # mean throughput, products per second
    cv: float  # sample standard deviation / mean of per-trial throughput
    lag1: float  # lag-1 autocorrelation of per-trial throughput (drift shows as > 0)
    min_ratio: float  # slowest trial / fastest trial
    cpu_steal: float | None = None  # fraction of CPU time the hypervisor took meanwhile

    def trials_for(self, target_ci: float, confidence: float = CONFIDENCE) -> int:
        """Trials a relative CI half-width of ``target_ci`` needs at this CV (normal approximation).

        Raises:
            ValueError: ``target_ci`` not > 0 or ``confidence`` not in (0, 1).
        """
        if not target_ci > 0:
            raise ValueError(f"`target_ci` must be > 0; got {target_ci!r}")
        if not 0 < confidence < 1:
            raise ValueError(f"`confidence` must be in (0, 1); got {confidence!r}")
        z = scipy.stats.norm.ppf(0.5 + confidence / 2)
        return max(2, math.ceil((z * self.cv / target_ci) ** 2))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"machine noise floor ({self.workload}, {self.threads} thread(s)): per-trial CV "
            f"{self.cv:.1%} over {self.trials} trials of {self.trial_seconds:g} s, lag-1 "
            f"autocorrelation {self.lag1:+.2f}, slowest/fastest {self.min_ratio:.2f}"
            + ("" if self.cpu_steal is None else f", CPU steal {self.cpu_steal:.1%}")
            + "; a +-1% 95% CI "
            f"would need ~{self.trials_for(0.01)} such trials (~{self.trials_for(0.01) * self.trial_seconds:.0f} s)"
        )


def noise_floor(seconds: float = 10.0, trial_seconds: float = 1.0, threads: int = 1) -> NoiseFloor:
    """Time ``seconds`` of a fixed matmul loop in trials of ``trial_seconds`` and summarise them.

    Raises:
        ValueError: ``seconds`` shorter than three trials, ``trial_seconds`` not > 0, or
            ``threads`` not an integer >= 1.
    """
    if not trial_seconds > 0:
        raise ValueError(f"`trial_seconds` must be > 0; got {trial_seconds!r}")
    if not seconds >= 3 * trial_seconds:
        raise ValueError(
            f"`seconds` must be at least 3 trials ({3 * trial_seconds:g} s); got {seconds!r}"
        )
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"`threads` must be an integer >= 1; got {threads!r}")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((_SIZE, _SIZE), dtype=np.float32)
    out = np.empty_like(a)
    rates = []
    meter = StealMeter().start()
    with threadpool_limits(limits=threads):
        np.matmul(a, a, out=out)  # warm the BLAS threads and caches
        for _ in range(int(seconds // trial_seconds)):  # timed as the harness times a trial
            rates.append(sync_window(lambda: np.matmul(a, a, out=out), trial_seconds, 1).throughput)
    steal = meter.stop()
    x = np.asarray(rates)
    d = x - x.mean()
    lag1 = float((d[1:] * d[:-1]).sum() / (d * d).sum()) if (d * d).sum() > 0 else 0.0
    return NoiseFloor(
        workload=f"numpy float32 matmul {_SIZE}x{_SIZE}",
        threads=threads,
        trial_seconds=float(trial_seconds),
        trials=int(x.size),
        mean=float(x.mean()),
        cv=float(x.std(ddof=1) / x.mean()),
        lag1=lag1,
        min_ratio=float(x.min() / x.max()),
        cpu_steal=steal,
    )
