"""Hardware capture, checked against what the OS reports through other channels."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import subprocess
from pathlib import Path

import psutil
import pytest

from study.bench.hardware import _parse_size, capture_hardware, machine_id, microarchitecture


@pytest.fixture(scope="module")
def hw():
    return capture_hardware()


def test_cores_match_psutil(hw):
    assert (
        hw.physical_cores == psutil.cpu_count(logical=False)
        and hw.logical_cpus == psutil.cpu_count()
    )


def test_isa_flags_match_proc_cpuinfo(hw):
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if not text:
        pytest.skip("no /proc/cpuinfo on this OS (the flags then come from py-cpuinfo alone)")
    flags = set(
        next(line for line in text.splitlines() if line.startswith("flags")).split(":")[1].split()
    )
    assert hw.isa == {f: f in flags for f in hw.isa}


def test_l1d_matches_getconf(hw):
    # glibc's getconf reads the same caches through sysconf (an independent path from /sys parsing).
    out = subprocess.run(
        ["getconf", "LEVEL1_DCACHE_SIZE"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not out.isdigit() or int(out) == 0:
        pytest.skip("getconf does not report LEVEL1_DCACHE_SIZE here")
    assert hw.l1d_bytes == int(out)


def test_package_versions(hw):
    import onnxruntime

    assert hw.packages["onnxruntime"] == onnxruntime.__version__
    assert hw.packages["torch"] == importlib.metadata.version("torch")


def test_hardware_is_frozen_and_serialisable(hw):
    with pytest.raises(dataclasses.FrozenInstanceError):
        hw.cpu_model = "x"
    assert hw.to_dict()["machine"] == hw.machine


def test_machine_id_is_stable_slug():
    a = machine_id("AMD EPYC 9R14 96-Core Processor", "host-1")
    assert a == machine_id("AMD EPYC 9R14 96-Core Processor", "host-1")
    assert a.startswith("amd-epyc-9r14-96-core-processor-") and a != machine_id(
        "AMD EPYC 9R14 96-Core Processor", "h2"
    )
    assert machine_id("Intel(R) Xeon(R) Platinum 8488C", "h").startswith(
        "intel-xeon-platinum-8488c-"
    )


def test_microarchitecture_table():
    # Family/model numbers from Intel's SDM and AMD's family 17h/19h/1Ah revision guides.
    assert microarchitecture("AuthenticAMD", 25, 0x11) == "Zen 4"  # Genoa
    assert microarchitecture("AuthenticAMD", 25, 0x01) == "Zen 3"  # Milan
    assert microarchitecture("AuthenticAMD", 23, 0x31) == "Zen 2"  # Rome
    assert microarchitecture("GenuineIntel", 6, 143) == "Sapphire Rapids"
    assert microarchitecture("GenuineIntel", 6, 106) == "Ice Lake-SP"
    assert microarchitecture("GenuineIntel", 6, 1) == "unknown (family 6, model 1)"


def test_parse_size():
    assert (
        _parse_size("48K") == 49152
        and _parse_size("2048K") == 2 << 20
        and _parse_size("32768") == 32768
    )
    with pytest.raises(ValueError, match="cache size must look like"):
        _parse_size("lots")
