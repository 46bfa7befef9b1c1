"""Did a run prove the pipeline? ``python -m study.check RUN``: per architecture, every planned file
made, every zero check passed, and every engine measured it.

For each architecture of the run's configuration (``RUN/config.yaml``) it reads the manifest, the
benchmark rows and the recorded failures and requires:

- **made**: every variant the design plans (:func:`study.design.variants`) has a file in the
  manifest (a variant whose making failed is missing, with the failure's reason);
- **zeros**: every file's zero check passed (weights a quantizer leaves fp32 count when they keep
  their zeros; the manifest's detail lists them);
- **measured**: every engine of the configuration has ok rows on the architecture, and every file
  has ok rows on at least one engine. A (file, engine) cell that failed is listed with its reason
  (e.g. DeepSparse aborting on a graph, quoted from its stderr); it fails the check only when it
  leaves an engine with no ok row on the architecture or a file measured by no engine.

Prints one table per architecture and exits 1 when any requirement fails, naming it. The
seven_ci preset's run is checked this way in CI (``.ci/run``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from study.config import load_config
from study.design import variant_key, variants
from study.records.jsonl import read_jsonl
from study.records.manifest import read_manifest
from study.records.results import load_results

__all__ = ["ArchitectureCheck", "check_run", "main"]


@dataclass
class ArchitectureCheck:
    """What a run proved for one architecture, and what it did not."""

    model: str
    files: int = 0  # files in the manifest
    zero_ok: int = 0  # of them, zero check passed
    engines_ok: dict[str, int] = field(default_factory=dict)  # engine -> files with ok rows
    problems: list[str] = field(default_factory=list)  # requirements not met
    notes: list[str] = field(default_factory=list)  # failed cells that break no requirement

    @property
    def ok(self) -> bool:
        return not self.problems


def check_run(run: Path) -> list[ArchitectureCheck]:
    """Check the run in folder ``run`` (see the module docstring); one result per architecture.

    A folder without a manifest shows every planned file as not made.

    Raises:
        ValueError: ``run`` holds no run (no config.yaml).
    """
    config = run / "config.yaml"
    if not config.is_file():
        raise ValueError(f"RUN must be a results folder with a config.yaml; got {str(run)!r}")
    cfg = load_config(config)
    records = read_manifest(run)
    bench = run / "bench.jsonl"
    rows = load_results(bench) if bench.is_file() else pd.DataFrame()
    failures = read_jsonl(run / "failures.jsonl", missing_ok=True)
    return [_check_one(cfg, name, records, rows, failures) for name in cfg.models]


def _check_one(cfg, name, records, rows, failures) -> ArchitectureCheck:
    mine = [r for r in records if r.model == name]
    out = ArchitectureCheck(name, files=len(mine), zero_ok=sum(r.zero_check_ok for r in mine))
    made = {variant_key(r) for r in mine}
    why = "; ".join(
        f"{f['stage']}: {f['reason'][:300]}"
        for f in failures
        if f.get("model") == name and f["stage"] in ("prepare", "dense", "train", "quantize")
    )
    for v in variants(cfg, name):
        if variant_key(v) not in made:
            out.problems.append(f"not made: {v.name}" + (f" ({why})" if why else ""))
    for r in mine:
        if not r.zero_check_ok:
            out.problems.append(f"zero check failed: {r.onnx_path}: {r.zero_check_detail[:300]}")
    here = rows[rows["model"] == name] if not rows.empty else rows
    ok = here[here["status"] == "ok"] if not here.empty else here
    for engine in cfg.engines:
        files = set(ok.loc[ok["engine"] == engine, "onnx_sha256"]) if not ok.empty else set()
        out.engines_ok[engine] = len(files)
        if not files:
            out.problems.append(f"no ok row on {engine}")
    measured = set(ok["onnx_sha256"]) if not ok.empty else set()
    for r in mine:
        shas = {r.onnx_sha256, *_engine_file_shas(r, here)}
        if not shas & measured:
            out.problems.append(f"measured by no engine: {r.onnx_path}")
    if not here.empty:
        failed = here[here["status"] == "failed"]
        for (engine, path), group in failed.groupby(["engine", "onnx_path"]):
            out.notes.append(f"{engine} failed on {Path(path).name}: {group['error'].iloc[0]}")
    return out


def _engine_file_shas(record, rows: pd.DataFrame) -> set[str]:
    """The SHA-256s of the files measured in place of ``record``'s (NNCF's QDQ twin, by path)."""
    files = record.extra.get("engine_files") or {}
    if rows.empty or not files:
        return set()
    names = {Path(p).name for p in files.values()}
    return set(rows.loc[rows["onnx_path"].map(lambda p: Path(p).name in names), "onnx_sha256"])


def _print(checks: list[ArchitectureCheck]) -> None:
    for c in checks:
        engines = ", ".join(f"{e} {n}" for e, n in c.engines_ok.items())
        status = "ok" if c.ok else "FAILED"
        print(
            f"{c.model}: {status}: {c.files} files, zero checks {c.zero_ok}/{c.files}, "
            f"files with ok rows: {engines}"
        )
        for p in c.problems:
            print(f"  problem: {p}")
        for n in c.notes:
            print(f"  note: {n}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m study.check", description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="a results folder of python -m study.compare")
    args = p.parse_args(argv)
    try:
        checks = check_run(args.run)
    except ValueError as err:
        p.error(str(err))
    _print(checks)
    bad = [c.model for c in checks if not c.ok]
    if bad:
        print(f"check failed for {len(bad)} of {len(checks)} architecture(s): {', '.join(bad)}")
        return 1
    print(f"check passed for all {len(checks)} architecture(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
