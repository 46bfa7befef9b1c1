"""The README opens with the two commands, stays short, and every link and command in it exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_the_readme_opens_with_the_two_commands_verbatim():
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split("#")[0].strip() for line in first_block] == [
        "uv run python -m study.compare",
        "uv run pytest",
    ]


def test_the_readme_is_short_and_keeps_no_run_diary():
    assert len(README.splitlines()) <= 200
    assert "runs/quick.1" not in README and "earlier sessions" not in README.lower()


@pytest.mark.parametrize("page", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), (
            f"{page.name} links {target!r}, which does not exist"
        )


def test_every_module_the_readme_runs_exists():
    modules = set(re.findall(r"python -m ([\w.]+)", README))
    assert {"study.compare", "paper", "baselines.validate"} <= modules
    missing = [m for m in sorted(modules) if importlib.util.find_spec(m) is None]
    assert not missing, f"the README runs modules that do not exist: {missing}"
    for script in re.findall(r"python (\S+\.py)", README):
        assert (ROOT / script).is_file(), script
