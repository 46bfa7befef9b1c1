"""gmp._expr against SparseML 1.8's own restricted_eval (installed reference).

gmp's other evaluator tests (unary minus, rejected syntax, errors) are in gmp/tests/test_expr.py.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

from gmp._expr import evaluate  # noqa: E402

VARIABLES = {"num_epochs": 10, "lr": 0.05, "frac": 0.25}

# Expressions SparseML 1.8 itself accepts (sparseml/utils/restricted_eval.py).
SPARSEML_EXPRESSIONS = [
    "num_epochs - 2",
    "num_epochs * frac",
    "num_epochs / 4",
    "num_epochs // 4",
    "num_epochs % 4",
    "2 ** 3",
    "(num_epochs - 2) * (lr + 1)",
    "max(1, num_epochs - 12)",
    "min(lr, 0.01)",
    "round(num_epochs * 0.33)",
    "abs(frac - 1)",
    "int(num_epochs * frac)",
    "float(num_epochs)",
    "round(0.12345, 2)",
]


@pytest.mark.parametrize("expression", SPARSEML_EXPRESSIONS)
def test_matches_sparseml_restricted_eval(expression):
    from sparseml.utils.restricted_eval import restricted_eval

    expected = restricted_eval(expression, dict(VARIABLES))
    got = evaluate(expression, VARIABLES)
    assert got == expected
    assert type(got) is type(expected)
