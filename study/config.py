"""Study configuration: presets are readable YAML files the user can copy and edit; flags override.

Example:
    >>> cfg = load_config("quick", overrides={"models": ["resnet18"]})
    >>> cfg.models
    ('resnet18',)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from study.stats.defaults import CONFIDENCE, MARGIN

__all__ = [
    "ENGINES",
    "FACTORS",
    "PRESETS",
    "AnalysisSettings",
    "QatSettings",
    "SensitivitySettings",
    "StudyConfig",
    "TrainSettings",
    "load_config",
]

PRESETS = ("quick", "seed", "seven_ci", "smoke", "seven_hour")
ENGINES = ("onnxruntime", "openvino", "deepsparse", "deepsparse-cli", "torch")

# The study's factors: where a vendor's toolchain can make choices beyond the GMP algorithm. Each
# maps to its allowed levels; the first level is the reference (the pure-PyTorch, uniform, fp32
# choice) that every other level is compared with, one factor at a time.
FACTORS: dict[str, tuple[str, ...]] = {
    # Who ran GMP: gmp (this project) or SparseML. Identical files make this the A/A control.
    "pruner": ("gmp", "sparseml"),
    # Who wrote the ONNX file: torch.onnx (BatchNorm folded) or SparseML's ModuleExporter (kept).
    "exporter": ("torch", "sparseml"),
    # How the sparsity is spread: one global magnitude threshold (PyTorch's own
    # prune.global_unstructured idiom; the reference: it keeps MobileNets' small depthwise convs
    # dense enough to train), every layer alike, or SparseZoo's vendor style.
    "profile": ("global", "uniform", "vendor"),
    # The zero pattern: unstructured, or SparseML's 1x4 blocks (aimed at DeepSparse's VNNI kernels).
    "mask": ("unstructured", "block4"),
    # The weights: fp32, or int8 after quantization-aware fine-tuning of the pruned model.
    "precision": ("fp32", "int8"),
    # Who quantized an int8 model: torch.ao (FX QAT, torch.onnx), SparseML (QuantizationModifier)
    # or Intel's NNCF (nncf.quantize + QAT on the shared loop, its own export).
    "quantizer": ("torch", "sparseml", "nncf", "nncf_ptq"),
    # A vendor's whole toolchain at once against the neutral reference (study.toolchains): Neural
    # Magic's (SparseZoo-style profile, 1x4 blocks, SparseML's exporter; SparseML's int8) or
    # Intel's (NNCF's pruning and export; NNCF's int8 where the precision factor has int8).
    "toolchain": ("neutral", "neuralmagic", "intel"),
}


@dataclass(frozen=True)
class TrainSettings:
    """How each dense model is trained, once per architecture, before any pruning.

    Every pruned variant starts from that checkpoint and follows the preset's recipe (its LR
    modifiers included) on the shared loop; these settings also give the loop's batch size,
    optimizer and augmentation to those runs.
    """

    # Training resolution (raised to the architecture's minimum); export uses the real size.
    image_size: int = 32
    batch_size: int = 64
    # Subsample of the training split; None = all of it.
    train_samples: int | None = None
    # Subsample of the held-out split every accuracy is measured on; None = all of it (CI presets
    # make no accuracy claim and evaluate each variant on a few images).
    val_samples: int | None = None
    # "sgd" or "adam".
    optimizer: str = "sgd"
    # Peak learning rate of the dense schedule; the initial LR of pruning runs (their recipe's LR
    # modifiers take over from there).
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 5e-5
    # Epochs of dense training.
    epochs: int = 10
    # Dense learning-rate schedule: "onecycle", "cosine" or "constant".
    schedule: str = "onecycle"
    # Random translation of training images by up to this many pixels (0 = none), same for every run.
    augment_shift: int = 0
    # A model whose held-out top-1 is below this is labelled "not trained" in every table and
    # figure (None: no gate).
    accuracy_gate: float | None = None


@dataclass(frozen=True)
class QatSettings:
    """Quantization-aware fine-tuning of the pruned reference model, the same for both quantizers."""

    epochs: int = 2
    lr: float = 0.002  # constant learning rate of the QAT fine-tuning
    momentum: float = 0.9
    weight_decay: float = 0.0


@dataclass(frozen=True)
class SensitivitySettings:
    """One-shot per-layer sensitivity analysis of the trained dense models."""

    models: tuple[str, ...] = ()  # which architectures (subset of `models`); empty = none
    levels: tuple[float, ...] = (0.3, 0.6, 0.9)
    top_n: int = 4  # the N largest prunable layers
    method: str = "magnitude"  # "magnitude" or "random" (the original study pruned randomly)


@dataclass(frozen=True)
class AnalysisSettings:
    """The statistics' declared parameters (fixed before the run, written into config.yaml)."""

    # Equivalence margin of every B (default and its reason: study.stats.defaults.MARGIN).
    margin: float = MARGIN
    # Two-sided level of every CI; the TOST and one-sided tests run at 1 - confidence.
    confidence: float = CONFIDENCE


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study run depends on; written into the results folder as config.yaml."""

    name: str  # preset name or the file stem of a user preset
    models: tuple[str, ...]  # registry names (study.make.models.MODELS)
    weights: str  # "random", "pretrained" or a checkpoint path: the dense training starts there
    data: str  # "digits" or an ImageFolder path
    seed: int
    # Factor -> the levels this run measures (a subset of FACTORS[factor], reference included).
    # A factor left out runs at its reference level only.
    factors: dict[str, tuple[str, ...]]
    engines: tuple[str, ...]
    sweep: tuple[float, ...]  # one-shot sparsities of the trained dense model (speed-up curve)
    precision_ablation: bool  # also run OpenVINO at its default precision
    recipe: str  # SparseML GMP recipe text (both toolchains read it; profiles/masks rewrite it)
    # gzip level of the size table (the original study's Table 2 used gzip -9; level 6 is 15x faster
    # on sparse files and ~10% larger).
    gzip_level: int = 9
    # Architectures that get the int8 arm when `factors` has precision int8 (those of `models`
    # listed here; one not in `models` is not run); empty = all of them.
    int8_models: tuple[str, ...] = ()
    # ISA levels the benchmark runs at (study.engines.isa.ISA_LEVELS), "native" first: each other
    # level re-measures every architecture's block with the engines capped to it (a level the CPU
    # cannot go above is skipped with the reason).
    isa: tuple[str, ...] = ("native",)
    # Architectures that get the one-shot sweep (those of `models` listed here); None = all.
    # This key and `model_sparsity` may name architectures this run leaves out (`--models`).
    sweep_models: tuple[str, ...] | None = None
    # Architecture -> the overall sparsity its pruned variants target instead of the recipe's
    # (the recipe's pruning modifier gets this final_sparsity); None or a model left out: the
    # recipe's own target.
    model_sparsity: dict[str, float] | None = None
    # The per-operator profile of the dense, reference and sweep files on each engine after the
    # benchmark (study.bench.opprofile, into opprofile.json): `{iterations: N}`; None = not run.
    opprofile: dict[str, Any] | None = None
    # Side of the square image every file is exported and benchmarked at, raised to each
    # architecture's minimum (study.make.models.ModelEntry: min_train_size, and min_export_size,
    # 224 for VGG19); None = each architecture's real input size (224 px, 299 for InceptionV3,
    # ...). A small size makes a CI preset cheap; its throughputs say nothing about the networks.
    input_size: int | None = None
    train: TrainSettings = field(default_factory=TrainSettings)
    qat: QatSettings = field(default_factory=QatSettings)
    sensitivity: SensitivitySettings = field(default_factory=SensitivitySettings)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    bench: dict[str, Any] = field(
        default_factory=dict
    )  # scenarios, batch_size, threads + BenchSettings fields

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def levels(self, factor: str) -> tuple[str, ...]:
        """The levels of ``factor`` this run measures (the reference alone when it is not a factor)."""
        return self.factors.get(factor, FACTORS[factor][:1])

    def sweep_for(self, model: str) -> tuple[float, ...]:
        """The one-shot sweep sparsities of ``model`` (none when `sweep_models` leaves it out)."""
        return self.sweep if self.sweep_models is None or model in self.sweep_models else ()

    def recipe_for(self, model: str) -> str:
        """The recipe ``model`` is pruned with: the preset's, at its `model_sparsity` if set."""
        target = (self.model_sparsity or {}).get(model)
        if target is None:
            return self.recipe
        from study.make.profiles import with_target

        return with_target(self.recipe, target)

    def int8_for(self, model: str) -> bool:
        """Whether ``model`` gets the int8 arm."""
        return "int8" in self.levels("precision") and (
            not self.int8_models or model in self.int8_models
        )


def _read_preset(preset: str | Path) -> tuple[str, dict[str, Any]]:
    if str(preset) in PRESETS:
        text = resources.files("study.presets").joinpath(f"{preset}.yaml").read_text()
        name = str(preset)
    else:
        path = Path(preset)
        if not path.is_file():
            raise ValueError(
                f"`--preset` must be one of {', '.join(PRESETS)} or a YAML file path; got {str(preset)!r}"
            )
        text, name = path.read_text(), path.stem
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"preset {str(preset)!r} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"preset {str(preset)!r} must be a YAML mapping; got {type(raw).__name__}")
    return name, raw


def _subset(field_name: str, values: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = tuple([values] if isinstance(values, str) else values or ())
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(
            f"`{field_name}` must be a non-empty list from {', '.join(allowed)}; got {list(values)!r}"
        )
    return values


def _check_fields(cls: type, raw: dict[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        hint = ""
        if {"pruners", "exporters"} & set(unknown):
            hint = " (`pruners` and `exporters` became `factors: {pruner: [...], exporter: [...]}`)"
        raise ValueError(
            f"unknown key(s) {unknown} in {where}; allowed: {', '.join(sorted(known))}{hint}"
        )


def _factors(raw: Any) -> dict[str, tuple[str, ...]]:
    """Validate ``factors`` (factor -> levels); every factor's reference level must be listed."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(
            f"`factors` must be a mapping of factor -> levels, factors from {', '.join(FACTORS)}; "
            f"got {raw!r}"
        )
    out: dict[str, tuple[str, ...]] = {}
    for factor, levels in raw.items():
        if factor not in FACTORS:
            raise ValueError(
                f"unknown factor {factor!r} in `factors`; allowed: {', '.join(FACTORS)}"
            )
        allowed = FACTORS[factor]
        levels = tuple([levels] if isinstance(levels, str) else levels or ())
        bad = [v for v in levels if v not in allowed]
        if bad or not levels:
            raise ValueError(
                f"`factors.{factor}` must be a non-empty list from {', '.join(allowed)}; "
                f"got {list(levels)!r}"
            )
        if allowed[0] not in levels:
            raise ValueError(
                f"`factors.{factor}` must include its reference level {allowed[0]!r} (every "
                f"other level is compared with it); got {list(levels)!r}"
            )
        out[factor] = tuple(dict.fromkeys(levels))
    if "quantizer" in out and "int8" not in out.get("precision", ()):
        raise ValueError(
            "`factors.quantizer` needs `factors.precision` to include 'int8' (quantizers make "
            f"int8 models); got precision {list(out.get('precision', ('fp32',)))!r}"
        )
    return out


def select_factors(
    factors: dict[str, tuple[str, ...]], names: list[str] | None
) -> dict[str, tuple[str, ...]]:
    """Keep only the factors named (``--factors``); the others run at their reference level.

    Raises:
        ValueError: a name is not a factor of :data:`FACTORS` or not in this preset's ``factors``.
    """
    if names is None:
        return factors
    unknown = [n for n in names if n not in FACTORS]
    if unknown:
        raise ValueError(f"unknown factor(s) {unknown} in --factors; allowed: {', '.join(FACTORS)}")
    absent = [n for n in names if n not in factors]
    if absent:
        raise ValueError(
            f"--factors {','.join(names)}: {absent} not in this preset's factors "
            f"({', '.join(factors) or 'none'}); add its levels to the preset"
        )
    kept = {n: factors[n] for n in names}
    if "quantizer" in kept and "precision" not in kept:
        kept["precision"] = factors["precision"]
    return kept


def _section(cls: type, raw: Any, where: str) -> Any:
    raw = dict(raw or {})
    _check_fields(cls, raw, where)
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def _check_train(t: TrainSettings) -> None:
    if t.schedule not in ("onecycle", "cosine", "constant"):
        raise ValueError(
            f"`train.schedule` must be 'onecycle', 'cosine' or 'constant'; got {t.schedule!r}"
        )
    if not isinstance(t.epochs, int) or t.epochs < 1:
        raise ValueError(f"`train.epochs` must be a positive integer; got {t.epochs!r}")
    for key in ("train_samples", "val_samples"):
        n = getattr(t, key)
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ValueError(f"`train.{key}` must be null (all) or a positive integer; got {n!r}")
    gate = t.accuracy_gate
    if gate is not None and not 0.0 <= float(gate) <= 1.0:
        raise ValueError(f"`train.accuracy_gate` must be null or in [0, 1]; got {gate!r}")


def _gzip_level(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 9:
        raise ValueError(f"`gzip_level` must be an integer in 1..9; got {value!r}")
    return value


def _input_size(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 8:
        raise ValueError(
            f"`input_size` must be null (each architecture's real size) or an integer >= 8; "
            f"got {value!r}"
        )
    return value


def _isa(value: Any) -> tuple[str, ...]:
    from study.engines.isa import check_isa_levels

    levels = [value] if isinstance(value, str) else list(value or [])
    if "native" not in levels:
        levels = ["native", *levels]  # `--isa avx2` means native (the reference) and avx2
    return check_isa_levels(levels)


# The keys of a preset's `bench:` section that study.compare reads itself; every other key is a
# study.bench.BenchSettings field (its `seed` is the preset's top-level `seed`).
BENCH_KEYS: tuple[str, ...] = ("scenarios", "batch_size", "threads")


def _bench(raw: Any) -> dict[str, Any]:
    """Check a `bench:` section: known keys only, and values study.bench accepts."""
    from study.bench.cells import BenchSettings, check_settings

    if raw is not None and not isinstance(raw, dict):
        raise ValueError(f"`bench` must be a mapping of settings; got {raw!r}")
    section = dict(raw or {})
    fields = [f for f in BenchSettings.__dataclass_fields__ if f != "seed"]
    allowed = sorted([*BENCH_KEYS, *fields])
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in `bench`; allowed: {', '.join(allowed)}")
    check_settings(BenchSettings(**{k: v for k, v in section.items() if k in fields}))
    return section


def _registry_models(key: str, value: Any) -> tuple[str, ...] | None:
    """A list of registry architectures (None stays None: all of them). Names outside this run's
    `models` are allowed and ignored, so `--models` can pick a subset of a preset."""
    from study.make.models import MODELS

    if value is None:
        return None
    names = tuple([value] if isinstance(value, str) else value)
    stray = [m for m in names if m not in MODELS]
    if stray:
        raise ValueError(f"unknown model(s) {stray} in `{key}`; valid: {', '.join(MODELS)}")
    return names


def _model_sparsity(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(
            f"`model_sparsity` must be a mapping of architecture -> sparsity; got {value!r}"
        )
    _registry_models("model_sparsity", list(value))
    bad = {
        m: s
        for m, s in value.items()
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0.0 < s < 1.0
    }
    if bad:
        raise ValueError(f"`model_sparsity` values must be numbers in (0, 1); got {bad}")
    return {m: float(s) for m, s in value.items()}


def _opprofile(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"iterations"}:
        raise ValueError(
            f"`opprofile` must be null (off) or a mapping with the key `iterations`; got {value!r}"
        )
    iterations = value.get("iterations", 20)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"`opprofile.iterations` must be a positive integer; got {iterations!r}")
    return {"iterations": iterations}


def _check_analysis(a: AnalysisSettings) -> None:
    if not 0.0 < float(a.margin) < 1.0:
        raise ValueError(f"`analysis.margin` must be in (0, 1); got {a.margin!r}")
    if not 0.5 < float(a.confidence) < 1.0:
        raise ValueError(f"`analysis.confidence` must be in (0.5, 1); got {a.confidence!r}")


def _validate(raw: dict[str, Any], check_paths: bool = True) -> StudyConfig:
    from study.make.models import MODELS

    _check_fields(StudyConfig, raw, "the preset")
    models = tuple(
        [raw["models"]] if isinstance(raw.get("models"), str) else raw.get("models") or ()
    )
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"unknown model(s) {unknown or models!r}; valid: {', '.join(MODELS)}")
    int8_models = tuple(raw.get("int8_models") or ())
    stray = [m for m in int8_models if m not in MODELS]
    if stray:
        raise ValueError(f"unknown model(s) {stray} in `int8_models`; valid: {', '.join(MODELS)}")
    sweep = tuple(float(s) for s in raw.get("sweep") or ())
    bad = [s for s in sweep if not 0.0 <= s < 1.0]
    if bad:
        raise ValueError(f"`sparsities` (sweep) must each be in [0, 1); got {bad}")
    train = _section(TrainSettings, raw.get("train"), "`train`")
    _check_train(train)
    analysis = _section(AnalysisSettings, raw.get("analysis"), "`analysis`")
    _check_analysis(analysis)
    if not isinstance(raw.get("recipe"), str) or not raw["recipe"].strip():
        raise ValueError(
            "`recipe` must be a SparseML recipe (YAML text, or a path to a recipe file)"
        )
    recipe = raw["recipe"]
    if "\n" not in recipe.strip() and Path(recipe.strip()).is_file():
        recipe = Path(recipe.strip()).read_text()
    data = str(raw.get("data", "digits"))
    if check_paths and data != "digits" and not Path(data).is_dir():
        raise ValueError(
            f"`data` must be 'digits' or an ImageFolder directory; {data!r} is not a directory"
        )
    weights = str(raw.get("weights", "random"))
    if check_paths and weights not in ("random", "pretrained") and not Path(weights).is_file():
        raise ValueError(
            f"`weights` must be 'random', 'pretrained' or a checkpoint file; {weights!r} is not a file"
        )
    return StudyConfig(
        name=str(raw.get("name", "custom")),
        models=models,
        weights=weights,
        data=data,
        seed=int(raw.get("seed", 0)),
        factors=_factors(raw.get("factors")),
        engines=_subset("engines", raw.get("engines"), ENGINES),
        sweep=sweep,
        precision_ablation=bool(raw.get("precision_ablation", True)),
        recipe=recipe,
        int8_models=int8_models,
        isa=_isa(raw.get("isa", ["native"])),
        sweep_models=_registry_models("sweep_models", raw.get("sweep_models")),
        model_sparsity=_model_sparsity(raw.get("model_sparsity")),
        opprofile=_opprofile(raw.get("opprofile")),
        input_size=_input_size(raw.get("input_size")),
        gzip_level=_gzip_level(raw.get("gzip_level", 9)),
        train=train,
        qat=_section(QatSettings, raw.get("qat"), "`qat`"),
        sensitivity=_section(SensitivitySettings, raw.get("sensitivity"), "`sensitivity`"),
        analysis=analysis,
        bench=_bench(raw.get("bench")),
    )


def load_config(
    preset: str | Path = "quick",
    overrides: dict[str, Any] | None = None,
    *,
    check_paths: bool = True,
) -> StudyConfig:
    """Read a preset (a name from :data:`PRESETS` or a YAML path) and apply overrides.

    Args:
        preset: ``"quick"``, ``"seed"``, ``"seven_ci"``, ``"smoke"`` or the path of a user's preset file.
        overrides: top-level keys to replace (e.g. ``{"models": [...], "engines": [...]}``);
            ``None`` values are ignored. The key ``"factor_names"`` (``--factors``) keeps only
            the factors named; ``"replicates"`` (``--replicates``) sets ``bench.replicates``.
        check_paths: check that ``data`` and ``weights`` paths exist (False to read the
            config.yaml of a results folder made on another machine).

    Returns:
        The validated, frozen configuration.

    Raises:
        ValueError: unreadable preset, unknown key (in any section, ``bench`` included), model,
            engine, factor or level, a bench setting study.bench refuses, a sparsity
            outside [0, 1), or a data/weights path that does not exist. The message names the value
            and what is allowed.
    """
    name, raw = _read_preset(preset)
    raw.setdefault("name", name)
    overrides = dict(overrides or {})
    names = overrides.pop("factor_names", None)
    replicates = overrides.pop("replicates", None)
    if replicates is not None:
        bench = raw.get("bench") or {}
        raw["bench"] = {**bench, "replicates": replicates} if isinstance(bench, dict) else bench
    for key, value in overrides.items():
        if value is not None:
            raw[key] = value
    cfg = _validate(raw, check_paths)
    return dataclasses.replace(cfg, factors=select_factors(cfg.factors, names))
