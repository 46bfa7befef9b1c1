"""Analysing a run's results, once: the statistics and the set-apart rule (``summary``: the one
:class:`~study.analysis.summary.RunAnalysis` per run), ``stats.json`` written and read back while
current (``stats_file``), the int8 analysis, and the markdown renderings (``markdown``,
``toolchain_text``). Reads records, computes with ``study.stats``; never measures or trains."""
