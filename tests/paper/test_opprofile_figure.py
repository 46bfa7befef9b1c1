"""paper.figures.opprofile: the stacked bars of an opprofile.json, and its absence reported."""

from __future__ import annotations

import pytest

from paper.figures._common import MissingData
from paper.figures.opprofile import draw_opprofile, load_profiles, main

from .fixture import write_opprofile


def test_each_bar_stacks_to_one(tmp_path):
    write_opprofile(tmp_path / "opprofile.json")
    frame = load_profiles(tmp_path / "opprofile.json")
    assert len(frame) == 3  # the failed profile is left out
    fig = draw_opprofile(frame)
    openvino = fig.axes[0]
    assert openvino.get_title() == "openvino"
    ends: dict[float, float] = {}
    for patch in openvino.patches:
        y = round(patch.get_y() + patch.get_height() / 2, 6)
        ends[y] = max(ends.get(y, 0.0), patch.get_x() + patch.get_width())
    assert sorted(ends.values()) == pytest.approx([1.0, 1.0])
    texts = [t.get_text() for t in openvino.texts]
    assert "≤2.2x" in texts and "∞" in texts


def test_cli_writes_the_figure_and_the_sentences(tmp_path, capsys):
    write_opprofile(tmp_path / "opprofile.json")
    assert main([str(tmp_path / "opprofile.json"), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "opprofile.png").is_file()
    assert "efficientnet_b0 on deepsparse" in capsys.readouterr().out


def test_absent_file_is_missing_data(tmp_path):
    with pytest.raises(MissingData, match="no opprofile.json"):
        load_profiles(tmp_path / "opprofile.json")
