"""What the harness measures and how: :class:`CellSpec`, :class:`BenchSettings`, the cell id.

A *cell* is one model file x engine x precision x scenario x batch x threads, described by the
variant columns of :mod:`study.records.schema` (pruner, profile, mask, quant, exporter, sparsity). Cells
with the same ``block`` are measured together, round by round (see :mod:`study.bench.scheduling`);
a block too big to load at once is split around its ``anchor`` cells (:mod:`study.bench.split`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from study.bench.hardware import physical_cores
from study.engines import EngineAdapter
from study.engines.base import PRECISIONS, SCENARIOS
from study.engines.isa import ISA_LEVELS
from study.records.schema import MASKS, PROFILES, QUANTS, UNKNOWN

__all__ = [
    "BenchSettings",
    "CellSpec",
    "cell_key",
    "check_cells",
    "check_settings",
]


@dataclass(frozen=True)
class CellSpec:
    """One benchmark configuration: a model file on one engine with one set of settings."""

    onnx_path: str  # the ONNX file
    engine: str  # a key of study.engines.ENGINES
    model: str = ""  # architecture name; "" -> the ONNX file stem
    pruner: str = "none"  # "none", "gmp", "sparseml", "oneshot" or "zoo"
    exporter: str = "unknown"  # "torch", "sparseml", "zoo" or "unknown"
    sparsity: float = 0.0  # target sparsity of the variant
    precision: str = "f32"  # one of study.engines.base.PRECISIONS ("f32": the fair default)
    scenario: str = "sync"  # "sync" (latency) or "async" (the engine's throughput mode)
    batch_size: int = 1  # items per call
    threads: int = field(default_factory=physical_cores)  # CPU threads for every engine
    torch_module_path: str | None = (
        None  # whole torch module for engine "torch" (default: <onnx stem>.pt)
    )
    input_shape: tuple[int, ...] | None = None  # per-item input shape, for models with dynamic dims
    profile: str = UNKNOWN  # study.records.schema.PROFILES, or "unknown" for a file measured ad hoc
    mask: str = UNKNOWN  # study.records.schema.MASKS, or "unknown"
    quant: str = (
        "none"  # study.records.schema.QUANTS: who quantized the file to int8 ("none": fp32)
    )
    isa: str = "native"  # ISA cap of the engine (study.engines.isa.ISA_LEVELS; "native": none)
    # Cells with the same block are loaded together and timed in lockstep rounds; not part of the
    # cell's identity (cell_key), so a cell is the same cell whatever block it is measured in.
    block: str = ""
    # A reference cell (the reference file on this engine, which enters every contrast): when its
    # block is too big to load at once, it is measured in every sub-block (study.bench.split).
    # Not part of the cell's identity either.
    anchor: bool = False
    # The ONNX paths of the anchor files this cell's contrasts compare it with (its channels'
    # references); a sub-block holding it holds those anchors' cells. Empty: every anchor.
    pairs_with: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.model:
            object.__setattr__(self, "model", Path(self.onnx_path).stem)
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "pairs_with", tuple(self.pairs_with))


@dataclass(frozen=True)
class BenchSettings:
    """How cells are measured (written into every row under ``engine_settings["bench"]``)."""

    # Stop a block when every live cell's drift-corrected 95% CI of its mean log throughput is
    # within log(1 + target_ci) (see study.bench.stopping).
    target_ci: float = 0.01
    # Cap on a block's warm-up + trial time: this many seconds per live cell of the block.
    max_seconds_per_cell: float = 30
    trial_seconds: float = 1.0  # length of one timed trial
    min_trials: int = 3  # rounds before the CI rule or the time cap may stop a block
    max_trials: int = 50  # cap on rounds per block (and on steal rejections per cell)
    warmup_max_seconds: float = 10  # cap on warm-up after each worker start
    output_rtol: float = 1e-3  # relative tolerance of the f32 output check (bf16 variant: 5e-2)
    seed: int = 0  # seed of the input tensor and of the rounds' orders
    warmup_window_seconds: float = 0.25  # length of one warm-up window
    warmup_windows: int = 3  # the last this many windows must agree ...
    warmup_tolerance: float = 0.03  # ... within this relative spread ((max-min)/mean)
    # Cells of one block, all loaded at once (each holds a loaded worker, so this bounds memory):
    # a block with more cells is refused.
    max_live_workers: int = 8
    # Workers loaded at once (loading is mostly single-threaded; nothing is timed meanwhile).
    parallel_loads: int = field(default_factory=physical_cores)
    # On a virtual machine: a trial during which the hypervisor took more than this share of the
    # CPU time (steal) is recorded as "rejected" and timed again at the end of the same round.
    # Rejected trials count toward neither max_trials nor the time cap, but a cell stops after
    # max_trials of them. Declare it before the run; None = keep every trial. Steal is 0 on bare
    # metal, so it never triggers there.
    max_cpu_steal: float | None = None
    # Seconds of study.bench.noise's fixed workload timed before the cells (in trials of trial_seconds,
    # on the cells' thread count) and appended to environment.json's "noise_floors": how much this
    # machine varied, with no engine, when it was measured. 0 = skip.
    noise_floor_seconds: float = 0.0
    # Replicates per block (Kalibera & Jones): each is a fresh set of the block's worker processes
    # (fresh engine loads and compiles, its own seeded load and round orders), timed in its own
    # rounds under the rules above (min_trials, max_trials and the time cap apply per replicate).
    # Replicates of different blocks are interleaved in time. 1 = one process per cell per run:
    # a CI can then only rest on rounds, which ignores the variance between processes.
    replicates: int = 1


def check_cells(
    cells: Sequence[CellSpec], settings: BenchSettings, engines: Mapping[str, type[EngineAdapter]]
) -> None:
    """Raise ValueError on an empty ``cells``, a field no engine or schema allows, or bad settings.

    Problems only a worker can find (a missing file, an engine not installed) are not checked
    here: they become failure rows of their cell.
    """
    if not cells:
        raise ValueError("`cells` must hold at least one CellSpec; got none")
    allowed = {
        "engine": sorted(engines),
        "precision": list(PRECISIONS),
        "scenario": list(SCENARIOS),
        "profile": [*PROFILES, UNKNOWN],
        "mask": [*MASKS, UNKNOWN],
        "quant": list(QUANTS),
        "isa": list(ISA_LEVELS),
    }
    for c in cells:
        for name, values in allowed.items():
            if getattr(c, name) not in values:
                raise ValueError(f"`{name}` must be one of {values}; got {getattr(c, name)!r}")
        for name in ("batch_size", "threads"):
            value = getattr(c, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1; got {value!r}")
        if not isinstance(c.block, str):
            raise ValueError(f"`block` must be a string; got {c.block!r}")
    check_settings(settings)


def check_settings(settings: BenchSettings) -> None:
    """Raise ValueError naming the field, the bad value and what is allowed, for bad settings.

    Example:
        >>> check_settings(BenchSettings(replicates=0))
        Traceback (most recent call last):
        ...
        ValueError: `replicates` must be an integer >= 1 (1: one set of worker processes per block, or k >= 2 replicates); got 0
    """
    for name in ("target_ci", "max_seconds_per_cell", "trial_seconds", "warmup_window_seconds"):
        if not getattr(settings, name) > 0:
            raise ValueError(f"`{name}` must be > 0; got {getattr(settings, name)!r}")
    if not 1 <= settings.min_trials <= settings.max_trials:
        raise ValueError(
            f"`min_trials` must be in [1, max_trials={settings.max_trials}]; got {settings.min_trials!r}"
        )
    floor = settings.noise_floor_seconds
    if floor != 0 and not floor >= 3 * settings.trial_seconds:
        raise ValueError(
            f"`noise_floor_seconds` must be 0 or at least 3 trials ({3 * settings.trial_seconds:g} s); "
            f"got {floor!r}"
        )
    if settings.max_cpu_steal is not None and not 0 < settings.max_cpu_steal < 1:
        raise ValueError(
            f"`max_cpu_steal` must be None or in (0, 1); got {settings.max_cpu_steal!r}"
        )
    for name in ("max_live_workers", "parallel_loads"):
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1; got {value!r}")
    k = settings.replicates
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(
            "`replicates` must be an integer >= 1 (1: one set of worker processes per block, or "
            f"k >= 2 replicates); got {k!r}"
        )


def cell_key(spec: CellSpec, onnx_sha256: str) -> str:
    """The cell id: a hash of the cell's row fields, the file's path and hash (not its block).

    The fields are ``model`` to ``threads`` of :class:`~study.records.schema.TrialRow` with the variant
    columns ``profile``, ``mask`` and ``quant`` (so two descriptions of one path are two cells),
    and ``input_shape`` and ``isa`` when set (not native). ``block`` is left out: a cell keeps its id in any block.

    Example:
        >>> a = CellSpec("m.onnx", "onnxruntime", threads=2, block="x")
        >>> cell_key(a, "ab") == cell_key(CellSpec("m.onnx", "onnxruntime", threads=2), "ab")
        True
    """
    d = {
        k: getattr(spec, k)
        for k in ("model", "pruner", "exporter", "sparsity", "onnx_path", "engine")
    }
    d.update(onnx_sha256=onnx_sha256, precision=spec.precision, scenario=spec.scenario)
    d.update(batch_size=spec.batch_size, threads=spec.threads)
    d.update(profile=spec.profile, mask=spec.mask, quant=spec.quant)
    if spec.input_shape is not None:
        d["input_shape"] = list(spec.input_shape)
    if spec.isa != "native":  # native cells keep the ids they had before the ISA factor
        d["isa"] = spec.isa
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
