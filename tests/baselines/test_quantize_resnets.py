"""SparseML's QAT structure on torchvision's ResNets: the model still computes the fp32 network.

SparseML 1.8's default fusion fuses Conv2d, BatchNorm2d and ReLU in ``named_modules()`` order;
torchvision's ResNet blocks register one ``relu`` and call it several times. The reference is
the fp32 torchvision model itself: with fake quantization and observers off, the prepared QAT
model in eval mode must give its outputs.
"""

from __future__ import annotations

import copy
import os

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

import pytest
import torch

from baselines.quantize import QUANTIZATION_RECIPE, keep_unfused_if_reused, patch_sparseml_qconfig
from study.make.models import build_model


def _fp32(name: str) -> torch.nn.Module:
    """A registry ResNet with BatchNorm statistics and scales away from their init."""
    model = build_model(name, num_classes=10, seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.running_mean.normal_(0.0, 0.1, generator=generator)
    return model.eval()


def _sparseml_structure(
    model: torch.nn.Module, guard: bool, sample: torch.Tensor, plain: bool = True
):
    """SparseML's QAT structure on a copy (train mode, as qat_sparseml), and the names moved."""
    from sparseml.pytorch.optim import ScheduledModifierManager

    from baselines.sparseml import python_loggers
    from study.make.quantize import plain_batchnorm

    patch_sparseml_qconfig()
    qat = copy.deepcopy(model).train()
    if plain:
        plain_batchnorm(qat)
    moved = keep_unfused_if_reused(qat, sample) if guard else []
    manager = ScheduledModifierManager.from_yaml(QUANTIZATION_RECIPE)
    manager.apply_structure(qat, epoch=0.0, loggers=python_loggers())
    return qat, moved


def _without_quantization(qat: torch.nn.Module) -> torch.nn.Module:
    qat.apply(torch.ao.quantization.disable_fake_quant)
    qat.apply(torch.ao.quantization.disable_observer)
    return qat.eval()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))


def test_resnet18_qat_structure_computes_the_fp32_network(x):
    fp32 = _fp32("resnet18")
    qat, moved = _sparseml_structure(fp32, guard=True, sample=x[:1])
    assert moved == [f"layer{i}.{j}.relu" for i in range(1, 5) for j in range(2)]
    with torch.no_grad():
        torch.testing.assert_close(_without_quantization(qat)(x), fp32(x), rtol=1e-4, atol=1e-4)


def test_sparseml_default_fusion_drops_resnet18_residual_relus(x):
    # Why the guard exists: SparseML's own fusion turns the block's shared ReLU into an Identity.
    fp32 = _fp32("resnet18")
    qat, _ = _sparseml_structure(fp32, guard=False, sample=x[:1])
    assert isinstance(qat.layer1[0].relu, torch.nn.Identity)
    with torch.no_grad():
        assert not torch.allclose(_without_quantization(qat)(x), fp32(x), rtol=1e-2, atol=1e-2)


def test_resnet50_qat_trains_and_computes_the_fp32_network(x):
    fp32 = _fp32("resnet50")
    qat, moved = _sparseml_structure(fp32, guard=True, sample=x[:1])
    assert len(moved) == 16  # one shared ReLU per Bottleneck: 3 + 4 + 6 + 3
    qat(x).sum().backward()  # SparseML's default fusion fails here: ReLU output changed in place
    qat, _ = _sparseml_structure(fp32, guard=True, sample=x[:1])
    with torch.no_grad():
        torch.testing.assert_close(_without_quantization(qat)(x), fp32(x), rtol=1e-4, atol=1e-3)


def test_models_that_call_each_relu_once_are_left_alone(x):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())
    assert keep_unfused_if_reused(model, x[:1]) == []
    assert isinstance(model[1], torch.nn.ReLU)


def _activations(model: torch.nn.Module) -> int:
    return sum(isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6)) for m in model.modules())


def test_mobilenetv1_qat_structure_keeps_every_activation(x):
    """timm's BatchNormAct2d made plain first (as qat_sparseml does): all 27 ReLU6 stay."""
    fp32 = _fp32("mobilenetv1")
    qat, _ = _sparseml_structure(fp32, guard=True, sample=x[:1])
    assert _activations(qat) == 27
    with torch.no_grad():
        torch.testing.assert_close(_without_quantization(qat)(x), fp32(x), rtol=1e-4, atol=1e-4)


def test_sparseml_fusion_drops_batchnormact2d_activations(x):
    # Why: SparseML takes BatchNormAct2d for a BatchNorm2d and fuses it away, its ReLU6 with it.
    fp32 = _fp32("mobilenetv1")
    qat, _ = _sparseml_structure(fp32, guard=True, sample=x[:1], plain=False)
    assert _activations(qat) == 0
    with torch.no_grad():
        assert not torch.allclose(_without_quantization(qat)(x), fp32(x), rtol=1e-2, atol=1e-2)
