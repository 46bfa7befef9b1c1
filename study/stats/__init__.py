"""Statistics of the study: CIs, engine ratios, pruning speed-ups, toolchain bias, equivalence.

Every function takes a pandas DataFrame of :class:`study.schema.TrialRow` rows (it keeps the
``status == "ok"`` rows itself) from any number of machines (machine is always a grouping
factor) and returns frozen result objects or tidy DataFrames that carry the cell ids they came
from. Methods, each documented with its formula where it lives:

- :func:`bootstrap_ci` / :func:`cell_table`: BCa bootstrap (``scipy.stats.bootstrap``, seeded).
- :func:`throughput_ratio`: ratio of geometric means, Welch t CI on log throughput, Mann-Whitney
  U; :func:`holm` across models in :func:`engine_comparison`; :func:`pruning_speedup`.
- :func:`tost` / :func:`tost_one_sample`: two one-sided t tests.
- :func:`toolchain_bias`: B per architecture (four-cell Welch-Satterthwaite contrast of log
  means) and pooled (DerSimonian-Laird + Hartung-Knapp-Sidik-Jonkman, t(k - 1)), with TOST.

Computations that cannot be done (a missing or failed cell, a single trial) never raise: they
give NaN statistics and a ``note`` saying why. Throughputs <= 0 on ok rows raise ValueError.
"""

from study.stats._frame import CELL_COLUMNS, failed_trials, ok_trials
from study.stats.bias import BiasResult, bias_table, toolchain_bias
from study.stats.equivalence import TostResult, tost, tost_one_sample
from study.stats.intervals import CI, bootstrap_ci, cell_table
from study.stats.meta import Contrast, MetaResult, random_effects, welch_contrast
from study.stats.ratios import (
    RatioResult,
    engine_comparison,
    holm,
    pruning_speedup,
    throughput_ratio,
)

__all__ = [
    "CELL_COLUMNS",
    "CI",
    "BiasResult",
    "Contrast",
    "MetaResult",
    "RatioResult",
    "TostResult",
    "bias_table",
    "bootstrap_ci",
    "cell_table",
    "engine_comparison",
    "failed_trials",
    "holm",
    "ok_trials",
    "pruning_speedup",
    "random_effects",
    "throughput_ratio",
    "tost",
    "tost_one_sample",
    "toolchain_bias",
    "welch_contrast",
]
