"""Which device a command runs its model on."""

from __future__ import annotations

import torch


def pick_device(name: str) -> torch.device:
    """`auto`: the first GPU when there is one, else the CPU; any other name as torch spells it (cpu, cuda:1)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
