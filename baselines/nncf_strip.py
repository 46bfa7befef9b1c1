"""NNCF 3.4 pruning made permanent: its masks, ``nncf.strip(IN_PLACE)``, and one-shot pruning.

NNCF keeps each mask in a hook (``UnstructuredPruningMask``) that multiplies the weight in the
forward pass; the parameters keep their raw values until ``nncf.strip`` with
``StripFormat.IN_PLACE`` writes the masks into them (see ``docs/nncf.md``).
"""

from __future__ import annotations

import torch

from baselines.nncf_common import NNCFError, import_nncf, nncf_step

__all__ = ["check_prunable", "nncf_masks", "prune_oneshot", "unwrap"]


def nncf_masks(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """NNCF's current pruning masks, ``{parameter name: bool mask (True = kept)}``."""
    import_nncf()
    from nncf.torch.function_hook.pruning.magnitude.algo import get_pruned_modules
    from nncf.torch.function_hook.wrapper import is_wrapped

    if not is_wrapped(model):
        return {}
    return {name: hook.binary_mask for name, hook in get_pruned_modules(model).items()}


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """Make NNCF's masks permanent and remove NNCF from ``model`` (in place); plain weights remain.

    ``nncf.strip(model, do_copy=False, strip_format=nncf.StripFormat.IN_PLACE)`` multiplies each
    weight by its mask and deletes the hooks (the default ``StripFormat.NATIVE`` leaves pruning
    hooks in place and writes no zeros); it also sets ``requires_grad=False`` on the pruned
    weights, which is undone here. NNCF keeps its wrapper (``forward`` replaced, an empty
    ``__nncf_hooks`` submodule); it is removed as NNCF's own GPTQ converter does
    (``nncf/experimental/torch/gptqmodel/convertor.py``).

    Args:
        model: A model returned by ``nncf.prune`` (or a plain one: returned unchanged).

    Returns:
        ``model``, with plain ``weight`` parameters holding the zeros.

    Raises:
        NNCFError: If NNCF fails to strip.
    """
    nncf = import_nncf()
    from nncf.torch.function_hook.wrapper import ATR_HOOK_STORAGE, is_wrapped

    if not is_wrapped(model):
        return model
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    with nncf_step("nncf.strip(strip_format=IN_PLACE)"):
        nncf.strip(model, do_copy=False, strip_format=nncf.StripFormat.IN_PLACE)
    for name, param in model.named_parameters():
        if name not in frozen:
            param.requires_grad_(True)
    model.__dict__.pop("forward", None)
    model.__dict__.pop("_replicate_for_data_parallel", None)
    delattr(model, ATR_HOOK_STORAGE)
    return model


def check_prunable(model: torch.nn.Module) -> None:
    """Raise :class:`NNCFError` for a model NNCF 3.4 cannot wrap (a top-level Sequential)."""
    if (
        isinstance(model, torch.nn.Sequential)
        and type(model).forward is torch.nn.Sequential.forward
    ):
        raise NNCFError(
            "NNCF 3.4 cannot prune a top-level torch.nn.Sequential: nncf.prune adds a "
            "HookStorage child module, which Sequential.forward then calls (NotImplementedError); "
            "wrap the model in a Module whose forward calls it"
        )


def prune_oneshot(
    model: torch.nn.Module, ratio: float, example_input: torch.Tensor
) -> tuple[torch.nn.Module, tuple[str, ...]]:
    """One-shot NNCF global magnitude pruning, made permanent: ``nncf.prune`` then :func:`unwrap`.

    Args:
        model: The model to prune (in place).
        ratio: Target sparsity over the tensors NNCF prunes, in [0, 1).
        example_input: A sample batch NNCF traces the model with.

    Returns:
        ``(model, pruned parameter names)``.

    Raises:
        ValueError: If ``ratio`` is outside [0, 1).
        NNCFError: If NNCF is missing or fails.

    Example:
        >>> model, names = prune_oneshot(model, 0.9, torch.zeros(1, 3, 32, 32))  # doctest: +SKIP
    """
    if not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise ValueError(f"`ratio` must be a number in [0, 1); got {ratio!r}")
    nncf = import_nncf()
    check_prunable(model)
    was_training = model.training
    model.eval()
    with nncf_step("nncf.prune"):
        nncf.prune(
            model,
            mode=nncf.PruneMode.UNSTRUCTURED_MAGNITUDE_GLOBAL,
            ratio=float(ratio),
            examples_inputs=example_input,
        )
    model.train(was_training)
    names = tuple(sorted(nncf_masks(model)))
    return unwrap(model), names
