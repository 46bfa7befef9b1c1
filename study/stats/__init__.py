"""Statistics of the study: cell CIs, round-paired contrasts, engine ratios, channels, equivalence.

Every function takes a pandas DataFrame of :class:`study.records.schema.TrialRow` rows (it keeps the
``status == "ok"`` rows itself) from any number of machines (machine is always a grouping
factor) and returns frozen result objects or tidy DataFrames that carry the cell ids they came
from. Methods, each documented with its formula where it lives:

- :func:`geometric_ci` / :func:`cell_table`: geometric mean with a Student-t interval on log
  throughput (:func:`bootstrap_ci`, BCa, stays available; the cell table does not use it).
- :func:`round_values` / :func:`paired_contrast` / :func:`contrast`: contrasts of log
  throughput paired by round of the blocked design (d_r = sum_c w_c log x_{c,r}, rounds keyed by
  machine, run, replicate, block and round), with the unpaired Welch-Satterthwaite contrast where
  cells share no block. :func:`contrast` combines the replicates' estimates with the degrees of
  freedom of the top replicated level (:func:`nested_estimate`: replicates, runs or machines;
  Kalibera & Jones 2013); with one replicate it keeps the round-paired t (mean, sd / sqrt(R),
  t(R - 1)) and says that it ignores process and run variance.
- :func:`cell_components` / :func:`contrast_components`: variance between rounds, replicates and
  runs (K&J's unbiased estimators; REML by statsmodels as the cross-check and for unbalanced
  data); :func:`allocate`: the replicates x rounds that give the narrowest CI for a time budget.
- :func:`throughput_ratio` (Welch, Mann-Whitney); :func:`engine_comparison` and
  :func:`pruning_speedup` (both through :func:`contrast`; :func:`holm` across models).
- :func:`channel_bias`: B of a :class:`Channel` per architecture and pooled
  (:func:`pool_estimates`: equal weights for k < 5, else DerSimonian-Laird + HKSJ), with TOST,
  the one-sided test of B < 1 + margin and the :func:`minimum_detectable_effect`;
  :func:`channel_table`; :func:`holm_family` (Holm across the family a headline claims).
- :func:`tost` / :func:`tost_one_sample`: two one-sided t tests.

Computations that cannot be done (a missing or failed cell, a single trial) never raise: they
give NaN statistics and a ``note`` saying why. Throughputs <= 0 on ok rows raise ValueError.
"""

from study.stats._frame import CELL_COLUMNS, failed_trials, ok_trials
from study.stats.allocation import Allocation, allocate, kj_rounds
from study.stats.channels import (
    VARIANT_COLUMNS,
    Channel,
    ChannelResult,
    apart_note,
    channel_bias,
    channel_table,
)
from study.stats.components import VarianceComponents, kj_components, reml_components
from study.stats.decompose import cell_components, contrast_components
from study.stats.defaults import ALPHA, CONFIDENCE, MARGIN
from study.stats.equivalence import TostResult, tost, tost_one_sample
from study.stats.intervals import CI, bootstrap_ci, cell_table, ci_half_width, geometric_ci
from study.stats.levels import NestedEstimate, nested_estimate
from study.stats.meta import (
    RANDOM_EFFECTS_MIN_K,
    CommonEffectResult,
    Contrast,
    MetaResult,
    PoolResult,
    common_effect,
    pool_estimates,
    random_effects,
    welch_contrast,
)
from study.stats.multiplicity import holm, holm_family
from study.stats.paired import ContrastResult, contrast, paired_contrast, round_values
from study.stats.power import minimum_detectable_effect
from study.stats.ratios import RatioResult, engine_comparison, pruning_speedup, throughput_ratio

__all__ = [
    "CELL_COLUMNS",
    "CI",
    "ALPHA",
    "CONFIDENCE",
    "MARGIN",
    "Allocation",
    "NestedEstimate",
    "VarianceComponents",
    "RANDOM_EFFECTS_MIN_K",
    "VARIANT_COLUMNS",
    "Channel",
    "ChannelResult",
    "CommonEffectResult",
    "Contrast",
    "ContrastResult",
    "MetaResult",
    "PoolResult",
    "RatioResult",
    "TostResult",
    "allocate",
    "apart_note",
    "bootstrap_ci",
    "cell_components",
    "cell_table",
    "ci_half_width",
    "channel_bias",
    "channel_table",
    "common_effect",
    "contrast",
    "contrast_components",
    "engine_comparison",
    "failed_trials",
    "geometric_ci",
    "holm",
    "holm_family",
    "kj_components",
    "kj_rounds",
    "minimum_detectable_effect",
    "nested_estimate",
    "ok_trials",
    "paired_contrast",
    "pool_estimates",
    "pruning_speedup",
    "random_effects",
    "reml_components",
    "round_values",
    "throughput_ratio",
    "tost",
    "tost_one_sample",
    "welch_contrast",
]
