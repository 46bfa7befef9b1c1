"""The declared defaults of every statistic, in one place: the equivalence margin, the CI level
and the level of a test.

``study.config.AnalysisSettings`` (what a preset declares and config.yaml records) and every
estimator's keyword default read these names, so a run without a configuration and a function
called on its own use the same numbers as a preset that does not set them.
"""

from __future__ import annotations

__all__ = ["ALPHA", "CONFIDENCE", "MARGIN"]

# Equivalence margin of every B: "no bias larger than margin" is TOST inside [1-m, 1+m], and the
# one-sided test asks whether a channel could explain a gap of m or more. 0.10 sits below the
# original study's 12% DeepSparse-over-OpenVINO gap: a channel ruled out at 10% cannot explain it.
MARGIN = 0.10
# Two-sided level of every CI; the TOST and one-sided tests run at 1 - confidence.
CONFIDENCE = 0.95
# Level of a test called on its own (each one-sided test of TOST, a replication test, a minimum
# detectable effect): 1 - CONFIDENCE, written as the number so it is exactly 0.05.
ALPHA = 0.05
