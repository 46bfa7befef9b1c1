"""Without the optional extra: ``import gmp`` works, and what needs pandas says which extra has it.

pandas and tqdm are hidden by setting ``sys.modules[name] = None`` (Python then raises ImportError
on import), in a fresh interpreter so no earlier import can leak in. In an environment without the
extra, the same code runs against the real absence.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch

import gmp

ROOT = Path(__file__).resolve().parents[1]  # the distribution's folder (CHANGELOG.md)


def _run_without(modules: list[str], code: str) -> subprocess.CompletedProcess:
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_gmp_needs_neither_pandas_nor_tqdm():
    done = _run_without(
        ["pandas", "tqdm"],
        """
        import torch
        import gmp
        model = torch.nn.Linear(8, 4)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        pruner = gmp.GMP(model, opt, final_sparsity=0.5, start_step=0, end_step=1)
        for _ in range(2):
            opt.zero_grad(); model(torch.randn(2, 8)).sum().backward(); opt.step()
        pruner.finalize()
        print(gmp.sparsity_report(model).total_zeros)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["16"]


@pytest.mark.parametrize("hidden", ["pandas", "tqdm"])
def test_sensitivity_without_the_extra_names_it(hidden):
    done = _run_without(
        [hidden],
        """
        import torch
        import gmp
        try:
            gmp.sensitivity(torch.nn.Linear(4, 4), lambda m: 0.0, levels=(0.5,))
        except ImportError as err:
            print(err)
        """,
    )
    assert done.returncode == 0, done.stderr
    # The first of the extra's modules that is hidden here or not installed at all is named.
    missing = next(m for m in ("pandas", "tqdm") if m == hidden or find_spec(m) is None)
    assert f"gmp.sensitivity needs '{missing}'" in done.stdout
    assert "pip install 'torch-gmp[sensitivity]'" in done.stdout


def test_report_to_frame_without_pandas_names_the_extra():
    done = _run_without(
        ["pandas"],
        """
        import torch
        import gmp
        try:
            gmp.sparsity_report(torch.nn.Linear(4, 4)).to_frame()
        except ImportError as err:
            print(err)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "SparsityReport.to_frame needs 'pandas'" in done.stdout
    assert "pip install 'torch-gmp[sensitivity]'" in done.stdout


def test_report_to_frame_with_pandas():
    pytest.importorskip("pandas", reason="to_frame needs the [sensitivity] extra (pandas)")
    model = torch.nn.Linear(4, 3)
    with torch.no_grad():
        model.weight[:2] = 0.0  # 8 zeros
    report = gmp.sparsity_report(model)
    frame = report.to_frame()
    assert list(frame.columns) == ["name", "shape", "numel", "zeros", "sparsity"]
    assert frame["zeros"].sum() == report.total_zeros == 8


def test_version_is_the_same_in_package_metadata_and_changelog():
    assert metadata.version("torch-gmp") == gmp.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text()
    first_entry = next(line for line in changelog.splitlines() if line.startswith("## "))
    assert first_entry.startswith(f"## [{gmp.__version__}]")


def test_dependencies_are_torch_and_pyyaml_and_the_extra_only():
    requires = sorted(r.replace(" ", "").replace("'", '"') for r in metadata.requires("torch-gmp"))
    assert requires == [
        'pandas>=2.0;extra=="sensitivity"',
        "pyyaml>=6",
        "torch>=2.1",
        'tqdm>=4.66;extra=="sensitivity"',
    ]
