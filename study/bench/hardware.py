"""Hardware and software capture: the original study's CPU table, filled in automatically.

:func:`capture_hardware` returns a frozen :class:`Hardware`; its ``machine`` id (a slug of the CPU
model plus a hash of the hostname) keys the rows of every results file to ``environment.json``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
import re
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "Hardware",
    "capture_hardware",
    "git_commit",
    "machine_id",
    "microarchitecture",
    "physical_cores",
]

PACKAGES = (
    "torch",
    "torchvision",
    "onnx",
    "onnxruntime",
    "openvino",
    "deepsparse",
    "sparseml",
    "sparsezoo",
    "numpy",
)
ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

# (vendor, family, model) -> microarchitecture; Intel family 6 server/client parts and AMD Zen.
_INTEL_FAMILY6 = {
    63: "Haswell",
    79: "Broadwell",
    85: "Skylake-SP/Cascade Lake",
    106: "Ice Lake-SP",
    108: "Ice Lake-D",
    142: "Kaby/Whiskey/Comet Lake",
    158: "Coffee Lake",
    143: "Sapphire Rapids",
    151: "Alder Lake",
    154: "Alder Lake",
    183: "Raptor Lake",
    191: "Raptor Lake",
    173: "Granite Rapids",
    175: "Sierra Forest",
    207: "Emerald Rapids",
}
# AMD family 0x19 (25) model ranges.
_AMD_F19 = [
    (0x00, 0x0F, "Zen 3"),
    (0x10, 0x1F, "Zen 4"),
    (0x20, 0x5F, "Zen 3"),
    (0x60, 0x7F, "Zen 4"),
    (0xA0, 0xAF, "Zen 4"),
]


def physical_cores() -> int:
    """Physical CPU cores (logical ones where psutil cannot tell; at least 1): the default thread
    count of every engine, and how many single-threaded jobs the study runs side by side."""
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


@dataclass(frozen=True)
class Hardware:
    """One machine's CPU, caches, OS and package versions."""

    machine: str  # stable id: slug of the CPU model + hash of the hostname
    cpu_model: str  # brand string, e.g. "AMD EPYC 9R14 96-Core Processor"
    vendor: str  # "GenuineIntel", "AuthenticAMD", ...
    family: int | None  # CPUID family
    model_number: int | None  # CPUID model
    microarchitecture: str  # e.g. "Zen 4", "Sapphire Rapids"
    isa: dict[str, bool]  # ISA_FLAGS -> present
    l1d_bytes: int | None  # per core
    l1i_bytes: int | None  # per core
    l2_bytes: int | None  # per core (per instance)
    l3_bytes: int | None  # per instance (shared)
    physical_cores: int | None  # psutil.cpu_count(logical=False)
    logical_cpus: int | None  # psutil.cpu_count()
    max_mhz: float | None  # maximum frequency, when the OS exposes it
    os: str  # platform.platform()
    kernel: str  # platform.release()
    python: str  # platform.python_version()
    packages: dict[str, str] = field(default_factory=dict)  # distribution -> version ("" if absent)
    git_commit: str = ""  # HEAD of the repository, "" outside git or before the first commit
    hypervisor: bool = False  # running under a hypervisor (cloud VM)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def microarchitecture(vendor: str, family: int | None, model: int | None) -> str:
    """Name the microarchitecture from the CPUID vendor, family and model.

    Example:
        >>> microarchitecture("AuthenticAMD", 25, 0x11)
        'Zen 4'
    """
    if family is None or model is None:
        return "unknown"
    if vendor == "GenuineIntel" and family == 6 and model in _INTEL_FAMILY6:
        return _INTEL_FAMILY6[model]
    if vendor == "AuthenticAMD":
        if family == 23:
            return "Zen 2" if model >= 0x30 else "Zen/Zen+"
        if family == 25:
            return next((name for lo, hi, name in _AMD_F19 if lo <= model <= hi), "Zen 3/4")
        if family == 26:
            return "Zen 5"
    return f"unknown (family {family}, model {model})"


def machine_id(cpu_model: str, hostname: str) -> str:
    """``"AMD EPYC 9R14 96-Core Processor", "ip-10-0-0-1"`` -> ``"amd-epyc-9r14-96-core-processor-1a2b3c4d"``."""
    slug = re.sub(
        r"[^a-z0-9]+", "-", cpu_model.lower().replace("(r)", "").replace("(tm)", "")
    ).strip("-")
    return f"{slug or 'cpu'}-{hashlib.sha256(hostname.encode()).hexdigest()[:8]}"


def git_commit(repo: str | Path | None = None) -> str:
    """The repository's HEAD commit, or "" when there is none (no git, no commit yet)."""
    cwd = Path(repo) if repo else Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _cache_sizes() -> dict[str, int | None]:
    """Per-instance cache sizes of cpu0 from /sys (Linux); None where absent."""
    sizes: dict[str, int | None] = {"l1d": None, "l1i": None, "l2": None, "l3": None}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(base.glob("index*")) if base.is_dir() else []:
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        key = {
            ("1", "Data"): "l1d",
            ("1", "Instruction"): "l1i",
            ("2", "Unified"): "l2",
            ("3", "Unified"): "l3",
        }.get((level, kind))
        if key:
            sizes[key] = _parse_size(size)
    return sizes


def _parse_size(text: str) -> int:
    """``"48K"`` -> 49152; ``"32768"`` -> 32768."""
    m = re.fullmatch(r"(\d+)\s*([KMG]?)i?B?", text.strip(), re.IGNORECASE)
    if not m:
        raise ValueError(f"cache size must look like '48K' or '2M'; got {text!r}")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2).upper()]


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = ""
    return out


@functools.lru_cache(maxsize=1)
def capture_hardware() -> Hardware:
    """Capture this machine (cached per process; py-cpuinfo takes about a second).

    Example:
        >>> hw = capture_hardware()  # doctest: +SKIP
        >>> hw.machine, hw.isa["avx512_bf16"]  # doctest: +SKIP
        ('intel-xeon-processor-3f2a9c1d', True)
    """
    import cpuinfo

    info = cpuinfo.get_cpu_info()
    flags = set(info.get("flags", []))
    cpu_model = info.get("brand_raw") or platform.processor() or "unknown cpu"
    vendor = info.get("vendor_id_raw", "")
    caches = _cache_sizes()
    freq = psutil.cpu_freq()
    max_mhz = (freq.max or None) if freq else None
    if not max_mhz and info.get("hz_advertised"):
        max_mhz = info["hz_advertised"][0] / 1e6
    family, model = info.get("family"), info.get("model")
    return Hardware(
        machine=machine_id(cpu_model, socket.gethostname()),
        cpu_model=cpu_model,
        vendor=vendor,
        family=family,
        model_number=model,
        microarchitecture=microarchitecture(vendor, family, model),
        isa={f: f in flags for f in ISA_FLAGS},
        l1d_bytes=caches["l1d"] or info.get("l1_data_cache_size"),
        l1i_bytes=caches["l1i"] or info.get("l1_instruction_cache_size"),
        l2_bytes=caches["l2"] or info.get("l2_cache_size"),
        l3_bytes=caches["l3"] or info.get("l3_cache_size"),
        physical_cores=psutil.cpu_count(logical=False),
        logical_cpus=psutil.cpu_count(logical=True),
        max_mhz=max_mhz,
        os=platform.platform(),
        kernel=platform.release(),
        python=platform.python_version(),
        packages=_versions(),
        git_commit=git_commit(),
        hypervisor="hypervisor" in flags,
    )
