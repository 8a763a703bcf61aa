"""Describe the machine a benchmark ran on: CPU, ISA flags, frequency, library versions, GPU."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

ISA_FLAGS = ("fma", "avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16")
PACKAGES = ("torch", "onnxruntime", "onnxruntime-gpu", "onnx", "numpy", "tensorrt")
CPUINFO = Path("/proc/cpuinfo")
MAX_FREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")


def cpu_info(text: str | None = None) -> dict:
    """Model name, ISA flags and the clock (MHz) reported in /proc/cpuinfo (`text` overrides)."""
    if text is None:
        text = CPUINFO.read_text() if CPUINFO.is_file() else ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's values
    flags = set(fields.get("flags", "").split())
    mhz = float(fields["cpu MHz"]) if "cpu MHz" in fields else None
    return {
        "cpu": fields.get("model name", platform.processor() or "unknown"),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "cpu_mhz": mhz,
    }


def describe() -> dict:
    """The machine as a JSON-ready dict (cores: the ones this process may run on)."""
    info = cpu_info()
    if MAX_FREQ.is_file():
        info["max_mhz"] = int(MAX_FREQ.read_text()) / 1000
    info["cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    info["load_average"] = round(os.getloadavg()[0], 2)
    info["os"] = f"{platform.system()} {platform.release()}"
    info["python"] = platform.python_version()
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    info["versions"] = versions
    info["gpu"] = gpu_name()
    return info


def gpu_name() -> str | None:
    """The first CUDA device's name, or None (no torch, or no GPU)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def summary(machine: dict) -> str:
    """One line: `AMD EPYC, 2 cores at 2445 MHz, avx2 fma; onnxruntime 1.32.0, torch 2.13.0`."""
    v = machine.get("versions", {})
    libs = ", ".join(f"{k} {v[k]}" for k in ("onnxruntime", "onnx", "torch", "numpy") if k in v)
    clock = f" at {machine['cpu_mhz']:.0f} MHz" if machine.get("cpu_mhz") else ""
    gpu = f"; GPU {machine['gpu']}" if machine.get("gpu") else "; no GPU"
    return (
        f"{machine['cpu']}, {machine['cores']} cores{clock}, ISA {' '.join(machine['isa'])}"
        f"{gpu}; {libs}"
    )
