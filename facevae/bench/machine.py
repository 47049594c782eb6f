"""The line every benchmark table starts with: which machine, how loaded, which versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import torch


def describe_machine(device: str = "cpu", **versions: str) -> str:
    """CPU model, cores and load, the GPU when timing on one, and the versions that set the speed."""
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0] if names else cpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = f"1-min load {os.getloadavg()[0]:.2f} before timing"  # other processes on the cores slow every step
    parts = [f"{cpu}, {cores} cores, {load}"]
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        parts.insert(0, f"{props.name} ({props.total_memory / 2**30:.0f} GiB)")
    known = {"python": platform.python_version(), "torch": package_version("torch"), **versions}
    return "; ".join(parts) + "; " + ", ".join(f"{k} {v}" for k, v in known.items())


def package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)  # without importing it: torch takes seconds to import
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
