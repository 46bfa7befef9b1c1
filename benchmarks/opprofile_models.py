"""Dense and one-shot magnitude-pruned ONNX files of the original study's architectures, for
``python -m study.bench.opprofile`` (question 3: where the time goes).

Random (seeded) weights: an operator's time does not depend on the weights' values, only on their
zeros, so a time profile needs no training. BatchNorm scales initialised to zero (timm's
``zero_init_last`` in MobileViT-xs) are set to one first: folded into their convs they would make
all-zero weights that no trained model has. Each pruned file is the dense model pruned by gmp's
one-shot per-layer magnitude pruning (``study.variants.oneshot_prune``, every prunable layer at
the sparsity) and exported by torch.onnx exactly as the study exports its files (BatchNorm folded,
opset ``max(14, the architecture's)``, 224 px; InceptionV3 at 299 px).

Usage:
    python benchmarks/opprofile_models.py --models efficientnet_b0,mobilevit_xs --out runs/opprofile
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from torch import nn

from study.make.export import export_torch
from study.make.models import MODELS, build_model
from study.variants import oneshot_prune


def make(name: str, sparsity: float, out: Path) -> list[Path]:
    """Export ``name`` dense and pruned at ``sparsity`` into ``out``; return the two paths."""
    entry = MODELS[name]
    shape = (1, 3, entry.input_size, entry.input_size)
    opset = max(14, entry.opset)
    dense = build_model(name, num_classes=1000, weights="random", seed=0).eval()
    with torch.no_grad():
        for module in dense.modules():
            if isinstance(module, nn.BatchNorm2d) and not module.weight.any():
                module.weight.fill_(1.0)
    paths = [out / f"{name}-dense.onnx", out / f"{name}-pruned{round(sparsity * 100)}.onnx"]
    if not paths[0].exists():
        export_torch(dense, paths[0], shape, opset)
    if not paths[1].exists():
        export_torch(oneshot_prune(copy.deepcopy(dense), sparsity), paths[1], shape, opset)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated registry names")
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--out", type=Path, default=Path("runs/opprofile"))
    args = p.parse_args()
    for name in args.models.split(","):
        for path in make(name, args.sparsity, args.out):
            print(path)


if __name__ == "__main__":
    main()
