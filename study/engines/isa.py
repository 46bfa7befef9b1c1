"""Instruction-set paths: which one an engine ran, and capping engines below the CPU's own.

The original study's strongest finding depends on the CPU (OpenVINO led on a Sapphire Rapids Xeon,
DeepSparse elsewhere), so the ISA an engine ran is recorded with every trial, from the engine's own
word, and the study can re-measure a block with the engines capped to a lower ISA on one host (the
``isa`` factor: ``python -m study.compare --isa native,avx2``).

Levels (:data:`ISA_LEVELS`):

- ``"native"``: no cap; every engine picks the best path for this CPU.
- ``"avx512"``: AVX-512 without AMX. OpenVINO: ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`` (oneDNN's
  ISA just below AVX512_CORE_AMX); DeepSparse: ``NM_ARCH=avx512`` (its AVX-512 engine binary, the one
  it runs natively on AVX-512 CPUs); torch: ``ATEN_CPU_CAPABILITY=avx512``. Only meaningful on a CPU
  with AMX: elsewhere it equals native and is skipped.
- ``"avx2"``: AVX2 only (the original study's m6a.xlarge, c4, t3). OpenVINO:
  ``ONEDNN_MAX_CPU_ISA=AVX2``; DeepSparse: ``NM_ARCH=avx2`` (its AVX2 engine binary); torch:
  ``ATEN_CPU_CAPABILITY=avx2``. Only meaningful on a CPU with AVX-512: elsewhere it equals native.

What a cap cannot reach (:data:`NOT_CAPPED`): ONNX Runtime has no runtime ISA cap (its MLAS kernels
dispatch on the CPU's own flags); ``ONEDNN_MAX_CPU_ISA`` caps oneDNN's kernels but not OpenVINO's
own JIT kernels nor the MLAS GEMM it uses for some FullyConnected layers (OpenVINO's own cap,
``OV_CPU_MAX_ISA``, works in debug builds only). Each adapter therefore reports what ran
(:func:`kernel_isa` on OpenVINO's executed kernel names, DeepSparse's engine binary and
``cpu_avx_type``, torch's ``get_cpu_capability()``) and whether the cap took effect, read back from
the engine rather than assumed from the variable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = [
    "CAPS",
    "ISA_LEVELS",
    "NOT_CAPPED",
    "above",
    "amx_int8",
    "apply_cap",
    "bf16_capable",
    "check_isa_levels",
    "kernel_isa",
    "kernels_by_isa",
    "level_skip_reason",
    "native_level",
]

ISA_LEVELS = ("native", "avx512", "avx2")

# Engine -> level -> environment variables its worker process sets before the engine loads.
CAPS: dict[str, dict[str, dict[str, str]]] = {
    "deepsparse": {"avx512": {"NM_ARCH": "avx512"}, "avx2": {"NM_ARCH": "avx2"}},
    "deepsparse-cli": {"avx512": {"NM_ARCH": "avx512"}, "avx2": {"NM_ARCH": "avx2"}},
    "openvino": {
        "avx512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
        "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    },
    "torch": {"avx512": {"ATEN_CPU_CAPABILITY": "avx512"}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2"}},
}

# Engine -> what a cap leaves uncapped (said in the rows and the report).
NOT_CAPPED: dict[str, str] = {
    "onnxruntime": "ONNX Runtime has no runtime ISA cap: its MLAS kernels use the CPU's own best",
    "openvino": (
        "ONEDNN_MAX_CPU_ISA caps oneDNN's kernels only; OpenVINO's own JIT kernels and its MLAS "
        "GEMM keep the CPU's own ISA (OV_CPU_MAX_ISA works in debug builds only)"
    ),
    "deepsparse": "",
    "deepsparse-cli": "",
    "torch": "",
}

# Order of the ISA families named in kernel names, highest first.
_FAMILIES = ("amx", "avx512", "avx2", "avx", "sse41")
_RANK = {"avx2": 1, "avx512": 2, "amx": 3}


def check_isa_levels(levels: Iterable[str]) -> tuple[str, ...]:
    """Validate the ``isa`` factor's levels: known, unique, ``native`` first.

    Raises:
        ValueError: naming the bad level and the allowed ones.

    Example:
        >>> check_isa_levels(["native", "avx2"])
        ('native', 'avx2')
    """
    out = tuple(levels)
    for level in out:
        if level not in ISA_LEVELS:
            raise ValueError(f"isa level must be one of {list(ISA_LEVELS)}; got {level!r}")
    if not out or out[0] != "native":
        raise ValueError(f"isa levels must start with 'native' (the reference); got {list(out)}")
    if len(set(out)) != len(out):
        raise ValueError(f"isa levels must not repeat; got {list(out)}")
    return out


def bf16_capable(isa: Mapping[str, bool]) -> bool:
    """Whether OpenVINO's default precision is bf16 here (AVX512-BF16 or AMX-BF16 present)."""
    return bool(isa.get("avx512_bf16") or isa.get("amx_bf16"))


def amx_int8(isa: Mapping[str, bool]) -> bool:
    """Whether the CPU has AMX INT8 (OpenVINO's sparse-weights decompression needs it)."""
    return bool(isa.get("amx_int8") and isa.get("amx_tile"))


def native_level(isa: Mapping[str, bool]) -> str:
    """The CPU's own top ISA family: ``"amx"``, ``"avx512"``, ``"avx2"`` or ``"below avx2"``.

    Example:
        >>> native_level({"avx2": True, "avx512f": False})
        'avx2'
    """
    if isa.get("avx512f") and isa.get("amx_tile"):
        return "amx"
    if isa.get("avx512f"):
        return "avx512"
    if isa.get("avx2"):
        return "avx2"
    return "below avx2"


def level_skip_reason(level: str, isa: Mapping[str, bool]) -> str | None:
    """Why ``level`` cannot differ from native on a CPU with flags ``isa`` (None: measure it).

    Example:
        >>> level_skip_reason("avx2", {"avx2": True, "avx512f": False})[:40]
        'the CPU has no AVX-512 (native ISA avx2)'
    """
    check_isa_levels(["native", level] if level != "native" else ["native"])
    native = native_level(isa)
    if level == "native":
        return None
    if _RANK.get(native, 0) <= _RANK[level]:
        what = {"avx512": "AMX", "avx2": "AVX-512"}[level]
        return (
            f"the CPU has no {what} (native ISA {native}): the {level} cap would equal native, "
            "so the level is skipped"
        )
    return None


def kernel_isa(kernel: str) -> str:
    """The ISA family an OpenVINO executed-kernel name states (``primitiveType``).

    ``"brgconv_avx512_1x1_f32"`` -> ``"avx512"``, ``"brgemm_avx512_amx_I8"`` -> ``"amx"``,
    ``"jit_avx2_f32"`` -> ``"avx2"``, ``"gemm_mlas_f32"`` -> ``"mlas"`` (MLAS dispatches by
    itself); names that state no ISA (``"jit_uni_f32"``, ``"ref_f32"``, ``"unknown_f32"``,
    ``"reorder_f32"``) -> ``"unstated"``.

    Example:
        >>> kernel_isa("brgconv_avx2_1x1_f32"), kernel_isa("jit_uni_f32")
        ('avx2', 'unstated')
    """
    name = kernel.lower()
    if "mlas" in name:
        return "mlas"
    for family in _FAMILIES:
        if re.search(rf"(^|_){family}(_|$)", name):
            return family
    return "unstated"


def kernels_by_isa(layers: Iterable[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """ISA family -> layer type -> count, from (layer type, kernel name) pairs.

    Example:
        >>> kernels_by_isa([("Convolution", "brgconv_avx2_f32"), ("Reduce", "jit_avx512_f32")])
        {'avx2': {'Convolution': 1}, 'avx512': {'Reduce': 1}}
    """
    out: dict[str, dict[str, int]] = {}
    for layer, kernel in layers:
        family = out.setdefault(kernel_isa(kernel), {})
        family[layer] = family.get(layer, 0) + 1
    return dict(sorted(out.items()))


def above(level: str, family: str) -> bool:
    """Whether kernel ISA ``family`` is above the cap ``level`` (``"avx2"`` or ``"avx512"``)."""
    return _RANK.get(family, 0) > _RANK.get(level, 99)


def apply_cap(engine: str, level: str, environ: dict | None = None) -> dict[str, str]:
    """Set the cap's environment variables for ``engine`` at ``level``; return what was set.

    Called in the engine's own worker process before the engine is imported (DeepSparse picks its
    binary at import, oneDNN reads its cap once). Engines without a cap get nothing.
    """
    import os

    env = os.environ if environ is None else environ
    check_isa_levels(["native", level] if level != "native" else ["native"])
    chosen = {} if level == "native" else dict(CAPS.get(engine, {}).get(level, {}))
    env.update(chosen)
    return chosen


def cap_record(engine: str, level: str, took_effect: bool | None, evidence: str) -> dict:
    """The ``isa_cap`` entry of an engine's settings: what was asked, set, reached and not.

    Args:
        engine: the engine name.
        level: the ISA level of the cell.
        took_effect: the engine's own report confirms the cap (None at ``"native"``).
        evidence: what the engine reported (kernel names, binary), in words.
    """
    variables = {} if level == "native" else CAPS.get(engine, {}).get(level, {})
    return {
        "level": level,
        "variables": dict(variables),
        "capped": bool(variables),
        "took_effect": took_effect,
        "evidence": evidence,
        "not_capped": "" if level == "native" else (NOT_CAPPED.get(engine) or ""),
    }
