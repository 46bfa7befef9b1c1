"""paper: figures, tables and a report built from a results folder (``python -m paper``).

Responsibility: read results only (never run a benchmark) and write figures, tables and the report
that answers the study's question (does a toolchain channel change the engine comparison? the A/A
control first, then B per channel, with the numbers of ``study.analysis.summary``) and the original study's
questions. Modules: :mod:`paper.load` (the folder), :mod:`paper.analysis` and :mod:`study.analysis.int8`
(the statistics, computed once), :mod:`paper.tables`, :mod:`paper.figures`, :mod:`paper.report`
and :mod:`paper.assemble` (the build).
"""

from paper.assemble import BuildResult, build_paper

# ``study.compare`` calls ``paper.build(results_dir, out_dir)``; the same function.
build = build_paper

__all__: list[str] = ["BuildResult", "build", "build_paper"]
