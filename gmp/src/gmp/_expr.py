"""A safe evaluator for the arithmetic inside SparseML recipe ``eval(...)`` strings.

SparseML 1.8 evaluates ``end_epoch: eval(num_epochs - 2)`` with an ``ast`` walker
(``sparseml/utils/restricted_eval.py``). This module does the same without ever calling Python's
``eval``: numbers, variable names, ``+ - * / // % **``, unary ``-``/``+``, parentheses and the
functions ``abs float int min max round`` (the set SparseML allows). Anything else is a
``ValueError``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["UnknownVariableError", "evaluate"]

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARYOPS: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "float": float,
    "int": int,
    "min": min,
    "max": max,
    "round": round,
}
# Largest result of ``**`` on integers, in bits: keeps ``9**9**9`` from hanging the process.
_MAX_POW_BITS = 4096
_MAX_EXPRESSION_CHARS = 1000


class UnknownVariableError(ValueError):
    """An expression names a variable that is not (yet) defined."""

    def __init__(self, name: str, expression: str):
        super().__init__(f"unknown variable {name!r} in expression {expression!r}")
        # The undefined name.
        self.name = name


def evaluate(expression: str, variables: Mapping[str, Any] | None = None) -> Any:
    """Evaluates an arithmetic expression over numeric variables, without Python's ``eval``.

    Args:
        expression: The expression text, e.g. ``"num_epochs - 2"`` (without the ``eval(...)``).
        variables: Names usable in the expression and their values.

    Returns:
        The value (an int or float; a variable's own value when the expression is just its name).

    Raises:
        UnknownVariableError: If the expression names a variable not in ``variables``.
        ValueError: If the expression is not valid Python syntax, uses anything but the allowed
            operations, divides by zero, or raises a power to an unreasonable size.

    Example:
        >>> evaluate("max(1, n - 2) * 0.5", {"n": 10})
        4.0
    """
    if not isinstance(expression, str):
        raise ValueError(f"`expression` must be a str; got {expression!r}")
    if len(expression) > _MAX_EXPRESSION_CHARS:
        raise ValueError(
            f"`expression` must be at most {_MAX_EXPRESSION_CHARS} characters; "
            f"got {len(expression)}"
        )
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise ValueError(f"invalid expression {expression!r}: {err.msg}") from None
    return _eval_node(tree.body, variables or {}, expression)


def _eval_node(node: ast.AST, variables: Mapping[str, Any], expression: str) -> Any:
    """Evaluates one node of the parsed expression recursively."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ValueError(
                f"only numeric constants are allowed in expressions; got {node.value!r} "
                f"in {expression!r}"
            )
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in variables:
            raise UnknownVariableError(node.id, expression)
        return variables[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left = _eval_node(node.left, variables, expression)
        right = _eval_node(node.right, variables, expression)
        if isinstance(node.op, ast.Pow):
            _check_pow(left, right, expression)
        try:
            return _BINOPS[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ValueError(f"division by zero in expression {expression!r}") from None
        except (TypeError, OverflowError) as err:
            raise ValueError(f"cannot evaluate {expression!r}: {err}") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARYOPS:
        operand = _eval_node(node.operand, variables, expression)
        try:
            return _UNARYOPS[type(node.op)](operand)
        except TypeError as err:
            raise ValueError(f"cannot evaluate {expression!r}: {err}") from None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id not in _FUNCTIONS:
            raise ValueError(
                f"function {node.func.id!r} is not allowed in expression {expression!r}; "
                f"allowed: {sorted(_FUNCTIONS)}"
            )
        args = [_eval_node(arg, variables, expression) for arg in node.args]
        kwargs = {kw.arg: _eval_node(kw.value, variables, expression) for kw in node.keywords}
        if None in kwargs:
            raise ValueError(f"`**` arguments are not allowed in expression {expression!r}")
        try:
            return _FUNCTIONS[node.func.id](*args, **kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"cannot evaluate {expression!r}: {err}") from None
    raise ValueError(
        f"unsupported syntax {type(node).__name__} in expression {expression!r}; allowed: "
        "numbers, variable names, + - * / // % **, unary -, parentheses and "
        f"{', '.join(sorted(_FUNCTIONS))}"
    )


def _check_pow(base: Any, exponent: Any, expression: str) -> None:
    """Refuses integer powers whose result would exceed ``_MAX_POW_BITS`` bits."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        bits = max(abs(base).bit_length(), 1) * exponent
        if abs(base) > 1 and bits > _MAX_POW_BITS:
            raise ValueError(
                f"power too large in expression {expression!r}: about {bits} bits "
                f"(at most {_MAX_POW_BITS} allowed)"
            )
