"""Fidelity and efficiency of ``study.bench`` against the engines' own benchmark tools.

Fidelity: on one ResNet-50 ONNX file (torchvision, random init, opset 13, 1x3x224x224), our sync
throughput is compared with ``deepsparse.benchmark -s sync`` and with OpenVINO's ``benchmark_app``
(latency hint, f32), same cores, measured in the same run. Each round runs ours and the tool twice,
back to back, in one of the six orders (cycled, so each run sits in each position equally often):
ours is compared with the geometric mean of the two tool runs of its round, and the two tool runs
with each other are the control, which shows how well two identical runs agree on this machine.
Efficiency: how many trials and seconds the harness needs for a 95% CI of +-1%. Both are bounded by
the machine's noise floor (``study.bench.noise``), measured before and after and printed with them.

Usage::

    uv run python benchmarks/fidelity.py --threads 2 --seconds 10 --rounds 6
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from scipy import stats

from study.bench import BenchSettings, CellSpec, run_benchmark, summarize
from study.bench.noise import StealMeter, noise_floor
from study.engines.deepsparse_cli import deepsparse_benchmark_command

QUIET_STEAL = 0.05  # the secondary analysis keeps rounds whose runs all had at most this steal


def export_resnet50(path: Path) -> Path:
    """torchvision ResNet-50, random init (seed 0), exported with the TorchScript exporter, opset 13."""
    if path.is_file():
        return path
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, torch.randn(1, 3, 224, 224), str(path), dynamo=False, opset_version=13)
    return path


def ours(onnx: Path, engine: str, threads: int, seconds: int, out: Path) -> float:
    """Our sync throughput over ``seconds`` one-second trials (after our warm-up)."""
    settings = BenchSettings(
        trial_seconds=1.0, min_trials=seconds, max_trials=seconds, max_seconds_per_cell=1e9
    )
    rows = run_benchmark(
        [CellSpec(str(onnx), engine, threads=threads)], settings, out, progress=False, resume=False
    )
    ok = [r for r in rows if r.status == "ok"]
    if not ok:
        raise RuntimeError(f"our {engine} run failed: {rows[-1].error}")
    return sum(r.items for r in ok) / sum(r.seconds for r in ok)


def measured(run, *args) -> tuple[Any, float | None]:
    """Run one measurement; return what it returned and the CPU steal during it."""
    meter = StealMeter().start()
    result = run(*args)
    return result, meter.stop()


def deepsparse_tool(onnx: Path, threads: int, seconds: int) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        export = str(Path(tmp) / "out.json")
        cmd = deepsparse_benchmark_command(str(onnx), 1, threads, "sync", seconds, export)
        subprocess.run(cmd, capture_output=True, text=True, check=True)
        return float(
            json.loads(Path(export).read_text())["benchmark_result"]["items_per_sec"]
        ), " ".join(cmd)


def benchmark_app(onnx: Path, threads: int, seconds: int) -> tuple[float, str]:
    exe = str(Path(sys.executable).with_name("benchmark_app"))
    cmd = [exe, "-m", str(onnx), "-d", "CPU", "-infer_precision", "f32", "-t", str(seconds)]
    # benchmark_app refuses -nthreads together with a hint ("fine tune options"): with all physical
    # cores the latency hint alone is the same setting; otherwise spell the latency config out.
    if threads == psutil.cpu_count(logical=False):
        cmd += ["-hint", "latency"]
    else:
        cmd += [
            "-hint",
            "none",
            "-nstreams",
            "1",
            "-nireq",
            "1",
            "-api",
            "sync",
            "-nthreads",
            str(threads),
        ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    match = re.search(r"Throughput:\s*([\d.]+)\s*FPS", proc.stdout)
    if not match:
        raise RuntimeError(f"no 'Throughput:' line in benchmark_app output:\n{proc.stdout[-2000:]}")
    return float(match.group(1)), " ".join(cmd)


def fidelity(
    onnx: Path, threads: int, seconds: int, rounds: int, out: Path, engines: list[str]
) -> None:
    """Each round and engine: ours and the tool twice, in one of the six orders (cycled).

    ours / tool is ours over the geometric mean of the round's two tool runs. The control (second
    tool run / first, same round) measures how much two identical runs disagree on this machine:
    agreement of ours with the tool cannot be shown more tightly than that. The verdict is a TOST
    on the mean log ratio over rounds, margin +-5%; a whole cycle of orders needs 6 rounds.
    """
    tools = {e: {"deepsparse": deepsparse_tool, "openvino": benchmark_app}[e] for e in engines}
    ratios: dict[str, list[float]] = {e: [] for e in tools}
    controls: dict[str, list[float]] = {e: [] for e in tools}
    steals: dict[str, list[float]] = {e: [] for e in tools}  # the round's largest steal
    orders = list(itertools.permutations(("ours", "tool", "tool2")))
    rng = random.Random(0)
    for r in range(rounds):
        for engine in rng.sample(list(tools), len(tools)):
            order = orders[r % len(orders)]
            got: dict[str, float] = {}
            steal: dict[str, float] = {}
            for who in order:
                if who == "ours":
                    got[who], st = measured(ours, onnx, engine, threads, seconds, out)
                else:
                    (got[who], cmd), st = measured(tools[engine], onnx, threads, seconds)
                steal[who] = math.nan if st is None else st
            ratios[engine].append(got["ours"] / math.sqrt(got["tool"] * got["tool2"]))
            controls[engine].append(got["tool2"] / got["tool"])
            steals[engine].append(max(steal.values()))
            print(
                f"round {r} {engine:10s} ours {got['ours']:8.2f}  tool {got['tool']:8.2f}  "
                f"tool again {got['tool2']:8.2f} items/s  ours/tool {ratios[engine][-1]:.3f}  "
                f"tool/tool {controls[engine][-1]:.3f}  CPU steal ours/tool/again "
                f"{steal['ours']:.1%}/{steal['tool']:.1%}/{steal['tool2']:.1%}  "
                f"({', '.join(order)}; tool: {cmd})",
                flush=True,
            )
    print("\nFidelity (ours / tool, sync, batch 1, f32; geometric mean over rounds, 95% CI):")
    _verdicts(tools, ratios, controls, [True] * rounds)
    quiet = {e: [st <= QUIET_STEAL for st in steals[e]] for e in tools}
    print(
        f"\nSecondary (declared in advance): only rounds in which every run had CPU steal <= "
        f"{QUIET_STEAL:.0%}:"
    )
    _verdicts(tools, ratios, controls, quiet)


def _verdicts(tools, ratios, controls, keep) -> None:
    """Print the geometric mean, 95% CI and TOST verdict of the kept rounds per engine."""
    from study.stats.equivalence import tost_one_sample

    keep = keep if isinstance(keep, dict) else {e: keep for e in tools}
    margin = math.log(1.05)
    for engine in tools:
        for label, xs in (("ours/tool", ratios[engine]), ("tool/tool", controls[engine])):
            logs = np.log(np.asarray(xs))[np.asarray(keep[engine], dtype=bool)]
            n = logs.size
            if n == 0:
                print(f"  {engine:10s} {label}  no round qualifies")
                continue
            half = (
                stats.t.ppf(0.975, n - 1) * logs.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan
            )
            eq = tost_one_sample(logs, -margin, margin) if n > 1 else None
            if eq is None:
                verdict = "n/a (one round)"
            else:
                shown = "equivalent" if eq.equivalent else "not shown equivalent"
                verdict = f"{shown} within +-5% (TOST p={eq.pvalue:.3f})"
            print(
                f"  {engine:10s} {label}  {math.exp(logs.mean()):.3f} "
                f"[{math.exp(logs.mean() - half):.3f}, {math.exp(logs.mean() + half):.3f}]  "
                f"range {math.exp(logs.min()):.3f}-{math.exp(logs.max()):.3f}  n={n}  {verdict}"
            )


def efficiency(onnx: Path, threads: int, out: Path, max_steal: float | None = None) -> None:
    cells = [
        CellSpec(str(onnx), e, threads=threads) for e in ("onnxruntime", "openvino", "deepsparse")
    ]
    settings = BenchSettings(max_cpu_steal=max_steal)
    rows = run_benchmark(cells, settings, out, progress=False, resume=False)
    table = summarize(rows)
    print(
        "\nEfficiency (default BenchSettings: target 95% CI +-1%, cap 30 s of warm-up + trials per "
        f"cell; max_cpu_steal {max_steal}):"
    )
    for _, s in table.iterrows():
        bench = next(r for r in rows if r.cell == s["cell"] and r.status == "ok").engine_settings[
            "bench"
        ]
        spent = max(
            r.engine_settings["bench"]["cell_seconds"]
            for r in rows
            if r.cell == s["cell"] and r.status == "ok"
        )
        print(
            f"  {s['engine']:12s} {s['throughput']:7.2f} items/s  CI +-{s['ci_rel']:.2%}  trials {s['trials']:2d}  "
            f"warm-up+trials {spent:5.1f} s  load {bench['load_seconds']:.1f} s  "
            f"CPU steal {s['cpu_steal']:.1%}  rejected {s['rejected']}  target met: {s['ci_rel'] <= 0.01}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=psutil.cpu_count(logical=False))
    p.add_argument(
        "--seconds", type=int, default=10, help="measurement seconds per run (ours and tools)"
    )
    p.add_argument("--rounds", type=int, default=6, help="rounds (6 = one cycle of orders)")
    p.add_argument("--dir", type=Path, default=Path("runs/fidelity"))
    p.add_argument(
        "--engines",
        nargs="+",
        choices=["deepsparse", "openvino"],
        default=["deepsparse", "openvino"],
    )
    p.add_argument("--skip-efficiency", action="store_true")
    p.add_argument(
        "--max-steal",
        type=float,
        default=None,
        help="efficiency only: repeat trials whose CPU steal exceeds this share (study.bench's "
        "max_cpu_steal); fidelity never rejects, as the tools cannot",
    )
    p.add_argument("--skip-fidelity", action="store_true")
    args = p.parse_args()
    onnx = export_resnet50(args.dir / "resnet50.onnx")
    print(
        f"model {onnx}, threads {args.threads}, {args.seconds} s per run, {args.rounds} rounds",
        flush=True,
    )
    print(noise_floor(seconds=20, threads=args.threads), flush=True)
    if not args.skip_fidelity:
        fidelity(
            onnx, args.threads, args.seconds, args.rounds, args.dir / "fidelity.jsonl", args.engines
        )
    if not args.skip_efficiency:
        efficiency(onnx, args.threads, args.dir / "efficiency.jsonl", args.max_steal)
    print(noise_floor(seconds=20, threads=args.threads), flush=True)


if __name__ == "__main__":
    main()
