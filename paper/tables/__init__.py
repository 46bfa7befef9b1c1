"""The paper's tables: built as DataFrames, written as Markdown and LaTeX.

- :mod:`paper.tables.render`: the :class:`Table` type and its Markdown and LaTeX renderings;
- :mod:`paper.tables.channels`: B per channel and engine pair, pooled and per architecture;
- :mod:`paper.tables.models`: accuracy (Table 1), gzip sizes (Table 2), mask structure;
- :mod:`paper.tables.cells`: the CPUs and the throughput of every benchmark cell.

Every builder gives its rows in a fixed order, so the same results always give the same files.
"""

from paper.tables.cells import cpu_table, throughput_table
from paper.tables.channels import channel_table
from paper.tables.models import accuracy_table, diagnostics_table, size_table
from paper.tables.render import Table, to_latex, to_markdown, write_table

__all__ = [
    "Table",
    "accuracy_table",
    "channel_table",
    "cpu_table",
    "diagnostics_table",
    "size_table",
    "throughput_table",
    "to_latex",
    "to_markdown",
    "write_table",
]
