"""``python -m paper RESULTS_DIR [--out DIR] [--results-page PATH]``: figures, tables and the report from a results folder."""

from __future__ import annotations

import argparse
import logging
import sys

from paper.assemble import build_paper
from study.records.logs import configure_logging

_log = logging.getLogger("paper")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m paper",
        description="Write figures (PNG, SVG), tables (Markdown, LaTeX) and report.md/report.html "
        "from a results folder written by `python -m study.compare`. Reads results only.",
    )
    parser.add_argument("results_dir", help="the results folder (must hold bench.jsonl)")
    parser.add_argument("--out", default=None, help="output folder (default: RESULTS_DIR/paper)")
    parser.add_argument(
        "--results-page",
        default=None,
        metavar="PATH",
        help="also write the results page the README links (e.g. docs/results.md), "
        "with the central figure copied beside it",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 on a missing or malformed results folder)."""
    args = _parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        built = build_paper(args.results_dir, args.out, results_page=args.results_page)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for fig in built.figures:
        if fig.skipped:
            _log.info("figure %s skipped: %s", fig.name, fig.skipped)
    _log.info("wrote %s and %s", built.report_md, built.report_html)
    return 0


if __name__ == "__main__":
    sys.exit(main())
