"""Reading SparseML 1.8 recipes (YAML, or markdown with YAML front matter) into gmp's specs.

A recipe is a YAML mapping whose keys containing ``"modifiers"`` hold lists of ``!Name``-tagged
mappings; every other top-level key is a variable. Values of the form ``eval(expr)`` (in variables
and inside modifiers) are evaluated with :func:`gmp._expr.evaluate` over the numeric variables, as
``sparseml/optim/helpers.py`` (``evaluate_recipe_yaml_str_equations``) does, never with Python's
``eval``. Defaults and validation follow the SparseML 1.8 modifier constructors; where gmp is
stricter (e.g. ``start_epoch >= 0`` for pruning) the message says what is allowed.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gmp._expr import UnknownVariableError, evaluate
from gmp.lr import LR_CLASSES, LRModifierSpec
from gmp.spec import FROM_PARAM, PruningModifierSpec

__all__ = ["MODIFIERS", "Recipe", "load_recipe"]

_ALL = "__ALL__"
_ALL_PRUNABLE = "__ALL_PRUNABLE__"
_INTER_FUNCS = ("linear", "cubic", "inverse_cubic")


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe: what to prune, how to set the learning rate, and for how long."""

    # Pruning modifiers in recipe order; a per-layer final_sparsity dict gives one spec per target.
    pruning: tuple[PruningModifierSpec, ...]
    # Learning-rate modifiers in recipe order (RecipeLR applies them in SparseML's order).
    lr: tuple[LRModifierSpec, ...]
    # Training length in epochs: EpochRangeModifier's end_epoch, else the largest end_epoch.
    epochs: float
    # Top-level variables after evaluating eval(...) expressions (e.g. {"num_epochs": 10}).
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Tagged:
    """A ``!Name`` mapping as read from YAML, before validation."""

    name: str  # modifier class name, e.g. "GMPruningModifier"
    args: dict[str, Any]  # its keys and raw values
    line: int  # 1-based line of the tag in the YAML text


class _Loader(yaml.SafeLoader):
    """SafeLoader that turns ``!Name`` tags into :class:`_Tagged` objects."""


def _construct_tagged(loader: _Loader, suffix: str, node: yaml.Node) -> _Tagged:
    if isinstance(node, yaml.MappingNode):
        args = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.ScalarNode) and node.value == "":
        args = {}
    else:
        raise ValueError(
            f"line {node.start_mark.line + 1}: modifier !{suffix} must be a mapping of "
            f"arguments; got {node.id}"
        )
    return _Tagged(suffix, dict(args), node.start_mark.line + 1)


_Loader.add_multi_constructor("!", _construct_tagged)


def load_recipe(recipe: str | os.PathLike, *, variables: Mapping[str, Any] | None = None) -> Recipe:
    """Loads a SparseML recipe from a file path or from YAML text.

    Args:
        recipe: A path to a ``.yaml``/``.yml``/``.md`` file (markdown: YAML front matter between
            ``---`` lines), or the recipe text itself (any string containing a newline).
        variables: Overrides for the recipe's top-level variables (each must exist), like
            SparseML's ``recipe_variables``.

    Returns:
        The :class:`Recipe`.

    Raises:
        ValueError: On a missing file, malformed YAML (with its line), an unknown modifier or
            argument, a missing required argument, an invalid value, or an expression that
            cannot be evaluated. Messages name the modifier, field, value and what is allowed.

    Example:
        >>> r = load_recipe('''
        ... num_epochs: 10
        ... modifiers:
        ...   - !EpochRangeModifier
        ...     start_epoch: 0.0
        ...     end_epoch: eval(num_epochs)
        ...   - !GMPruningModifier
        ...     params: ["re:.*weight"]
        ...     init_sparsity: 0.05
        ...     final_sparsity: 0.8
        ...     start_epoch: 1.0
        ...     end_epoch: eval(num_epochs - 2)
        ...     update_frequency: 1.0
        ... ''')
        >>> r.epochs, r.pruning[0].end_epoch
        (10.0, 8.0)
    """
    text = _read_text(recipe)
    container = _parse_yaml(text)
    items, variables_out = _split_container(container, dict(variables or {}))
    pruning: list[PruningModifierSpec] = []
    lr: list[LRModifierSpec] = []
    ranges: list[tuple[float, float]] = []
    ends: list[float] = []
    for tagged in items:
        tagged = _Tagged(tagged.name, _eval_tree(tagged.args, variables_out, tagged), tagged.line)
        if tagged.name not in MODIFIERS:
            raise ValueError(
                f"line {tagged.line}: unknown modifier !{tagged.name}; supported: "
                f"{', '.join(sorted(MODIFIERS))}"
            )
        built = MODIFIERS[tagged.name](tagged)
        for spec in built:
            if isinstance(spec, PruningModifierSpec):
                pruning.append(spec)
                ends.append(spec.end_epoch)
            elif isinstance(spec, LRModifierSpec):
                lr.append(spec)
                ends.append(spec.end_epoch)
            else:
                ranges.append(spec)
                ends.append(spec[1])
    epochs = max((end for _, end in ranges if end > -1), default=None)
    if epochs is None:
        epochs = max((end for end in ends if end > -1), default=0.0)
    return Recipe(tuple(pruning), tuple(lr), float(epochs), variables_out)


# ---------------------------------------------------------------------------- reading


def _read_text(recipe: Any) -> str:
    """The YAML text of a recipe given as a path or as text (front matter extracted)."""
    if isinstance(recipe, os.PathLike) or (
        isinstance(recipe, str) and "\n" not in recipe and "\r" not in recipe
    ):
        path = Path(recipe)
        if path.suffix.lower() not in (".yaml", ".yml", ".md"):
            raise ValueError(
                f"`recipe` path must end in .yaml, .yml or .md (or be YAML text containing a "
                f"newline); got {str(recipe)!r}"
            )
        if not path.is_file():
            raise ValueError(f"`recipe` file does not exist: {str(path)!r}")
        text = path.read_text(encoding="utf-8")
        is_markdown = path.suffix.lower() == ".md"
    elif isinstance(recipe, str):
        text, is_markdown = recipe, False
    else:
        raise ValueError(f"`recipe` must be a path or YAML text; got {type(recipe).__name__}")
    # SparseML's front-matter pattern (optim/helpers.py _load_yaml_str_from_file).
    match = re.compile(r"^\s*(?:---|\+\+\+)(.*?)(?:---|\+\+\+)", re.S | re.M).search(text)
    if match:
        return match.group(1)
    if is_markdown:
        raise ValueError(f"no YAML front matter (between --- lines) found in {str(recipe)!r}")
    return text


def _parse_yaml(text: str) -> Any:
    """Parses YAML text with ``!Name`` tags; YAML errors become ValueErrors with a line."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ValueError(f"malformed recipe YAML: {where}{err.problem or err}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"malformed recipe YAML: {err}") from None


def _split_container(
    container: Any, overrides: dict[str, Any]
) -> tuple[list[_Tagged], dict[str, Any]]:
    """Separates modifiers from variables and evaluates the variables."""
    if isinstance(container, _Tagged):
        container = [container]
    if isinstance(container, list):
        if overrides:
            raise ValueError(
                f"`variables` {sorted(overrides)} cannot be set: the recipe has no variables"
            )
        return _modifier_list("<top level>", container), {}
    if not isinstance(container, dict):
        raise ValueError(
            f"a recipe must be a mapping with a '...modifiers' list; got {type(container).__name__}"
        )
    items: list[_Tagged] = []
    raw_vars: dict[str, Any] = {}
    for key, value in container.items():
        if isinstance(key, str) and "modifiers" in key:
            items.extend(_modifier_list(key, value))
        elif isinstance(value, _Tagged):
            items.append(value)  # SparseML also accepts a single modifier under any key
        elif isinstance(value, dict) and any(
            isinstance(k, str) and "modifiers" in k for k in value
        ):
            raise ValueError(
                f"staged recipes (stage {key!r} holds modifiers) are not supported; "
                "use one stage's modifiers at top level"
            )
        elif _contains_tagged(value):
            raise ValueError(
                f"modifiers must be listed under a key containing 'modifiers'; found one under {key!r}"
            )
        else:
            raw_vars[str(key)] = value
    if not items:
        raise ValueError("the recipe contains no modifiers (no key containing 'modifiers')")
    for name, value in overrides.items():
        if name not in raw_vars:
            raise ValueError(
                f"`variables` overrides {name!r}, which the recipe does not define; "
                f"defined: {sorted(raw_vars)}"
            )
        raw_vars[name] = value
    return items, _evaluate_variables(raw_vars)


def _modifier_list(key: str, value: Any) -> list[_Tagged]:
    if isinstance(value, _Tagged):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, _Tagged) for v in value):
        raise ValueError(f"{key!r} must be a list of !ModifierName mappings; got {value!r}")
    return list(value)


def _contains_tagged(value: Any) -> bool:
    if isinstance(value, _Tagged):
        return True
    if isinstance(value, list):
        return any(_contains_tagged(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_tagged(v) for v in value.values())
    return False


# ---------------------------------------------------------------------------- variables


def _is_eval(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("eval(") and value.endswith(")")


def _evaluate_variables(raw: dict[str, Any]) -> dict[str, Any]:
    """Resolves eval(...) variables in dependency order (SparseML's fixed-point loop)."""
    numeric = {k: v for k, v in raw.items() if isinstance(v, (int, float))}
    others = {k: v for k, v in raw.items() if not isinstance(v, (int, float)) and not _is_eval(v)}
    pending = {k: v for k, v in raw.items() if _is_eval(v)}
    while pending:
        progress = False
        for name, text in list(pending.items()):
            try:
                value = _eval_string(text, numeric, others, f"variable {name!r}")
            except UnknownVariableError:
                continue
            if not isinstance(value, (int, float)):
                raise ValueError(f"variable {name!r}: {text!r} must evaluate to a number")
            numeric[name] = value
            del pending[name]
            progress = True
        if not progress:
            raise ValueError(
                f"cannot evaluate variables {sorted(pending)}: they use undefined variables or "
                f"form a cycle ({', '.join(f'{k}: {v}' for k, v in pending.items())})"
            )
    return {name: numeric.get(name, others.get(name)) for name in raw}


def _eval_string(text: str, numeric: dict[str, Any], others: dict[str, Any], where: str) -> Any:
    inner = text[5:-1]
    if inner.strip() in others:
        return others[inner.strip()]  # eval(name) of a non-numeric variable returns it as is
    try:
        return evaluate(inner, numeric)
    except UnknownVariableError:
        raise
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _eval_tree(value: Any, variables: dict[str, Any], tagged: _Tagged) -> Any:
    """Evaluates eval(...) strings inside a modifier's arguments (lists and dict values)."""
    numeric = {k: v for k, v in variables.items() if isinstance(v, (int, float))}
    others = {k: v for k, v in variables.items() if k not in numeric}

    def walk(obj: Any) -> Any:
        if _is_eval(obj):
            where = f"line {tagged.line}: !{tagged.name}"
            try:
                return _eval_string(obj, numeric, others, where)
            except UnknownVariableError as err:
                raise ValueError(f"{where}: {err}; defined: {sorted(variables)}") from None
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        return obj

    return walk(value)


# ---------------------------------------------------------------------------- modifiers


def _args(tagged: _Tagged, required: tuple[str, ...], optional: dict[str, Any]) -> dict[str, Any]:
    """Checks argument names against a modifier's signature and fills SparseML's defaults."""
    allowed = set(required) | set(optional)
    unknown = sorted(map(str, set(tagged.args) - allowed))
    if unknown:
        raise ValueError(
            f"line {tagged.line}: !{tagged.name} got unknown argument(s) {unknown}; "
            f"supported: {sorted(allowed)}"
        )
    missing = [name for name in required if name not in tagged.args]
    if missing:
        raise ValueError(f"line {tagged.line}: !{tagged.name} is missing required {missing}")
    return {**optional, **tagged.args}


def _bad(tagged: _Tagged, name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(
        f"line {tagged.line}: !{tagged.name} `{name}` must be {allowed}; got {value!r}"
    )


def _number(tagged: _Tagged, name: str, value: Any, allowed: str = "a number") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(tagged, name, value, allowed)
    return float(value)


def _epochs(tagged: _Tagged, args: dict[str, Any], min_start: float) -> tuple[float, float]:
    start = _number(tagged, "start_epoch", args["start_epoch"])
    end = _number(tagged, "end_epoch", args["end_epoch"])
    if start < min_start:
        raise _bad(tagged, "start_epoch", args["start_epoch"], f"a number >= {min_start:g}")
    if end < -1:
        raise _bad(tagged, "end_epoch", args["end_epoch"], "a number >= -1")
    return start, end


def _sparsity(tagged: _Tagged, name: str, value: Any, low_open: bool) -> float:
    low = "(0, 1)" if low_open else "[0, 1)"
    number = _number(tagged, name, value, f"a number in {low}")
    if not ((number > 0) if low_open else (number >= 0)) or number >= 1:
        raise _bad(tagged, name, value, f"a number in {low}")
    return number


def _params(tagged: _Tagged, value: Any) -> tuple[str, ...]:
    """SparseML's validate_str_iterable: a list (flattened) or "__ALL__"/"__ALL_PRUNABLE__"."""
    if isinstance(value, str):
        if value.upper() not in (_ALL, _ALL_PRUNABLE):
            raise _bad(
                tagged,
                "params",
                value,
                f"a list of names/'re:' patterns, {_ALL!r} or {_ALL_PRUNABLE!r}",
            )
        return (value.upper(),)
    if not isinstance(value, list):
        raise _bad(tagged, "params", value, "a list of parameter names or 're:' patterns")
    flat: list[Any] = []
    stack = list(reversed(value))
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    if not all(isinstance(p, str) and p for p in flat):
        raise _bad(tagged, "params", value, "a list of non-empty strings")
    return tuple(flat)


def _bool(tagged: _Tagged, name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _bad(tagged, name, value, "true or false")


def _mask_type(tagged: _Tagged, value: Any) -> str | tuple[int, int]:
    """SparseML's get_mask_creator_default: unstructured, block4, "N:M", tensorrt or [a, b]."""
    if isinstance(value, list):
        if len(value) > 2 and all(v == 1 for v in value[2:]):
            value = value[:2]
        if len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
        ):
            return (value[0], value[1])
    elif value in ("unstructured", "block4"):
        return value
    elif value == "tensorrt":
        return "2:4"
    elif isinstance(value, str) and re.fullmatch(r"\d+:\d+", value):
        n, m = (int(v) for v in value.split(":"))
        if 0 < n < m:
            return value
    raise _bad(
        tagged,
        "mask_type",
        value,
        "'unstructured', 'block4', 'N:M' with 0 < N < M, 'tensorrt' or [rows, cols]",
    )


def _gmp(tagged: _Tagged, *, global_default: bool | None) -> list[PruningModifierSpec]:
    """GMPruningModifier and its Magnitude/GlobalMagnitude subclasses."""
    optional: dict[str, Any] = {
        "leave_enabled": True,
        "inter_func": "cubic",
        "mask_type": "unstructured",
    }
    if global_default is None:  # GMPruningModifier itself takes the deprecated arguments too
        optional |= {"global_sparsity": False, "phased": False, "score_type": "magnitude"}
    args = _args(
        tagged,
        (
            "init_sparsity",
            "final_sparsity",
            "start_epoch",
            "end_epoch",
            "update_frequency",
            "params",
        ),
        optional,
    )
    if args.get("phased", False) is not False:
        raise _bad(tagged, "phased", args["phased"], "false (use ACDCPruningModifier)")
    if args.get("score_type", "magnitude") != "magnitude":
        raise _bad(tagged, "score_type", args["score_type"], "'magnitude'")
    global_sparsity = (
        _bool(tagged, "global_sparsity", args["global_sparsity"])
        if global_default is None
        else global_default
    )
    start, end = _epochs(tagged, args, min_start=0.0)
    if end <= start:
        raise _bad(tagged, "end_epoch", args["end_epoch"], f"> start_epoch ({start:g})")
    freq = _number(tagged, "update_frequency", args["update_frequency"])
    if not (freq > 0 or freq == -1):
        raise _bad(
            tagged,
            "update_frequency",
            args["update_frequency"],
            "> 0 (epochs between updates) or -1 (every step)",
        )
    init = args["init_sparsity"]
    if init != FROM_PARAM:
        init = _sparsity(tagged, "init_sparsity", init, low_open=False)
    if args["inter_func"] not in _INTER_FUNCS:
        raise _bad(tagged, "inter_func", args["inter_func"], f"one of {_INTER_FUNCS}")
    common = dict(
        kind="gmp",
        init_sparsity=init,
        start_epoch=start,
        end_epoch=end,
        update_frequency=freq,
        inter_func=args["inter_func"],
        mask_type=_mask_type(tagged, args["mask_type"]),
        global_sparsity=global_sparsity,
        leave_enabled=_bool(tagged, "leave_enabled", args["leave_enabled"]),
    )
    final = args["final_sparsity"]
    if not isinstance(final, dict):
        params = _params(tagged, args["params"]) or (_ALL_PRUNABLE,)
        target = _sparsity(tagged, "final_sparsity", final, low_open=True)
        return [PruningModifierSpec(params=params, final_sparsity=target, **common)]
    if args["params"] not in ([], None):
        raise _bad(tagged, "params", args["params"], "[] when final_sparsity is a dict")
    if global_sparsity:
        raise _bad(
            tagged,
            "final_sparsity",
            final,
            "a single number with global pruning (a dict is per-layer)",
        )
    if not final:
        raise _bad(tagged, "final_sparsity", final, "a number or a non-empty dict")
    specs, seen = [], set()
    for target, names in final.items():
        params = _params(tagged, names)
        if not params or set(params) & seen:
            raise _bad(
                tagged,
                "final_sparsity",
                final,
                "a dict of target -> non-empty lists naming each parameter once",
            )
        seen |= set(params)
        specs.append(
            PruningModifierSpec(
                params=params,
                final_sparsity=_sparsity(tagged, "final_sparsity", target, True),
                **common,
            )
        )
    return specs


def _constant(tagged: _Tagged) -> list[PruningModifierSpec]:
    args = _args(
        tagged, ("params",), {"start_epoch": -1.0, "end_epoch": -1.0, "update_frequency": -1.0}
    )
    start, end = _epochs(tagged, args, min_start=-1.0)
    if end != -1 and end < start:
        raise _bad(tagged, "end_epoch", args["end_epoch"], f"-1 or >= start_epoch ({start:g})")
    if args["update_frequency"] != -1:
        raise _bad(tagged, "update_frequency", args["update_frequency"], "-1 (it is unused)")
    params = _params(tagged, args["params"]) or (_ALL_PRUNABLE,)
    # SparseML's ConstantPruningModifier passes leave_enabled=False and update_frequency=-1.
    return [
        PruningModifierSpec(
            kind="constant",
            params=params,
            start_epoch=start,
            end_epoch=end,
            update_frequency=-1.0,
            leave_enabled=False,
        )
    ]


def _epoch_range(tagged: _Tagged) -> list[tuple[float, float]]:
    args = _args(tagged, ("start_epoch", "end_epoch"), {})
    start, end = _epochs(tagged, args, min_start=-1.0)
    if end != -1 and end < start:
        raise _bad(tagged, "end_epoch", args["end_epoch"], f"-1 or >= start_epoch ({start:g})")
    return [(start, end)]


def _lr_spec(tagged: _Tagged, **kwargs: Any) -> LRModifierSpec:
    try:
        return LRModifierSpec(**kwargs)
    except ValueError as err:
        raise ValueError(f"line {tagged.line}: {err}") from None


def _groups(tagged: _Tagged, value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _bad(tagged, "param_groups", value, "a list of param-group indices or null")
    return tuple(value)


def _set_lr(tagged: _Tagged) -> list[LRModifierSpec]:
    args = _args(
        tagged,
        ("learning_rate",),
        {"param_groups": None, "start_epoch": -1.0, "end_epoch": -1.0, "constant_logging": False},
    )
    start, end = _epochs(tagged, args, min_start=-1.0)
    _bool(tagged, "constant_logging", args["constant_logging"])
    return [
        _lr_spec(
            tagged,
            kind="set",
            start_epoch=start,
            end_epoch=end,
            learning_rate=args["learning_rate"],
            param_groups=_groups(tagged, args["param_groups"]),
        )
    ]


def _function_lr(tagged: _Tagged) -> list[LRModifierSpec]:
    args = _args(
        tagged,
        ("lr_func", "init_lr", "final_lr", "start_epoch", "end_epoch"),
        {"cycle_epochs": 1.0, "param_groups": None, "update_frequency": -1.0},
    )
    start, end = _epochs(tagged, args, min_start=-1.0)
    if args["update_frequency"] != -1:
        raise _bad(tagged, "update_frequency", args["update_frequency"], "-1 (it is unused)")
    return [
        _lr_spec(
            tagged,
            kind="function",
            start_epoch=start,
            end_epoch=end,
            lr_func=args["lr_func"],
            init_lr=args["init_lr"],
            final_lr=args["final_lr"],
            cycle_epochs=args["cycle_epochs"],
            param_groups=_groups(tagged, args["param_groups"]),
        )
    ]


def _scheduler_lr(tagged: _Tagged) -> list[LRModifierSpec]:
    args = _args(
        tagged,
        ("lr_class", "lr_kwargs", "init_lr", "start_epoch"),
        {"end_epoch": -1.0, "update_frequency": -1.0, "constant_logging": False},
    )
    start, end = _epochs(tagged, args, min_start=-1.0)
    if args["update_frequency"] != -1:
        raise _bad(tagged, "update_frequency", args["update_frequency"], "-1 (it is unused)")
    _bool(tagged, "constant_logging", args["constant_logging"])
    lr_class, kwargs = args["lr_class"], args["lr_kwargs"]
    if lr_class not in LR_CLASSES:
        raise _bad(tagged, "lr_class", lr_class, f"one of {LR_CLASSES}")
    allowed = {
        "StepLR": {"gamma", "step_size"},
        "MultiStepLR": {"gamma", "milestones"},
        "ExponentialLR": {"gamma"},
    }[lr_class]
    if not isinstance(kwargs, dict) or set(kwargs) - allowed or "gamma" not in kwargs:
        raise _bad(
            tagged, "lr_kwargs", kwargs, f"a mapping with keys {sorted(allowed)} (gamma required)"
        )
    milestones = kwargs.get("milestones")
    if milestones is not None and not isinstance(milestones, list):
        raise _bad(tagged, "lr_kwargs.milestones", milestones, "a list of epochs")
    return [
        _lr_spec(
            tagged,
            kind="scheduler",
            start_epoch=start,
            end_epoch=end,
            init_lr=args["init_lr"],
            lr_class=lr_class,
            gamma=kwargs["gamma"],
            step_size=kwargs.get("step_size"),
            milestones=tuple(milestones) if milestones is not None else None,
        )
    ]


# A plain dict is the registry: modifier tag -> builder returning specs (or epoch ranges).
MODIFIERS: dict[str, Callable[[_Tagged], list[Any]]] = {
    "GMPruningModifier": lambda t: _gmp(t, global_default=None),
    "MagnitudePruningModifier": lambda t: _gmp(t, global_default=False),
    "GlobalMagnitudePruningModifier": lambda t: _gmp(t, global_default=True),
    "ConstantPruningModifier": _constant,
    "EpochRangeModifier": _epoch_range,
    "SetLearningRateModifier": _set_lr,
    "LearningRateFunctionModifier": _function_lr,
    "LearningRateModifier": _scheduler_lr,
}
