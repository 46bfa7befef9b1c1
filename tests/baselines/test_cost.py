"""baselines.cost (gmp vs SparseML cost): without SparseML it says which environment provides it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _import_cost_without(module: str) -> subprocess.CompletedProcess:
    # A fresh interpreter: ``sys.modules[name] = None`` makes ``import name`` raise ImportError,
    # as in an environment without it, and nothing imported earlier can leak in.
    code = f"""
        import sys
        sys.modules[{module!r}] = None
        try:
            import baselines.cost
        except ImportError as err:
            print(err)
        else:
            print("imported")
    """
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("hidden", ["sparseml", "torchvision"])
def test_import_without_sparseml_names_the_root_environment(hidden):
    done = _import_cost_without(hidden)
    assert done.returncode == 0, done.stderr
    message = done.stdout
    assert f"needs {hidden!r}" in message
    assert "project's root environment" in message
    assert "uv sync" in message and "repository root" in message
    assert "numpy<2" in message  # why it is not a dependency of the library


def test_imports_in_the_root_environment():
    done = _import_cost_without("no_such_module_hidden")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "imported"
    from baselines import cost

    assert callable(cost.main)
