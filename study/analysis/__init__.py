"""Analysing a run's results: the channel statistics (``summary``), the int8 analysis, and their
markdown renderings (``markdown``, ``toolchain_text``). Reads records, computes with
``study.stats``; never measures or trains."""
