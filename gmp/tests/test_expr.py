"""gmp._expr: the safe evaluator for recipe eval(...) strings (SparseML's own: tests/gmp)."""

from __future__ import annotations

import pytest

from gmp._expr import UnknownVariableError, evaluate

VARIABLES = {"num_epochs": 10, "lr": 0.05, "frac": 0.25}


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
