"""The `trainer` group: the hardware asked for, how long the run trains and validates, and the switches the models
cannot take or that would keep nothing of the run.
"""

from __future__ import annotations

import os
import typing
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.connector import _PRECISION_INPUT_INT, _PRECISION_INPUT_STR

from facevae.core import rules
from facevae.core.errors import require
from facevae.validation.groups import target_class
from facevae.validation.values import UNRESOLVED


def check_trainer(t: dict) -> None:
    target_class("trainer", t.get("_target_", "pytorch_lightning.Trainer"))
    values = {k: v for k, v in t.items() if not k.startswith("_")}
    rules.known_keys("trainer", values, pl.Trainer.__init__, "pytorch_lightning.Trainer")
    t = rules.with_defaults(pl.Trainer.__init__, values)
    _hardware(t)
    _schedule(t)
    _switches(t)


def _schedule(t: dict) -> None:
    """How long the run trains, and how often it validates, logs and checks."""
    epochs = rules.whole("trainer.max_epochs", t["max_epochs"], lo=1, why=" (epochs to train)")
    if t["min_epochs"] is not None:
        rules.whole("trainer.min_epochs", t["min_epochs"], 0, epochs, why=" (trainer.max_epochs)")
    require(
        t["max_steps"] == -1 or (is_whole(t["max_steps"]) and t["max_steps"] >= 1),
        f"trainer.max_steps={rules.shown(t['max_steps'])}: must be -1 (no limit) or a whole number >= 1",
    )
    if t["check_val_every_n_epoch"] is not None:  # the last epoch validates too (facevae.callbacks.ValidateLastEpoch)
        rules.whole("trainer.check_val_every_n_epoch", t["check_val_every_n_epoch"], lo=1)
    if t["val_check_interval"] is not None:
        # A share of each epoch: a number of steps could exceed an epoch's, which Lightning finds out only once the
        # data is extracted (the demo's epoch is about 15 steps).
        rules.number("trainer.val_check_interval", t["val_check_interval"], above=0, hi=1, why=" (a share of an epoch)")
    max_time = t["max_time"]
    ok = max_time is None or isinstance(max_time, dict) or (isinstance(max_time, str) and _is_duration(max_time))
    require(ok, f"trainer.max_time={rules.shown(max_time)}: must be null or DD:HH:MM:SS, e.g. 00:12:00:00")
    rules.whole("trainer.log_every_n_steps", t["log_every_n_steps"] if t["log_every_n_steps"] is not None else 50, lo=1)
    rules.number("trainer.limit_train_batches", _or(t["limit_train_batches"], 1.0), above=0, why=" (0 trains nothing)")
    for key in ("limit_val_batches", "limit_test_batches", "overfit_batches"):
        rules.number(f"trainer.{key}", _or(t[key], 1.0 if key != "overfit_batches" else 0.0), lo=0)
    rules.whole("trainer.num_sanity_val_steps", _or(t["num_sanity_val_steps"], 2), lo=-1)


def _switches(t: dict) -> None:
    """The Trainer's switches: those the models cannot take, and those that would keep nothing of the run."""
    rules.whole("trainer.reload_dataloaders_every_n_epochs", t["reload_dataloaders_every_n_epochs"], lo=0)
    # The models step their optimisers themselves (manual optimisation), which Lightning's accumulation and clipping
    # do not support.
    rules.choice("trainer.accumulate_grad_batches", t["accumulate_grad_batches"], (1,), why=" (manual optimisation)")
    require(t["gradient_clip_val"] is None, "trainer.gradient_clip_val: not supported with manual optimisation; null")
    rules.choice("trainer.deterministic", t["deterministic"], (True, False, "warn", None))
    for key in ("enable_progress_bar", "enable_model_summary", "use_distributed_sampler", "sync_batchnorm"):
        rules.flag(f"trainer.{key}", _or(t[key], True))
    for key in ("inference_mode", "detect_anomaly", "barebones"):
        rules.flag(f"trainer.{key}", t[key])
    require(
        _or(t["enable_checkpointing"], True) is True,
        "trainer.enable_checkpointing=false: the run would keep no checkpoint to evaluate or resume from",
    )
    require(t["barebones"] is False, "trainer.barebones=true: the run would keep no checkpoint and log nothing")
    fast = t["fast_dev_run"]
    require(
        isinstance(fast, bool) or (is_whole(fast) and fast >= 0),
        f"trainer.fast_dev_run={rules.shown(fast)}: must be true, false or a number of batches",
    )
    if t["default_root_dir"] is not UNRESOLVED:
        rules.text("trainer.default_root_dir", t["default_root_dir"], optional=True)
    if isinstance(t["profiler"], dict):  # a profiler built from its own config (the bench's)
        target_class("trainer.profiler", t["profiler"].get("_target_"))
    else:
        rules.choice("trainer.profiler", t["profiler"], (None, "simple", "advanced", "pytorch"))


def _hardware(t: dict) -> None:
    accelerator = rules.choice("trainer.accelerator", t["accelerator"], ("auto", "cpu", "gpu", "cuda", "mps"))
    gpus = torch.cuda.device_count()
    if accelerator in ("gpu", "cuda"):
        require(gpus > 0, f"trainer.accelerator={accelerator}: no CUDA GPU here; use trainer.accelerator=auto or cpu")
    if accelerator == "mps":
        require(torch.backends.mps.is_available(), "trainer.accelerator=mps: no Apple GPU here; use auto or cpu")
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus > 0)
    cores = os.cpu_count() or 1
    have = gpus if on_gpu else max(2, cores)  # DDP on CPU: a process a core, two even on one
    what = f"{gpus} GPUs" if on_gpu else f"{cores} CPU cores"
    devices = t["devices"]
    if devices != "auto":
        listed = devices if isinstance(devices, list) else None
        if listed is not None:
            ok = listed and all(is_whole(d) and 0 <= d < have for d in listed)
            require(ok, f"trainer.devices={rules.shown(devices)}: device indices from 0 to {have - 1} ({what} here)")
        elif devices != -1:
            rules.whole("trainer.devices", devices, 1, have, why=f" (or auto; {what} here)")
    rules.whole("trainer.num_nodes", t["num_nodes"], lo=1)
    strategy = rules.text("trainer.strategy", t["strategy"])
    ok = strategy == "auto" or strategy.startswith(("ddp", "fsdp")) or strategy == "single_device"
    require(ok, f"trainer.strategy={strategy}: must be auto, ddp, ddp_spawn, fsdp or single_device")
    precisions = (*typing.get_args(_PRECISION_INPUT_STR), *typing.get_args(_PRECISION_INPUT_INT))
    rules.choice("trainer.precision", t["precision"] if t["precision"] is not None else "32-true", precisions)


def _is_duration(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 4 and all(p.isdigit() for p in parts) and any(int(p) for p in parts)


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
