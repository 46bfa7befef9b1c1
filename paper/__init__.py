"""paper: figures, tables and a report built from a results folder (``python -m paper``).

Responsibility: read results only (never run a benchmark) and write figures, tables and the report
that answers the original study's questions.
"""

__all__: list[str] = []
