"""How a training step runs fast without changing what it computes: the compile and capture switches, and step
values read from the device once every N steps instead of after every step.

The seed's model is small (about 37 MFLOP per image forward), so on a GPU each step is a few hundred short kernels and
Python sets the pace, not arithmetic. Three things keep the GPU busy:

- capturing the step: CapturedStep records forward, loss and backward once as a CUDA graph and replays it, one
  launch instead of hundreds (torch.compile(mode="reduce-overhead") does the same, but its per-call guards and graph
  bookkeeping cost more than the whole step at batch 64);
- fusing kernels: torch.compile (mode "default") inside the captured step, which pays at large batches;
- never making the host wait on the hot path: every `.item()`, `bool(tensor)` or Python number sent to the device
  (Lightning's `self.log(name, 0.5)` does `torch.tensor(0.5, device=cuda)`) blocks until the GPU catches up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from facevae.core.errors import FaceVAEError

log = logging.getLogger(__name__)

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# What "auto" means per device, from `python -m facevae.bench train` (README, Performance). On an H100 the training
# step captured by CapturedStep (model.cuda_graph) with inductor's fused kernels inside ran the train.py loop at 30,100
# images/s at batch 64 and 159,000 at 1024, against 15,600 and 170,000 for torch.compile's own CUDA graphs
# (reduce-overhead), whose per-call guards and bookkeeping cost more than the step at batch 64; the eager step
# captured gave 30,000 and 136,000. On CPU compiling costs 30-60 s the first time and its gain did not hold steady on
# 2 cores: eager.
AUTO_COMPILE = {"cuda": "default"}


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
        try:  # inductor is imported only here: it is heavy, and needed only when a fit compiles on CPU
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
    """(step, value) of the first non-finite loss among steps first_step, first_step + 1, ...; None if all finite.

    `losses` has a row per step: one loss, or one per member of a stacked model."""
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad) == 0:
        return None
    return first_step + int(bad[0, 0]), float(losses[tuple(bad[0])])


def graph_setting(setting: str | bool | None) -> str | bool:
    """The config's `model.cuda_graph` as "auto", True or False; anything else is an error."""
    if setting in (None, False, "false", "False"):
        return False
    if setting in (True, "true", "True"):
        return True
    if setting == "auto":
        return "auto"
    raise FaceVAEError(f"model.cuda_graph={setting}: use auto, true or false")


def resolve_graph(
    setting: str | bool, device_type: str, compile_mode: str | None, world_size: int, autocast: bool = False
) -> bool:
    """Whether to capture the training step as one CUDA graph: "auto" does on a single GPU unless torch.compile
    already replays its own graphs, or the step runs under autocast (bf16-mixed: capture under autocast is written
    as PyTorch asks, with its weight cache off, but not yet measured on a GPU); an explicit true where capture cannot
    work is a user error."""
    own_graphs = compile_mode in ("reduce-overhead", "max-autotune")
    if setting == "auto":
        return device_type == "cuda" and world_size == 1 and not own_graphs and not autocast
    if not setting:
        return False
    if device_type != "cuda":
        raise FaceVAEError(f"model.cuda_graph=true: CUDA graphs need a GPU, and this fit runs on {device_type}")
    if world_size > 1:
        raise FaceVAEError("model.cuda_graph=true: a captured step cannot hold DDP's gradient all-reduce (one GPU)")
    if own_graphs:
        raise FaceVAEError(
            f"model.cuda_graph=true with model.compile={compile_mode}: that mode already replays CUDA graphs; "
            "use model.compile=default (or false) with model.cuda_graph=true"
        )
    return True


class CapturedStep:
    """A training step's forward, loss and backward, recorded once as a CUDA graph and then replayed.

    At batch 64 the seed's model is a few hundred kernels of a few microseconds each: Python launching them, not the
    GPU running them, sets the pace. A replay launches them all in one call. `step(x, weight, capacity)` must run
    the backward itself and return detached tensors (loss, recon, kl); the optimizer steps eagerly after each replay
    (fused Adam is one launch), so Lightning still counts and checkpoints every step.

    What capture asks of the caller: inputs of one shape (training drops the ragged last batch; a new shape is
    captured anew), the gradients left where the graph writes them (never set to None between steps), the weights
    updated in place (any torch optimizer does), and no eager autograd graph of these weights alive when capturing
    (its gradient nodes would tie the capture to the default stream). The warm-up steps before capture run forward
    and backward only, so they leave the weights as they were. Under autocast, warm-up and capture run with
    autocast's weight cache off: a cast cached outside the graph would be read by every replay, stale.
    """

    def __init__(self, step: Callable[[Tensor, Tensor, Tensor | None], Sequence[Tensor]], params: Sequence[Tensor]):
        self.step = step
        self.params = [p for p in params if p.requires_grad]
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple[Tensor, Tensor, Tensor | None] | None = None
        self.outputs: tuple[Tensor, ...] = ()
        self.captures = 0

    def __call__(self, x: Tensor, weight: float, capacity: float | None) -> tuple[Tensor, ...]:
        if not self._fits(x, capacity):
            self._capture(x, weight, capacity)
        static_x, static_weight, static_capacity = self.inputs
        static_x.copy_(x)
        static_weight.fill_(weight)  # a kernel with the number as its argument: no copy, no wait
        if static_capacity is not None:
            static_capacity.fill_(capacity)
        self.graph.replay()
        return self.outputs

    def _fits(self, x: Tensor, capacity: float | None) -> bool:
        if self.graph is None:
            return False
        static_x, _, static_capacity = self.inputs
        same_input = x.shape == static_x.shape and x.dtype == static_x.dtype and x.stride() == static_x.stride()
        return same_input and (capacity is None) == (static_capacity is None)

    def _capture(self, x: Tensor, weight: float, capacity: float | None, warmup: int = 3) -> None:
        if self.graph is not None:
            log.info("training batch shape is now %s: capturing the step again", tuple(x.shape))
        static_x = x.detach().clone()  # keeps x's memory format (channels_last)
        static_weight = torch.full((), float(weight), device=x.device)
        static_capacity = None if capacity is None else torch.full((), float(capacity), device=x.device)
        # Warm-up on a side stream, as capture requires: cuDNN picks its algorithms and lazy state is made outside
        # the graph. Forward and backward only: the weights stay as they are.
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side), _uncached_autocast(x.device.type):
            for _ in range(warmup):
                self._clear_grads()
                self.step(static_x, static_weight, static_capacity)
        torch.cuda.current_stream(x.device).wait_stream(side)
        # Gradients made inside the capture live in the graph's memory: each replay writes them there afresh.
        self._clear_grads()
        graph = torch.cuda.CUDAGraph()
        with _uncached_autocast(x.device.type), torch.cuda.graph(graph):
            outputs = self.step(static_x, static_weight, static_capacity)
        self.graph, self.inputs, self.outputs = graph, (static_x, static_weight, static_capacity), tuple(outputs)
        self.captures += 1

    def _clear_grads(self) -> None:
        for p in self.params:
            p.grad = None


class TrainingStep:
    """The speed machinery of a training step as one component: how forward, loss and backward run (eagerly,
    compiled by torch.compile, or captured as one CUDA graph and replayed), and the step values they leave on the
    device (StepValues), read once every N steps.

    A LightningModule gives it `objective(x, weight, capacity) -> (loss, recon, kl)`, the part torch.compile
    compiles, and `total(loss)`, what the backward starts from (the loss, or a stacked model's sum of its members');
    it calls `start` when a fit starts, the step itself every batch, and `stop` when the fit ends. Nothing else of
    the module knows how the step runs.
    """

    def __init__(
        self,
        objective: Callable[[Tensor, float | Tensor, float | Tensor | None], tuple[Tensor, Tensor, Tensor]],
        total: Callable[[Tensor], Tensor],
        names: Sequence[str],
        compile: str | bool | None = "auto",
        cuda_graph: str | bool | None = "auto",
    ) -> None:
        self.objective, self.total = objective, total
        # Checked now, resolved for the device at fit start.
        self.compile_setting = compile_setting(compile)
        self.graph_setting = graph_setting(cuda_graph)
        self.values = StepValues(names)
        self.read_every: int | None = None  # steps between reads inside trainer.fit; None: every step
        self.compiled: Callable | None = None  # set at fit start when compiling
        self.captured: CapturedStep | None = None  # set at fit start when capturing

    def start(
        self,
        params: Sequence[Tensor],
        device_type: str,
        world_size: int = 1,
        autocast: bool = False,
        read_every: int | None = None,
    ) -> str | None:
        """Resolve the compile and capture settings for this device, compile the objective (lazily: on its first
        call) and set up its capture (at the first step); returns the torch.compile mode, or None."""
        mode = resolve_compile(self.compile_setting, device_type)
        self.compiled = torch.compile(self.objective, mode=mode) if mode else None
        capture = resolve_graph(self.graph_setting, device_type, mode, world_size, autocast)
        self.captured = CapturedStep(self.backward_step, list(params)) if capture else None
        self.read_every = read_every
        return mode

    def stop(self) -> None:
        """Back to the eager objective, read at every step: what evaluation outside a fit runs."""
        self.compiled, self.captured, self.read_every = None, None, None

    @property
    def ran_backward(self) -> bool:
        """Whether a step has already run its own backward (a replayed graph holds it)."""
        return self.captured is not None

    def backward_step(self, x: Tensor, weight: Tensor, capacity: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Forward, loss and backward: what a CapturedStep records."""
        loss, recon, kl = (self.compiled or self.objective)(x, weight, capacity)
        self.total(loss).backward()
        return loss.detach(), recon, kl

    def __call__(self, x: Tensor, weight: float, capacity: float | None) -> tuple[Tensor, Tensor, Tensor]:
        """(loss, recon, kl) of a training batch: ready for backward, or with the backward run (ran_backward)."""
        if self.captured is not None:
            return self.captured(x, weight, capacity)  # forward, loss and backward: one replay
        if self.compiled is None:
            return self.objective(x, weight, capacity)
        # Tensors made on the device, not Python floats: a number that changes every step (KL warm-up, capacity)
        # would recompile the graph, and torch.tensor(value, device=cuda) would wait for the GPU.
        weight_t = torch.full((), weight, device=x.device)
        capacity_t = None if capacity is None else torch.full((), capacity, device=x.device)
        torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs are done with: CUDA graphs may reuse them
        return self.compiled(x, weight_t, capacity_t)

    def read_due(self, global_step: int, last_batch: bool) -> bool:
        """Whether this step reads the step values: at the logging steps, at an epoch's last batch (`last_batch`, so
        the NaN check and the logged values are current before validation and checkpoints), and at every step
        outside trainer.fit."""
        if self.read_every is None:
            return True
        return (self.read_every > 0 and (global_step + 1) % self.read_every == 0) or last_batch


def _uncached_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """The autocast already on, with its cache of cast weights emptied and off; nothing when autocast is off."""
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        enabled, dtype = torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    else:  # the CUDA-only spelling of older torch
        enabled, dtype = torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()
    if not enabled:
        return contextlib.nullcontext()
    torch.clear_autocast_cache()
    return torch.autocast(device_type, dtype=dtype, cache_enabled=False)
