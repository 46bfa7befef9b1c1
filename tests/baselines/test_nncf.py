"""Tests of the Intel arm (baselines.nncf_prune, nncf_quantize, nncf_export): NNCF 3.4 itself.

References outside the code under test: masks and sparsities computed by hand from NNCF's
documented rules (``|w| / ||W||_2``, threshold at index ``int((n - 1) * ratio)``, the exponential
schedule ``1 - (1 - target) ** (k / n)``), the recipe's learning-rate formula, the engines
themselves (ONNX Runtime, OpenVINO, DeepSparse) on the exported files, NumPy zero counts, and the
fp32 model's zero masks.
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from baselines.nncf_common import NNCFError
from baselines.nncf_export import export_fq_onnx, export_ir, export_qdq_onnx
from baselines.nncf_prune import attach
from baselines.nncf_quantize import fold_batchnorm, ptq, qat
from baselines.nncf_strip import prune_oneshot
from gmp.report import layer_zeros
from study.engines.onnxruntime import ort_session
from study.engines.worker import INT8_RTOL, compare_outputs
from study.make.data import digits
from study.make.models import build_model
from study.make.quantize import QatConfig, check_int8_zeros, op_counts
from study.make.train import TrainConfig, train
from tests.study.test_quantize import SIZE, pruned_digits_cnn, val_batch

nncf = pytest.importorskip("nncf")  # a pinned dependency: this skips only outside the project


class Wrapped(nn.Module):
    """A module around a model: NNCF 3.4 cannot wrap a top-level nn.Sequential (see below)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DepthwiseNet(nn.Module):
    """Conv, depthwise Conv and Linear: NNCF's default coverage prunes all three weights."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.relu(self.dw(x)).mean((2, 3)))


def nncf_count(n: int, ratio: float) -> int:
    """Weights NNCF zeroes among n (no ties): those <= the value at index int((n - 1) * ratio)."""
    return int((n - 1) * ratio) + 1


# --- pruning -------------------------------------------------------------------------------------


def test_oneshot_prunes_the_ratio_asked_over_nncf_default_coverage():
    torch.manual_seed(0)
    model = DepthwiseNet().eval()
    model, names = prune_oneshot(model, 0.7, torch.randn(1, 3, 8, 8))
    # NNCF's default coverage: every Conv (the depthwise one too) and the Linear; no bias.
    assert names == ("conv.weight", "dw.weight", "fc.weight")
    weights = [model.get_parameter(n) for n in names]
    n = sum(w.numel() for w in weights)  # 216 + 72 + 80 = 368
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == nncf_count(n, 0.7) == 257
    assert zeros / n == pytest.approx(0.7, abs=1 / n)
    # Plain weights, no NNCF left: no wrapper, no hook storage, trainable again.
    assert "forward" not in model.__dict__
    assert not any("nncf" in name for name, _ in model.named_modules())
    assert all(p.requires_grad for p in model.parameters())


def test_nncf_ranks_by_normalised_not_raw_magnitude():
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False))
    model = Wrapped(model)
    a = torch.tensor([[1.0, -2.0], [3.0, -4.0]])
    b = torch.tensor([[-5.0, 6.0], [7.0, -100.0]])
    with torch.no_grad():
        model.net[0].weight.copy_(a)
        model.net[1].weight.copy_(b)
    prune_oneshot(model, 0.5, torch.ones(1, 2))
    # By hand: ||A|| = sqrt(30) = 5.477 -> |A|/||A|| = .183 .365 .548 .730;
    # ||B|| = sqrt(10110) = 100.55 -> |B|/||B|| = .0497 .0597 .0696 .9945.
    # 8 weights, ratio 0.5: index int(7 * 0.5) = 3, the 4th smallest (.183 = A[0, 0]) and below go.
    normalised_a = torch.tensor([[True, False], [False, False]])
    normalised_b = torch.tensor([[True, True], [True, False]])
    # Raw global magnitude would take the 4 smallest |w| (1, 2, 3, 4): all of A, none of B.
    raw_a = torch.ones(2, 2, dtype=torch.bool)
    raw_b = torch.zeros(2, 2, dtype=torch.bool)
    zero_a, zero_b = model.net[0].weight == 0, model.net[1].weight == 0
    assert torch.equal(zero_a, normalised_a) and torch.equal(zero_b, normalised_b)
    assert not (torch.equal(zero_a, raw_a) and torch.equal(zero_b, raw_b))


def test_sequential_model_is_refused_with_a_clear_error():
    with pytest.raises(NNCFError, match="NNCF 3.4 cannot prune a top-level torch.nn.Sequential"):
        prune_oneshot(nn.Sequential(nn.Linear(2, 2)), 0.5, torch.ones(1, 2))


RECIPE = """
modifiers:
  - !EpochRangeModifier {start_epoch: 0.0, end_epoch: 3.0}
  - !LearningRateFunctionModifier
    {start_epoch: 0.0, end_epoch: 3.0, lr_func: linear, init_lr: 0.03, final_lr: 0.003}
  - !GMPruningModifier
    {params: __ALL_PRUNABLE__, init_sparsity: 0.05, final_sparsity: 0.75,
     start_epoch: 0.5, end_epoch: 2.5, update_frequency: 0.5, inter_func: cubic}
"""


@pytest.fixture(scope="module")
def nncf_run():
    train_ds, val_ds = digits(image_size=SIZE, channels=3)
    tl = DataLoader(
        Subset(train_ds, range(256)), batch_size=32, shuffle=True, generator=torch.Generator()
    )
    vl = DataLoader(val_ds, batch_size=128)
    model = Wrapped(build_model("small_cnn", num_classes=10, seed=0))
    config = TrainConfig(lr=0.03, momentum=0.9, weight_decay=5e-5, seed=0)
    return train(model, RECIPE, tl, vl, toolchain="nncf", config=config, progress=False)


def test_train_nncf_follows_nncf_exponential_schedule(nncf_run):
    steps = nncf_run.steps
    assert len(steps) == 24  # 3 epochs of 8 steps
    n = sum(nncf_run.model.get_parameter(name).numel() for name in steps[0].zeros)
    zeros = [sum(s.zeros.values()) for s in steps]
    # Window 0.5..2.5, two NNCF epochs: updates at epochs 0.5, 1.5, 2.5 (steps 4, 12, 20);
    # exponential ratios 0, 1 - 0.25 ** (1/2) = 0.5, 0.75 (by hand).
    assert zeros[:4] == [0] * 4
    assert zeros[4:12] == [nncf_count(n, 0.0)] * 8  # ratio 0 still zeroes NNCF's minimum
    assert zeros[12:20] == [nncf_count(n, 0.5)] * 8
    assert zeros[20:] == [nncf_count(n, 0.75)] * 4
    settings = nncf_run.toolchain_settings
    assert settings["nncf_version"] == nncf.__version__
    assert settings["mode"] == "UNSTRUCTURED_MAGNITUDE_GLOBAL"
    assert settings["schedule"] == "exponential"
    assert settings["update_epochs"] == (0.5, 1.5, 2.5)
    assert settings["update_ratios"] == pytest.approx((0.0, 0.5, 0.75))
    assert len(settings["pruned_tensors"]) == 4  # small_cnn's 3 Conv and its Linear


def test_train_nncf_finalizes_to_plain_weights_keeping_the_zeros(nncf_run):
    model = nncf_run.model
    # study.make.train raised if hooks, masks or a changed zero count remained; check NNCF's own state.
    assert "forward" not in model.__dict__ and not hasattr(model, "__nncf_hooks")
    assert not [name for name, _ in model.named_buffers() if "mask" in name]
    assert layer_zeros(model) == nncf_run.steps[-1].zeros
    assert nncf_run.report.sparsity == pytest.approx(0.75, abs=1e-3)


def test_train_nncf_takes_the_recipe_learning_rate(nncf_run):
    # linear from 0.03 at epoch 0 to 0.003 at epoch 3, set before each step at epoch i / 8.
    expected = [0.03 + (i / 8) / 3 * (0.003 - 0.03) for i in range(24)]
    assert [s.lr for s in nncf_run.steps] == pytest.approx(expected, rel=1e-9)


def test_attach_needs_a_pruning_modifier():
    recipe = "modifiers:\n  - !EpochRangeModifier {start_epoch: 0.0, end_epoch: 1.0}\n"
    model = DepthwiseNet()
    with pytest.raises(ValueError, match="GMPruningModifier"):
        attach(recipe, model, torch.optim.SGD(model.parameters(), lr=0.1), 4)


# --- errors when NNCF is missing or fails ---------------------------------------------------------


def test_missing_nncf_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "nncf", None)  # `import nncf` raises ImportError
    model = DepthwiseNet()
    with pytest.raises(NNCFError, match="NNCF is not available"):
        attach(RECIPE, model, torch.optim.SGD(model.parameters(), lr=0.1), 4)
    with pytest.raises(NNCFError, match="nncf==3.4.0"):
        prune_oneshot(model, 0.5, torch.zeros(1, 3, 8, 8))


def test_nncf_failure_carries_nncf_message(monkeypatch):
    def broken(*args, **kwargs):
        raise nncf.InternalError("the message NNCF gave")

    monkeypatch.setattr(nncf, "prune", broken)
    with pytest.raises(
        NNCFError, match=r"NNCF 3\.4\.0: nncf\.prune failed: InternalError: the message NNCF gave"
    ):
        prune_oneshot(DepthwiseNet(), 0.5, torch.zeros(1, 3, 8, 8))


# --- int8 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    return pruned_digits_cnn()[0]


@pytest.fixture(scope="module")
def pruned():
    """small_cnn trained on the digits, half of each weight pruned (tests/study/test_quantize)."""
    return Wrapped(pruned_digits_cnn()[1])


@pytest.fixture(scope="module")
def ptq_model(pruned, data):
    return ptq(pruned, data[0], subset_size=8)


@pytest.fixture(scope="module")
def files(ptq_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("nncf")
    shape = (1, 3, SIZE, SIZE)
    qmodel = ptq_model[0]
    return {
        "fq": export_fq_onnx(qmodel, out / "fq.onnx", shape),
        "qdq": export_qdq_onnx(qmodel, out / "qdq.onnx", shape),
        "ir": export_ir(qmodel, out / "model.xml", shape),
    }


def torch_logits(qmodel: nn.Module, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return qmodel.eval()(images).numpy()


def engine_logits(engine: str, path, images: torch.Tensor) -> tuple[np.ndarray, dict]:
    """An engine's logits, one image per call (the files have a static batch of 1), and facts."""
    xs = [x[None].numpy() for x in images]
    if engine == "onnxruntime":
        session = ort_session(str(path), 1)
        return np.concatenate([session.run(None, {"input": x})[0] for x in xs]), {}
    if engine == "openvino":
        import openvino as ov

        from study.engines.openvino import runtime_summary

        core = ov.Core()
        compiled = core.compile_model(
            core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
        )
        logits = np.concatenate([compiled(x)[0] for x in xs])
        return logits, {"runtime_precisions": runtime_summary(compiled)[0]}
    import deepsparse

    from study.engines.deepsparse import without_banner

    with without_banner():
        engine = deepsparse.compile_model(str(path), batch_size=1, num_cores=1)
    logits = np.concatenate([engine.run([x])[0] for x in xs])
    return logits, {"fraction_of_supported_ops": float(engine.fraction_of_supported_ops)}


def assert_agrees(logits: np.ndarray, reference: np.ndarray) -> None:
    """The study's int8 cross-check (max |diff| <= 0.1 of max |logit|) and top-1 on >= 95%.

    An engine runs the same int8 weights and scales as NNCF's torch fake-quant model, but may
    requantize activations with its own rounding; 0.1 is the study's int8 tolerance.
    """
    check = compare_outputs([logits], [reference], INT8_RTOL)
    assert check.ok, check.detail
    assert float(np.mean(logits.argmax(1) == reference.argmax(1))) >= 0.95


def test_ptq_records_nncf_settings_and_keeps_accuracy(ptq_model, pruned, data):
    from study.make.train import evaluate

    qmodel, settings = ptq_model
    assert settings.nncf_version == nncf.__version__ and settings.method == "ptq"
    # small_cnn: three Conv + BatchNorm pairs, all folded; NNCF quantizes weights and inputs.
    assert settings.folded_bn == ("net.1", "net.4", "net.7")
    assert settings.quantizers["SymmetricQuantizer"] >= 4
    assert evaluate(qmodel, data[1]) == pytest.approx(evaluate(pruned, data[1]), abs=0.05)


def test_fold_batchnorm_keeps_outputs_and_zeros(pruned):
    import copy

    folded = copy.deepcopy(pruned).eval()
    x = torch.randn(4, 3, SIZE, SIZE)
    names = fold_batchnorm(folded, x[:1])
    assert names == ("net.1", "net.4", "net.7")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        torch.testing.assert_close(folded(x), pruned.eval()(x), rtol=1e-4, atol=1e-5)
    assert layer_zeros(folded) == layer_zeros(pruned)


def assert_int8_convolutions(facts: dict) -> None:
    """small_cnn's three convolutions all ran in int8 on OpenVINO. The activations' signedness is
    the CPU plugin's choice: on Zen 5 all three ran u8; on a Sapphire Rapids with AMX exposed the
    first (its input, the normalized image, is signed) ran i8."""
    conv = facts["runtime_precisions"]["Convolution"]
    assert set(conv) <= {"u8", "i8"} and sum(conv.values()) == 3, conv


def test_fakequantize_file_runs_on_openvino_only(files, ptq_model, data):
    fq = files["fq"]
    domains = {n.domain for n in onnx.load(str(fq)).graph.node if n.op_type == "FakeQuantize"}
    assert domains == {"org.openvinotoolkit"} and op_counts(fq)["FakeQuantize"] >= 4
    images = val_batch(data[1])
    logits, facts = engine_logits("openvino", fq, images)
    assert_agrees(logits, torch_logits(ptq_model[0], images))
    assert_int8_convolutions(facts)
    for engine in ("onnxruntime", "deepsparse"):
        with pytest.raises(Exception, match="FakeQuantize"):
            engine_logits(engine, fq, images[:1])


def test_ir_runs_on_openvino(files, ptq_model, data):
    images = val_batch(data[1])
    logits, facts = engine_logits("openvino", files["ir"], images)
    assert_agrees(logits, torch_logits(ptq_model[0], images))
    assert_int8_convolutions(facts)


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino", "deepsparse"])
def test_qdq_file_runs_on_every_engine(files, ptq_model, data, engine):
    images = val_batch(data[1])
    logits, facts = engine_logits(engine, files["qdq"], images)
    assert_agrees(logits, torch_logits(ptq_model[0], images))
    if engine == "deepsparse":  # recorded by the study; 0.0 here (DeepSparse fell back)
        assert 0.0 <= facts["fraction_of_supported_ops"] <= 1.0


def test_qdq_file_matches_nncf_fakequantize_file_on_openvino(files, data):
    # The standard form holds NNCF's own quantizers: OpenVINO gives the same logits on both files
    # up to int8 rounding (OpenVINO rounds each file's quantization in its own kernels).
    images = val_batch(data[1])
    fq = engine_logits("openvino", files["fq"], images)[0]
    assert_agrees(engine_logits("openvino", files["qdq"], images)[0], fq)


def test_qdq_file_is_standard_and_keeps_the_zeros(files, pruned):
    qdq = files["qdq"]
    onnx.checker.check_model(onnx.load(str(qdq)))
    ops = op_counts(qdq)
    assert set(ops) <= {
        "QuantizeLinear",
        "DequantizeLinear",
        "Conv",
        "Relu",
        "GlobalAveragePool",
        "Flatten",
        "Gemm",
        "ReduceMean",
    }
    check = check_int8_zeros(pruned, qdq)
    assert check.ok, check.mismatches
    assert check.torch_zeros == {f"net.{k}": v for k, v in layer_zeros(pruned.net).items()}
    # Symmetric int8 weights: a pruned weight is exactly the zero point (0), and rounding added
    # no more than a few zeros.
    for name, zeros in check.torch_zeros.items():
        assert zeros <= check.onnx_zeros[name] <= zeros + 0.02 * pruned.get_parameter(name).numel()


@pytest.fixture(scope="module")
def qat_run(pruned, data):
    return qat(pruned, *data, QatConfig(epochs=1), data[0], subset_size=8)


def test_qat_holds_every_zero_and_exports(qat_run, pruned, data, tmp_path):
    result, settings = qat_run
    assert result.toolchain == "nncf" and settings.method == "qat"
    expected = layer_zeros(pruned)
    assert result.zeros == expected
    assert all(sum(s.zeros.values()) == sum(expected.values()) for s in result.train.steps)
    assert all(s.lr == pytest.approx(0.01) for s in result.train.steps)
    assert result.val_accuracy > 0.8  # half-pruned small_cnn: 0.82 before QAT
    qdq = export_qdq_onnx(result.model, tmp_path / "qat.onnx", (1, 3, SIZE, SIZE))
    assert check_int8_zeros(pruned, qdq).ok
    images = val_batch(data[1])
    for engine in ("onnxruntime", "openvino"):
        assert_agrees(engine_logits(engine, qdq, images)[0], torch_logits(result.model, images))
