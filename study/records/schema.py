"""The versioned record types every part of the study writes and reads.

Results are tidy: one :class:`TrialRow` per timed trial (``bench.jsonl``), one :class:`ModelRecord`
per ONNX file (``models/manifest.jsonl``). Rows are self-describing: each carries the schema
version, the machine, and the settings actually in force, so files from several machines and runs
can simply be concatenated.

Schema changelog:
    1 (2026-11-23): first version.
    2 (2026-11-24): TrialRow.cpu_steal (hypervisor steal during the trial; absent in version 1);
        status "rejected" (a trial repeated because its steal exceeded the declared limit).
    3 (2026-12-02): the variant columns ``profile``, ``mask`` and ``quant`` (TrialRow, ModelRecord,
        CELL_FIELDS), and the blocked design's ``block`` and ``round`` (TrialRow). ModelRecord
        gains ``content_sha256`` (order-free graph hash), ``diagnostics`` (mask structure) and
        ``trained`` (the accuracy gate). Rows of versions 1 and 2 load with
        :func:`upgrade_trial` (profile/mask inferred from the pruner, quant "none", each trial its
        own round of a one-cell block: nothing pairs with it).
    4 (2026-12-03): ``isa`` (TrialRow, CELL_FIELDS): the ISA level the engines were capped to
        (``"native"``: no cap; see study.engines.isa). Rows of versions 1-3 load as "native".
        ``replicate`` (TrialRow): the 0-based replicate of the block in its run (a fresh set of
        worker processes with fresh engine compiles and its own seeded round order). Rounds are
        keyed by ``machine, run_id, replicate, block, round``. Rows of versions 1-3 load with
        ``replicate`` 0 (each run measured every block once). Status "abandoned": marks a
        replicate a resumed run measured again (its rows are dropped on load).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 4

# The TrialRow fields that, with `machine`, identify a benchmark cell (the file path and its hash
# are covered by the `cell` id). One definition for the harness, the statistics and the summary.
CELL_FIELDS: tuple[str, ...] = (
    "model",
    "pruner",
    "profile",
    "mask",
    "quant",
    "exporter",
    "sparsity",
    "engine",
    "precision",
    "scenario",
    "batch_size",
    "threads",
    "isa",
)


# The variant vocabulary (what a model file is), shared by the study, the harness and the stats.
PRUNERS = ("none", "gmp", "sparseml", "oneshot", "zoo", "nncf")  # who pruned it ("none": dense)
PROFILES = ("dense", "uniform", "vendor", "global")  # how sparsity is spread over the layers
MASKS = ("none", "unstructured", "block4")  # the zero pattern ("none": dense)
# who quantized it (int8) ("none": fp32 weights); "nncf" is NNCF's QAT, "nncf_ptq" its
# post-training nncf.quantize alone
QUANTS = ("none", "torch", "sparseml", "nncf", "nncf_ptq")
UNKNOWN = "unknown"  # a file measured ad hoc (``python -m study.bench``): not described


@dataclass(frozen=True)
class TrialRow:
    """One timed trial of one benchmark cell (a cell = model file x engine x settings)."""

    # Identity of the measurement.
    run_id: str  # uuid of the harness invocation that produced the row
    machine: str  # stable machine id (see study.bench.hardware); the key into environment.json
    cell: str  # hash of the cell's configuration (all fields from `model` to `threads`)
    trial: int  # 0-based repetition index within the cell; -1 on a failure row
    # What was measured.
    model: str  # architecture name (e.g. "resnet50") or the ONNX file stem for ad-hoc runs
    pruner: str  # "none" (dense), "gmp", "sparseml", "oneshot" or "zoo"
    exporter: str  # "torch", "sparseml", "zoo" or "unknown"
    sparsity: float  # target sparsity of the variant, 0.0 for dense
    onnx_path: str
    onnx_sha256: str
    # How it was measured.
    engine: str  # "onnxruntime", "openvino", "deepsparse", "deepsparse-cli" or "torch"
    precision: (
        str  # "f32" (fair default) or "default" (the engine's own default, e.g. OpenVINO bf16)
    )
    scenario: str  # "sync" (latency, one request at a time) or "async" (engine's throughput mode)
    batch_size: int
    threads: int
    # The result of the trial.
    items: int  # images processed inside the timed window
    seconds: float  # length of the timed window (perf_counter_ns based)
    throughput: float  # items / seconds (NaN on a failure row)
    calls: int  # inference calls (requests) completed inside the window
    latency_ms_mean: float | None = None
    latency_ms_median: float | None = None
    latency_ms_p90: float | None = None
    latency_ms_p99: float | None = None
    # Fraction of all CPUs' time the hypervisor gave to other guests during the trial (Linux
    # /proc/stat steal, read around the window by the parent; None where not reported).
    cpu_steal: float | None = None
    # Context, read back from the engine where it can be.
    engine_version: str = ""
    engine_settings: dict[str, Any] = field(default_factory=dict)
    output_max_abs_diff: float | None = None  # vs ONNX Runtime on the fixed input
    output_ok: bool | None = None  # output_max_abs_diff within tolerance
    timestamp: str = ""  # ISO 8601 UTC, end of the trial
    git_commit: str = ""
    # "ok"; "failed" (the cell failed; `error` says why); "rejected": a trial that was repeated
    # because its CPU steal exceeded BenchSettings.max_cpu_steal, kept for the record and left out
    # of every statistic; or "abandoned": the mark a resumed run appends for each cell of an
    # interrupted replicate, whose rows every reader then drops (study.records.results.drop_abandoned).
    status: str = "ok"
    error: str | None = None  # the reason, on a failed or rejected row
    # The variant (see PROFILES, MASKS, QUANTS); "unknown" for a file measured ad hoc.
    profile: str = UNKNOWN  # "dense", "uniform", "vendor" or "global"
    mask: str = UNKNOWN  # "none", "unstructured" or "block4"
    quant: str = "none"  # "none" (fp32 weights), "torch" or "sparseml" (int8, by that toolchain)
    # The blocked design: every cell of one block is measured once per round, so the cells of a
    # block can be compared round by round (common drift cancels in the paired log ratios).
    block: str = (
        ""  # block id (cells measured together); "cell:<id>" on upgraded rows of version < 3
    )
    round: int = -1  # 0-based round within the block; -1 on a failure row
    # The replicate of the block within the run: each replicate is a fresh set of worker processes
    # (fresh engine compiles, its own seeded round order); estimates combine replicates.
    replicate: int = 0
    # ISA level the engine was capped to (study.engines.isa.ISA_LEVELS; "native": no cap). What
    # ran is the engine's own word in engine_settings["isa_path"] and ["isa_cap"].
    isa: str = "native"
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _profile_of(pruner: str) -> str:
    return {"none": "dense", "gmp": "uniform", "sparseml": "uniform", "oneshot": "uniform"}.get(
        pruner, UNKNOWN
    )


def upgrade_trial(row: dict[str, Any]) -> dict[str, Any]:
    """A TrialRow dict of any schema version as the current one (a new dict; current: as is).

    Versions 1 and 2 knew only uniform unstructured pruning and fp32 files, so ``profile`` and
    ``mask`` follow from ``pruner`` and ``quant`` is "none". They had no blocks: each trial
    becomes round ``trial`` of a block of its own cell, which no paired estimator pairs with
    another cell (the statistics fall back to unpaired estimators for such cells). Versions 1-3
    measured each block once per run: ``replicate`` is 0.

    Example:
        >>> upgrade_trial({"schema_version": 2, "pruner": "gmp", "cell": "c1", "trial": 4})["mask"]
        'unstructured'
    """
    version = int(row.get("schema_version", 1))
    if version >= SCHEMA_VERSION:
        return row
    out = dict(row)
    out.setdefault("isa", "native")  # version < 4: no ISA cap existed
    out.setdefault("replicate", 0)  # version < 4: each run measured every block once
    if version >= 3:
        return out
    pruner = str(row.get("pruner", UNKNOWN))
    out.setdefault("profile", _profile_of(pruner))
    out.setdefault("mask", "none" if pruner == "none" else "unstructured")
    out.setdefault("quant", "none")
    out.setdefault("block", f"cell:{row.get('cell', '')}")
    out.setdefault("round", int(row.get("trial", -1)))
    return out


@dataclass(frozen=True)
class LayerZeros:
    """Zeros in one prunable tensor."""

    name: str
    shape: tuple[int, ...]
    numel: int
    zeros: int


@dataclass(frozen=True)
class ModelRecord:
    """One exported ONNX file with its sparsity, size and accuracy (Tables 1 and 2 of the study)."""

    model: str  # architecture name
    pruner: str  # "none", "gmp", "sparseml", "oneshot" or "zoo"
    exporter: str  # "torch" or "sparseml"
    sparsity: float  # target sparsity (0.0 for dense)
    onnx_path: str  # relative to the results folder
    onnx_sha256: str  # SHA-256 of the file's bytes
    input_shape: tuple[int, ...]  # (batch, channels, height, width) used at export, batch 1
    opset: int
    raw_bytes: int  # size of the ONNX file
    gzip_bytes: int  # size after gzip -9
    prunable_params: int  # numel of all prunable weights
    zeros: int  # zeros among them, counted in the ONNX initializers
    measured_sparsity: float  # zeros / prunable_params
    accuracy: float | None  # top-1 on the validation data, in [0, 1]
    accuracy_dataset: str  # e.g. "sklearn-digits" or an ImageFolder path
    zero_check_ok: bool  # the ONNX initializers hold every zero the torch model had
    zero_check_detail: str = ""  # mismatches, when any
    layers: tuple[LayerZeros, ...] = ()  # per-layer zeros in the torch model after finalize
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. training time, recipe name
    profile: str = "uniform"  # see PROFILES ("dense" for the dense model)
    mask: str = "unstructured"  # see MASKS ("none" for the dense model)
    quant: str = "none"  # see QUANTS: who quantized the file to int8, "none" for fp32 weights
    # Order-free hash of the graph's content (study.onnx.content_hash.content_sha256): two files with the
    # same nodes and initializers (by name and bytes) hash equal whatever order they were written in.
    content_sha256: str = ""
    # Mask structure (study.make.diagnostics): {"model": {...}, "layers": [{...}, ...]}; {} if not computed.
    diagnostics: dict[str, Any] = field(default_factory=dict)
    # Whether ``accuracy`` reached the preset's declared accuracy gate; False = "not trained" in
    # every table and figure; None when no gate applies (no accuracy measured).
    trained: bool | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
