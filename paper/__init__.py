"""paper: figures, tables and a report built from a results folder (``python -m paper``).

Responsibility: read results only (never run a benchmark) and write figures, tables and the report
that answers the original study's questions.
"""

from paper.assemble import BuildResult, build_paper

# ``study.compare`` calls ``paper.build(results_dir, out_dir)``; the same function.
build = build_paper

__all__: list[str] = ["BuildResult", "build", "build_paper"]
