"""The written report: caveats, the answers (the channels first), methods and results.

- :mod:`paper.report.document`: the whole report (Markdown) and its HTML rendering;
- :mod:`paper.report.channels`: the A/A control and B per channel, in tables and words;
- :mod:`paper.report.questions`: the original study's questions (engines, speed-up, precision);
- :mod:`paper.report.int8`: what the engines ran on the int8 files, and what int8 gained;
- :mod:`paper.report.models`: accuracy and mask structure;
- :mod:`paper.report.methods`: the methods from the recorded settings, and the caveats.
"""

from paper.report.document import render_html, render_report
from paper.report.methods import caveats

__all__ = ["caveats", "render_html", "render_report"]
