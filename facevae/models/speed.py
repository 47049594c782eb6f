"""How a training step runs fast without changing what it computes: the compile switch, and step values read from
the device once every N steps instead of after every step.

The seed's model is small (about 37 MFLOP per image forward), so on a GPU each step is a few dozen short kernels and
Python sets the pace, not arithmetic. Two things keep the GPU busy:

- capturing the step: torch.compile(mode="reduce-overhead") fuses forward, loss and backward into a few kernels and
  replays them as CUDA graphs, one launch instead of dozens;
- never making the host wait on the hot path: every `.item()`, `bool(tensor)` or Python number sent to the device
  (Lightning's `self.log(name, 0.5)` does `torch.tensor(0.5, device=cuda)`) blocks until the GPU catches up.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from facevae.errors import FaceVAEError

log = logging.getLogger(__name__)

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# What "auto" means per device. The CUDA choice comes from issue 10's H100 table (batch 64: eager fp32 15,300 images/s,
# the step captured as CUDA graphs 31,800, with bf16) until this project's own GPU benchmark exists. On CPU compiling
# costs 30-60 s the first time and its gain did not hold steady on 2 cores (README, Performance): eager.
AUTO_COMPILE = {"cuda": "reduce-overhead"}


def compile_setting(setting: str | bool | None) -> str | None:
    """The config's `model.compile` as "auto", a torch.compile mode, or None (eager); anything else is an error."""
    if setting in (None, False, "false", "False", "eager", "none"):
        return None
    if setting is True or setting == "true":
        return "default"
    if setting == "auto" or setting in COMPILE_MODES:
        return setting
    raise FaceVAEError(f"model.compile={setting}: use auto, false or a torch.compile mode ({', '.join(COMPILE_MODES)})")


def resolve_compile(
    setting: str | None, device_type: str, find: Callable[[str], str | None] | None = None
) -> str | None:
    """The torch.compile mode to train with on this device, or None for eager.

    `setting` comes from compile_setting; `find` returns the C/C++ compiler torch.compile would build its kernels with
    (find_compiler by default). Without one an explicit mode is a user error, while "auto" falls back to eager with a
    warning.
    """
    mode = AUTO_COMPILE.get(device_type) if setting == "auto" else setting
    if mode is None or (find or find_compiler)(device_type) is not None:
        return mode
    if setting == "auto":
        log.warning("model.compile=auto: no C/C++ compiler found, training eagerly (torch.compile builds kernels)")
        return None
    raise FaceVAEError(
        f"model.compile={setting}: torch.compile needs a C/C++ compiler to build its kernels and none was found "
        "(install g++, or set model.compile=false)"
    )


def find_compiler(device_type: str) -> str | None:
    """The compiler torch.compile's inductor would use on this device: C++ for CPU kernels (what inductor itself
    searches for), a C compiler for Triton's GPU launchers. None when there is none."""
    if device_type == "cpu":
        try:
            from torch._inductor.cpp_builder import get_cpp_compiler

            return get_cpp_compiler()
        except Exception:  # noqa: BLE001 - inductor raises its own error types when no compiler is found
            return None
    names = (os.environ.get("CC"), "cc", "gcc", "clang")
    return next((path for name in names if name and (path := shutil.which(name))), None)


class StepValues:
    """Scalars of each training step (loss, recon, kl, ...) kept on the device, read to the host in one copy.

    Reading a CUDA tensor waits for every kernel queued before it; doing that once every N steps instead of once per
    step lets the host run ahead and keep the GPU fed. Each row is copied out of the step's outputs straight away,
    since CUDA-graph outputs are overwritten by the next replay.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.rows: list[Tensor] = []
        self.first_step = 0

    def add(self, step: int, values: Sequence[Tensor]) -> None:
        if not self.rows:
            self.first_step = step
        self.rows.append(torch.stack([v.detach().float() for v in values]))

    def __len__(self) -> int:
        return len(self.rows)

    def peek(self) -> Tensor:
        """The values held, steps x names, on the CPU: the one read from the device."""
        return torch.stack(self.rows).cpu() if self.rows else torch.empty(0, len(self.names))

    def read(self) -> tuple[int, Tensor]:
        """(the first step held, its values as peek() gives them), and the buffer emptied."""
        first, values = self.first_step, self.peek()
        self.rows = []
        return first, values


def first_non_finite(first_step: int, losses: Tensor) -> tuple[int, float] | None:
    """(step, value) of the first non-finite loss among steps first_step, first_step + 1, ...; None if all finite."""
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad) == 0:
        return None
    i = int(bad[0, 0])
    return first_step + i, float(losses[i])
