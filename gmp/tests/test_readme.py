"""gmp's README: its Python examples run as written (executed verbatim, in a temporary folder).

They must run in an environment holding only torch-gmp, torch, numpy and pytest, as a new user's
would: CI runs this file there too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(
        compile(BLOCKS[index], f"README.md[python block {index}]", "exec"),
        {"__name__": "__readme__"},
    )
    assert capsys.readouterr().out.strip()  # each example prints its result


def test_the_training_loop_example_prunes_to_its_target(tmp_path, monkeypatch):
    # The first block is the training loop with a recipe: it asserts its own sparsity and
    # writes a checkpoint that a new pruner can load.
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    exec(compile(BLOCKS[0], "README.md[python block 0]", "exec"), namespace)
    assert "GMP.from_recipe" in BLOCKS[0] and (tmp_path / "checkpoint.pt").exists()
    assert namespace["report"].total_zeros == round(0.9 * 432) + round(0.9 * 4608) + round(
        0.9 * 320
    )
