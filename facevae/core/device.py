"""Which device a command runs its model on."""

from __future__ import annotations

import torch

from facevae.core.errors import require


def pick_device(name: str) -> torch.device:
    """`auto`: the first GPU when there is one, else the CPU; any other name as torch spells it (cpu, cuda:1)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_device(key: str, name: object) -> None:
    """`auto`, `cpu`, or a device this machine has (`cuda`, `cuda:1`, `mps`), before torch is asked for it."""
    require(isinstance(name, str) and name.strip() != "", f"{key}={name}: must be auto, cpu or a device like cuda:0")
    kind, _, index = name.partition(":")
    require(
        kind in ("auto", "cpu", "cuda", "mps") and (index == "" or (kind == "cuda" and index.isdigit())),
        f"{key}={name}: must be auto, cpu, cuda, cuda:N or mps",
    )
    if kind == "cuda":
        count = torch.cuda.device_count()
        require(count > int(index or 0), f"{key}={name}: this machine has {count} CUDA GPUs; use {key}=auto or cpu")
    if kind == "mps":
        require(torch.backends.mps.is_available(), f"{key}={name}: no Apple GPU (MPS) here; use {key}=auto or cpu")
