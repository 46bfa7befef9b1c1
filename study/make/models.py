"""The model registry: the original study's seven architectures plus small ones for quick runs.

A plain dict maps a name to a :class:`ModelEntry`. Weights are random with a fixed seed by default;
``weights="pretrained"`` loads torchvision/timm ImageNet weights (needs a network), and a file path
loads a checkpoint (a ``state_dict`` or a whole module saved with ``torch.save``).

Example:
    >>> model = build_model("resnet18", num_classes=10, seed=0)
    >>> MODELS["resnet50"].input_size
    224
"""

from __future__ import annotations

import logging
import os
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = ["MODELS", "ModelEntry", "build_model", "model_names", "WeightsUnavailableError"]

log = logging.getLogger(__name__)


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be fetched (no network) or a checkpoint could not be read."""


def _torchvision(name: str, **kwargs) -> Callable[[int, bool], nn.Module]:
    def build(num_classes: int, pretrained: bool) -> nn.Module:
        import torchvision

        if pretrained:
            weights = torchvision.models.get_model_weights(name).DEFAULT
            model = torchvision.models.get_model(name, weights=weights, **kwargs)
            if num_classes != 1000:
                _replace_head(model, num_classes)
            return model
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)

    return build


def _timm(name: str) -> Callable[[int, bool], nn.Module]:
    def build(num_classes: int, pretrained: bool) -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes)

    return build


def _small_cnn(num_classes: int, pretrained: bool) -> nn.Module:
    if pretrained:
        raise WeightsUnavailableError("`small_cnn` has no pretrained weights; use weights='random'")
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )


def _replace_head(model: nn.Module, num_classes: int) -> None:
    """Swap the last Linear layer of a torchvision classifier for a fresh one with `num_classes`."""
    last_name, last = None, None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last_name, last = name, module
    if last is None:
        raise ValueError(f"no Linear classifier head found in {type(model).__name__}")
    parent = model.get_submodule(last_name.rpartition(".")[0]) if "." in last_name else model
    setattr(parent, last_name.rpartition(".")[2], nn.Linear(last.in_features, num_classes))


@dataclass(frozen=True)
class ModelEntry:
    """One architecture of the registry."""

    name: str  # registry key, used in every result row
    source: str  # "torchvision", "timm" or "local"
    input_size: (
        int  # the architecture's real (ImageNet) input resolution, used for export and benchmarks
    )
    min_train_size: int  # smallest resolution the network accepts for (cheap) training
    opset: int  # ONNX opset for torch.onnx.export (mobilevit needs >= 14 for attention)
    in_original_study: bool  # one of the seven architectures of the original benchmark
    build: Callable[[int, bool], nn.Module]  # (num_classes, pretrained) -> model
    # Smallest resolution the ONNX export accepts, when above min_train_size: torch.onnx exports
    # VGG's 7x7 adaptive average pool only when its input side is a multiple of 7 (224 px).
    min_export_size: int = 0


MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry("resnet50", "torchvision", 224, 32, 13, True, _torchvision("resnet50")),
        ModelEntry("mobilenetv1", "timm", 224, 32, 13, True, _timm("mobilenetv1_100")),
        ModelEntry("vgg19", "torchvision", 224, 32, 13, True, _torchvision("vgg19"), 224),
        ModelEntry(
            "inception_v3",
            "torchvision",
            299,
            75,
            13,
            True,
            _torchvision("inception_v3", aux_logits=False, init_weights=True),
        ),
        ModelEntry(
            "efficientnet_b0", "torchvision", 224, 32, 13, True, _torchvision("efficientnet_b0")
        ),
        ModelEntry(
            "efficientnet_b2", "torchvision", 260, 32, 13, True, _torchvision("efficientnet_b2")
        ),
        ModelEntry("mobilevit_xs", "timm", 256, 64, 14, True, _timm("mobilevit_xs")),
        # Small architectures for quick runs and tests.
        ModelEntry("resnet18", "torchvision", 224, 32, 13, False, _torchvision("resnet18")),
        ModelEntry("mobilenetv2", "torchvision", 224, 32, 13, False, _torchvision("mobilenet_v2")),
        ModelEntry("small_cnn", "local", 32, 8, 13, False, _small_cnn),
    )
}


def model_names(original_only: bool = False) -> list[str]:
    """Registry names, optionally only the original study's seven."""
    return [n for n, e in MODELS.items() if e.in_original_study or not original_only]


def _check_name(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    return MODELS[name]


def build_model(
    name: str, *, num_classes: int = 10, weights: str | os.PathLike = "random", seed: int = 0
) -> nn.Module:
    """Build a registry architecture.

    Args:
        name: a key of :data:`MODELS`.
        num_classes: size of the classifier head.
        weights: ``"random"`` (seeded init), ``"pretrained"`` (torchvision/timm ImageNet weights,
            head replaced when ``num_classes != 1000``) or a checkpoint path.
        seed: seed for the random initialisation (same seed, same weights).

    Returns:
        The model in train mode.

    Raises:
        ValueError: unknown name.
        WeightsUnavailableError: pretrained weights cannot be downloaded, or the checkpoint is
            missing or unreadable.
    """
    entry = _check_name(name)
    torch.manual_seed(seed)
    if weights == "random":
        return entry.build(num_classes, False)
    if weights == "pretrained":
        try:
            return entry.build(num_classes, True)
        except (urllib.error.URLError, OSError, RuntimeError) as err:
            if isinstance(err, WeightsUnavailableError):
                raise
            raise WeightsUnavailableError(
                f"pretrained weights for {name!r} ({entry.source}) could not be downloaded: {err}. "
                "No network is reachable? Use weights='random' or a checkpoint path."
            ) from err
    return _load_checkpoint(entry, Path(weights), num_classes)


def _load_checkpoint(entry: ModelEntry, path: Path, num_classes: int) -> nn.Module:
    if not path.is_file():
        raise WeightsUnavailableError(
            f"weights file {str(path)!r} does not exist; pass 'random', 'pretrained' or a checkpoint path"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a corrupt file; re-raise with the path
        raise WeightsUnavailableError(f"cannot read weights file {str(path)!r}: {err}") from err
    if isinstance(obj, nn.Module):
        return obj
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise WeightsUnavailableError(
            f"weights file {str(path)!r} holds a {type(obj).__name__}; expected a state_dict or a module"
        )
    model = entry.build(num_classes, False)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsUnavailableError(
            f"weights file {str(path)!r} does not fit {entry.name!r} with {num_classes} classes: {err}"
        ) from err
    return model
