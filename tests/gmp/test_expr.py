"""gmp._expr: the safe evaluator for recipe eval(...) strings, checked against SparseML's own."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

from gmp._expr import UnknownVariableError, evaluate  # noqa: E402

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


def test_unary_minus():
    # SparseML 1.8 crashes on unary minus (it reads node.left of a UnaryOp); gmp supports it.
    assert evaluate("-num_epochs + 3", VARIABLES) == -7
    assert evaluate("-(2 ** 2)") == -4


def test_unknown_variable_names_it():
    with pytest.raises(UnknownVariableError, match="'epochs'") as info:
        evaluate("epochs - 2", VARIABLES)
    assert info.value.name == "epochs"


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "num_epochs.__class__",
        "[1, 2]",
        "'a' * 3",
        "lambda: 1",
        "num_epochs if lr else 2",
        "open('x')",
        "1 < 2",
    ],
)
def test_rejects_anything_but_arithmetic(expression):
    with pytest.raises(ValueError):
        evaluate(expression, VARIABLES)


def test_rejects_huge_power():
    with pytest.raises(ValueError, match="power too large"):
        evaluate("9 ** 9 ** 9")


def test_division_by_zero_is_value_error():
    with pytest.raises(ValueError, match="division by zero"):
        evaluate("num_epochs / (frac - 0.25)", VARIABLES)


def test_syntax_error_is_value_error():
    with pytest.raises(ValueError, match="invalid expression"):
        evaluate("num_epochs -", VARIABLES)
