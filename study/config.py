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

__all__ = ["PRESETS", "StudyConfig", "TrainSettings", "SensitivitySettings", "load_config"]

PRESETS = ("quick", "seed", "smoke")
PRUNERS = ("gmp", "sparseml")
EXPORTERS = ("torch", "sparseml")
ENGINES = ("onnxruntime", "openvino", "deepsparse", "deepsparse-cli", "torch")


@dataclass(frozen=True)
class TrainSettings:
    """How every model is trained on the shared loop (dense, gmp and SparseML alike)."""

    image_size: int = (
        32  # training resolution (raised to the architecture's minimum); export uses the real size
    )
    batch_size: int = 32
    train_samples: int | None = None  # subsample of the training split; None = all of it
    optimizer: str = "sgd"  # "sgd" or "adam"
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4


@dataclass(frozen=True)
class SensitivitySettings:
    """One-shot per-layer sensitivity analysis of the trained dense models."""

    models: tuple[str, ...] = ()  # which architectures (subset of `models`); empty = none
    levels: tuple[float, ...] = (0.3, 0.6, 0.9)
    top_n: int = 4  # the N largest prunable layers
    method: str = "magnitude"  # "magnitude" or "random" (the original study pruned randomly)


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study run depends on; written into the results folder as config.yaml."""

    name: str  # preset name or the file stem of a user preset
    models: tuple[str, ...]  # registry names (study.models.MODELS)
    weights: str  # "random", "pretrained" or a checkpoint path
    data: str  # "digits" or an ImageFolder path
    seed: int
    pruners: tuple[str, ...]  # subset of ("gmp", "sparseml")
    exporters: tuple[str, ...]  # subset of ("torch", "sparseml")
    engines: tuple[str, ...]
    sweep: tuple[float, ...]  # one-shot sparsities for the speed-up curve
    precision_ablation: bool  # also run OpenVINO at its default precision
    recipe: str  # SparseML GMP recipe text (both toolchains read it)
    train: TrainSettings = field(default_factory=TrainSettings)
    sensitivity: SensitivitySettings = field(default_factory=SensitivitySettings)
    bench: dict[str, Any] = field(
        default_factory=dict
    )  # scenarios, batch_size, threads + BenchSettings fields

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
        raise ValueError(
            f"unknown key(s) {unknown} in {where}; allowed: {', '.join(sorted(known))}"
        )


def _validate(raw: dict[str, Any]) -> StudyConfig:
    from study.models import MODELS

    _check_fields(StudyConfig, raw, "the preset")
    models = tuple(
        [raw["models"]] if isinstance(raw.get("models"), str) else raw.get("models") or ()
    )
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"unknown model(s) {unknown or models!r}; valid: {', '.join(MODELS)}")
    sweep = tuple(float(s) for s in raw.get("sweep") or ())
    bad = [s for s in sweep if not 0.0 <= s < 1.0]
    if bad:
        raise ValueError(f"`sparsities` (sweep) must each be in [0, 1); got {bad}")
    train_raw = raw.get("train") or {}
    _check_fields(TrainSettings, train_raw, "`train`")
    sens_raw = dict(raw.get("sensitivity") or {})
    _check_fields(SensitivitySettings, sens_raw, "`sensitivity`")
    sens_raw = {k: tuple(v) if isinstance(v, list) else v for k, v in sens_raw.items()}
    if not isinstance(raw.get("recipe"), str) or not raw["recipe"].strip():
        raise ValueError(
            "`recipe` must be a SparseML recipe (YAML text, or a path to a recipe file)"
        )
    recipe = raw["recipe"]
    if "\n" not in recipe.strip() and Path(recipe.strip()).is_file():
        recipe = Path(recipe.strip()).read_text()
    data = str(raw.get("data", "digits"))
    if data != "digits" and not Path(data).is_dir():
        raise ValueError(
            f"`data` must be 'digits' or an ImageFolder directory; {data!r} is not a directory"
        )
    weights = str(raw.get("weights", "random"))
    if weights not in ("random", "pretrained") and not Path(weights).is_file():
        raise ValueError(
            f"`weights` must be 'random', 'pretrained' or a checkpoint file; {weights!r} is not a file"
        )
    return StudyConfig(
        name=str(raw.get("name", "custom")),
        models=models,
        weights=weights,
        data=data,
        seed=int(raw.get("seed", 0)),
        pruners=_subset("pruners", raw.get("pruners", PRUNERS), PRUNERS),
        exporters=_subset("exporters", raw.get("exporters", EXPORTERS), EXPORTERS),
        engines=_subset("engines", raw.get("engines"), ENGINES),
        sweep=sweep,
        precision_ablation=bool(raw.get("precision_ablation", True)),
        recipe=recipe,
        train=TrainSettings(**train_raw),
        sensitivity=SensitivitySettings(**sens_raw),
        bench=dict(raw.get("bench") or {}),
    )


def load_config(
    preset: str | Path = "quick", overrides: dict[str, Any] | None = None
) -> StudyConfig:
    """Read a preset (a name from :data:`PRESETS` or a YAML path) and apply overrides.

    Args:
        preset: ``"quick"``, ``"seed"``, ``"smoke"`` or the path of a user's preset file.
        overrides: top-level keys to replace (e.g. ``{"models": [...], "engines": [...]}``);
            ``None`` values are ignored.

    Returns:
        The validated, frozen configuration.

    Raises:
        ValueError: unreadable preset, unknown key, model, engine, pruner or exporter, a sparsity
            outside [0, 1), or a data/weights path that does not exist. The message names the value
            and what is allowed.
    """
    name, raw = _read_preset(preset)
    raw.setdefault("name", name)
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    return _validate(raw)
