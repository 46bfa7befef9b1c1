"""Run a recipe with SparseML 1.8's ``ScheduledModifierManager``: the reference toolchain.

Kept thin on purpose: this builds SparseML's own objects and hands back a small object with the
same surface as ``gmp.GMP`` (``epochs``, ``finalize()``), plus the optimizer to step, because
SparseML's ``manager.modify`` returns a wrapper whose ``step()`` runs the modifiers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

__all__ = ["SparseMLPruner", "attach", "python_loggers", "quiet_sparseml_logs", "recipe_text"]


def quiet_sparseml_logs() -> None:
    """Route SparseML's log records through the root logger only, at WARNING unless it is DEBUG.

    Importing ``sparseml.log`` gives the ``sparseml`` logger a console handler of its own at INFO,
    so every record (its exporter logs each graph transform) is printed twice, once by it and once
    by the root handler. This drops that handler; call it after importing SparseML modules.
    """
    from sparseml.log import get_nm_root_logger

    nm = get_nm_root_logger()
    for handler in list(nm.handlers):
        nm.removeHandler(handler)
    debug = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    nm.setLevel(logging.INFO if debug else logging.WARNING)


def python_loggers():  # -> sparseml.pytorch.utils.logger.LoggerManager
    """SparseML modifier loggers that write to the ``sparseml.modifiers`` Python logger.

    SparseML's default logger writes a ``sparse_logs/`` folder in the current directory; an
    empty LoggerManager is falsy, and SparseML replaces it with that default.
    """
    from sparseml.pytorch.utils.logger import LoggerManager, PythonLogger

    return LoggerManager([PythonLogger(logger=logging.getLogger("sparseml.modifiers"))])


def recipe_text(recipe: str | Path) -> str:
    """The YAML text of a recipe given as a path or as the text itself.

    Args:
        recipe: A path to a ``.yaml``/``.md`` recipe, or the recipe text.

    Returns:
        The recipe text.

    Raises:
        ValueError: If ``recipe`` is neither an existing file nor text with a modifier list.

    Example:
        >>> recipe_text("modifiers:\\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: 1}")[:10]
        'modifiers:'
    """
    text = str(recipe)
    if "\n" not in text and Path(text).is_file():
        return Path(text).read_text()
    if "modifiers" not in text:
        raise ValueError(
            f"`recipe` must be a path to an existing recipe file or YAML text with a "
            f"modifiers list; got {text[:80]!r}"
        )
    return text


class SparseMLPruner:
    """SparseML's manager attached to one model and optimizer (what ``attach`` returns).

    Attributes:
        manager: The ``ScheduledModifierManager`` built from the recipe.
        optimizer: The wrapped optimizer returned by ``manager.modify``; call ``step()`` on it.
        model: The model being pruned.
        epochs: Training length in epochs from the recipe (``manager.max_epochs``).
    """

    def __init__(self, manager, optimizer, model: torch.nn.Module) -> None:
        self.manager = manager
        self.optimizer = optimizer
        self.model = model
        self.epochs: int = int(manager.max_epochs)
        self._finalized = False

    def finalize(self) -> None:
        """Apply the final masks and remove SparseML's hooks (``manager.finalize(model)``).

        Weights keep their zeros as plain ``weight`` parameters. Calling it twice is a no-op.
        """
        if not self._finalized:
            self.manager.finalize(self.model)
            self._finalized = True


def attach(
    recipe: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
) -> SparseMLPruner:
    """Attach a SparseML recipe to a model and optimizer, as SparseML's training examples do.

    Wraps ``ScheduledModifierManager.from_yaml(recipe).modify(model, optimizer, steps_per_epoch)``.
    SparseML's default Python logger (which writes a ``sparse_logs/`` folder in the current
    directory) is replaced by one that logs to the ``sparseml.modifiers`` Python logger.

    Args:
        recipe: Recipe path or YAML text.
        model: The model to prune (modified in place).
        optimizer: The optimizer over ``model``'s parameters.
        steps_per_epoch: Optimizer steps per epoch (``len(train_loader)``).

    Returns:
        A :class:`SparseMLPruner`; step ``pruner.optimizer`` and call ``pruner.finalize()`` at the end.

    Raises:
        ValueError: If ``steps_per_epoch`` is not a positive integer or the recipe is not valid.

    Example:
        >>> pruner = attach("recipe.yaml", model, optimizer, steps_per_epoch=len(loader))  # doctest: +SKIP
        >>> pruner.optimizer.step()  # doctest: +SKIP
    """
    if not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(f"`steps_per_epoch` must be a positive integer; got {steps_per_epoch!r}")
    from sparseml.pytorch.optim import ScheduledModifierManager

    quiet_sparseml_logs()
    manager = ScheduledModifierManager.from_yaml(recipe_text(recipe))
    loggers = python_loggers()
    wrapped = manager.modify(model, optimizer, steps_per_epoch=steps_per_epoch, loggers=loggers)
    return SparseMLPruner(manager, wrapped, model)
