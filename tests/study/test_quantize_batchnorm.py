"""torch.ao FX QAT must not freeze a module's ``self.training`` into the int8 graph.

timm's ``BatchNormAct2d`` subclasses ``nn.BatchNorm2d`` with its own forward, so FX traces through
it and, the model being traced in train mode, writes ``F.batch_norm(..., training=True)`` into the
graph: the int8 MobileNetV1 normalised each image by its batch's statistics. torchvision's
``StochasticDepth`` (EfficientNet) likewise left random branch dropping in the int8 graph. The
references: the converted module's own FX graph, the same module on one image against the same
image in a batch, timm's module in eval mode, and each architecture's graph traced in eval mode.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Subset

from study.make.data import digits, loaders
from study.make.models import build_model, model_names
from study.make.quantize import (
    QatConfig,
    fx_leaf_modules,
    plain_batchnorm,
    qat_torch,
)
from study.variants import oneshot_prune
from tests.study._tiny_qat import tiny_qat

SIZE = 32  # MobileNetV1's smallest training resolution in the registry


@pytest.fixture(scope="module")
def pruned() -> torch.nn.Module:
    return oneshot_prune(build_model("mobilenetv1", num_classes=10, seed=0), 0.5).eval()


@pytest.fixture(scope="module")
def result(pruned):
    return tiny_qat(pruned, SIZE)


def _batch_norm_calls(graph: torch.fx.Graph) -> list[torch.fx.Node]:
    targets = (torch.nn.functional.batch_norm, torch.batch_norm)
    return [n for n in graph.nodes if n.op == "call_function" and n.target in targets]


def test_int8_graph_has_no_batch_norm_in_training_mode(result):
    training = [n for n in _batch_norm_calls(result.model.graph) if n.kwargs.get("training", True)]
    assert training == []


def test_int8_rows_do_not_depend_on_the_batch(result):
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    model = result.model.eval()
    with torch.no_grad():
        one = model(x[:1])  # [1, 10]; batch-statistics normalisation fails on one 1x1 image
        two = model(x)  # [2, 10]
        alone = model(x[1:])  # [1, 10]
    torch.testing.assert_close(two[:1], one)
    torch.testing.assert_close(two[1:], alone)


def test_int8_model_folds_every_batch_norm_into_its_conv(result):
    modules = list(result.model.modules())
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in modules)
    convs = [m for m in modules if isinstance(m, torch.ao.nn.quantized.Conv2d)]
    assert len(convs) == 27  # MobileNetV1: stem, then 13 depthwise and 13 pointwise convs


def _random_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BN parameters and running statistics (fresh ones are 1, 0, 0, 1)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                for t in (m.weight, m.bias, m.running_mean):
                    t.copy_(torch.randn(t.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def test_plain_batchnorm_computes_what_timm_computes_in_eval():
    from timm.layers.norm_act import BatchNormAct2d

    timm_model = _random_statistics(build_model("mobilenetv1", num_classes=10, seed=0)).eval()
    plain = _random_statistics(build_model("mobilenetv1", num_classes=10, seed=0)).eval()
    names = plain_batchnorm(plain)
    assert len(names) == 27 and not any(isinstance(m, BatchNormAct2d) for m in plain.modules())
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(plain(x), timm_model(x), rtol=0, atol=0)


def test_plain_batchnorm_keeps_training_behaviour():
    timm_model = _random_statistics(build_model("mobilenetv1", num_classes=10, seed=0)).train()
    plain = _random_statistics(build_model("mobilenetv1", num_classes=10, seed=0)).train()
    plain_batchnorm(plain)
    x = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(plain(x), timm_model(x), rtol=0, atol=0)

    def stats(model):
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        return [t for m in bns for t in (m.running_mean, m.running_var, m.num_batches_tracked)]

    torch.testing.assert_close(stats(plain), stats(timm_model), rtol=0, atol=0)


def _fx_code(model: torch.nn.Module) -> str:
    """``model``'s graph as traced for ``prepare_qat_fx`` by ``qat_torch`` (same leaves)."""
    from torch.ao.quantization.fx.tracer import QuantizationTracer

    names = fx_leaf_modules(model)
    leaves = list(
        {
            type(m)
            for m in model.modules()
            if f"{type(m).__module__}.{type(m).__qualname__}" in names
        }
    )
    graph = QuantizationTracer([], leaves).trace(model)
    return torch.fx.GraphModule(model, graph).code


@pytest.mark.parametrize("name", model_names(original_only=True))
def test_fx_graph_does_not_depend_on_the_training_flag(name):
    # What qat_torch traces (train mode) must be what it would trace in eval mode: otherwise the
    # int8 model keeps a train-mode computation.
    model = build_model(name, num_classes=10, seed=0)
    plain_batchnorm(model)
    assert _fx_code(model.train()) == _fx_code(model.eval())


def test_zero_batchnorm_weight_does_not_make_qat_nan():
    # torch.ao's fused ConvBn QAT divides by bn.weight / running_std (timm zero-initialises the
    # last BatchNorm of MobileViT's bottlenecks): 0/0 = NaN without the stable path.
    model = build_model("small_cnn", num_classes=10, seed=0)
    with torch.no_grad():
        model[1].weight[:4] = 0.0  # the first BatchNorm, 4 of its 16 channels
    train, val = digits(image_size=8, channels=3, seed=0)
    tl, vl = loaders(Subset(train, range(32)), Subset(val, range(16)), batch_size=16, seed=0)
    config = QatConfig(epochs=1, batch_size=16)
    result = qat_torch(model, tl, vl, config, example_input=torch.zeros(1, 3, 8, 8))
    assert all(torch.isfinite(torch.tensor(step.loss)) for step in result.train.steps)
    with torch.no_grad():
        assert torch.isfinite(result.model(torch.randn(2, 3, 8, 8))).all()
