"""One analysis per run (issue 20 item 2): computed once, written to stats.json, rendered by the paper.

The paper reads ``stats.json``'s analysis when it is current and computes the same analysis
through :func:`study.analysis.summary.run_analysis` otherwise; a bench.jsonl cut short by a kill
(a truncated last line) makes stats.json stale and still builds.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import study.analysis.summary as summary
import study.stats
from paper.analysis import analyse
from paper.assemble import build_paper
from paper.load import load_results
from study.analysis.stats_file import read_analysis
from study.compare import _build_paper, write_stats

from .fixture import write_results


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return write_results(tmp_path_factory.mktemp("once") / "run")


def _same(a, b) -> bool:
    """Equal, with NaN equal to NaN (and to None, JSON's NaN), floats compared exactly."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and math.isnan(a):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, float) and math.isinf(a):
        return b in (a, "inf" if a > 0 else "-inf")
    return a == b


def test_a_study_build_computes_the_channels_once(run, monkeypatch):
    # What python -m study.compare does after benchmarking: stats.json and summary.md, then the paper.
    calls = {"channel_results": 0, "home_results": 0, "cell_tables": 0}
    for name in calls:
        real = getattr(summary, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(summary, name, counted)
    write_stats(run)
    _build_paper(run)
    assert calls == {"channel_results": 1, "home_results": 1, "cell_tables": 1}
    # The fixture's sparsity mismatch is shown apart alike in summary.md and the report.
    apart = "- resnet18: shown apart, not in the pooled B: its files differ by more than 1 point"
    assert apart in (run / "summary.md").read_text()
    assert apart in (run / "paper" / "report.md").read_text()


def test_the_papers_channel_numbers_are_exactly_stats_json(run, monkeypatch):
    if not (run / "stats.json").is_file():
        write_stats(run)
    stored = json.loads((run / "stats.json").read_text())["analysis"]

    def refuse(*args, **kwargs):
        raise AssertionError("the paper computed a B or a table although stats.json is current")

    monkeypatch.setattr(summary, "channel_results", refuse)
    monkeypatch.setattr(summary, "home_results", refuse)
    # ... nor the per-cell tables: cells, engine comparisons, pruning speed-ups
    monkeypatch.setattr(summary, "cell_tables", refuse)
    for name in ("cell_table", "engine_comparison", "pruning_speedup"):
        monkeypatch.setattr(study.stats, name, refuse)
    paper = analyse(load_results(run))
    assert len(paper.channels) == len(stored["channels"]) > 20
    for mine, theirs in zip(paper.channels, stored["channels"]):
        assert _same(asdict(mine), theirs), mine.channel
    assert paper.margin == stored["margin"] and paper.apart == stored["apart"]
    assert paper.identity == stored["identity"] and paper.one_file == stored["one_file"]
    # ... and stats.json's numbers are the ones the analysis computes from the folder's files.
    monkeypatch.undo()
    results = load_results(run)
    fresh = summary.analyse_run(results.bench, results.study_config, results.records)
    assert all(
        _same(asdict(a), asdict(b)) for a, b in zip(fresh.channels, paper.channels, strict=True)
    )
    # The per-cell tables read back from stats.json are the computed ones, dtypes and all.
    pd.testing.assert_frame_equal(paper.cells, fresh.tables.cells, check_exact=True)
    assert set(paper.comparisons) <= set(fresh.tables.comparisons)
    assert len(paper.comparisons) == 3 and len(fresh.tables.comparisons) == 4
    for pair, frame in fresh.tables.comparisons.items():
        stored_frame = read_analysis(run).tables.comparisons[pair]
        pd.testing.assert_frame_equal(stored_frame, frame, check_exact=True)
    pd.testing.assert_frame_equal(
        read_analysis(run).tables.speedup, fresh.tables.speedup, check_exact=True
    )
    assert len(paper.speedup) == int(np.isfinite(fresh.tables.speedup["estimate"]).sum()) > 0


def test_the_paper_builds_from_a_folder_whose_bench_jsonl_ends_in_a_truncated_line(run, tmp_path):
    if not (run / "stats.json").is_file():
        write_stats(run)
    cut = tmp_path / "cut"
    shutil.copytree(run, cut, ignore=shutil.ignore_patterns("paper"))
    intact = analyse(load_results(cut))
    assert read_analysis(cut) is not None  # the copy's files are the ones stats.json describes
    text = (cut / "stats.json").read_text()
    stored = json.loads(text)
    stored["analysis"]["layout"]["ChannelResult"].append("a_field_of_another_version")
    (cut / "stats.json").write_text(json.dumps(stored))
    assert read_analysis(cut) is None  # written when a result had other fields: not read
    (cut / "stats.json").write_text(text)
    with (cut / "bench.jsonl").open("a") as fh:
        fh.write('{"run_id": "run-0", "cell": "abc", "throughput": 12')  # killed mid-write
    assert read_analysis(cut) is None  # stats.json no longer describes the files
    with pytest.warns(UserWarning, match="truncated write"):
        built = build_paper(cut, results_page=tmp_path / "docs" / "results.md")
    assert "## " in built.report_md.read_text()
    page = (tmp_path / "docs" / "results.md").read_text()
    assert "- resnet18: shown apart, not in the pooled B: its files differ by more than 1" in page
    with pytest.warns(UserWarning, match="truncated write"):
        again = analyse(load_results(cut))
    assert [r.estimate for r in again.channels] == [r.estimate for r in intact.channels]
