"""Export a finalized model to ONNX with plain ``torch.onnx.export``, and check its zeros survived.

What ``export_torch`` does to the graph: the TorchScript exporter (``dynamo=False``) in eval mode
with ``do_constant_folding=True``, which folds each BatchNorm into the preceding Conv (the conv
weight is scaled per output channel, so zeros stay zeros; the initializer gets a generated name
such as ``onnx::Conv_123``), a static batch dimension (the batch of ``input_shape``) unless
``dynamic_batch``, opset 13 by default. SparseML's exporter (``baselines.export.export_sparseml``)
keeps BatchNorm as a separate node, makes the batch dynamic and defaults to opset 14. The study
exports both at the same opset with a dynamic batch axis, so the graph (BatchNorm folded or kept)
is what the exporter factor compares.

Both exporters store weights of equal value once (torch's initializer deduplication): pruning
that zeroes whole layers (MobileViT-xs's transformer under a global threshold) would leave one
initializer for several layers. ``export_torch`` and ``baselines.export.export_sparseml`` give
each weight its own initializer again (:func:`study.onnx.weights.unshare_weights`, exact).

``check_zeros`` verifies that every zero of every prunable torch weight (Conv, Linear, Embedding
``.weight``) is still a zero in some ONNX initializer, matching by name where the exporter kept
it and by shape and zero pattern where it did not.
"""

from __future__ import annotations

import gzip
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from study.onnx.weights import unshare_weights_file

__all__ = [
    "ZeroCheck",
    "check_no_pruning_state",
    "check_zeros",
    "export_torch",
    "gzip_size",
    "initializer_zeros",
    "zero_holder",
]

_PRUNABLE = (torch.nn.Linear, torch.nn.Embedding, torch.nn.modules.conv._ConvNd)


@dataclass(frozen=True)
class ZeroCheck:
    """Whether an ONNX file keeps every zero of the torch model's prunable weights."""

    # True when every prunable torch weight was matched and all its zeros are zeros in ONNX.
    ok: bool
    # Zeros per prunable torch weight, by torch parameter name.
    torch_zeros: dict[str, int]
    # Zeros of the matched ONNX initializer, by torch parameter name (absent when unmatched).
    onnx_zeros: dict[str, int]
    # Torch parameter name -> name of the ONNX initializer it was matched to.
    matches: dict[str, str]
    # One human-readable line per problem; empty when ok.
    mismatches: tuple[str, ...]
    # In an int8 file: the prunable weights left in fp32 by the quantizer, zeros kept.
    fp32: tuple[str, ...] = ()


def check_no_pruning_state(model: torch.nn.Module) -> None:
    """Raise if ``torch.nn.utils.prune`` reparametrisation is still attached to ``model``.

    Args:
        model: The model about to be exported.

    Raises:
        ValueError: If a ``weight_orig`` parameter or ``weight_mask`` buffer remains.

    Example:
        >>> check_no_pruning_state(torch.nn.Linear(2, 2))
    """
    names = [n for n, _ in model.named_parameters() if n.endswith("_orig")]
    names += [n for n, _ in model.named_buffers() if n.endswith("_mask")]
    if names:
        raise ValueError(
            f"`model` still has pruning reparametrisation ({names[:4]}); finalize the pruner "
            "(pruner.finalize(), i.e. torch.nn.utils.prune.remove) before exporting"
        )


def export_torch(
    model: torch.nn.Module,
    path: str | Path,
    input_shape: tuple[int, ...],
    opset: int = 13,
    *,
    dynamic_batch: bool = False,
) -> Path:
    """Export with ``torch.onnx.export`` (TorchScript exporter), BatchNorm folded into Conv.

    The model is exported in eval mode (its mode is restored afterwards) with
    ``do_constant_folding=True``, a static batch (``input_shape[0]``) unless ``dynamic_batch``
    (then the first dimension of the input and the output is named ``batch``, as SparseML's
    exporter does), input ``"input"`` and output ``"output"``.

    Args:
        model: A finalized model (no ``weight_orig``/``weight_mask``).
        path: Destination ``.onnx`` file; parent folders are created.
        input_shape: Shape of the sample input, e.g. ``(1, 3, 224, 224)``.
        opset: ONNX opset version (13 works for the CNNs; mobilevit_xs needs >= 14).
        dynamic_batch: make the batch dimension dynamic.

    Returns:
        The path written.

    Raises:
        ValueError: If pruning is still attached or ``input_shape`` has a non-positive entry.

    Example:
        >>> export_torch(model, "runs/model.onnx", (1, 3, 224, 224))  # doctest: +SKIP
    """
    sample = sample_input(input_shape)
    check_no_pruning_state(model)
    path = Path(path)
    was_training = model.training
    try:
        torch_onnx_export(model, sample, path, opset, dynamic_batch=dynamic_batch)
    finally:
        model.train(was_training)
    unshare_weights_file(path)
    return path


def sample_input(input_shape: tuple[int, ...]) -> torch.Tensor:
    """A zero batch of ``input_shape``, refused unless every entry is a positive integer."""
    if not input_shape or any(int(d) < 1 for d in input_shape):
        raise ValueError(f"`input_shape` must be a tuple of positive integers; got {input_shape!r}")
    return torch.zeros(tuple(int(d) for d in input_shape))


def torch_onnx_export(
    model: nn.Module,
    sample: torch.Tensor,
    path: Path,
    opset: int,
    *,
    dynamic_batch: bool = True,
    quiet: bool = False,
) -> None:
    """The one ``torch.onnx.export`` call of the study (TorchScript exporter, constant folding,
    input ``"input"``, output ``"output"``), in eval mode without gradients; ``quiet`` silences
    the tracer's warnings (NNCF's hooks raise many). The caller restores the training mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (sample,),
            str(path),
            opset_version=opset,
            do_constant_folding=True,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None,
            dynamo=False,
        )


def _initializers(onnx_path: str | Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}


def initializer_zeros(onnx_path: str | Path) -> dict[str, tuple[int, int]]:
    """``(numel, zeros)`` of every floating-point initializer of an ONNX file.

    Args:
        onnx_path: The ONNX file.

    Returns:
        Initializer name -> ``(numel, zeros)``.

    Example:
        >>> initializer_zeros("model.onnx")["fc.weight"]  # doctest: +SKIP
        (5120, 4608)
    """
    return {
        name: (int(arr.size), int(np.count_nonzero(arr == 0)))
        for name, arr in _initializers(onnx_path).items()
        if np.issubdtype(arr.dtype, np.floating)
    }


def _prunable_weights(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {
        f"{name}.weight" if name else "weight": module.weight.detach().cpu().numpy()
        for name, module in model.named_modules()
        if isinstance(module, _PRUNABLE)
        and isinstance(getattr(module, "weight", None), torch.Tensor)
    }


def _keeps_zeros(zero: np.ndarray, onnx_w: np.ndarray) -> bool:
    """``onnx_w`` has the shape of the boolean mask ``zero`` and is zero wherever it is True."""
    return onnx_w.shape == zero.shape and not np.any(onnx_w[zero])


def _candidates(zero: np.ndarray, onnx_w: np.ndarray) -> list[np.ndarray]:
    """The initializer as stored, and transposed for 2-D weights (MatMul stores Linear as [in, out])."""
    views = [onnx_w]
    if onnx_w.ndim == 2 and zero.ndim == 2:  # square Linear weights are transposed too
        views.append(onnx_w.T)
    return views


def zero_holder(zero: np.ndarray, inits: dict[str, np.ndarray], used: set[str]) -> str | None:
    """The initializer that holds a weight's zeros, matched by shape and zero pattern.

    Args:
        zero: Boolean mask of the torch weight's zeros.
        inits: Candidate initializers by name (fp32 weights, or int8 weights minus their zero
            points).
        used: Names already matched to another weight; skipped.

    Returns:
        The name of an unused initializer of ``zero``'s shape (or transposed, for 2-D weights)
        that is zero wherever ``zero`` is True, preferring one with exactly as many zeros (then
        the first by name); None if there is none.
    """
    found = []
    count = int(zero.sum())
    for init_name, arr in inits.items():
        if init_name in used or arr.size != zero.size:
            continue
        for view in _candidates(zero, arr):
            if _keeps_zeros(zero, view):
                found.append((int(np.count_nonzero(view == 0)) != count, init_name))
                break
    return min(found)[1] if found else None


def check_zeros(model: torch.nn.Module, onnx_path: str | Path) -> ZeroCheck:
    """Check that the ONNX initializers keep every zero of each prunable torch weight.

    Each prunable weight is matched to the initializer of the same name when one exists with
    the same shape; otherwise to an unused initializer of the same shape (or transposed, for
    Linear layers exported as MatMul) whose zeros include all the torch zeros, preferring one
    with exactly as many zeros. Folding BatchNorm scales conv weights per output channel, so a
    faithful export keeps every zero.

    Args:
        model: The finalized torch model that was exported.
        onnx_path: The exported file.

    Returns:
        A :class:`ZeroCheck`; ``ok`` is False with a line in ``mismatches`` per problem.

    Example:
        >>> check_zeros(model, export_torch(model, "m.onnx", (1, 3, 16, 16))).ok  # doctest: +SKIP
        True
    """
    inits = _initializers(onnx_path)
    torch_weights = _prunable_weights(model)
    torch_zeros = {n: int(np.count_nonzero(w == 0)) for n, w in torch_weights.items()}
    onnx_zeros: dict[str, int] = {}
    matches: dict[str, str] = {}
    mismatches: list[str] = []
    used: set[str] = set()
    for name, weight in torch_weights.items():
        zero = weight == 0
        if name in inits and inits[name].shape == weight.shape:
            matches[name] = name
            used.add(name)
            onnx_zeros[name] = int(np.count_nonzero(inits[name] == 0))
            if not _keeps_zeros(zero, inits[name]):
                lost = int(np.count_nonzero(zero & (inits[name] != 0)))
                mismatches.append(
                    f"{name}: {lost} of its {torch_zeros[name]} zeros are non-zero in ONNX"
                )
            continue
        init_name = zero_holder(zero, inits, used)
        if init_name is None:
            mismatches.append(_unmatched(name, zero, torch_zeros[name], inits, matches))
            continue
        matches[name] = init_name
        used.add(init_name)
        onnx_zeros[name] = int(np.count_nonzero(inits[init_name] == 0))
    return ZeroCheck(not mismatches, torch_zeros, onnx_zeros, matches, tuple(mismatches))


def _unmatched(
    name: str, zero: np.ndarray, zeros: int, inits: dict[str, np.ndarray], matches: dict[str, str]
) -> str:
    """The mismatch line of a weight no unused initializer holds; names a shared one if any."""
    owner = {init: torch_name for torch_name, init in matches.items()}
    for init_name in owner:
        arr = inits[init_name]
        if arr.size == zero.size and any(_keeps_zeros(zero, v) for v in _candidates(zero, arr)):
            return (
                f"{name}: its {zeros} zeros are only in initializer {init_name!r}, already matched "
                f"to {owner[init_name]}: the file stores one tensor for both (the exporter "
                "deduplicated equal initializers; study.onnx.weights.unshare_weights undoes that)"
            )
    return f"{name}: no ONNX initializer of shape {tuple(zero.shape)} keeps its {zeros} zeros"


def gzip_size(path: str | Path, level: int = 9) -> int:
    """Bytes of a file after ``gzip -<level>`` (``gzip -9`` by default), compressed in memory.

    Level 9 on a 90%-sparse ResNet-18 (45 MB) takes ~23 s here, level 6 ~1.6 s for a file
    10% larger: zlib's longest match search is slow on long runs of zeros.

    Args:
        path: Any file.
        level: zlib compression level, 1-9.

    Returns:
        The compressed size in bytes.

    Example:
        >>> gzip_size("model.onnx")  # doctest: +SKIP
        1234567
    """
    if level not in range(1, 10):
        raise ValueError(f"`level` must be an integer in 1..9; got {level!r}")
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=level))
