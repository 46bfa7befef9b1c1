"""gmp: gradual magnitude pruning (Zhu & Gupta 2017) in pure PyTorch, a drop-in for SparseML GMP recipes.

Responsibility: prune a ``torch.nn.Module`` during training on ``torch.nn.utils.prune``, driven by
keyword arguments or a SparseML-style YAML recipe. Depends on torch and PyYAML only (pandas and
tqdm, for :func:`sensitivity`, are the optional ``sensitivity`` extra, imported on use).
Distributed as ``torch-gmp``; see README.md beside ``pyproject.toml``.
"""

from gmp.pruner import GMP
from gmp.recipe import Recipe, load_recipe
from gmp.report import LayerSparsity, SparsityReport, sparsity_report
from gmp.sensitivity import sensitivity
from gmp.spec import PruningModifierSpec

__version__ = "0.1.0"  # also in pyproject.toml and CHANGELOG.md (a test keeps them equal)

__all__ = [
    "GMP",
    "LayerSparsity",
    "PruningModifierSpec",
    "Recipe",
    "SparsityReport",
    "load_recipe",
    "sensitivity",
    "sparsity_report",
]
